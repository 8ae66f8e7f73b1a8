//! Every fuzz seed and every input that once failed a target, replayed through the target's own
//! check (`fuzz/src/lib.rs`): the instrumented fuzzing runs outside the suite (`scripts/fuzz`),
//! its findings do not.

use std::path::{Path, PathBuf};

#[path = "../../fuzz/src/lib.rs"]
mod checks;

/// A fuzz target's name and its check.
type Target = (&'static str, fn(&[u8]));

const TARGETS: [Target; 6] = [
    ("api_bodies", checks::api_bodies::check),
    ("pings", checks::pings::check),
    ("upload_chunks", checks::upload_chunks::check),
    ("history_reader", checks::history_reader::check),
    ("feed_responses", checks::feed_responses::check),
    ("rules_engine", checks::rules_engine::check),
];

fn inputs(folder: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(folder)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("a readable folder").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

fn replay(folder: &str) -> usize {
    let mut replayed = 0;
    for (target, check) in TARGETS {
        for path in inputs(folder, target) {
            let data = std::fs::read(&path).expect("a readable input");
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(
                outcome.is_ok(),
                "{target} fails on {}: run `cargo fuzz run {target} {}` in fuzz/ to see it",
                path.display(),
                path.display()
            );
            replayed += 1;
        }
    }
    replayed
}

#[test]
fn every_fuzz_seed_passes_its_targets_check() {
    for (target, _) in TARGETS {
        assert!(
            !inputs("seeds", target).is_empty(),
            "fuzz/seeds/{target} has no seed"
        );
    }
    assert!(replay("seeds") >= TARGETS.len());
}

#[test]
fn every_input_that_once_failed_a_fuzz_target_passes_it_now() {
    replay("regressions");
}
