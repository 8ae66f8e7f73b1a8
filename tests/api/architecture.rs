//! The layers of `src/` and the direction of their imports, held to the map in the README's
//! architecture section: each top-level module may use only the layers listed beside it, all
//! of them below it, so there is no cycle between them. The test reads every source file's
//! `crate::` paths, as rust-analyzer's tidy tests read their tree, and names the file and the
//! line of each import against the map. Test code (`tests.rs` files and what follows a
//! top-level `#[cfg(test)]`) may wire any layer: a test of the tracker may use a real store.

use std::path::{Path, PathBuf};

/// From the bottom up; each layer with the layers it may use.
const LAYERS: &[(&str, &str)] = &[
    ("domain", ""),
    ("config", "domain"),
    ("telemetry", "config domain"),
    ("ml", "domain"),
    ("partners", "ml domain"),
    ("tracking", "ml telemetry config domain"),
    ("training", "partners ml telemetry config domain"),
    (
        "adapters",
        "training tracking partners ml telemetry config domain",
    ),
    ("sim", "tracking partners ml config domain"),
    (
        "http",
        "adapters training tracking partners ml telemetry config domain",
    ),
    (
        "app",
        "http sim adapters training tracking partners ml telemetry config domain",
    ),
];

/// The files at the top of `src/` that are not layers.
const ROOT_FILES: &[&str] = &["lib.rs", "main.rs"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn allowed(layer: &str) -> Option<Vec<&'static str>> {
    LAYERS
        .iter()
        .find(|(name, _)| *name == layer)
        .map(|(_, uses)| uses.split_whitespace().collect())
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a readable source folder") {
        let path = entry.expect("a readable entry").path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            found.push(path);
        }
    }
}

/// Every source file but test files, by its path under `src/`, with its code lines (comments
/// out) numbered from 1, up to a top-level `#[cfg(test)]`.
fn code_lines() -> Vec<(PathBuf, Vec<(usize, String)>)> {
    let root = src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    files
        .into_iter()
        .filter(|path| path.file_name().unwrap() != "tests.rs")
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let lines = code_of(&text);
            (path.strip_prefix(&root).unwrap().to_owned(), lines)
        })
        .collect()
}

fn code_of(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .take_while(|line| !line.starts_with("#[cfg(test)]"))
        .enumerate()
        .filter(|(_, line)| !line.trim_start().starts_with("//"))
        .map(|(index, line)| (index + 1, line.to_owned()))
        .collect()
}

/// The imports of one file of `layer` that the map does not allow: `(line, layer used)`.
fn violations(layer: &str, lines: &[(usize, String)]) -> Vec<(usize, String)> {
    let uses = allowed(layer).unwrap_or_default();
    let mut found = Vec::new();
    for (number, line) in lines {
        for (at, _) in line.match_indices("crate::") {
            let used: String = line[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            let before = line[..at].chars().last();
            let a_path_of_its_own = before.is_some_and(|c| c.is_alphanumeric() || c == '_');
            if !a_path_of_its_own && used != layer && !uses.contains(&used.as_str()) {
                found.push((*number, used));
            }
        }
    }
    found
}

#[test]
fn every_import_points_down_the_layer_map() {
    let mut against = Vec::new();
    for (path, lines) in code_lines() {
        let mut parts = path.components();
        let layer = parts.next().unwrap().as_os_str().to_str().unwrap();
        if parts.next().is_none() {
            continue;
        }
        for (line, used) in violations(layer, &lines) {
            against.push(format!(
                "src/{}:{line}: {layer} uses {used}",
                path.display()
            ));
        }
    }
    assert!(
        against.is_empty(),
        "imports against the layer map (tests/api/architecture.rs, README \"Architecture\"):\n{}",
        against.join("\n")
    );
}

#[test]
fn the_checker_finds_an_import_that_points_up() {
    let file = "use crate::domain::geo::GeoPoint;\n// crate::http is named here only\nuse crate::http::api::AppState;\n";
    assert_eq!(
        violations("tracking", &code_of(file)),
        vec![(3, "http".to_owned())]
    );
    let test_only = "use crate::domain::geo::GeoPoint;\n#[cfg(test)]\nmod tests {\n    use crate::adapters::store::Store;\n}\n";
    assert!(violations("tracking", &code_of(test_only)).is_empty());
    assert_eq!(
        violations(
            "domain",
            &code_of("    let x = crate::ml::features::FEATURES;")
        ),
        vec![(1, "ml".to_owned())]
    );
}

#[test]
fn each_folder_of_src_is_a_layer_of_the_map_and_nothing_else_is_loose() {
    let mut loose = Vec::new();
    for entry in std::fs::read_dir(src()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if path.is_dir() {
            assert!(
                allowed(&name).is_some(),
                "src/{name}/ is not a layer of the map"
            );
        } else if !ROOT_FILES.contains(&name.as_str()) {
            loose.push(name);
        }
    }
    assert!(
        loose.is_empty(),
        "loose modules at the top of src/: {loose:?}"
    );
    for (layer, _) in LAYERS {
        assert!(
            src().join(layer).is_dir(),
            "the map names src/{layer}/, which is missing"
        );
    }
}

#[test]
fn the_layer_map_only_points_down() {
    for (position, (layer, uses)) in LAYERS.iter().enumerate() {
        for used in uses.split_whitespace() {
            let below = LAYERS[..position].iter().any(|(name, _)| *name == used);
            assert!(below, "{layer} may use {used}, which is not below it");
        }
    }
}

#[test]
fn the_readme_architecture_section_names_every_layer() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split("\n## ")
        .find(|section| section.starts_with("Architecture"))
        .expect("a README section \"Architecture\"");
    for (layer, _) in LAYERS {
        assert!(
            section.contains(&format!("`src/{layer}/`")),
            "the README's architecture section does not name `src/{layer}/`"
        );
    }
}

