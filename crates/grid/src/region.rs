//! Geographic regions given on the command line as `S,N,W,E`.

use std::str::FromStr;

use crate::GridError;

/// A latitude/longitude box. `east` may be below `west` in the input (a box
/// across the antimeridian); it is stored unwrapped so that `east > west`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Region {
    /// Southern bound, degrees of latitude in [-90, 90), below `north`.
    pub south: f64,
    /// Northern bound, degrees of latitude in (-90, 90], above `south`.
    pub north: f64,
    /// Western bound, degrees of longitude as given (within -360..=360).
    pub west: f64,
    /// Eastern bound, degrees of longitude, unwrapped so that
    /// `west < east <= west + 360` (it may exceed 180).
    pub east: f64,
}

impl Region {
    /// A box from bounds in degrees. `east <= west` means the box crosses the
    /// antimeridian and `east` is stored plus 360.
    ///
    /// Errors with [`GridError::Region`] when a bound is non-finite, a
    /// latitude is outside [-90, 90] or `south >= north`, a longitude is
    /// outside [-360, 360], or the longitude span exceeds 360 degrees.
    pub fn new(south: f64, north: f64, west: f64, east: f64) -> Result<Region, GridError> {
        let all = [south, north, west, east];
        if all.iter().any(|v| !v.is_finite()) {
            return Err(GridError::Region(format!(
                "{south},{north},{west},{east} has a non-finite bound"
            )));
        }
        if !(-90.0..=90.0).contains(&south) || !(-90.0..=90.0).contains(&north) || south >= north {
            return Err(GridError::Region(format!(
                "latitudes south={south} north={north} must satisfy -90 <= south < north <= 90"
            )));
        }
        if !(-360.0..=360.0).contains(&west) || !(-360.0..=360.0).contains(&east) {
            return Err(GridError::Region(format!(
                "longitudes west={west} east={east} must be within -360..360"
            )));
        }
        let east = if east <= west { east + 360.0 } else { east };
        if east - west > 360.0 {
            return Err(GridError::Region(format!(
                "longitude span {west}..{east} exceeds 360 degrees"
            )));
        }
        Ok(Region {
            south,
            north,
            west,
            east,
        })
    }

    /// Centre `(lon, lat)`, longitude in [-180, 180).
    pub fn centre(&self) -> (f64, f64) {
        (
            crate::wrap180((self.west + self.east) * 0.5),
            (self.south + self.north) * 0.5,
        )
    }

    /// Does the box contain the point (longitude compared modulo 360)?
    pub fn contains(&self, lon: f64, lat: f64) -> bool {
        let lon = self.west + (lon - self.west).rem_euclid(360.0);
        lat >= self.south && lat <= self.north && lon <= self.east
    }

    /// Points along the box outline, `per_side` per edge.
    pub fn outline(&self, per_side: usize) -> Vec<(f64, f64)> {
        let n = per_side.max(1);
        let mut pts = Vec::with_capacity(4 * (n + 1));
        for k in 0..=n {
            let f = k as f64 / n as f64;
            let lon = self.west + f * (self.east - self.west);
            let lat = self.south + f * (self.north - self.south);
            pts.push((lon, self.south));
            pts.push((lon, self.north));
            pts.push((self.west, lat));
            pts.push((self.east, lat));
        }
        pts
    }
}

impl FromStr for Region {
    type Err = GridError;

    /// Parse `S,N,W,E` in degrees.
    fn from_str(s: &str) -> Result<Region, GridError> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        if parts.len() != 4 {
            return Err(GridError::Region(format!(
                "'{s}' must be four comma-separated numbers S,N,W,E"
            )));
        }
        let mut v = [0.0; 4];
        for (slot, p) in v.iter_mut().zip(&parts) {
            *slot = p
                .parse()
                .map_err(|_| GridError::Region(format!("'{p}' in '{s}' is not a number")))?;
        }
        Region::new(v[0], v[1], v[2], v[3])
    }
}
