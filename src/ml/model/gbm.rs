//! LightGBM, trained through its C API and served through `lightgbm3`.
//!
//! `lightgbm3`'s `Dataset` constructors pass no dataset parameters to LightGBM, so a model
//! trained through them can neither declare a categorical feature nor change `max_bin`:
//! LightGBM fixes both when it bins the data, before any booster parameter is read. Training
//! therefore creates the dataset and runs the boosting rounds through `lightgbm3-sys`, then
//! hands the finished model, as LightGBM's own text format, to `lightgbm3::Booster` for
//! prediction. This file is the only one in the crate with `unsafe` code.
//!
//! Serving walks the same trees in Rust ([`super::forest`]): a single row's prediction, and
//! SHAP values in one pass a tree, seven times faster than LightGBM's TreeSHAP. LightGBM
//! answers batches, and everything for a model the forest does not read, and remains the
//! reference the forest's tests hold it to.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_void, CStr, CString};
use std::ptr;

use lightgbm3::Booster;
use lightgbm3_sys as sys;
use rayon::prelude::*;

use super::forest::Forest;

/// An error reported by LightGBM, or a call it could not be given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("LightGBM: {0}")]
pub struct GbmError(pub String);

impl From<lightgbm3::Error> for GbmError {
    fn from(error: lightgbm3::Error) -> Self {
        Self(error.to_string())
    }
}

type Result<T> = std::result::Result<T, GbmError>;

/// The rows of a training set: row-major features and one label per row.
pub struct TrainingSet<'a> {
    pub features: &'a [f64],
    pub labels: &'a [f32],
    /// One weight per row, or every row weighs the same.
    pub weights: Option<&'a [f32]>,
    pub feature_names: &'a [&'a str],
}

impl TrainingSet<'_> {
    fn n_features(&self) -> usize {
        self.feature_names.len()
    }

    fn n_rows(&self) -> usize {
        self.labels.len()
    }
}

/// Trains one booster. `dataset_params` and `booster_params` are LightGBM's `key=value`
/// strings; `on_round` is called after every boosting round with its number (from 1), so a
/// caller can show progress. Returns the model in LightGBM's text format.
pub fn train(
    set: &TrainingSet<'_>,
    dataset_params: &str,
    booster_params: &str,
    rounds: usize,
    mut on_round: impl FnMut(usize),
) -> Result<String> {
    let n_features = set.n_features();
    if n_features == 0 || set.n_rows() == 0 {
        return Err(GbmError("a training set needs rows and features".into()));
    }
    if set.features.len() != set.n_rows() * n_features {
        return Err(GbmError(format!(
            "{} feature values for {} rows of {} features",
            set.features.len(),
            set.n_rows(),
            n_features
        )));
    }
    let n_rows = i32::try_from(set.n_rows()).map_err(|_| GbmError("too many rows".into()))?;
    let dataset = DatasetGuard::from_rows(set.features, n_rows, n_features as i32, dataset_params)?;
    dataset.set_field("label", set.labels)?;
    if let Some(weights) = set.weights {
        if weights.len() != set.n_rows() {
            return Err(GbmError(format!(
                "{} weights for {} rows",
                weights.len(),
                set.n_rows()
            )));
        }
        dataset.set_field("weight", weights)?;
    }
    dataset.set_feature_names(set.feature_names)?;
    let booster = BoosterGuard::new(&dataset, booster_params)?;
    for round in 1..=rounds {
        let mut finished = 0;
        // SAFETY: the booster handle is live for the guard's lifetime.
        check(unsafe { sys::LGBM_BoosterUpdateOneIter(booster.0, &mut finished) })?;
        on_round(round);
        if finished != 0 {
            break;
        }
    }
    booster.to_text()
}

/// A trained booster, ready to predict from many threads at once.
pub struct Gbm {
    booster: Booster,
    /// The trees walked in Rust, unless the model uses what the forest does not read.
    forest: Option<Forest>,
    n_features: i32,
}

// SAFETY: `Booster` holds a raw handle to a LightGBM booster, which is why it is neither
// `Send` nor `Sync`. LightGBM guards its booster with a reader-writer lock: every prediction
// call (`LGBM_BoosterPredictForMat`, contributions) takes it shared or exclusive inside the C
// API (`c_api.cpp`, `SHARED_LOCK(mutex_)` / `UNIQUE_LOCK(mutex_)`), and the fast single-row
// call locks its configuration's own mutex (`FastConfig::single_row_predictor_mutex`) around
// the buffers it reuses. `Gbm` exposes only those calls through `&self`; the fast
// configuration is made once, at load, through `&mut`.
unsafe impl Send for Gbm {}
unsafe impl Sync for Gbm {}

