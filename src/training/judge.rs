//! Whether a newly trained model may serve: judged partner by partner on each one's latest
//! trips, which it did not learn from, against the model serving them now and against the
//! plain LightGBM a data scientist would fit on the request's columns.
//!
//! The pool's figure is the mean of the partners' MAEs, each partner counting once whatever
//! its size, so that one partner's many trips cannot outvote the others' few; and no partner
//! may lose more than [`MAX_PARTNER_LOSS`]: a model that helps one partner at another's
//! expense serves nobody.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::ml::model::examples::Examples;

/// The most a new model may worsen one partner's held-out MAE, as a share of the served one's.
pub const MAX_PARTNER_LOSS: f64 = 0.02;

/// Partners with fewer held-out rows than this are judged within the pool only: on a handful
/// of trips a 2% change is noise.
pub const MIN_PARTNER_ROWS: usize = 20;

/// One partner's held-out rows, scored by the three estimators.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judged {
    pub partner: String,
    pub rows: usize,
    #[serde(deserialize_with = "infinite_when_null")]
    pub new_mae: f64,
    #[serde(deserialize_with = "infinite_when_null")]
    pub served_mae: f64,
    /// Plain LightGBM on the request's columns, fit on the same training rows.
    #[serde(deserialize_with = "infinite_when_null")]
    pub baseline_mae: f64,
}

/// An MAE that could not be measured is infinite, which JSON writes as `null`: read back from
/// a kept job, it is infinite again.
pub fn infinite_when_null<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::INFINITY))
}

/// The rows a new model learns from, and each partner's latest `share` of its trips, held out
/// to judge it. A trip's rows (its departure and mid-trip samples) stay together, and every
/// partner is held out from its own latest trips, whenever its history ends: a partner whose
/// trips are the newest cannot fill the judge's rows with its own.
pub fn latest_of_each_partner(examples: &Examples, share: f64) -> (Vec<usize>, Vec<usize>) {
    let mut learn = Vec::new();
    let mut held = Vec::new();
    for rows in by_partner(examples, &(0..examples.len()).collect::<Vec<_>>()).values() {
        let mut starts: Vec<i64> = rows.iter().map(|row| examples.trip_start[*row]).collect();
        starts.sort_unstable();
        starts.dedup();
        let n_held = (starts.len() as f64 * share).round() as usize;
        let Some(cut) = starts
            .len()
            .checked_sub(n_held)
            .and_then(|at| starts.get(at))
        else {
            learn.extend(rows);
            continue;
        };
        for &row in rows {
            if examples.trip_start[row] >= *cut {
                held.push(row);
            } else {
                learn.push(row);
            }
        }
    }
    learn.sort_unstable();
    held.sort_unstable();
    (learn, held)
}

/// The chosen rows by partner, in partner order.
pub fn by_partner(examples: &Examples, rows: &[usize]) -> BTreeMap<String, Vec<usize>> {
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for &row in rows {
        groups
            .entry(examples.partner[row].clone())
            .or_default()
            .push(row);
    }
    groups
}

/// The pool's figure: each partner's MAE counted once.
pub fn pool_mae(judged: &[Judged], mae: impl Fn(&Judged) -> f64) -> f64 {
    judged.iter().map(mae).sum::<f64>() / judged.len().max(1) as f64
}

