//! Model directories: one per trained model, written whole or not at all, and checked against
//! this build's features when loaded.
//!
//! ```text
//! <dir>/model.json   what the model is: version, features, partners, target, calibration,
//!                    parameters, training-data fingerprint, figures, creation time
//! <dir>/p50.txt      the boosters, in LightGBM's text format
//! <dir>/p10.txt
//! <dir>/p90.txt
//! ```

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ml::features::FEATURES;
use crate::ml::model::serve::ServedModel;
use crate::ml::model::train::{Calibration, PartnerProfile, Quantile};
use crate::ml::model::{Model, ModelError, Target, TrainParams};

/// Bumped when the directory layout changes incompatibly.
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelCard {
    pub format: u32,
    pub version: String,
    pub created_at: DateTime<Utc>,
    pub features: Vec<String>,
    pub partners: Vec<String>,
    pub target: Target,
    pub calibration: Calibration,
    pub profiles: Vec<PartnerProfile>,
    pub params: TrainParams,
    pub training: TrainingData,
    /// Headline figures of the evaluation run with the same parameters, when there was one.
    #[serde(default)]
    pub figures: Option<serde_json::Value>,
    /// The organisation a model trained on its rows alone belongs to: it serves that
    /// organisation's trips only. `None` for a pooled model.
    #[serde(default)]
    pub owner: Option<String>,
}

