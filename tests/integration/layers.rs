//! The layers are crates: `pgtls-core` (model, analysis, log-line parsers) cannot name the binary's modules (tui,
//! config, cmd, serve, collect), since it does not depend on the binary; the compiler refuses a backward import.
//! What the crates cannot say is checked here:
//!
//! * the pure layer's dependencies stay pure: its normal dependencies are on an allow-list, and none of its
//!   dependencies, direct or not, is a runtime, a CLI parser, a server or a TLS library (`cargo metadata`);
//! * its code outside tests does no I/O of its own (no file system, network, processes or environment);
//! * inside the crate, the model names nothing of the analysis built on it;
//! * the lab (`pgtls-lab`) is built on the layers below the binary, never on the binary itself;
//! * so is the collector (`pgtls-collect`), which takes no CLI, terminal or web crate, and the pure layer does not
//!   depend on it;
//! * a server build (`--no-default-features`, no `demo`) carries no downloader (`cargo tree`).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail by panicking")]

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// What `pgtls-core` may depend on (normal dependencies; dev-dependencies are the tests' business).
const CORE_ALLOWED: &[&str] = &["chrono", "serde", "serde_json", "unicode-width"];

/// Crates that must never reach the pure layer, not even through a dependency of a dependency.
const CORE_FORBIDDEN: &[&str] = &[
    "tokio",
    "tokio-postgres",
    "postgres-openssl",
    "pgtls-conn",
    "pgtls-collect",
    "pgtls",
    "clap",
    "nix",
    "axum",
    "hyper",
    "openssl",
    "ratatui",
    "crossterm",
    "tempfile",
    "ureq",
];

/// A package's name from its id, through the package list.
fn names(meta: &Value) -> HashMap<String, String> {
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_string(),
                p["name"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn core_id(meta: &Value) -> String {
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "pgtls-core")
        .map(|p| p["id"].as_str().unwrap().to_string())
        .expect("pgtls-core is a workspace member")
}

#[test]
fn the_pure_layer_declares_only_pure_dependencies() {
    let meta = crate::common::cargo::metadata();
    let core = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "pgtls-core")
        .expect("pgtls-core is a workspace member");
    let normal: BTreeSet<&str> = core["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"].is_null())
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    let extra: Vec<&&str> = normal.iter().filter(|n| !CORE_ALLOWED.contains(n)).collect();
    assert!(
        extra.is_empty(),
        "pgtls-core depends on {extra:?}; the pure layer takes only {CORE_ALLOWED:?} (I/O belongs in the binary)"
    );
    assert!(normal.contains("serde") && normal.contains("chrono"), "{normal:?}");
}

/// Everything pgtls-core builds on, through normal dependencies (build scripts and proc macros included, since they
/// are what a normal dependency needs), with features as the workspace resolves them.
#[test]
fn no_runtime_cli_or_tls_library_reaches_the_pure_layer() {
    let meta = crate::common::cargo::metadata();
    let names = names(&meta);
    let nodes: HashMap<&str, &Value> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    let start = core_id(&meta);
    let mut seen = BTreeSet::new();
    let mut todo = vec![start.clone()];
    while let Some(id) = todo.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        for dep in nodes[id.as_str()]["deps"].as_array().unwrap() {
            let dev_only = dep["dep_kinds"].as_array().unwrap().iter().all(|k| k["kind"] == "dev");
            if !dev_only {
                todo.push(dep["pkg"].as_str().unwrap().to_string());
            }
        }
    }
    let reached: BTreeSet<&str> = seen
        .iter()
        .filter(|id| **id != start)
        .map(|id| names[id].as_str())
        .collect();
    let bad: Vec<&&str> = reached.iter().filter(|n| CORE_FORBIDDEN.contains(n)).collect();
    assert!(
        bad.is_empty(),
        "pgtls-core reaches {bad:?} through its dependencies: {reached:?}"
    );
    assert!(
        reached.contains("chrono"),
        "the walk found the dependencies: {reached:?}"
    );
}

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_file() {
        out.push(path.to_path_buf());
        return;
    }
    for entry in std::fs::read_dir(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())) {
        let p = entry.unwrap_or_else(|e| panic!("{}: {e}", path.display())).path();
        if p.is_dir() || p.extension().is_some_and(|x| x == "rs") {
            rust_files(&p, out);
        }
    }
}