impl Gbm {
    pub fn from_text(text: &str) -> Result<Self> {
        let mut booster = Booster::from_string(text)?;
        // One thread: a thread pool costs more than one row's trees. Made once, so a single
        // request does not rebuild LightGBM's row predictor (a millisecond) every time.
        booster.single_row_fast_init::<f64>(Some(&serde_json::json!({"num_threads": 1})))?;
        let n_features = booster.num_features();
        let forest = Forest::from_text(text)
            .ok()
            .filter(|forest| forest.n_features() == n_features as usize);
        Ok(Self {
            booster,
            forest,
            n_features,
        })
    }

    pub fn n_features(&self) -> usize {
        self.n_features as usize
    }

    fn check_rows(&self, rows: &[f64]) -> Result<()> {
        if rows.len() % self.n_features() != 0 {
            return Err(GbmError(format!(
                "{} values for rows of {} features",
                rows.len(),
                self.n_features
            )));
        }
        Ok(())
    }

    fn check_row(&self, row: &[f64]) -> Result<()> {
        if row.len() != self.n_features() {
            return Err(GbmError(format!(
                "{} values for {} features",
                row.len(),
                self.n_features
            )));
        }
        Ok(())
    }

    /// The prediction for one row.
    pub fn predict_one(&self, row: &[f64]) -> Result<f64> {
        self.check_row(row)?;
        // The forest walked here: 33.6 µs for the three boosters on the sample's rows in turn,
        // where LightGBM's fast single-row path took 97.6 (`cargo bench --bench predict`,
        // boosters); that path also takes the booster's lock, exclusive, for every row.
        match &self.forest {
            Some(forest) => Ok(forest.predict(row)),
            None => Ok(self.booster.predict_single_row_fast(row)?[0]),
        }
    }

    /// Predictions for row-major `rows`, on `threads` threads (0: LightGBM's default).
    pub fn predict(&self, rows: &[f64], threads: usize) -> Result<Vec<f64>> {
        self.check_rows(rows)?;
        self.predict_lightgbm_on(rows, threads)
    }

    /// Each feature's contribution to each row's prediction (SHAP values, as LightGBM computes
    /// them for trees), followed by the expected value: `n_features + 1` numbers a row.
    pub fn contributions(&self, rows: &[f64]) -> Result<Vec<f64>> {
        self.check_rows(rows)?;
        let n = self.n_features();
        let ours = self.forest.as_ref().and_then(|forest| {
            let explain = |row: &[f64]| forest.contributions(row);
            if rows.len() == n {
                explain(rows)
            } else {
                let each: Option<Vec<Vec<f64>>> = rows.par_chunks(n).map(explain).collect();
                each.map(|each| each.concat())
            }
        });
        match ours {
            Some(values) => Ok(values),
            None => self.contributions_lightgbm(rows),
        }
    }

    fn predict_lightgbm_on(&self, rows: &[f64], threads: usize) -> Result<Vec<f64>> {
        let params = format!("num_threads={threads}");
        Ok(self
            .booster
            .predict_with_params(rows, self.n_features, true, &params)?)
    }

    /// LightGBM's fast single-row path, what served single rows before the forest did.
    pub fn predict_one_lightgbm(&self, row: &[f64]) -> Result<f64> {
        self.check_row(row)?;
        Ok(self.booster.predict_single_row_fast(row)?[0])
    }

    /// LightGBM's own predictions, the reference the forest is held to.
    pub fn predict_lightgbm(&self, rows: &[f64]) -> Result<Vec<f64>> {
        self.check_rows(rows)?;
        self.predict_lightgbm_on(rows, 1)
    }

    /// LightGBM's own SHAP values (its `predict_contrib`), the reference the forest is held to.
    pub fn contributions_lightgbm(&self, rows: &[f64]) -> Result<Vec<f64>> {
        self.check_rows(rows)?;
        Ok(self.booster.predict_contrib(rows, self.n_features, true)?)
    }

    /// Whether predictions are walked in Rust rather than asked of LightGBM.
    pub fn walks_in_rust(&self) -> bool {
        self.forest.is_some()
    }

    /// Total gain of the splits on each feature.
    pub fn gain_importance(&self) -> Result<Vec<f64>> {
        Ok(self
            .booster
            .feature_importance(lightgbm3::ImportanceType::Gain)?)
    }
}

