//! Error figures of a set of predictions, in minutes.

use serde::{Deserialize, Serialize};

use super::train::Band;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    pub rows: usize,
    /// Mean of predicted minus true: positive when arrivals come earlier than said.
    pub bias: f64,
    pub mae: f64,
    pub rmse: f64,
    pub median_ae: f64,
    pub p95_ae: f64,
    /// Mean absolute error over the true duration, in percent.
    pub mape: f64,
    pub within_15: f64,
    pub within_30: f64,
    pub within_60: f64,
    /// Share of true durations inside [P10, P90]; absent for a point estimate.
    pub coverage: Option<f64>,
    pub mean_width: Option<f64>,
}

/// Figures of point predictions (`bands` without an interval: pass `None`).
pub fn figures(predicted: &[f64], truth: &[f64], bands: Option<&[Band]>) -> Option<Figures> {
    let rows = truth.len();
    if rows == 0 {
        return None;
    }
    let mut errors: Vec<f64> = predicted
        .iter()
        .zip(truth)
        .map(|(p, t)| (p - t).abs())
        .collect();
    let n = rows as f64;
    let bias = predicted.iter().zip(truth).map(|(p, t)| p - t).sum::<f64>() / n;
    let mae = errors.iter().sum::<f64>() / n;
    let rmse = (errors.iter().map(|e| e * e).sum::<f64>() / n).sqrt();
    let mape = 100.0
        * errors
            .iter()
            .zip(truth)
            .map(|(e, t)| e / t.max(1.0))
            .sum::<f64>()
        / n;
    let share = |limit: f64| errors.iter().filter(|e| **e <= limit).count() as f64 / n;
    let (within_15, within_30, within_60) = (share(15.0), share(30.0), share(60.0));
    errors.sort_by(f64::total_cmp);
    let (coverage, mean_width) = match bands {
        Some(bands) => {
            let inside = bands
                .iter()
                .zip(truth)
                .filter(|(band, t)| band.p10 <= **t && **t <= band.p90)
                .count();
            let width = bands.iter().map(|band| band.p90 - band.p10).sum::<f64>() / n;
            (Some(inside as f64 / n), Some(width))
        }
        None => (None, None),
    };
    Some(Figures {
        rows,
        bias,
        mae,
        rmse,
        median_ae: percentile(&errors, 0.5),
        p95_ae: percentile(&errors, 0.95),
        mape,
        within_15,
        within_30,
        within_60,
        coverage,
        mean_width,
    })
}

/// Linear interpolation between the closest ranks of sorted `values`.
fn percentile(sorted: &[f64], level: f64) -> f64 {
    let position = level * (sorted.len() - 1) as f64;
    let (below, above) = (position.floor() as usize, position.ceil() as usize);
    let weight = position - below as f64;
    sorted[below] * (1.0 - weight) + sorted[above] * weight
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_of_a_small_case_by_hand() {
        let truth = [100.0, 200.0, 300.0, 400.0];
        let predicted = [110.0, 170.0, 300.0, 460.0];
        let bands: Vec<Band> = predicted
            .iter()
            .map(|p| Band {
                p10: p - 20.0,
                p50: *p,
                p90: p + 20.0,
            })
            .collect();
        let f = figures(&predicted, &truth, Some(&bands)).unwrap();
        assert_eq!(f.mae, 25.0);
        assert_eq!(f.bias, 10.0);
        assert!((f.rmse - (4600.0f64 / 4.0).sqrt()).abs() < 1e-9);
        assert_eq!(f.median_ae, 20.0);
        assert_eq!(f.within_15, 0.5);
        assert_eq!(f.within_30, 0.75);
        assert_eq!(f.coverage, Some(0.5));
        assert_eq!(f.mean_width, Some(40.0));
        assert!((f.mape - 100.0 * (0.1 + 0.15 + 0.0 + 0.15) / 4.0).abs() < 1e-9);
        assert!(figures(&[], &[], None).is_none());
    }
}
