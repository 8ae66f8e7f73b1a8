//! How an ETA question is answered, whoever asks it: a caller of `POST /v1/eta` and a tracked
//! shipment's live estimate take this one path. The caller's organisation speaks for the trip
//! (the model knows partners by organisation, so a partner's own history counts for its
//! trucks), the weather, traffic and roads that are known are added, and the estimator answers
//! from the moment asked.

use std::sync::Arc;

use chrono::TimeDelta;

use super::eta::{Estimate, EstimateEta, EtaQuery};

/// Where a question's weather, traffic and roads come from: the feeds, at the edge.
pub trait Surroundings: Send + Sync {
    /// Fills in each query's conditions from what is known now; returns, per query, the
    /// configured feeds that could not serve it.
    fn fill(&self, queries: &mut [EtaQuery]) -> Vec<Vec<&'static str>>;
}

/// The question as answered: completed with its conditions, the estimate, and the feeds that
/// could not serve it.
pub struct Answer {
    pub query: EtaQuery,
    pub estimate: Estimate,
    pub degraded: Vec<&'static str>,
}

#[derive(Clone)]
pub struct Forecaster {
    estimator: Arc<dyn EstimateEta>,
    surroundings: Option<Arc<dyn Surroundings>>,
}

impl Forecaster {
    pub fn new(
        estimator: Arc<dyn EstimateEta>,
        surroundings: Option<Arc<dyn Surroundings>>,
    ) -> Self {
        Self {
            estimator,
            surroundings,
        }
    }

    /// One question from `organisation`, asked `elapsed` into the trip (zero before it leaves);
    /// the estimate's factors when `explain` is set.
    pub fn answer(
        &self,
        organisation: &str,
        mut query: EtaQuery,
        elapsed: TimeDelta,
        explain: bool,
    ) -> Answer {
        query.context.partner = Some(organisation.to_owned());
        let degraded = self
            .surround(std::slice::from_mut(&mut query))
            .pop()
            .unwrap_or_default();
        let estimate = self.estimator.estimate_live(&query, elapsed, explain);
        Answer {
            query,
            estimate,
            degraded,
        }
    }

    /// Many questions from `organisation`, before their trips leave, in one call to the
    /// estimator (which gains from seeing them together); answers in the queries' order.
    pub fn answer_batch(
        &self,
        organisation: &str,
        mut queries: Vec<EtaQuery>,
        explain: bool,
    ) -> Vec<Answer> {
        for query in &mut queries {
            query.context.partner = Some(organisation.to_owned());
        }
        let degraded = self.surround(&mut queries);
        let estimates = self.estimator.estimate_batch(&queries, explain);
        queries
            .into_iter()
            .zip(estimates)
            .zip(degraded)
            .map(|((query, estimate), degraded)| Answer {
                query,
                estimate,
                degraded,
            })
            .collect()
    }

    fn surround(&self, queries: &mut [EtaQuery]) -> Vec<Vec<&'static str>> {
        match &self.surroundings {
            Some(surroundings) => surroundings.fill(queries),
            None => vec![Vec::new(); queries.len()],
        }
    }
}
