//! Data flows one way (poller -> snapshot -> state -> view), and the modules say so in their imports: the model and
//! the analysis are pure and know nothing of the screens, the commands, the exporter or the configuration file.
//! A cycle through the configuration (`analysis::alerts` <-> `config`) and an analysis reaching into `tui` for a
//! helper both happened once; this test keeps the whole class out, for every file under the pure modules.

use std::path::{Path, PathBuf};

/// Pure modules and the modules above them that they must never name.
const RULES: &[(&str, &[&str])] = &[
    (
        "src/model.rs",
        &["tui", "config", "cmd", "serve", "collect", "analysis"],
    ),
    ("src/analysis", &["tui", "config", "cmd", "serve"]),
];

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_file() {
        out.push(path.to_path_buf());
        return;
    }
    for entry in std::fs::read_dir(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())) {
        let entry = entry.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let p = entry.path();
        if p.is_dir() || p.extension().is_some_and(|x| x == "rs") {
            rust_files(&p, out);
        }
    }
}

/// `crate::X` paths named in code (comments left out, since a doc link is not a dependency).
fn named_modules(source: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in source.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push((n + 1, name));
            }
        }
    }
    found
}

#[test]
fn pure_modules_do_not_import_the_layers_above_them() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut broken = Vec::new();
    let mut checked = 0;
    for (module, forbidden) in RULES {
        let mut files = Vec::new();
        rust_files(&root.join(module), &mut files);
        assert!(!files.is_empty(), "{module} has no Rust files");
        for file in files {
            let source = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            checked += 1;
            for (line, name) in named_modules(&source) {
                if forbidden.contains(&name.as_str()) {
                    let shown = file.strip_prefix(root).unwrap_or(&file).display();
                    broken.push(format!("{shown}:{line} uses crate::{name}"));
                }
            }
        }
    }
    assert!(checked > 10, "only {checked} files read");
    assert!(
        broken.is_empty(),
        "imports against the data flow:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_scan_sees_paths_in_code_and_not_in_comments() {
    let found = named_modules(
        "use crate::tui::columns;\nlet x = crate::config::Config::default(); // crate::cmd\n/// [`crate::serve`]\n",
    );
    assert_eq!(found, vec![(1, "tui".to_string()), (2, "config".to_string())]);
}