/// The code of a file outside its tests: lines before its first `#[cfg(test)]`, comments left out. Test-only files
/// (`*_tests.rs`) and the fixtures (a `test-support` feature) have none.
fn code_outside_tests(file: &Path, source: &str) -> Vec<(usize, String)> {
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name.ends_with("_tests.rs") || name == "fixtures.rs" {
        return Vec::new();
    }
    source
        .lines()
        .enumerate()
        .take_while(|(_, l)| l.trim() != "#[cfg(test)]")
        .map(|(n, l)| (n + 1, l.split("//").next().unwrap_or("").to_string()))
        .collect()
}

/// What I/O of its own would look like. `std::io::Write` stays allowed: writing to a writer the caller owns is the
/// caller's I/O (`safe::write_terminal`), as is `std::net::IpAddr` (a parsed value, no socket).
const IO: &[&str] = &[
    "std::fs",
    "std::process",
    "std::env",
    "std::os",
    "std::thread",
    "TcpStream",
    "TcpListener",
    "UdpSocket",
    "File::",
    "Local::now",
    "Utc::now",
    "SystemTime::now",
    "Instant::now",
];

/// The one clock read left: a stderr line whose prefix has no time is stamped with the time it is parsed (the
/// reading is the caller's, but the parser takes no clock yet). New ones are refused.
const KNOWN: &[(&str, &str)] = &[("logsource/stderr.rs", "Utc::now")];

#[test]
fn the_pure_layer_does_no_io_outside_its_tests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/pgtls-core/src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() > 10, "only {} files read", files.len());
    let mut found = Vec::new();
    for file in &files {
        let source = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for (line, code) in code_outside_tests(file, &source) {
            let shown = file.strip_prefix(&root).unwrap_or(file).display().to_string();
            for io in IO {
                if code.contains(io) && !KNOWN.contains(&(shown.as_str(), io)) {
                    found.push(format!("{shown}:{line} uses {io}"));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "the pure layer does I/O (pass the value in instead):\n{}",
        found.join("\n")
    );
}

/// `crate::X` paths named in code, grouped imports (`use crate::{a::b, c}`) included; comments left out, since a
/// doc link is not a dependency.
fn named_modules(source: &str) -> Vec<(usize, String)> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = Vec::new();
    for (n, line) in source.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let mut depth = 0;
                let mut start = true;
                for (i, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => start = true,
                        c if c.is_whitespace() => {}
                        _ if start => {
                            start = false;
                            let name = ident(&group[i..]);
                            if !name.is_empty() {
                                found.push((n + 1, name));
                            }
                        }
                        _ => {}
                    }
                }
            } else {
                let name = ident(rest);
                if !name.is_empty() {
                    found.push((n + 1, name));
                }
            }
        }
    }
    found
}

#[test]
fn the_model_names_nothing_built_on_it() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/pgtls-core/src/model.rs");
    let source = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let code: String = source
        .lines()
        .take_while(|l| l.trim() != "#[cfg(test)]")
        .collect::<Vec<_>>()
        .join("\n");
    let broken: Vec<String> = named_modules(&code)
        .into_iter()
        .filter(|(_, name)| ["analysis", "logsource"].contains(&name.as_str()))
        .map(|(line, name)| format!("model.rs:{line} uses crate::{name}"))
        .collect();
    assert!(
        broken.is_empty(),
        "the model depends on nothing above it:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_scan_sees_paths_in_code_and_groups_and_not_in_comments() {
    let found = named_modules(
        "use crate::tui::columns;\nlet x = crate::config::Config::default(); // crate::cmd\n/// [`crate::serve`]\n\
         use crate::{analysis::ledger::{A, B}, logsource};\n",
    );
    assert_eq!(
        found,
        vec![
            (1, "tui".to_string()),
            (2, "config".to_string()),
            (4, "analysis".to_string()),
            (4, "logsource".to_string()),
        ]
    );
}

