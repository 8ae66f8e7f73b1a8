//! Training and evaluation from history files, through the library and the command line.

use std::path::{Path, PathBuf};
use std::process::Command;

use etape::domain::eta::RulesEta;
use etape::ml::model::evaluate::EvaluateOptions;
use etape::ml::model::TrainParams;
use etape::training::pipeline::{self, Inputs};

use crate::helpers::artifact_path;

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/sample")
        .join(name)
}

fn whole_sample() -> Inputs {
    let histories: Vec<(String, PathBuf)> = (1..=8)
        .map(|n| {
            (
                format!("carrier-{n:02}"),
                sample(&format!("carrier-{n:02}")),
            )
        })
        .collect();
    pipeline::read_inputs(
        &histories,
        Some(&sample("weather.parquet")),
        Some(&sample("traffic.parquet")),
    )
    .unwrap()
}

/// The figures the model is held to, on the simulated world split by time: MAE at least 40%
/// below the rules engine's and below both smartcore baselines, a calibrated interval, and
/// for every partner a pooled model at least as good as its own-data-only model (15% better
/// for partners with under 1,000 trips).
#[test]
fn on_later_trips_the_model_beats_the_rules_and_the_baselines_and_its_interval_holds() {
    let report = pipeline::run_evaluation(
        &whole_sample(),
        &RulesEta::default(),
        &TrainParams::default().check().unwrap(),
        EvaluateOptions {
            baselines: true,
            anchor: true,
            partner_left_out: false,
            pooled_vs_own: true,
            feeds: true,
            candidates: false,
        },
        |_| {},
    )
    .unwrap();
    let rules = report.baselines["rules"].mae;
    let model = report.model.mae;
    assert!(
        model <= 0.6 * rules,
        "model {model:.1} against rules {rules:.1}"
    );
    for baseline in ["smartcore_linear", "smartcore_random_forest"] {
        let mae = report.baselines[baseline].mae;
        assert!(model < mae, "model {model:.1} against {baseline} {mae:.1}");
    }
    let coverage = report.model.coverage.unwrap();
    assert!((0.77..=0.83).contains(&coverage), "coverage {coverage:.3}");
    for horizon in ["at departure", "4 h out", "1 h out"] {
        assert!(report.by_horizon.contains_key(horizon), "{horizon}");
    }
    assert!(report.target_mae.contains_key("total") && report.target_mae.contains_key("residual"));
    // Each feed is worth something: without the weather, without congestion, without either,
    // the same model on the same split is worse.
    let with = report.feeds[etape::ml::model::evaluate::WITH_FEEDS].mae;
    for without in ["without weather", "without congestion", "without either"] {
        let mae = report.feeds[without].mae;
        assert!(with < mae, "with the feeds {with:.2}, {without} {mae:.2}");
    }
    assert!(
        report.feeds["without either"].mae
            >= report.feeds["without weather"]
                .mae
                .min(report.feeds["without congestion"].mae)
    );
    assert_eq!(report.pooled_vs_own.len(), 8);
    // Every partner gains from the pool, and the smallest the most: a partner with a few
    // hundred trips of its own cannot learn alone what the pool knows.
    for entry in &report.pooled_vs_own {
        let needed = if entry.own_training_trips < 600 {
            15.0
        } else {
            0.0
        };
        assert!(
            entry.gain_percent > needed,
            "{}: pooled {:.1} against own {:.1} ({:.1}%)",
            entry.partner,
            entry.pooled_mae,
            entry.own_mae,
            entry.gain_percent
        );
    }
}

#[test]
fn a_trained_model_is_written_whole_read_back_and_fingerprinted() {
    let inputs = pipeline::read_inputs(
        &[
            ("seven".to_owned(), sample("carrier-07")),
            ("eight".to_owned(), sample("carrier-08")),
        ],
        None,
        None,
    )
    .unwrap();
    let params = TrainParams {
        rounds: 30,
        ..TrainParams::default()
    }
    .check()
    .unwrap();
    let dirs = [artifact_path("trained-a"), artifact_path("trained-b")];
    for dir in &dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
    let rules = RulesEta::default();
    let card = pipeline::train(&inputs, &rules, &params, &dirs[0], |_| {}).unwrap();
    let again = pipeline::train(&inputs, &rules, &params, &dirs[1], |_| {}).unwrap();
    assert_eq!(card.training.fingerprint, again.training.fingerprint);
    assert_eq!(card.partners, ["seven", "eight"]);
    assert_eq!(
        card.profiles.len(),
        3,
        "the pool's profile and one per partner"
    );
    assert_eq!(card.training.sources[1].trips, 459);
    // The same data and parameters give the same boosters.
    for file in ["p50.txt", "p10.txt", "p90.txt"] {
        let read = |dir: &PathBuf| std::fs::read_to_string(dir.join(file)).unwrap();
        assert_eq!(read(&dirs[0]), read(&dirs[1]), "{file}");
    }
    let (loaded, served) = etape::training::registry::load(&dirs[0]).unwrap();
    assert_eq!(loaded.version, card.version);
    assert_eq!(served.model.partner_code("eight"), 2);
    assert_eq!(served.model.partner_code("someone else"), 0);
    // A directory is never overwritten.
    let error = pipeline::train(&inputs, &rules, &params, &dirs[0], |_| {}).unwrap_err();
    assert!(
        format!("{error:#}").contains("never overwritten"),
        "{error:#}"
    );
    // Nothing half-written is left beside it.
    let leftovers: Vec<_> = std::fs::read_dir(dirs[0].parent().unwrap())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().contains(".partial-"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn the_train_and_evaluate_commands_write_a_model_and_reports() {
    let out = artifact_path("cli-model");
    let _ = std::fs::remove_dir_all(&out);
    let history = format!("eight={}", sample("carrier-08").display());
    let output = Command::new(env!("CARGO_BIN_EXE_etape"))
        .args(["train", "--history", &history, "--rounds", "20", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("trained on"), "{stdout}");
    assert!(out.join("model.json").exists());

    let output = Command::new(env!("CARGO_BIN_EXE_etape"))
        .args(["evaluate", "--quick", "--history", &history, "--model"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("| model |"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("evaluation.json")).unwrap())
            .unwrap();
    assert_eq!(report["params"]["rounds"], 20, "the model's own parameters");
    assert!(out.join("evaluation.md").exists());

    // A history that is not one is refused with its name and a non-zero exit.
    let output = Command::new(env!("CARGO_BIN_EXE_etape"))
        .args(["train", "--history", "ghost=/nowhere/at/all", "--out"])
        .arg(artifact_path("never-written"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ghost"), "{stderr}");
}