/// What the model learnt from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainingData {
    /// SHA-256 of the training matrix and truths: the same data gives the same fingerprint.
    pub fingerprint: String,
    pub rows: usize,
    pub sources: Vec<Source>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Source {
    pub partner: String,
    pub path: String,
    pub trips: usize,
    pub pings: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("no model at {0}")]
    Missing(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a model card: {source}")]
    Card {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: model format {found}, this build reads format {FORMAT}")]
    Format { path: PathBuf, found: u32 },
    #[error("{path}: the model's features differ from this build's: {difference}")]
    Schema { path: PathBuf, difference: String },
    #[error("{path}: {source}")]
    Model { path: PathBuf, source: ModelError },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError + '_ {
    move |source| RegistryError::Io {
        path: path.to_owned(),
        source,
    }
}

/// SHA-256 over the rows a model learns from, as hex.
pub fn fingerprint(matrix: &[f64], minutes: &[f64], partners: &[String]) -> String {
    let mut hasher = Sha256::new();
    for value in matrix.iter().chain(minutes) {
        hasher.update(value.to_le_bytes());
    }
    for partner in partners {
        hasher.update(partner.as_bytes());
        hasher.update([0]);
    }
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A version that sorts by creation time and names the data: `20261128T142501Z-1a2b3c4d`.
pub fn version(created_at: DateTime<Utc>, fingerprint: &str) -> String {
    format!(
        "{}-{}",
        created_at.format("%Y%m%dT%H%M%SZ"),
        &fingerprint[..8.min(fingerprint.len())]
    )
}

/// Between a model directory's name and the process id in the name of its staging directory,
/// `.<name>.partial-<pid>`, beside it.
const STAGING: &str = ".partial-";

/// Writes the model into `dir`, which must not exist: the files go to a sibling temporary
/// directory, each synced, which is then renamed, so `dir` appears complete or not at all.
/// Only the service's user may read them: a model is learnt from partners' trips.
pub fn save(dir: &Path, model: &Model, card: &ModelCard) -> Result<(), RegistryError> {
    if dir.exists() {
        return Err(RegistryError::Io {
            path: dir.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a model directory is never overwritten; choose a new one",
            ),
        });
    }
    let parent = dir
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(io(parent))?;
    let name = dir
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let staging = parent.join(format!(".{name}{STAGING}{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    crate::partners::keys::create_private_dir(&staging).map_err(io(&staging))?;
    let card_json = serde_json::to_string_pretty(card).expect("a card serialises");
    write_synced(&staging.join("model.json"), card_json.as_bytes())?;
    for (quantile, text) in Quantile::ALL.iter().zip(&model.texts) {
        write_synced(
            &staging.join(format!("{}.txt", quantile.name())),
            text.as_bytes(),
        )?;
    }
    fs::rename(&staging, dir).map_err(io(dir))?;
    if let Ok(handle) = fs::File::open(parent) {
        let _ = handle.sync_all();
    }
    Ok(())
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
    let mut file = crate::partners::keys::create_private(path).map_err(io(path))?;
    file.write_all(bytes).map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

/// Removes the staging directories [`save`] left in `parent` for the model directories named
/// `prefix` or `prefix-…`: a process killed while writing a model leaves one. The number
/// removed.
pub fn remove_staging(parent: &Path, prefix: &str) -> std::io::Result<usize> {
    let entries = match fs::read_dir(parent) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(error),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((model, _pid)) = name
            .strip_prefix('.')
            .and_then(|rest| rest.split_once(STAGING))
        else {
            continue;
        };
        let ours = model == prefix
            || model
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('-'));
        if ours {
            fs::remove_dir_all(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Every model directory the service knows, with its card.
pub fn known_models(model_dir: &Path, data_dir: &Path) -> Vec<(PathBuf, ModelCard)> {
    let mut dirs = vec![model_dir.to_owned()];
    if let Ok(entries) = std::fs::read_dir(data_dir.join("models")) {
        let mut found: Vec<PathBuf> = entries
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.is_dir())
            .collect();
        found.sort();
        dirs.extend(found);
    }
    let mut models: Vec<(PathBuf, ModelCard)> = Vec::new();
    for dir in dirs {
        if let Ok(card) = read_card(&dir) {
            if !models
                .iter()
                .any(|(_, known)| known.version == card.version)
            {
                models.push((dir, card));
            }
        }
    }
    models
}

pub fn read_card(dir: &Path) -> Result<ModelCard, RegistryError> {
    let path = dir.join("model.json");
    if !path.exists() {
        return Err(RegistryError::Missing(dir.to_owned()));
    }
    let text = fs::read_to_string(&path).map_err(io(&path))?;
    let card: ModelCard = serde_json::from_str(&text).map_err(|source| RegistryError::Card {
        path: path.clone(),
        source,
    })?;
    if card.format != FORMAT {
        return Err(RegistryError::Format {
            path,
            found: card.format,
        });
    }
    if let Some(difference) = schema_difference(&card.features) {
        return Err(RegistryError::Schema {
            path: dir.to_owned(),
            difference,
        });
    }
    Ok(card)
}

/// Loads the model in `dir`, refusing one whose features are not this build's.
pub fn load(dir: &Path) -> Result<(ModelCard, ServedModel), RegistryError> {
    let card = read_card(dir)?;
    let mut texts = Vec::with_capacity(3);
    for quantile in Quantile::ALL {
        let path = dir.join(format!("{}.txt", quantile.name()));
        texts.push(fs::read_to_string(&path).map_err(io(&path))?);
    }
    let texts: [String; 3] = texts.try_into().expect("three boosters");
    let model = Model::from_texts(
        texts,
        card.target,
        card.calibration.clone(),
        card.partners.clone(),
        card.profiles.clone(),
    )
    .map_err(|source| RegistryError::Model {
        path: dir.to_owned(),
        source,
    })?;
    let version = card.version.clone();
    Ok((card, ServedModel { model, version }))
}

/// What differs between a model's feature list and this build's, or `None` when they agree.
pub fn schema_difference(found: &[String]) -> Option<String> {
    let expected: Vec<&str> = FEATURES.to_vec();
    let found_names: Vec<&str> = found.iter().map(String::as_str).collect();
    if found_names == expected {
        return None;
    }
    let missing: Vec<&str> = expected
        .iter()
        .copied()
        .filter(|name| !found_names.contains(name))
        .collect();
    let unknown: Vec<&str> = found_names
        .iter()
        .copied()
        .filter(|name| !expected.contains(name))
        .collect();
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing {}", missing.join(", ")));
    }
    if !unknown.is_empty() {
        parts.push(format!("unknown {}", unknown.join(", ")));
    }
    if parts.is_empty() {
        let first = expected
            .iter()
            .zip(&found_names)
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        parts.push(format!(
            "same names in another order (position {first}: expected {}, found {})",
            expected[first], found_names[first]
        ));
    }
    Some(format!(
        "{} ({} features in the model, {} in this build)",
        parts.join("; "),
        found.len(),
        expected.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_staging_directories_of_the_named_models_are_removed() {
        let parent = tempfile::tempdir().unwrap();
        let names = [
            ".job_1.partial-12",
            ".job_1-own-0.partial-3",
            ".job_10.partial-4",
            ".other.partial-1",
            "job_1",
            "job_1-own-0",
        ];
        for name in names {
            fs::create_dir(parent.path().join(name)).unwrap();
        }
        assert_eq!(remove_staging(parent.path(), "job_1").unwrap(), 2);
        let mut left: Vec<String> = fs::read_dir(parent.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                ".job_10.partial-4",
                ".other.partial-1",
                "job_1",
                "job_1-own-0"
            ]
        );
        let missing = parent.path().join("nowhere");
        assert_eq!(remove_staging(&missing, "job_1").unwrap(), 0);
    }

    #[test]
    fn a_schema_difference_says_what_differs() {
        let mut found: Vec<String> = FEATURES.iter().map(|name| (*name).to_owned()).collect();
        assert_eq!(schema_difference(&found), None);
        found.retain(|name| name != "snowfall");
        found.push("road_km_osrm".into());
        let message = schema_difference(&found).unwrap();
        assert!(message.contains("missing snowfall"), "{message}");
        assert!(message.contains("unknown road_km_osrm"), "{message}");
        let mut swapped: Vec<String> = FEATURES.iter().map(|name| (*name).to_owned()).collect();
        swapped.swap(0, 1);
        let message = schema_difference(&swapped).unwrap();
        assert!(message.contains("another order"), "{message}");
        assert!(
            message.contains("expected crow_km, found bearing_sin"),
            "{message}"
        );
    }
}