/// `src/<file>:<line>` of each code line naming one of `needles` in a file outside `allowed`
/// (paths below `src/`, as prefixes).
fn named_outside(allowed: &[&str], needles: &[&str]) -> Vec<String> {
    code_lines()
        .into_iter()
        .filter(|(path, _)| {
            let path = path.to_string_lossy();
            !allowed.iter().any(|prefix| path.starts_with(prefix))
        })
        .flat_map(|(path, lines)| {
            lines
                .into_iter()
                .filter(|(_, line)| needles.iter().any(|needle| line.contains(needle)))
                .map(move |(number, _)| format!("src/{}:{number}", path.display()))
        })
        .collect()
}

#[test]
fn now_comes_from_the_clock_alone() {
    // Every "now" is read through `domain::clock::Clock`, so that a fixed clock reaches it.
    let readers = named_outside(&["domain/clock.rs"], &["Utc::now()"]);
    assert!(
        readers.is_empty(),
        "Utc::now() outside the clock: {readers:?}"
    );
}

#[test]
fn files_are_read_and_written_where_the_map_says() {
    // The modules named for it in the README's invariants; the rest takes bytes and frames.
    const MAY_TOUCH_FILES: &[&str] = &[
        "adapters/store/",
        "app/",
        "config/",
        "main.rs",
        "ml/history/files.rs",
        "partners/keys.rs",
        "partners/uploads.rs",
        "sim/mod.rs",
        "training/",
    ];
    let touching = named_outside(MAY_TOUCH_FILES, &["fs::", "File::", "OpenOptions"]);
    assert!(
        touching.is_empty(),
        "file I/O outside the modules that own it: {touching:?}"
    );
}

#[test]
fn json_is_known_at_the_edges() {
    // The wire and the files speak JSON; the domain, the features, the model and the tracker's
    // decisions deal in types, which the edges serialise.
    const MAY_KNOW_JSON: &[&str] = &[
        "adapters/",
        "app/",
        "http/",
        "main.rs",
        // The ping formats a tracker takes: JSON arrays, NDJSON, Traccar's forward.
        "tracking/pings.rs",
        // Model cards and partner reports on disk.
        "training/",
        // LightGBM's fast predictor takes its parameters as JSON.
        "ml/model/gbm.rs",
    ];
    let knowing = named_outside(MAY_KNOW_JSON, &["serde_json"]);
    assert!(
        knowing.is_empty(),
        "JSON outside the edges that own it: {knowing:?}"
    );
}

#[test]
fn the_edges_checker_names_what_it_finds_outside_its_list() {
    let found = named_outside(&["adapters/", "app/", "main.rs"], &["serde_json"]);
    assert!(
        found.iter().any(|place| place.starts_with("src/http/api/")),
        "{found:?}"
    );
    assert!(found
        .iter()
        .all(|place| !place.starts_with("src/adapters/")));
}
