//! The history commands, run as a carrier would run them.

use std::process::Command;

fn etape(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_etape"))
        .args(args)
        .output()
        .expect("the binary runs")
}

#[test]
fn simulate_then_validate_round_trips_and_a_defect_is_named() {
    let directory = tempfile::tempdir().unwrap();
    let out = directory.path().join("world");
    let out_str = out.to_str().unwrap();
    let output = etape(&[
        "simulate",
        "--carriers",
        "3",
        "--trips",
        "400",
        "--seed",
        "5",
        "--out",
        out_str,
        "--pings",
        "--ping-share",
        "0.2",
        "--format",
        "csv",
        "--days",
        "60",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("trips/s"), "{stdout}");
    for carrier in ["carrier-01", "carrier-02", "carrier-03"] {
        assert!(out.join(carrier).join("trips.csv.gz").is_file());
        assert!(out.join(carrier).join("pings.csv.gz").is_file());
    }
    let carrier = out.join("carrier-01");
    let output = etape(&["validate", carrier.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );

    // One implausible arrival: an hour after departure for hundreds of kilometres.
    let trips = directory.path().join("bad.csv");
    let mut text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/example/trips.csv"
    ))
    .unwrap();
    text = text.replace("2025-03-04T20:47:00+01:00", "2025-03-04T14:05:00+01:00");
    std::fs::write(&trips, text).unwrap();
    let output = etape(&["validate", trips.to_str().unwrap()]);
    assert!(!output.status.success());
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        report.contains("trips row 2, column arrival_time: implausible speed"),
        "{report}"
    );
    assert!(report.contains("nothing was kept"), "{report}");
}

#[test]
fn bad_simulate_arguments_exit_non_zero_with_a_message() {
    let output = etape(&["simulate", "--out", "/tmp/never", "--ping-share", "1.5"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a share between 0 and 1"));
    let output = etape(&["validate", "/nonexistent/trips.csv"]);
    assert!(!output.status.success());
}

#[test]
fn one_history_flag_takes_several_partners() {
    let directory = tempfile::tempdir().unwrap();
    let out = directory.path().join("model");
    let sample = |name: &str| format!("{name}={}/data/sample/{name}", env!("CARGO_MANIFEST_DIR"));
    let output = etape(&[
        "train",
        "--history",
        &sample("carrier-07"),
        &sample("carrier-08"),
        "--rounds",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("from 2 partners"), "{stdout}");
}

#[test]
fn completions_are_printed_and_a_bad_choice_lists_the_good_ones() {
    let output = etape(&["completions", "bash"]);
    assert!(output.status.success());
    let script = String::from_utf8_lossy(&output.stdout);
    assert!(script.contains("complete -F"), "{script}");
    assert!(
        script.contains("--history"),
        "the subcommands' flags are in it"
    );

    let output = etape(&[
        "keys",
        "create",
        "--organisation",
        "demo",
        "--name",
        "x",
        "--role",
        "pilot",
    ]);
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        error.contains("[possible values: carrier, dispatcher, partner, admin, operator]"),
        "{error}"
    );

    let output = etape(&["serve", "--help"]);
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("pretty") && help.contains("json"), "{help}");
}

#[test]
fn train_writes_the_boosters_input_for_another_lightgbm() {
    let directory = tempfile::tempdir().unwrap();
    let world = directory.path().join("world");
    let world_str = world.to_str().unwrap();
    let simulated = etape(&[
        "simulate",
        "--carriers",
        "2",
        "--trips",
        "400",
        "--seed",
        "3",
        "--out",
        world_str,
    ]);
    assert!(simulated.status.success(), "{simulated:?}");
    let input = directory.path().join("input");
    let mut args = vec!["train".to_owned(), "--rounds".to_owned(), "3".to_owned()];
    for carrier in ["carrier-01", "carrier-02"] {
        args.push("--history".to_owned());
        args.push(format!("{carrier}={}", world.join(carrier).display()));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let both = [&args[..], &["--out", "x", "--boosters-input", "y"]].concat();
    let refused = etape(&both);
    assert!(
        !refused.status.success(),
        "--out and --boosters-input together"
    );
    let input_str = input.to_str().unwrap();
    let written = etape(&[&args[..], &["--boosters-input", input_str]].concat());
    assert!(
        written.status.success(),
        "{}",
        String::from_utf8_lossy(&written.stderr)
    );

    let described: serde_json::Value =
        serde_json::from_slice(&std::fs::read(input.join("input.json")).unwrap()).unwrap();
    let rows = described["rows"].as_u64().unwrap() as usize;
    let features = described["features"].as_array().unwrap().len();
    assert!(rows > 300, "{described}");
    assert_eq!(features, etape::ml::features::FEATURES.len());
    let size = |name: &str| std::fs::metadata(input.join(name)).unwrap().len() as usize;
    assert_eq!(size("features.f64"), rows * features * 8);
    assert_eq!(
        (size("labels.f32"), size("weights.f32")),
        (rows * 4, rows * 4)
    );
    // Weights are scaled to a mean of one.
    let weights: Vec<f32> = std::fs::read(input.join("weights.f32"))
        .unwrap()
        .chunks(4)
        .map(|bytes| f32::from_le_bytes(bytes.try_into().unwrap()))
        .collect();
    let mean = weights.iter().map(|weight| f64::from(*weight)).sum::<f64>() / rows as f64;
    assert!((mean - 1.0).abs() < 1e-3, "{mean}");
    let boosters: Vec<(&str, &str)> = described["boosters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|booster| {
            (
                booster["name"].as_str().unwrap(),
                booster["params"].as_str().unwrap(),
            )
        })
        .collect();
    let names: Vec<&str> = boosters.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, ["p50", "p10", "p90"]);
    assert!(
        boosters[1].1.contains("objective=quantile alpha=0.1"),
        "{boosters:?}"
    );
    assert_eq!(described["rounds"], 3);
}