/// Why the new model may not serve, in sentences an operator can act on; empty when it may.
pub fn refusals(judged: &[Judged], served: &str) -> Vec<String> {
    let mut reasons = Vec::new();
    if judged.is_empty() {
        reasons.push("no partner has trips left to judge the new model on".to_owned());
        return reasons;
    }
    let new = pool_mae(judged, |partner| partner.new_mae);
    let old = pool_mae(judged, |partner| partner.served_mae);
    let baseline = pool_mae(judged, |partner| partner.baseline_mae);
    if new > old {
        reasons.push(format!(
            "the pool's held-out MAE would rise from {old:.1} min ({served}) to {new:.1} min"
        ));
    }
    if new > baseline {
        reasons.push(format!(
            "plain LightGBM on the request's columns does better on the held-out trips \
             ({baseline:.1} min against {new:.1} min)"
        ));
    }
    for partner in judged
        .iter()
        .filter(|partner| partner.rows >= MIN_PARTNER_ROWS)
    {
        if partner.new_mae > partner.served_mae * (1.0 + MAX_PARTNER_LOSS) {
            reasons.push(format!(
                "partner `{}` would lose {:.1}% on its {} held-out rows ({:.1} min against \
                 {:.1} min with {served}); no partner may lose more than {}%",
                partner.partner,
                (partner.new_mae / partner.served_mae - 1.0) * 100.0,
                partner.rows,
                partner.new_mae,
                partner.served_mae,
                MAX_PARTNER_LOSS * 100.0,
            ));
        }
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partner(name: &str, rows: usize, new: f64, served: f64, baseline: f64) -> Judged {
        Judged {
            partner: name.into(),
            rows,
            new_mae: new,
            served_mae: served,
            baseline_mae: baseline,
        }
    }

    #[test]
    fn each_partner_is_judged_on_its_own_latest_trips_whole_whenever_its_history_ends() {
        // `old` stopped a year before `new` began; `new`'s second trip has a mid-trip sample.
        let partner = ["old", "old", "old", "old", "new", "new", "new", "new"];
        let trip_start = [1, 2, 3, 4, 1001, 1002, 1002, 1003];
        let examples = Examples {
            matrix: Vec::new(),
            minutes: vec![0.0; partner.len()],
            trip_start: trip_start.to_vec(),
            partner: partner.iter().map(|name| (*name).to_owned()).collect(),
            vehicle: Vec::new(),
            elapsed: Vec::new(),
            request: Vec::new(),
        };
        let (learn, held) = latest_of_each_partner(&examples, 0.5);
        assert_eq!(held, [2, 3, 5, 6, 7]);
        assert_eq!(learn, [0, 1, 4]);
        let (_, none) = latest_of_each_partner(&examples, 0.01);
        assert!(none.is_empty());
    }

    #[test]
    fn a_model_better_for_everyone_than_what_serves_and_than_plain_lightgbm_may_serve() {
        let judged = [
            partner("a", 300, 40.0, 50.0, 60.0),
            partner("b", 40, 30.0, 30.5, 45.0),
        ];
        assert_eq!(refusals(&judged, "v1"), Vec::<String>::new());
    }

    #[test]
    fn one_partner_made_perfect_at_the_cost_of_another_is_refused_and_named() {
        // The pool's mean falls (0.03 and 80 against 77 and 60), but `b` loses a third.
        let judged = [
            partner("poisoner", 1500, 0.03, 77.0, 50.0),
            partner("b", 200, 80.0, 60.0, 70.0),
        ];
        let reasons = refusals(&judged, "v1");
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(
            reasons[0].contains("partner `b` would lose 33.3%"),
            "{reasons:?}"
        );
    }

    #[test]
    fn a_model_plain_lightgbm_beats_is_refused_even_when_it_beats_what_serves() {
        let judged = [partner("a", 300, 40.0, 90.0, 35.0)];
        let reasons = refusals(&judged, "rules");
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(reasons[0].contains("plain LightGBM"), "{reasons:?}");
    }

    #[test]
    fn a_partner_with_a_handful_of_held_out_rows_counts_in_the_pool_only() {
        let judged = [
            partner("a", 300, 40.0, 50.0, 60.0),
            partner("tiny", 5, 33.0, 30.0, 40.0),
        ];
        assert!(refusals(&judged, "v1").is_empty());
        let worse_pool = [partner("a", 300, 51.0, 50.0, 60.0)];
        assert!(refusals(&worse_pool, "v1")[0].contains("pool's held-out MAE"));
    }
}
