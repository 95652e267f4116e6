//! CF conventions for 10 m wind: which variable is which component, its
//! counterpart in a file, and turning components stored along a projected
//! grid's axes (CF `x_wind`/`y_wind`, as WRF or a Lambert HRRR GRIB writes
//! them) to east/north. Jobs, `finecast evaluate` and training pairs all pair
//! and turn winds through this module.

use std::path::Path;

use finecast_grid::Grid;
use ndarray::{Array2, Zip};

use crate::{Dataset, FieldData, IoError};

/// Whether a CF standard name marks a wind component along the grid axes.
pub fn is_grid_relative(standard_name: Option<&str>) -> bool {
    matches!(standard_name, Some("x_wind" | "y_wind"))
}

/// Which component of the wind vector a variable is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindComponent {
    /// The u component (`u10`, `uas`, `10u`): positive towards the east, or
    /// along the grid's +x axis when stored grid-relative.
    Eastward,
    /// The v component (`v10`, `vas`, `10v`): positive towards the north, or
    /// along the grid's +y axis when stored grid-relative.
    Northward,
}

/// The 10 m wind components finecast pairs, by variable name
/// (case-insensitive), with their counterpart. CF standard names
/// (`eastward_wind`) do not say the height, so they do not count.
const COMPONENT_PAIRS: [(&str, &str); 3] = [("u10", "v10"), ("uas", "vas"), ("10u", "10v")];

impl WindComponent {
    /// The component a variable known by `names` is, and the name of its
    /// counterpart.
    pub fn of(names: &[&str]) -> Option<(WindComponent, &'static str)> {
        for name in names {
            for (east, north) in COMPONENT_PAIRS {
                if name.eq_ignore_ascii_case(east) {
                    return Some((WindComponent::Eastward, north));
                }
                if name.eq_ignore_ascii_case(north) {
                    return Some((WindComponent::Northward, east));
                }
            }
        }
        None
    }

    /// The CF standard name of the earth-relative component.
    pub fn standard_name(self) -> &'static str {
        match self {
            WindComponent::Eastward => "eastward_wind",
            WindComponent::Northward => "northward_wind",
        }
    }

    /// Index of the component in (eastward, northward) order.
    pub fn index(self) -> usize {
        match self {
            WindComponent::Eastward => 0,
            WindComponent::Northward => 1,
        }
    }
}

/// Turn wind components along a grid's axes into eastward and northward
/// components, in place, with the grid's [`Grid::x_axis_angle`]. Both fields
/// must be on `grid`.
pub fn turn_to_earth_relative(u: &mut Array2<f32>, v: &mut Array2<f32>, grid: &Grid) {
    let angle = grid.x_axis_angle();
    Zip::from(u).and(v).and(&angle).for_each(|u, v, &a| {
        let (sin, cos) = a.sin_cos();
        (*u, *v) = (*u * cos - *v * sin, *u * sin + *v * cos);
    });
}

/// Which component a variable known by `names` is and the name of its
/// counterpart in `ds`; `None` where the names are not a 10 m wind component
/// or the file lacks the counterpart. A counterpart name that matches
/// several variables is an error, not a missing partner.
pub fn find_partner(
    ds: &Dataset,
    names: &[&str],
) -> Result<Option<(WindComponent, String)>, IoError> {
    let Some((component, partner)) = WindComponent::of(names) else {
        return Ok(None);
    };
    match ds.resolve(partner) {
        Ok(name) => Ok(Some((component, name))),
        Err(IoError::NoSuchVariable { hint, .. }) if hint.is_empty() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Turn a wind component `field` and its counterpart `other` (`field` being
/// `component`) to east/north in place when both lie along their grid's
/// axes, relabelling them `eastward_wind`/`northward_wind`; returns whether it
/// turned them. A pair on two grids, with a counterpart not in m s-1, or
/// with one component of each kind is an error naming the file and both
/// variables.
pub fn to_earth_relative(
    path: &Path,
    component: WindComponent,
    field: &mut FieldData,
    other: &mut FieldData,
) -> Result<bool, IoError> {
    let fail = |detail: String| IoError::Variable {
        path: path.display().to_string(),
        var: field.name.clone(),
        detail,
    };
    if field.field.grid != other.field.grid {
        return Err(fail(format!(
            "its wind counterpart '{}' is on a different grid",
            other.name
        )));
    }
    if other.units != "m s-1" {
        return Err(fail(format!(
            "its wind counterpart '{}' has units '{}', not m s-1",
            other.name, other.units
        )));
    }
    match (
        is_grid_relative(field.standard_name.as_deref()),
        is_grid_relative(other.standard_name.as_deref()),
    ) {
        (false, false) => return Ok(false),
        (true, true) => {}
        _ => {
            return Err(fail(format!(
                "it and its counterpart '{}' mix grid-relative and earth-relative wind components",
                other.name
            )))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_pair_up() {
        assert_eq!(
            WindComponent::of(&["u10", "eastward_wind"]),
            Some((WindComponent::Eastward, "v10"))
        );
        assert_eq!(
            WindComponent::of(&["VAS"]),
            Some((WindComponent::Northward, "uas"))
        );
        // Another height, or a standard name that does not say the height.
        assert_eq!(WindComponent::of(&["u100", "eastward_wind"]), None);
        assert_eq!(WindComponent::of(&["x_wind"]), None);
    }
}