fn last_error() -> String {
    // SAFETY: LightGBM returns a pointer to a thread-local, NUL-terminated message.
    unsafe { CStr::from_ptr(sys::LGBM_GetLastError()) }
        .to_string_lossy()
        .into_owned()
}

fn check(status: i32) -> Result<()> {
    if status == 0 {
        Ok(())
    } else {
        Err(GbmError(last_error()))
    }
}

fn c_string(text: &str) -> Result<CString> {
    CString::new(text).map_err(|_| GbmError(format!("a NUL byte in {text:?}")))
}

/// Frees the dataset when dropped, whatever path training takes out.
struct DatasetGuard(sys::DatasetHandle);

impl DatasetGuard {
    fn from_rows(rows: &[f64], n_rows: i32, n_features: i32, params: &str) -> Result<Self> {
        let params = c_string(params)?;
        let mut handle: sys::DatasetHandle = ptr::null_mut();
        // SAFETY: `rows` holds `n_rows * n_features` f64 values (checked by `train`); LightGBM
        // copies them into its bins before returning, and writes the new handle to `handle`.
        check(unsafe {
            sys::LGBM_DatasetCreateFromMat(
                rows.as_ptr().cast::<c_void>(),
                sys::C_API_DTYPE_FLOAT64 as i32,
                n_rows,
                n_features,
                1,
                params.as_ptr(),
                ptr::null_mut(),
                &mut handle,
            )
        })?;
        Ok(Self(handle))
    }

    fn set_field(&self, name: &str, values: &[f32]) -> Result<()> {
        let field = c_string(name)?;
        // SAFETY: `values` has one value per row of the dataset (checked by `train`); LightGBM
        // copies them.
        check(unsafe {
            sys::LGBM_DatasetSetField(
                self.0,
                field.as_ptr(),
                values.as_ptr().cast::<c_void>(),
                values.len() as i32,
                sys::C_API_DTYPE_FLOAT32 as i32,
            )
        })
    }

    fn set_feature_names(&self, names: &[&str]) -> Result<()> {
        let owned = names
            .iter()
            .map(|name| c_string(name))
            .collect::<Result<Vec<_>>>()?;
        let mut pointers: Vec<*const c_char> = owned.iter().map(|name| name.as_ptr()).collect();
        // SAFETY: one live NUL-terminated name per feature; LightGBM copies them.
        check(unsafe {
            sys::LGBM_DatasetSetFeatureNames(self.0, pointers.as_mut_ptr(), pointers.len() as i32)
        })
    }
}

impl Drop for DatasetGuard {
    fn drop(&mut self) {
        // SAFETY: the handle came from `LGBM_DatasetCreateFromMat` and is freed once.
        unsafe { sys::LGBM_DatasetFree(self.0) };
    }
}

struct BoosterGuard(sys::BoosterHandle);

impl BoosterGuard {
    fn new(dataset: &DatasetGuard, params: &str) -> Result<Self> {
        let params = c_string(params)?;
        let mut handle: sys::BoosterHandle = ptr::null_mut();
        // SAFETY: the dataset outlives the booster's training (both guards live in `train`).
        check(unsafe { sys::LGBM_BoosterCreate(dataset.0, params.as_ptr(), &mut handle) })?;
        Ok(Self(handle))
    }

    fn to_text(&self) -> Result<String> {
        let mut length: i64 = 0;
        // SAFETY: a zero-length buffer asks LightGBM for the length it needs.
        check(unsafe {
            sys::LGBM_BoosterSaveModelToString(self.0, 0, -1, 0, 0, &mut length, ptr::null_mut())
        })?;
        let mut buffer = vec![0u8; length as usize];
        // SAFETY: `buffer` holds `length` bytes, the length LightGBM asked for.
        check(unsafe {
            sys::LGBM_BoosterSaveModelToString(
                self.0,
                0,
                -1,
                0,
                length,
                &mut length,
                buffer.as_mut_ptr().cast::<c_char>(),
            )
        })?;
        let text = CStr::from_bytes_until_nul(&buffer)
            .map_err(|_| GbmError("the model text has no end".into()))?;
        Ok(text.to_string_lossy().into_owned())
    }
}

