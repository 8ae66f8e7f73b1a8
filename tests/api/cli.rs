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
