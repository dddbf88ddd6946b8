//! Issue 26, item 4: errors are typed. Two checks over the source (code outside test modules):
//!
//! * `Result<_, String>` stays at the sites listed here, each with why; a new one fails with its place, and a
//!   file that lost some fails until its allowance is lowered (the class only shrinks);
//! * no code decides on an error's words (`e.to_string().contains(..)`, `err.starts_with(..)`,
//!   `db.message().contains(..)`): it matches the variant or the SQLSTATE. Tests may check the words.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail by panicking")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Files that may still return or hold `Result<_, String>`, how many times, and why.
const ALLOWED: &[(&str, usize, &str)] = &[
    // The CLI edge: these messages are the one line a user reads (exit status 64), built from clap's arguments.
    ("src/cli.rs", 5, "CLI edge: the usage message is the value"),
    (
        "src/cmd/shared.rs",
        1,
        "CLI edge: the plan's message names the target and the flag",
    ),
    // Not converted yet (issue 26, item 4, continued): each is a library-like site that should become an enum.
    (
        "crates/pgtls-collect/src/fixtures.rs",
        1,
        "test fixtures (demo data): the error is never shown to a user",
    ),
    (
        "src/tui/components/certificates.rs",
        1,
        "carries the probe's error (probe/mod.rs) to the screen",
    ),
    (
        "crates/pgtls-collect/src/collect/history.rs",
        5,
        "carries collect/mod.rs's hba_rules error to the after-change view",
    ),
    (
        "crates/pgtls-collect/src/collect/poller.rs",
        1,
        "carries the probe's error (probe/mod.rs)",
    ),
    (
        "crates/pgtls-collect/src/collect/mod.rs",
        1,
        "not converted yet (hba_rules)",
    ),
    (
        "crates/pgtls-collect/src/collect/sql/lint.rs",
        1,
        "a lint of pgtls's own SQL at test time: the Err is the call's text",
    ),
    (
        "crates/pgtls-core/src/analysis/after.rs",
        1,
        "carries collect/mod.rs's hba_rules error",
    ),
    (
        "src/output/report/mod.rs",
        1,
        "carries collect/mod.rs's hba_rules error to the report's what-if and after-change (as after.rs)",
    ),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under the crates' `src` directories, as `(path relative to the workspace, code outside its
/// test module)`. A test module is `#[cfg(test)]` followed by `mod NAME`: the rest of the file, by this
/// project's layout (tests come last).
fn sources() -> Vec<(String, String)> {
    let mut dirs = vec![root().join("src")];
    for entry in std::fs::read_dir(root().join("crates")).unwrap() {
        dirs.push(entry.unwrap().path().join("src"));
    }
    let mut files = Vec::new();
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                files.push((relative(&path), outside_tests(&text)));
            }
        }
    }
    files.sort();
    files
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root()).unwrap().display().to_string()
}

fn outside_tests(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let end = lines
        .windows(2)
        .position(|w| {
            let next = w[1].trim_start();
            w[0].trim() == "#[cfg(test)]" && (next.starts_with("mod ") || next.starts_with("pub(crate) mod "))
        })
        .unwrap_or(lines.len());
    lines[..end].join("\n")
}

/// The line of each `Result<..., String>` in `code`: the last top-level type argument is `String`.
fn string_results(code: &str) -> Vec<usize> {
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find("Result<") {
        let start = from + at + "Result<".len();
        let (mut depth, mut i, mut last_arg) = (1usize, start, start);
        while i < bytes.len() && depth > 0 {
            match bytes[i] {
                b'<' | b'(' | b'[' => depth += 1,
                // `->` inside a closure type is not a bracket.
                b'>' if bytes[i - 1] == b'-' => {}
                b'>' | b')' | b']' => depth -= 1,
                b',' if depth == 1 => last_arg = i + 1,
                _ => {}
            }
            i += 1;
        }
        if code[last_arg..i.saturating_sub(1)].trim() == "String" {
            found.push(code[..start].matches('\n').count() + 1);
        }
        from = start;
    }
    found
}