impl Drop for BoosterGuard {
    fn drop(&mut self) {
        // SAFETY: the handle came from `LGBM_BoosterCreate` and is freed once.
        unsafe { sys::LGBM_BoosterFree(self.0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// y = 10 * category-effect + x, with a category whose codes are not ordered by effect:
    /// only a categorical split separates codes 1 and 3 from 2 in one step.
    fn toy(n_rows: usize) -> (Vec<f64>, Vec<f32>) {
        let effects = [0.0, 5.0, -3.0, 5.0];
        let mut features = Vec::new();
        let mut labels = Vec::new();
        for row in 0..n_rows {
            let code = (row % 4) as f64;
            let x = (row % 97) as f64 / 97.0;
            features.extend([x, code]);
            labels.push((10.0 * effects[row % 4] + x) as f32);
        }
        (features, labels)
    }

    #[test]
    fn trains_with_dataset_parameters_and_predicts_through_lightgbm3() {
        let (features, labels) = toy(2_000);
        let set = TrainingSet {
            features: &features,
            labels: &labels,
            weights: None,
            feature_names: &["x", "code"],
        };
        let mut rounds_seen = 0;
        let text = train(
            &set,
            "max_bin=63 categorical_feature=1 verbosity=-1",
            "objective=regression num_leaves=4 learning_rate=0.3 num_threads=1 verbosity=-1 \
             min_data_in_leaf=5 deterministic=true",
            40,
            |round| rounds_seen = round,
        )
        .unwrap();
        assert_eq!(rounds_seen, 40);
        assert!(text.contains("feature_names=x code"), "names are kept");
        // A categorical feature's info lists its categories; a numeric one its range.
        let infos = text
            .lines()
            .find(|line| line.starts_with("feature_infos="))
            .unwrap_or_default();
        assert!(infos.ends_with(":0:1:2:3"), "categorical is kept: {infos}");
        assert!(text.contains("num_cat=1"), "trees split on the category");
        let model = Gbm::from_text(&text).unwrap();
        assert_eq!(model.n_features(), 2);
        let predictions = model.predict(&[0.5, 2.0, 0.5, 3.0], 1).unwrap();
        // One row by the forest walked in Rust, the batch by LightGBM: the same leaves summed.
        let one = model.predict_one(&[0.5, 3.0]).unwrap();
        assert!((one - predictions[1]).abs() <= 1e-9 * predictions[1].abs().max(1.0));
        assert!((predictions[0] - (-29.5)).abs() < 1.5, "{predictions:?}");
        assert!((predictions[1] - 50.5).abs() < 1.5, "{predictions:?}");
        let contributions = model.contributions(&[0.5, 2.0]).unwrap();
        assert_eq!(contributions.len(), 3);
        let total: f64 = contributions.iter().sum();
        assert!((total - predictions[0]).abs() < 1e-6, "SHAP values add up");
    }

    #[test]
    fn max_bin_reaches_the_binning() {
        let (features, labels) = toy(2_000);
        let set = TrainingSet {
            features: &features,
            labels: &labels,
            weights: None,
            feature_names: &["x", "code"],
        };
        let thresholds = |max_bin: usize| {
            let text = train(
                &set,
                &format!("max_bin={max_bin} verbosity=-1"),
                "objective=regression num_leaves=8 num_threads=1 verbosity=-1 min_data_in_leaf=5",
                30,
                |_| {},
            )
            .unwrap();
            let mut seen = std::collections::BTreeSet::new();
            for (features, values) in text
                .lines()
                .filter(|line| line.starts_with("split_feature="))
                .zip(text.lines().filter(|line| line.starts_with("threshold=")))
            {
                let features = features.trim_start_matches("split_feature=").split(' ');
                let values = values.trim_start_matches("threshold=").split(' ');
                for (feature, value) in features.zip(values) {
                    if feature == "0" {
                        seen.insert(value.to_owned());
                    }
                }
            }
            seen.len()
        };
        // With 4 bins x can be cut in at most 3 places; with 255 in many more.
        assert!(thresholds(4) <= 3, "{}", thresholds(4));
        assert!(thresholds(255) > 10, "{}", thresholds(255));
    }

    #[test]
    fn a_bad_parameter_is_an_error_not_a_crash() {
        let (features, labels) = toy(100);
        let set = TrainingSet {
            features: &features,
            labels: &labels,
            weights: None,
            feature_names: &["x", "code"],
        };
        let error = train(
            &set,
            "verbosity=-1",
            "objective=nonsense verbosity=-1",
            1,
            |_| {},
        )
        .unwrap_err();
        assert!(error.0.contains("nonsense"), "{error}");
    }
}
