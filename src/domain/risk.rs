//! Late risk at a delivery window, from an arrival estimate's quantiles.

use chrono::{DateTime, Utc};

/// Arrival quantiles: the 10th percentile, the median and the 90th percentile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArrivalBand {
    pub p10: DateTime<Utc>,
    pub p50: DateTime<Utc>,
    pub p90: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    OnTime,
    AtRisk,
    Late,
}

/// Probability thresholds between severities.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RiskThresholds {
    /// From this probability of missing the window on, the stop is at risk.
    pub at_risk: f64,
    /// From this probability on, the stop is expected late.
    pub late: f64,
}

impl Default for RiskThresholds {
    fn default() -> Self {
        Self {
            at_risk: 0.2,
            late: 0.5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LateRisk {
    /// Probability of arriving after the window closes.
    pub probability: f64,
    pub severity: Severity,
}

impl ArrivalBand {
    /// Probability of arriving after `deadline`.
    ///
    /// The arrival distribution is taken as piecewise linear through the three quantiles, with
    /// each tail continuing the slope of its neighbouring piece down to 0 or up to 1. It assumes
    /// nothing about the shape beyond what the quantiles say, and is asymmetric when they are.
    pub fn probability_after(&self, deadline: DateTime<Utc>) -> f64 {
        let seconds = |instant: DateTime<Utc>| (instant - self.p50).num_milliseconds() as f64 / 1e3;
        let (low, high, x) = (seconds(self.p10), seconds(self.p90), seconds(deadline));
        let below_median = |x: f64| {
            if low >= 0.0 {
                return if x < 0.0 { 0.0 } else { 0.5 };
            }
            0.5 + 0.4 * x / -low
        };
        let above_median = |x: f64| {
            if high <= 0.0 {
                return 1.0;
            }
            0.5 + 0.4 * x / high
        };
        let cumulative = if x < 0.0 {
            below_median(x)
        } else {
            above_median(x)
        };
        1.0 - cumulative.clamp(0.0, 1.0)
    }

    pub fn late_risk(&self, deadline: DateTime<Utc>, thresholds: RiskThresholds) -> LateRisk {
        let probability = self.probability_after(deadline);
        let severity = if probability >= thresholds.late {
            Severity::Late
        } else if probability >= thresholds.at_risk {
            Severity::AtRisk
        } else {
            Severity::OnTime
        };
        LateRisk {
            probability,
            severity,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use proptest::prelude::*;

    use super::*;

    fn band(low_minutes: i64, high_minutes: i64) -> ArrivalBand {
        let p50 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        ArrivalBand {
            p10: p50 - TimeDelta::minutes(low_minutes),
            p50,
            p90: p50 + TimeDelta::minutes(high_minutes),
        }
    }

    #[test]
    fn the_quantiles_themselves_have_their_nominal_probabilities() {
        let band = band(30, 90);
        assert!((band.probability_after(band.p10) - 0.9).abs() < 1e-9);
        assert!((band.probability_after(band.p50) - 0.5).abs() < 1e-9);
        assert!((band.probability_after(band.p90) - 0.1).abs() < 1e-9);
    }

    #[test]
    fn severity_follows_the_thresholds() {
        let band = band(30, 90);
        let thresholds = RiskThresholds::default();
        let risk_at = |minutes| band.late_risk(band.p50 + TimeDelta::minutes(minutes), thresholds);
        assert_eq!(risk_at(200).severity, Severity::OnTime);
        assert_eq!(risk_at(60).severity, Severity::AtRisk);
        assert_eq!(risk_at(-10).severity, Severity::Late);
    }

    proptest! {
        #[test]
        fn probability_is_monotone_and_bounded(
            low in 0i64..600, high in 0i64..600, a in -2000i64..2000, b in -2000i64..2000,
        ) {
            let band = band(low, high);
            let (early, late) = (a.min(b), a.max(b));
            let p_early = band.probability_after(band.p50 + TimeDelta::minutes(early));
            let p_late = band.probability_after(band.p50 + TimeDelta::minutes(late));
            prop_assert!((0.0..=1.0).contains(&p_early) && (0.0..=1.0).contains(&p_late));
            prop_assert!(p_late <= p_early);
        }
    }
}
