//! Summary statistics used by the fold protocols.

use serde::{Deserialize, Serialize};

/// Mean and spread of per-fold values. `std` is the population std (ddof=0); `se` is the standard
/// error as LFW defines it: sample std (ddof=1) / sqrt(k).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub mean: f64,
    pub std: f64,
    pub se: f64,
}

pub fn spread(values: &[f64]) -> Spread {
    let k = values.len() as f64;
    if values.is_empty() {
        return Spread { mean: f64::NAN, std: f64::NAN, se: f64::NAN };
    }
    let mean = values.iter().sum::<f64>() / k;
    let ss: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
    let std = (ss / k).sqrt();
    let se = if values.len() > 1 { (ss / (k - 1.0)).sqrt() / k.sqrt() } else { f64::NAN };
    Spread { mean, std, se }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_matches_hand_computation() {
        let s = spread(&[0.9, 1.0, 0.8, 1.0]);
        assert!((s.mean - 0.925).abs() < 1e-15);
        // population variance = (0.000625+0.005625+0.015625+0.005625)/4 = 0.006875
        assert!((s.std - 0.006875f64.sqrt()).abs() < 1e-15);
        assert!((s.se - (0.0275f64 / 3.0).sqrt() / 2.0).abs() < 1e-15);
    }

    #[test]
    fn ten_fold_se_is_std_over_three() {
        let v: Vec<f64> = (0..10).map(|i| 0.9 + i as f64 * 0.01).collect();
        let s = spread(&v);
        assert!((s.se - s.std / 3.0).abs() < 1e-15);
    }
}
