//! Training and evaluation from files: the edge where histories are read and model
//! directories written, around the pure work of [`crate::ml::model`].

use std::path::{Path, PathBuf};

use anyhow::Context;
use polars::prelude::DataFrame;

use crate::domain::clock::Clock;
use crate::domain::eta::RulesEta;
use crate::ml::history::files::{load_history, read_table};
use crate::ml::history::ValidationOptions;
use crate::ml::model::dataset::{training_frame, Observations, PartnerHistory};
use crate::ml::model::evaluate::{evaluate, EvaluateOptions, Examples, Report, Step};
use crate::ml::model::train::ValidParams;
use crate::ml::model::train::{BoostersInput, Model, Progress};
use crate::training::registry::{self, ModelCard, Source, TrainingData};

/// Partners' histories and the observations to join onto them, read and checked.
pub struct Inputs {
    pub partners: Vec<PartnerHistory>,
    pub sources: Vec<Source>,
    pub weather: Option<DataFrame>,
    pub traffic: Option<DataFrame>,
}

pub fn read_inputs(
    histories: &[(String, PathBuf)],
    weather: Option<&Path>,
    traffic: Option<&Path>,
) -> anyhow::Result<Inputs> {
    let mut partners = Vec::new();
    let mut sources = Vec::new();
    for (partner, path) in histories {
        if partners
            .iter()
            .any(|known: &PartnerHistory| &known.partner == partner)
        {
            anyhow::bail!("partner `{partner}` is named twice");
        }
        let history = load_history(path, &ValidationOptions::default())
            .with_context(|| format!("history of `{partner}` at {}", path.display()))?;
        sources.push(Source {
            partner: partner.clone(),
            path: path.display().to_string(),
            trips: history.trips.height(),
            pings: history.pings.as_ref().map_or(0, DataFrame::height),
        });
        partners.push(PartnerHistory {
            partner: partner.clone(),
            history,
        });
    }
    let table = |path: Option<&Path>| -> anyhow::Result<Option<DataFrame>> {
        path.map(|path| read_table(path).with_context(|| path.display().to_string()))
            .transpose()
    };
    Ok(Inputs {
        partners,
        sources,
        weather: table(weather)?,
        traffic: table(traffic)?,
    })
}

impl Inputs {
    pub fn vocabulary(&self) -> Vec<String> {
        self.partners
            .iter()
            .map(|partner| partner.partner.clone())
            .collect()
    }

    /// Every training row: departures and mid-trip samples, conditions joined, features built.
    pub fn examples(&self, rules: &RulesEta) -> anyhow::Result<Examples> {
        let observations = Observations {
            weather: self.weather.as_ref(),
            traffic: self.traffic.as_ref(),
        };
        let frame = training_frame(&self.partners, observations, &self.vocabulary(), rules)
            .context("building the training rows")?;
        Examples::from_frame(&frame).context("reading the training rows")
    }
}

/// Trains on every row and writes the model directory `out`.
pub fn train(
    inputs: &Inputs,
    rules: &RulesEta,
    params: &ValidParams,
    out: &Path,
    progress: impl FnMut(Progress),
) -> anyhow::Result<ModelCard> {
    let examples = inputs.examples(rules)?;
    let (card, model) = train_on(inputs, &examples, params, None, progress)?;
    registry::save(out, &model, &card)?;
    Ok(card)
}

/// What the boosters of [`train`] would learn from, and LightGBM's parameters for them.
pub fn boosters_input(
    inputs: &Inputs,
    rules: &RulesEta,
    params: &ValidParams,
) -> anyhow::Result<BoostersInput> {
    let examples = inputs.examples(rules)?;
    Ok(crate::ml::model::train::boosters_input(
        &examples.rows(),
        inputs.vocabulary().len(),
        params,
    )?)
}

/// Trains on the inputs' rows, already built: the card and the model, to be saved with
/// [`registry::save`]. `owner`: the organisation whose rows alone these are, for a model of
/// its own.
pub fn train_on(
    inputs: &Inputs,
    examples: &Examples,
    params: &ValidParams,
    owner: Option<&str>,
    progress: impl FnMut(Progress),
) -> anyhow::Result<(ModelCard, Model)> {
    let vocabulary = inputs.vocabulary();
    let model = Model::fit(&examples.rows(), vocabulary.clone(), params, progress)?;
    let fingerprint = registry::fingerprint(&examples.matrix, &examples.minutes, &vocabulary);
    let created_at = Clock::System.now();
    let card = ModelCard {
        format: registry::FORMAT,
        version: registry::version(created_at, &fingerprint),
        created_at,
        features: crate::ml::features::FEATURES
            .iter()
            .map(|name| (*name).to_owned())
            .collect(),
        partners: vocabulary,
        target: model.target,
        calibration: model.calibration.clone(),
        profiles: model.profiles.clone(),
        params: params.get().clone(),
        training: TrainingData {
            fingerprint,
            rows: examples.len(),
            sources: inputs.sources.clone(),
        },
        figures: None,
        owner: owner.map(str::to_owned),
    };
    Ok((card, model))
}

/// Evaluates `params` on the inputs.
pub fn run_evaluation(
    inputs: &Inputs,
    rules: &RulesEta,
    params: &ValidParams,
    options: EvaluateOptions,
    step: impl FnMut(Step),
) -> anyhow::Result<Report> {
    let examples = inputs.examples(rules)?;
    Ok(evaluate(&examples, params, options, step)?)
}
