//! Answering ETAs from a model, with the rules engine beside it: the engine lays out the trip
//! (timeline, breakdown, stops) and provides the prior; the model says when the truck arrives.
//! Without a model the engine answers alone, flagged as a fallback.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};
use chrono::{DateTime, TimeDelta, Utc};
use rayon::prelude::*;

use super::train::{Band, Model};
use crate::domain::eta::{
    Estimate, EstimateEta, EtaQuery, Factor, ModelInfo, RulesEta, StopEstimate,
};
use crate::domain::risk::ArrivalBand;
use crate::ml::features::{feature_row, CanonicalTrip, Prior, FEATURES};

/// How many of the strongest contributions an answer lists.
pub const FACTORS: usize = 5;

pub const MODEL_NAME: &str = "lightgbm";

/// A model as it is served: the boosters and the version its directory gave it.
pub struct ServedModel {
    pub model: Model,
    pub version: String,
}

/// The estimator the service runs. The model can be swapped while requests are in flight:
/// each request works with the model it started with.
pub struct ModelEta {
    rules: RulesEta,
    strict_rules: RulesEta,
    active: ArcSwapOption<ServedModel>,
    /// Models trained on one organisation's rows alone (it does not pool), serving its trips.
    own: ArcSwap<HashMap<String, Arc<ServedModel>>>,
    /// Threads for a batch's predictions.
    batch_threads: usize,
}

impl ModelEta {
    pub fn new(rules: RulesEta, model: Option<ServedModel>, batch_threads: usize) -> Self {
        Self {
            strict_rules: rules.strict(),
            rules,
            active: ArcSwapOption::new(model.map(Arc::new)),
            own: ArcSwap::default(),
            batch_threads,
        }
    }

    /// Serves `model` from the next request on; `None` falls back to the rules.
    pub fn swap(&self, model: Option<ServedModel>) {
        self.active.store(model.map(Arc::new));
    }

    pub fn active(&self) -> Option<Arc<ServedModel>> {
        self.active.load_full()
    }

    /// Serves `organisation`'s trips with a model of its own from the next request on;
    /// `None` returns them to the pooled model.
    pub fn set_own(&self, organisation: &str, model: Option<ServedModel>) {
        let model = model.map(Arc::new);
        self.own.rcu(|current| {
            let mut next = HashMap::clone(current);
            match &model {
                Some(served) => {
                    next.insert(organisation.to_owned(), served.clone());
                }
                None => {
                    next.remove(organisation);
                }
            }
            next
        });
    }

    /// The version of each organisation's own model, by organisation.
    pub fn own_versions(&self) -> HashMap<String, String> {
        self.own
            .load()
            .iter()
            .map(|(organisation, served)| (organisation.clone(), served.version.clone()))
            .collect()
    }

    /// The model that answers for a partner: its own, else the pooled one.
    pub fn serving(&self, partner: Option<&str>) -> Option<Arc<ServedModel>> {
        partner
            .and_then(|partner| self.own.load().get(partner).cloned())
            .or_else(|| self.active())
    }

    fn fallback(&self, mut estimate: Estimate) -> Estimate {
        estimate.model.fallback = true;
        estimate
    }

    /// The rules estimate of a query and the features the model takes for it.
    fn prepare(
        &self,
        served: &ServedModel,
        query: &EtaQuery,
        elapsed_minutes: f64,
    ) -> (Estimate, [f64; FEATURES.len()]) {
        let planned = self.rules.estimate(query);
        let partner = served
            .model
            .partner_code(query.context.partner.as_deref().unwrap_or_default());
        // Without stops the canonical trip is the request itself: its estimate is the prior.
        let canonical = CanonicalTrip::of(query).query();
        let strict = self.strict_rules.estimate(&canonical);
        let mut row = if query.stops.is_empty() {
            feature_row(
                query,
                partner,
                elapsed_minutes,
                Prior {
                    estimate: &planned,
                    strict: &strict,
                },
            )
        } else {
            let estimate = self.rules.estimate(&canonical);
            feature_row(
                query,
                partner,
                elapsed_minutes,
                Prior {
                    estimate: &estimate,
                    strict: &strict,
                },
            )
        };
        served.model.complete(&mut row);
        (planned, row)
    }

    fn answer(
        &self,
        served: &ServedModel,
        query: &EtaQuery,
        planned: Estimate,
        band: Band,
        row: &[f64],
    ) -> Estimate {
        let factors = match served.model.contributions(row) {
            Ok(contributions) => contributions
                .into_iter()
                .take(FACTORS)
                .map(|(slot, minutes)| Factor {
                    feature: FEATURES[slot],
                    value: row[slot],
                    minutes,
                })
                .collect(),
            Err(error) => {
                tracing::warn!(message = "No contributions.", %error);
                Vec::new()
            }
        };
        self.model_estimate(served, query, planned, band, factors)
    }

