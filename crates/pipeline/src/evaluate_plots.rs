//! Figures for `finecast evaluate --plots DIR`: maps of the truth, of each
//! prediction and of its error, and the power spectra.

use std::path::Path;

use finecast_grid::Field;
use finecast_metrics::rapsd;
use finecast_render::{
    default_range, render_map_png, render_spectra_png, MapSpec, Palette, SpectrumLine,
};
use ndarray::Array2;

use crate::maps::robust_range;
use crate::PipelineError;

const WIDTH: u32 = 900;
const HEIGHT: u32 = 720;

#[allow(clippy::too_many_arguments)]
pub(crate) fn write(
    dir: &Path,
    var: &str,
    units: &str,
    truth: &Field,
    predictions: &[(String, Array2<f32>)],
    truth_interior: &Array2<f32>,
    interior: impl Fn(&Array2<f32>) -> Array2<f32>,
    (dx_km, dy_km): (f64, f64),
    terrain: Option<&Field>,
) -> Result<(), PipelineError> {
    std::fs::create_dir_all(dir).map_err(|e| PipelineError::Write {
        path: dir.to_path_buf(),
        source: e,
    })?;
    let north_up_rows = truth.grid.is_y_descending();
    let range = default_range(var, units).unwrap_or_else(|| robust_range(&truth.data));
    let map = |name: &str,
               title: String,
               data: &Array2<f32>,
               palette: Palette,
               range: (f64, f64),
               shade: bool| {
        let path = dir.join(format!("{name}.png"));
        let spec = MapSpec {
            title,
            subtitle: format!("{var} ({units}) — perfect-model evaluation"),
            units: units.to_string(),
            data: data.view(),
            north_up_rows,
            palette,
            range,
            width: WIDTH,
            height: HEIGHT,
            hillshade: terrain.filter(|_| shade).map(|t| t.data.view()),
        };
        render_map_png(&spec, &path).map_err(|e| PipelineError::Render { path, source: e })
    };
    map(
        "truth",
        format!("Truth: {var}"),
        &truth.data,
        Palette::for_variable(var),
        range,
        true,
    )?;
    // One symmetric error range for every method, so error maps are comparable.
    let max_err = predictions
        .iter()
        .flat_map(|(_, p)| p.iter().zip(truth.data.iter()).map(|(a, b)| (a - b).abs()))
        .filter(|v| v.is_finite())
        .fold(0.0f32, f32::max)
        .clamp(0.5, 10.0) as f64;
    let difference = Palette::by_name("difference").expect("the difference palette exists");
    for (m, pred) in predictions {
        map(
            m,
            format!("{m}: {var}"),
            pred,
            Palette::for_variable(var),
            range,
            true,
        )?;
        let err = pred - &truth.data;
        map(
            &format!("{m}_error"),
            format!("{m} minus truth"),
            &err,
            difference.clone(),
            (-max_err, max_err),
            false,
        )?;
    }

    let spectrum = |a: &Array2<f32>| rapsd(a.view(), dx_km, dy_km);
    let metric_err = |e| PipelineError::Metrics {
        context: "spectra plot".into(),
        source: e,
    };
    let mut spectra = vec![(
        "truth".to_string(),
        spectrum(truth_interior).map_err(metric_err)?,
    )];
    for (m, pred) in predictions {
        spectra.push((m.clone(), spectrum(&interior(pred)).map_err(metric_err)?));
    }
    let lines: Vec<SpectrumLine> = spectra
        .iter()
        .map(|(label, s)| SpectrumLine {
            label: label.clone(),
            wavelength_km: &s.wavelength_km,
            power: &s.power,
        })
        .collect();
    let path = dir.join("spectra.png");
    render_spectra_png(
        &format!("Radially averaged power spectra: {var}"),
        &lines,
        &path,
    )
    .map_err(|e| PipelineError::Render { path, source: e })
}
