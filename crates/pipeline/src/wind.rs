//! Pairing a 10 m wind component with its counterpart, and bringing both to
//! east/north, for the wind network and for scoring wind.

use std::path::Path;

use finecast_io::{Dataset, FieldData, IoError};
use finecast_model::wind::{is_grid_relative, turn_to_earth_relative, WindComponent};

use crate::PipelineError;

/// Which component a variable known by `names` is and the name of its
/// counterpart in `ds`; `None` where the names are not a 10 m wind component
/// or the file lacks the counterpart. A counterpart name that matches
/// several variables is an error, not a missing partner.
pub(crate) fn find_partner(
    ds: &Dataset,
    names: &[&str],
) -> Result<Option<(WindComponent, String)>, PipelineError> {
    let Some((component, partner)) = WindComponent::of(names) else {
        return Ok(None);
    };
    match ds.resolve(partner) {
        Ok(name) => Ok(Some((component, name))),
        Err(IoError::NoSuchVariable { hint, .. }) if hint.is_empty() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Turn a wind component `field` and its counterpart `other` (`field` being
/// `component`) to east/north in place when both lie along their grid's
/// axes (CF `x_wind`/`y_wind`, as WRF or a Lambert HRRR GRIB stores them),
/// relabelling them `eastward_wind`/`northward_wind`; returns whether it
/// turned them. A pair on two grids or with one component of each kind is
/// an error naming the file and both variables.
pub(crate) fn to_earth_relative(
    path: &Path,
    component: WindComponent,
    field: &mut FieldData,
    other: &mut FieldData,
) -> Result<bool, PipelineError> {
    if field.field.grid != other.field.grid {
        return Err(PipelineError::input(
            path,
            format!(
                "'{}' and '{}' are on different grids",
                field.name, other.name
            ),
        ));
    }
    if other.units != "m s-1" {
        return Err(PipelineError::input(
            path,
            format!(
                "'{}', the counterpart of '{}', has units '{}', not m s-1",
                other.name, field.name, other.units
            ),
        ));
    }
    match (
        is_grid_relative(field.standard_name.as_deref()),
        is_grid_relative(other.standard_name.as_deref()),
    ) {
        (false, false) => return Ok(false),
        (true, true) => {}
        _ => {
            return Err(PipelineError::input(
                path,
                format!(
                    "'{}' and '{}' mix grid-relative and earth-relative wind components",
                    field.name, other.name
                ),
            ))
        }
    };
    let (east, north) = match component {
        WindComponent::Eastward => (field, other),
        WindComponent::Northward => (other, field),
    };
    let grid = east.field.grid.clone();
    turn_to_earth_relative(&mut east.field.data, &mut north.field.data, &grid);
    east.standard_name = Some(WindComponent::Eastward.standard_name().into());
    north.standard_name = Some(WindComponent::Northward.standard_name().into());
    Ok(true)
}