#[test]
fn string_errors_stay_at_the_listed_sites() {
    let allowed: BTreeMap<&str, usize> = ALLOWED.iter().map(|(path, n, _)| (*path, *n)).collect();
    let mut problems = Vec::new();
    for (path, code) in sources() {
        let lines = string_results(&code);
        let limit = allowed.get(path.as_str()).copied().unwrap_or(0);
        if lines.len() > limit {
            let places: Vec<String> = lines.iter().map(|l| format!("{path}:{l}")).collect();
            problems.push(format!(
                "{path}: {} Result<_, String> (allowed {limit}): make it an error enum ({})",
                lines.len(),
                places.join(", ")
            ));
        } else if lines.len() < limit {
            problems.push(format!(
                "{path}: {} Result<_, String>, fewer than the {limit} allowed: lower its entry in ALLOWED",
                lines.len()
            ));
        }
    }
    let present: Vec<String> = sources().into_iter().map(|(p, _)| p).collect();
    for (path, _, _) in ALLOWED {
        if !present.iter().any(|p| p == path) {
            problems.push(format!("{path}: listed in ALLOWED but gone: remove its entry"));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// The lines of `code` that call `.contains(`/`.starts_with(`/`.ends_with(` on an error's text: on `e`, `err`,
/// `error`, on `.to_string()` or `.message()` directly, or on a name bound to `e.to_string()` a few lines above
/// (`let text = e.to_string(); if text.contains(..)`, the pooler's classification before issue 26).
fn deciding_lines(code: &str) -> Vec<usize> {
    const WINDOW: usize = 12;
    let lines: Vec<&str> = code.lines().collect();
    let mut found = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let line = line.trim();
        if line.starts_with("//") {
            continue;
        }
        let mut receivers: Vec<String> = ["e", "err", "error"].iter().map(|r| r.to_string()).collect();
        for earlier in &lines[n.saturating_sub(WINDOW)..n] {
            if let Some(rest) = earlier.trim().strip_prefix("let ")
                && let Some((name, value)) = rest.split_once(" = ")
                && ["e", "err", "error"]
                    .iter()
                    .any(|r| value.trim() == format!("{r}.to_string();"))
            {
                receivers.push(name.trim().to_string());
            }
        }
        let decides = ["contains", "starts_with", "ends_with"].iter().any(|m| {
            let call = format!(".{m}(");
            line.contains(&format!(".to_string(){call}"))
                || line.contains(&format!(".message(){call}"))
                || receivers.iter().any(|r| {
                    line.match_indices(&format!("{r}{call}")).any(|(at, _)| {
                        let before = at.checked_sub(1).map(|i| line.as_bytes()[i]);
                        !before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
                    })
                })
        });
        if decides {
            found.push(n + 1);
        }
    }
    found
}

#[test]
fn no_code_decides_on_an_errors_words() {
    let mut found = Vec::new();
    for (path, code) in sources() {
        let lines: Vec<&str> = code.lines().collect();
        for n in deciding_lines(&code) {
            found.push(format!("{path}:{n}: {}", lines[n - 1].trim()));
        }
    }
    assert!(
        found.is_empty(),
        "match the error's variant or SQLSTATE instead:\n{}",
        found.join("\n")
    );
}

/// The checks themselves: a site in a signature and a closure type are counted, a test module is not, and the
/// pooler's old classification would be caught.
#[test]
fn the_checks_see_what_they_look_for() {
    let code = "fn a() -> Result<(A, B<C>), String> {}\nfn b(f: impl Fn(&P) -> Result<u64, String>) {}\nfn c() -> Result<String, E> {}\n#[cfg(test)]\nmod tests {\n fn d() -> Result<(), String> {}\n}\n";
    assert_eq!(string_results(&outside_tests(code)), vec![1, 2]);
    // The pooler's classification before issue 26, and its like; text that is no error is left alone.
    let old = "fn connect_error(e: &ConnectError) -> String {\n    let text = e.to_string();\n    if text.contains(\"not allowed\") {\n";
    assert_eq!(deciding_lines(old), vec![3]);
    assert_eq!(
        deciding_lines("if e.to_string().starts_with(\"connection\") {"),
        vec![1]
    );
    assert_eq!(
        deciding_lines("Some(db) if db.message().contains(\"denied\") => {}"),
        vec![1]
    );
    assert_eq!(deciding_lines("if err.contains(\"x\") {}"), vec![1]);
    assert!(deciding_lines("let text = line.trim();\nif text.contains(\"LOG:\") {}").is_empty());
    assert!(deciding_lines("// e.contains(\"x\")").is_empty());
}