/// Inside the connection crate the modules form no cycle (tls_setup and connect once needed each other for
/// `verification_for`, inspect and tls_setup for `CertFlags`): each names, outside its tests, only modules below it.
#[test]
fn the_connection_crates_modules_form_no_cycle() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/pgtls-conn/src");
    let mut files = Vec::new();
    rust_files(&dir, &mut files);
    let module_of = |file: &Path| file.file_stem().and_then(|s| s.to_str()).unwrap_or("").to_string();
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(f)).filter(|m| m != "lib").collect();
    let mut edges: HashMap<String, BTreeSet<String>> = HashMap::new();
    for file in &files {
        let from = module_of(file);
        if from == "lib" {
            continue;
        }
        let source = std::fs::read_to_string(file).unwrap();
        let code: String = code_outside_tests(file, &source)
            .into_iter()
            .map(|(_, line)| line)
            .collect::<Vec<_>>()
            .join("\n");
        for (_, to) in named_modules(&code) {
            if modules.contains(&to) && to != from {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    assert!(
        edges.values().map(BTreeSet::len).sum::<usize>() > 10,
        "the scan found too few edges: {edges:?}"
    );
    // Depth-first search for a path back to the start.
    fn reaches(edges: &HashMap<String, BTreeSet<String>>, from: &str, goal: &str, seen: &mut BTreeSet<String>) -> bool {
        edges
            .get(from)
            .into_iter()
            .flatten()
            .any(|next| next == goal || (seen.insert(next.clone()) && reaches(edges, next, goal, seen)))
    }
    let cycles: Vec<&String> = modules
        .iter()
        .filter(|m| reaches(&edges, m, m, &mut BTreeSet::new()))
        .collect();
    assert!(cycles.is_empty(), "modules on a cycle: {cycles:?} ({edges:?})");
}

/// The crates a build of the binary compiles in, as `cargo tree` prints them (normal dependencies only, so neither
/// the tests' dev-dependencies nor the test-support feature they turn on), with the given feature flags.
fn binary_dependencies(flags: &[&str]) -> BTreeSet<String> {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree", "--locked", "-p", "pgtls", "-e", "normal", "--prefix", "none", "-f", "{p}",
        ])
        .args(flags)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("cargo tree prints UTF-8")
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// What only the demo needs: the lab and the provisioner's download, unpacking and progress bar.
const DEMO_ONLY: &[&str] = &["pgtls-lab", "ureq", "tar", "flate2", "indicatif"];

#[test]
fn a_server_build_carries_no_downloader() {
    let lean = binary_dependencies(&["--no-default-features"]);
    let found: Vec<&&str> = DEMO_ONLY.iter().filter(|n| lean.contains(**n)).collect();
    assert!(
        found.is_empty(),
        "`cargo build --no-default-features` compiles in {found:?}; only the demo feature may bring them"
    );
    assert!(
        lean.contains("tokio-postgres") && lean.contains("pgtls-conn"),
        "the walk found the dependencies: {lean:?}"
    );
    let default = binary_dependencies(&[]);
    let missing: Vec<&&str> = DEMO_ONLY.iter().filter(|n| !default.contains(**n)).collect();
    assert!(
        missing.is_empty(),
        "the default build (with the demo) lacks {missing:?}: is the list above still what the demo needs?"
    );
}

#[test]
fn the_lab_is_not_built_on_the_binary() {
    let meta = crate::common::cargo::metadata();
    let lab = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "pgtls-lab")
        .expect("pgtls-lab is a workspace member");
    let deps: BTreeSet<&str> = lab["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert!(
        !deps.contains("pgtls"),
        "pgtls-lab depends on the binary's crate: {deps:?}"
    );
    assert!(deps.contains("pgtls-conn"), "{deps:?}");
}

/// What the collector must not declare: the binary, the lab (a dev-dependency of its tests only), and the CLI,
/// terminal and web crates the binary keeps.
const COLLECT_FORBIDDEN: &[&str] = &["pgtls", "pgtls-lab", "clap", "ratatui", "crossterm", "axum", "hyper"];

#[test]
fn the_collector_is_not_built_on_the_binary() {
    let meta = crate::common::cargo::metadata();
    let collect = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "pgtls-collect")
        .expect("pgtls-collect is a workspace member");
    let normal: BTreeSet<&str> = collect["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"].is_null())
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    let bad: Vec<&&str> = COLLECT_FORBIDDEN.iter().filter(|n| normal.contains(**n)).collect();
    assert!(bad.is_empty(), "pgtls-collect depends on {bad:?}: {normal:?}");
    assert!(
        normal.contains("pgtls-core") && normal.contains("pgtls-conn"),
        "{normal:?}"
    );
}