    fn model_estimate(
        &self,
        served: &ServedModel,
        query: &EtaQuery,
        planned: Estimate,
        band: Band,
        factors: Vec<Factor>,
    ) -> Estimate {
        let departure = query.departure.with_timezone(&Utc);
        let planned_minutes = minutes(planned.band.p50 - departure).max(1e-6);
        // A stop a given share of the way through the planned trip gets that share of the
        // model's band.
        let scaled = |at: DateTime<Utc>, total: f64| {
            let share = minutes(at - departure) / planned_minutes;
            departure + from_minutes(share * total)
        };
        let stops = query
            .stops
            .iter()
            .zip(&planned.timeline.stop_arrivals)
            .map(|(stop, arrival)| {
                let band = ArrivalBand {
                    p10: scaled(*arrival, band.p10),
                    p50: scaled(*arrival, band.p50),
                    p90: scaled(*arrival, band.p90),
                };
                StopEstimate {
                    band,
                    late_risk: stop
                        .window
                        .map(|window| band.late_risk(window.end(), self.rules.risk_thresholds())),
                }
            })
            .collect();
        Estimate {
            band: ArrivalBand {
                p10: departure + from_minutes(band.p10),
                p50: departure + from_minutes(band.p50),
                p90: departure + from_minutes(band.p90),
            },
            stops,
            factors,
            model: ModelInfo {
                name: MODEL_NAME.into(),
                version: served.version.clone(),
                fallback: false,
            },
            ..planned
        }
    }
}

fn minutes(delta: TimeDelta) -> f64 {
    delta.num_milliseconds() as f64 / 60_000.0
}

fn from_minutes(value: f64) -> TimeDelta {
    TimeDelta::milliseconds((value * 60_000.0).round() as i64)
}

impl EstimateEta for ModelEta {
    fn estimate(&self, query: &EtaQuery) -> Estimate {
        self.estimate_live(query, TimeDelta::zero(), true)
    }

    fn estimate_live(&self, query: &EtaQuery, elapsed: TimeDelta, explain: bool) -> Estimate {
        let Some(served) = self.serving(query.context.partner.as_deref()) else {
            return self.fallback(self.rules.estimate(query));
        };
        let (planned, row) = self.prepare(&served, query, minutes(elapsed));
        match served.model.predict(&row, 1) {
            Ok(bands) if explain => self.answer(&served, query, planned, bands[0], &row),
            Ok(bands) => self.model_estimate(&served, query, planned, bands[0], Vec::new()),
            Err(error) => {
                tracing::error!(message = "Prediction failed; the rules answer.", %error);
                self.fallback(planned)
            }
        }
    }

    fn estimate_batch(&self, queries: &[EtaQuery], explain: bool) -> Vec<Estimate> {
        // A batch is one caller's: its first query names the partner for all.
        let partner = queries
            .first()
            .and_then(|query| query.context.partner.as_deref());
        let Some(served) = self.serving(partner) else {
            return queries
                .par_iter()
                .map(|query| self.fallback(self.rules.estimate(query)))
                .collect();
        };
        let prepared: Vec<(Estimate, [f64; FEATURES.len()])> = queries
            .par_iter()
            .map(|query| self.prepare(&served, query, 0.0))
            .collect();
        let matrix: Vec<f64> = prepared.iter().flat_map(|(_, row)| *row).collect();
        let bands = match served.model.predict(&matrix, self.batch_threads) {
            Ok(bands) => bands,
            Err(error) => {
                tracing::error!(message = "Prediction failed; the rules answer.", %error);
                return prepared
                    .into_iter()
                    .map(|(planned, _)| self.fallback(planned))
                    .collect();
            }
        };
        let contributions = if explain {
            served
                .model
                .batch_contributions(&matrix, FACTORS)
                .unwrap_or_else(|error| {
                    tracing::warn!(message = "No contributions.", %error);
                    vec![Vec::new(); queries.len()]
                })
        } else {
            vec![Vec::new(); queries.len()]
        };
        prepared
            .into_iter()
            .zip(bands)
            .zip(contributions)
            .zip(queries)
            .map(|((((planned, row), band), strongest), query)| {
                let factors = strongest
                    .into_iter()
                    .map(|(slot, minutes)| Factor {
                        feature: FEATURES[slot],
                        value: row[slot],
                        minutes,
                    })
                    .collect();
                self.model_estimate(&served, query, planned, band, factors)
            })
            .collect()
    }

    fn model_info(&self) -> ModelInfo {
        match self.active() {
            Some(served) => ModelInfo {
                name: MODEL_NAME.into(),
                version: served.version.clone(),
                fallback: false,
            },
            None => ModelInfo {
                fallback: true,
                ..self.rules.model_info()
            },
        }
    }
}
