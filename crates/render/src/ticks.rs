//! Axis and colour-bar tick positions and labels.

/// "Nice" ticks (multiples of 1, 2, 2.5 or 5 × 10ⁿ) inside `[lo, hi]`, about
/// `target` of them, and the number of decimals their labels need.
pub(crate) fn linear_ticks(lo: f64, hi: f64, target: usize) -> (Vec<f64>, usize) {
    let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
    let raw = (hi - lo) / target.max(1) as f64;
    if !(raw.is_finite() && raw > 0.0) {
        return (vec![lo], 0);
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    let mantissa = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .find(|&m| raw / magnitude <= m + 1e-9)
        .unwrap_or(10.0);
    let step = mantissa * magnitude;
    // A tolerance so that end points equal to a tick up to rounding count.
    let first = (lo / step - 1e-9).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    let ticks = (first..=last).map(|k| k as f64 * step).collect();
    // 2.5 × 10ⁿ needs one decimal more than its magnitude.
    let extra = usize::from(mantissa == 2.5);
    let decimals = (-(step.log10().floor()) as i64).max(0) as usize + extra;
    (ticks, decimals)
}

/// A tick label with `decimals` decimals and no "-0".
pub(crate) fn format_tick(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    if s.trim_start_matches('-')
        .chars()
        .all(|c| c == '0' || c == '.')
    {
        s.trim_start_matches('-').to_string()
    } else {
        s
    }
}

/// Ticks for a log10 axis spanning `[lo_exp, hi_exp]` (exponents): major ticks
/// at 1, 2, 5 × 10ⁿ on short spans and at decades otherwise, minor ticks at the
/// remaining integer multiples of each decade. Both are returned as exponents.
pub(crate) fn log_ticks(lo_exp: f64, hi_exp: f64) -> (Vec<f64>, Vec<f64>) {
    let (lo, hi) = if lo_exp <= hi_exp {
        (lo_exp, hi_exp)
    } else {
        (hi_exp, lo_exp)
    };
    let span = hi - lo;
    let majors_per_decade: &[f64] = if span <= 3.0 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0]
    };
    // Keep long axes to at most about eight labelled decades.
    let decade_step = ((span / 8.0).ceil() as i64).max(1);
    let inside = |e: f64| e >= lo - 1e-9 && e <= hi + 1e-9;
    let (mut major, mut minor) = (Vec::new(), Vec::new());
    for decade in (lo.floor() as i64)..=(hi.ceil() as i64) {
        for m in 1..10 {
            let e = decade as f64 + f64::from(m).log10();
            if !inside(e) {
                continue;
            }
            let labelled = majors_per_decade.contains(&f64::from(m))
                && (m != 1 || decade.rem_euclid(decade_step) == 0);
            if labelled {
                major.push(e);
            } else if span <= 6.0 {
                minor.push(e);
            }
        }
    }
    if major.len() < 2 {
        // Less than a factor of ~2.5 in range: fall back to linear nice ticks.
        let (ticks, _) = linear_ticks(10f64.powf(lo), 10f64.powf(hi), 4);
        major = ticks
            .into_iter()
            .filter(|&t| t > 0.0)
            .map(f64::log10)
            .collect();
    }
    (major, minor)
}

/// Whether the labels of log-axis ticks at these exponents should all be
/// scientific: plain numbers only read well between 10⁻³ and 10⁵, and one
/// axis should not mix "10000" with "1e5".
pub(crate) fn log_labels_scientific(exponents: &[f64]) -> bool {
    exponents
        .iter()
        .any(|&e| !(-3.0 - 1e-9..5.0 - 1e-9).contains(&e))
}

/// Label for a positive value on a log axis: plain with up to three
/// significant digits ("0.25", "1000") or scientific ("2e-6", "1e7").
pub(crate) fn format_log_value(v: f64, scientific: bool) -> String {
    if scientific {
        return format!("{v:.0e}");
    }
    let decimals = (2 - v.log10().floor() as i64).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_linear_ticks() {
        let (t, d) = linear_ticks(233.15, 313.15, 8);
        assert_eq!(t, vec![240., 250., 260., 270., 280., 290., 300., 310.]);
        assert_eq!(d, 0);
        let (t, d) = linear_ticks(-25.0, 25.0, 5);
        assert_eq!(t, vec![-20., -10., 0., 10., 20.]);
        assert_eq!(d, 0);
        let (t, d) = linear_ticks(0.0, 0.05, 5);
        assert_eq!(t.len(), 6);
        assert_eq!(d, 2);
        assert_eq!(format_tick(t[3], d), "0.03");
        let (_, d) = linear_ticks(0.0, 10.0, 4);
        assert_eq!(d, 1);
    }

    #[test]
    fn no_negative_zero() {
        assert_eq!(format_tick(-0.0001, 2), "0.00");
        assert_eq!(format_tick(-1.5, 1), "-1.5");
    }

    #[test]
    fn log_ticks_and_labels() {
        let (major, minor) = log_ticks(0.0, 3.0);
        assert!(!log_labels_scientific(&major));
        let labels: Vec<String> = major
            .iter()
            .map(|&e| format_log_value(10f64.powf(e), false))
            .collect();
        assert_eq!(
            labels,
            ["1", "2", "5", "10", "20", "50", "100", "200", "500", "1000"]
        );
        assert!(!minor.is_empty());
        let (major, _) = log_ticks(-12.0, 4.0);
        assert!(major.len() <= 9, "{major:?}");
        assert!(log_labels_scientific(&major));
        assert_eq!(format_log_value(2e-6, true), "2e-6");
        assert_eq!(format_log_value(1e7, true), "1e7");
        assert_eq!(format_log_value(0.25, false), "0.25");
    }
}
