//! What kind of physical quantity a variable is, which decides the methods and
//! constraints that apply to it.

/// The classes of variables finecast treats differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    /// Air, dew-point or surface temperature (K): terrain corrections apply.
    Temperature,
    /// Precipitation amount or flux: non-negative, scored with FSS too.
    Precipitation,
    /// Wind components or speed (m s-1).
    Wind,
    Other,
}

impl Quantity {
    /// Classify from the SI units and the CF standard name.
    pub fn classify(units: &str, standard_name: Option<&str>) -> Quantity {
        let sn = standard_name.unwrap_or("");
        if units == "K" && (sn.is_empty() || sn.contains("temperature")) {
            Quantity::Temperature
        } else if sn.contains("precipitation") || units == "kg m-2" || units == "kg m-2 s-1" {
            Quantity::Precipitation
        } else if units == "m s-1" {
            Quantity::Wind
        } else {
            Quantity::Other
        }
    }

    /// Thresholds (in SI units) for FSS, for precipitation.
    pub fn fss_thresholds(&self, units: &str) -> Vec<f32> {
        match (self, units) {
            (Quantity::Precipitation, "kg m-2 s-1") => {
                vec![1.0 / 3600.0, 5.0 / 3600.0, 10.0 / 3600.0]
            }
            (Quantity::Precipitation, _) => vec![1.0, 5.0, 10.0],
            _ => vec![],
        }
    }
}
