//! What kind of physical quantity a variable is, which decides the methods,
//! the physical bounds and the scores that apply to it.

use ndarray::Array2;

/// The classes of variables finecast treats differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    /// Air, dew-point or surface temperature (K): terrain corrections apply.
    Temperature,
    /// Precipitation amount or flux: non-negative, scored with FSS too.
    Precipitation,
    /// Wind components or speed (m s-1).
    Wind,
    /// Anything else (pressure, humidity, orography, ...): no physical
    /// bound is imposed and no FSS is computed.
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

    /// Keep a downscaled field within the quantity's physical bounds:
    /// precipitation is never negative (bicubic overshoot at the edge of a
    /// rain area would make it so). Missing cells stay missing (`f32::max`
    /// would turn them into 0 mm). Jobs, `finecast evaluate` and the model
    /// card all bound their fields here.
    pub fn bound(&self, field: &mut Array2<f32>) {
        if *self == Quantity::Precipitation {
            field.mapv_inplace(|v| if v < 0.0 { 0.0 } else { v });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precipitation_is_bounded_at_zero_and_missing_stays_missing() {
        let mut field = Array2::from_shape_vec((1, 4), vec![-0.2, 0.0, 3.5, f32::NAN]).unwrap();
        Quantity::Precipitation.bound(&mut field);
        assert_eq!(&field.as_slice().unwrap()[..3], &[0.0, 0.0, 3.5]);
        assert!(field[[0, 3]].is_nan());
        let mut t = Array2::from_elem((1, 1), -5.0f32);
        Quantity::Temperature.bound(&mut t);
        assert_eq!(t[[0, 0]], -5.0);
    }
}
