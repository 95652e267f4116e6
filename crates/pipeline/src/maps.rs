//! Framed PNG maps of a variable in a file (`finecast map`).

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use finecast_io::{Selection, TimeSel};
use finecast_render::{default_range, render_map_png, MapSpec, Palette};
use ndarray::Array2;

use crate::PipelineError;

/// A map to draw (`finecast map`): one variable of one file at one time.
#[derive(Debug, Clone)]
pub struct MapRequest {
    /// The NetCDF (or GRIB) file to read.
    pub file: PathBuf,
    /// The variable, by name or CF standard name.
    pub var: String,
    /// Valid time to draw; `None` draws the first.
    pub time: Option<DateTime<Utc>>,
    /// Palette name; default by variable.
    pub palette: Option<String>,
    /// Colour range; default fixed per variable, else the 2–98 % range.
    pub range: Option<(f64, f64)>,
    /// The PNG to write.
    pub out: PathBuf,
    /// Figure width in pixels, frame and colour bar included (200 to 8192).
    pub width: u32,
    /// Figure height in pixels (150 to 8192).
    pub height: u32,
}

/// Draw `req` as a framed PNG: title from the variable's long name, valid
/// time and source file as subtitle, rows drawn north-up whatever the file's
/// row order. Fails on an unknown palette, a missing variable or time, or a
/// figure size the renderer refuses.
pub fn render_file_map(req: &MapRequest) -> Result<(), PipelineError> {
    let ds = finecast_io::open(&req.file)?;
    let var = ds.resolve(&req.var)?;
    let sel = Selection {
        time: req.time.map(TimeSel::At).unwrap_or(TimeSel::First),
        bbox: None,
    };
    let fd = ds.read(&var, &sel)?;
    let palette = match &req.palette {
        Some(name) => Palette::by_name(name)
            .ok_or_else(|| PipelineError::Invalid(format!("unknown palette '{name}'")))?,
        None => Palette::for_variable(fd.standard_name.as_deref().unwrap_or(&var)),
    };
    let range = req
        .range
        .or_else(|| default_range(&var, &fd.units))
        .unwrap_or_else(|| robust_range(&fd.field.data));
    let source = req
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let spec = MapSpec {
        title: fd.long_name.clone().unwrap_or_else(|| var.clone()),
        subtitle: format!(
            "valid {} | {}",
            fd.time
                .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_else(|| "-".into()),
            source
        ),
        units: fd.units.clone(),
        data: fd.field.data.view(),
        north_up_rows: fd.field.grid.is_y_descending(),
        palette,
        range,
        width: req.width,
        height: req.height,
        hillshade: None,
    };
    render_map_png(&spec, &req.out).map_err(|e| PipelineError::Render {
        path: req.out.clone(),
        source: e,
    })
}

/// The 2nd to 98th percentile of the finite values, for quantities without a
/// fixed default colour range.
pub fn robust_range(data: &Array2<f32>) -> (f64, f64) {
    let mut v: Vec<f32> = data.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (0.0, 1.0);
    }
    v.sort_by(f32::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize] as f64;
    let (lo, hi) = (at(0.02), at(0.98));
    if hi > lo {
        (lo, hi)
    } else {
        (lo - 0.5, hi + 0.5)
    }
}
