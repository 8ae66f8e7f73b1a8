//! How an ETA question is answered, whoever asks it: a caller of `POST /v1/eta` and a tracked
//! shipment's live estimate take this one path. The caller's organisation speaks for the trip
//! (the model knows partners by organisation, so a partner's own history counts for its
//! trucks), the weather, traffic and roads that are known are added, and the estimator answers
//! from the moment asked. What the arrivals taught about the caller's answers corrects them
//! last ([`Corrections`]).

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

use super::correction::{Correction, Corrections};
use super::eta::{Estimate, EstimateEta, EtaQuery};
use super::risk::{ArrivalBand, RiskThresholds};

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
    /// The destination's band as the estimator gave it, before the correction: what the
    /// arrival will score.
    pub model_band: ArrivalBand,
    /// Each intermediate stop's band as the estimator gave it, in the query's order.
    pub model_stops: Vec<ArrivalBand>,
    /// What was applied to the destination's band.
    pub correction: Correction,
}

impl Answer {
    /// The moment the estimate counts from: the question's departure.
    pub fn from(&self) -> DateTime<Utc> {
        self.query.departure.with_timezone(&Utc)
    }
}

/// The arrival at each stop is the answer to its own question: the trip from the same start to
/// that stop, the stops before it included. A stop then depends only on what comes before it
/// (a rest taken after it cannot move it), and it is what a question about that leg alone
/// answers.
#[derive(Clone)]
pub struct Forecaster {
    estimator: Arc<dyn EstimateEta>,
    surroundings: Option<Arc<dyn Surroundings>>,
    /// What arrivals taught, applied to every answer.
    corrections: Option<Arc<Corrections>>,
    /// A stop's late risk is judged again on its own band by these.
    thresholds: RiskThresholds,
}

impl Forecaster {
    pub fn new(
        estimator: Arc<dyn EstimateEta>,
        surroundings: Option<Arc<dyn Surroundings>>,
    ) -> Self {
        Self {
            estimator,
            surroundings,
            corrections: None,
            thresholds: RiskThresholds::default(),
        }
    }

    /// Answers corrected by what arrivals taught (see [`Corrections`]), late risks judged by
    /// `thresholds`.
    pub fn with_corrections(
        self,
        corrections: Arc<Corrections>,
        thresholds: RiskThresholds,
    ) -> Self {
        Self {
            corrections: Some(corrections),
            thresholds,
            ..self
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
        let mut legs = legs_of(&query);
        self.surround(&mut legs);
        let stops = legs
            .iter()
            .map(|leg| self.estimator.estimate_live(leg, elapsed, false).band)
            .collect();
        self.finish(organisation, query, estimate, stops, degraded)
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
        let mut legs: Vec<EtaQuery> = queries.iter().flat_map(legs_of).collect();
        self.surround(&mut legs);
        let mut stops = self.estimator.estimate_batch(&legs, false).into_iter();
        queries
            .into_iter()
            .zip(estimates)
            .zip(degraded)
            .map(|((query, estimate), degraded)| {
                let mine = stops.by_ref().take(query.stops.len());
                let bands = mine.map(|stop| stop.band).collect();
                self.finish(organisation, query, estimate, bands, degraded)
            })
            .collect()
    }

    /// The answer with each stop's band from its own question, the organisation's correction
    /// applied to each band at its own horizon, bands never running backwards along the
    /// route, and each stop's late risk judged on its band.
    fn finish(
        &self,
        organisation: &str,
        query: EtaQuery,
        mut estimate: Estimate,
        model_stops: Vec<ArrivalBand>,
        degraded: Vec<&'static str>,
    ) -> Answer {
        let model_band = estimate.band;
        let from = query.departure.with_timezone(&Utc);
        let correct = |band: ArrivalBand| {
            let correction = match &self.corrections {
                Some(corrections) => corrections.correction(organisation, from, band),
                None => Correction::NONE,
            };
            (correction, correction.apply(from, band))
        };
        let mut before: Option<ArrivalBand> = None;
        for ((stop, asked), model) in estimate
            .stops
            .iter_mut()
            .zip(&query.stops)
            .zip(&model_stops)
        {
            let band = along_the_route(before, correct(*model).1);
            stop.band = band;
            stop.late_risk = asked
                .window
                .map(|window| band.late_risk(window.end(), self.thresholds));
            before = Some(band);
        }
        let (correction, band) = correct(model_band);
        estimate.band = along_the_route(before, band);
        Answer {
            query,
            estimate,
            degraded,
            model_band,
            model_stops,
            correction,
        }
    }

    fn surround(&self, queries: &mut [EtaQuery]) -> Vec<Vec<&'static str>> {
        match &self.surroundings {
            Some(surroundings) => surroundings.fill(queries),
            None => vec![Vec::new(); queries.len()],
        }
    }
}

/// The question of each intermediate stop: from the same start to it, the stops before it
/// included, on a prefix of the whole trip's road legs when they are known (one leg per stop
/// passed, then the leg into it), so that the same road is not routed again.
fn legs_of(query: &EtaQuery) -> Vec<EtaQuery> {
    (0..query.stops.len())
        .map(|target| {
            let mut leg = query.clone();
            leg.destination = query.stops[target].location;
            leg.stops.truncate(target);
            leg.context.legs = query
                .context
                .legs
                .as_ref()
                .and_then(|legs| legs.get(..=target))
                .map(<[_]>::to_vec);
            leg
        })
        .collect()
}

/// A stop's band, never before the previous stop's: each is its own question, and two answers
/// may cross by a few minutes where the route cannot.
pub fn along_the_route(before: Option<ArrivalBand>, band: ArrivalBand) -> ArrivalBand {
    let Some(before) = before else {
        return band;
    };
    let p50 = band.p50.max(before.p50);
    ArrivalBand {
        p10: band.p10.max(before.p10).min(p50),
        p50,
        p90: band.p90.max(before.p90).max(p50),
    }
}
