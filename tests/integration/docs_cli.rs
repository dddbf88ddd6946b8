//! `pgtls man`, `pgtls completions SHELL`, `pgtls config --example`: generated from the definitions pgtls runs on.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail by panicking")]

use crate::common;

use std::path::Path;

/// `pgtls man [COMMAND]`, as text.
fn man(args: &[&str], home: &Path) -> String {
    let mut all = vec!["man"];
    all.extend(args);
    let out = common::pgtls(&all, home);
    assert!(
        out.status.success(),
        "{all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// A page's text as it reads: roff's `\-` a hyphen, `\*(Aq` an apostrophe.
fn unescaped(page: &str) -> String {
    page.replace("\\-", "-").replace("\\*(Aq", "'")
}

/// The `.SH` headings of a page, without quotes.
fn sections(page: &str) -> Vec<String> {
    page.lines()
        .filter_map(|l| l.strip_prefix(".SH "))
        .map(|s| s.trim_matches('"').to_string())
        .collect()
}

/// Every `pgtls-NAME(1)` a page refers to (roff writes the hyphen as `\-`).
fn page_references(page: &str) -> Vec<String> {
    let text = unescaped(page);
    let mut names: Vec<String> = text
        .match_indices("pgtls-")
        .filter_map(|(at, _)| {
            let rest = &text[at + "pgtls-".len()..];
            let name: String = rest.chars().take_while(|c| c.is_ascii_lowercase()).collect();
            rest[name.len()..].starts_with("(1)").then_some(name)
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn the_man_page_documents_every_subcommand() {
    let home = tempfile::tempdir().expect("home");
    let page = man(&[], home.path());
    assert!(
        page.starts_with(".ie") || page.contains(".TH pgtls"),
        "{}",
        &page[..page.len().min(300)]
    );
    for sub in ["snapshot", "check", "probe", "demo", "serve", "bundle", "completions"] {
        assert!(page.contains(sub), "{sub} missing from the man page");
    }
    let found = sections(&page);
    for section in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "OPTIONS",
        "KEYS",
        "EXIT STATUS",
        "ENVIRONMENT",
        "FILES",
        "SEE ALSO",
    ] {
        assert!(
            found.iter().any(|s| s == section),
            "no {section} section in pgtls(1): {found:?}"
        );
    }
}

/// pgtls(1) names pgtls-snapshot(1) and the others: `pgtls man NAME` prints each, and each page's own references
/// resolve too.
#[test]
fn every_page_the_man_page_names_is_one_pgtls_man_prints() {
    let home = tempfile::tempdir().expect("home");
    let root = man(&[], home.path());
    let named = page_references(&root);
    assert!(named.len() >= 10, "{named:?}");
    for name in &named {
        let page = man(&[name], home.path());
        assert!(
            page.contains(&format!(".TH pgtls-{name} 1 ")),
            "{name}: {}",
            &page[..page.len().min(200)]
        );
        assert_eq!(
            page.matches(".ds Aq").count(),
            2,
            "{name}: the apostrophe is defined once"
        );
        let found = sections(&page);
        for section in ["NAME", "SYNOPSIS", "DESCRIPTION", "EXIT STATUS", "SEE ALSO"] {
            assert!(
                found.iter().any(|s| s == section),
                "no {section} in pgtls-{name}(1): {found:?}"
            );
        }
        for other in page_references(&page) {
            assert!(
                named.contains(&other),
                "pgtls-{name}(1) names pgtls-{other}(1), which has no page"
            );
        }
    }
    let out = common::pgtls(&["man", "no-such-command"], home.path());
    assert!(!out.status.success());
}

/// EXIT STATUS comes from src/cmd/exit_table.rs, KEYS from the key map, ENVIRONMENT names every PG* variable the
/// connection crate reads and every PGTLS_* variable the program reads.
#[test]
fn the_man_page_sections_come_from_the_code() {
    let home = tempfile::tempdir().expect("home");
    let page = unescaped(&man(&[], home.path()));
    let section = |name: &str| -> String {
        let start = page
            .find(&format!(".SH \"{name}\"\n"))
            .or_else(|| page.find(&format!(".SH {name}\n")))
            .unwrap_or_else(|| panic!("no {name}"));
        let rest = &page[start + 4..];
        rest[..rest.find(".SH ").unwrap_or(rest.len())].to_string()
    };
    let exit = section("EXIT STATUS");
    for family in pgtls::cmd::exit_table::families() {
        for command in &family.commands {
            assert!(exit.contains(command.as_str()), "EXIT STATUS does not name {command}");
        }
        for (code, meaning) in &family.rows {
            assert!(exit.contains(&format!("\\fB{code}\\fR")), "EXIT STATUS lacks {code}");
            assert!(exit.contains(meaning.as_str()), "EXIT STATUS lacks {meaning}");
        }
    }
    let keys = section("KEYS");
    for (names, action, _) in pgtls::tui::keymap::table_rows() {
        for name in names {
            assert!(keys.contains(&format!("\\fB{name}\\fR")), "KEYS lacks {name}");
        }
        assert!(keys.contains(action), "KEYS lacks {action}");
    }
    let env = section("ENVIRONMENT");
    for spec in pgtls::conn::conninfo::OPTIONS {
        if let Some(var) = spec.envvar {
            assert!(env.contains(var), "ENVIRONMENT lacks {var}");
        }
    }
    for var in pgtls_variables_in_the_source() {
        assert!(env.contains(&var), "ENVIRONMENT lacks {var}, which pgtls reads");
    }
    let files = section("FILES");
    for file in [
        "config.toml",
        ".pgpass",
        "pg_service.conf",
        "root.crt",
        "postgresql.key",
        "PATH.lock",
        "/var/cache/pgtls",
    ] {
        assert!(files.contains(file), "FILES lacks {file}");
    }
}

/// Every `"PGTLS_..."` string literal under src/ and the collector's crate: the variables the program itself reads.
fn pgtls_variables_in_the_source() -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("source");
                for (at, _) in text.match_indices("\"PGTLS_") {
                    let name: String = text[at + 1..]
                        .chars()
                        .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                        .collect();
                    if text[at + 1 + name.len()..].starts_with('"') {
                        out.push(name);
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    walk(&root.join("src"), &mut out);
    walk(&root.join("crates/pgtls-collect/src"), &mut out);
    out.sort();
    out.dedup();
    assert!(out.len() >= 4, "{out:?}");
    out
}

#[test]
fn completions_for_every_shell_name_the_subcommands() {
    let home = tempfile::tempdir().expect("home");
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = common::pgtls(&["completions", shell], home.path());
        assert!(
            out.status.success(),
            "{shell}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("serve") && text.contains("snapshot"), "{shell}");
    }
    let out = common::pgtls(&["completions", "tcsh"], home.path());
    assert!(!out.status.success());
}

#[test]
fn the_example_config_is_the_one_pgtls_reads() {
    let home = tempfile::tempdir().expect("home");
    let out = common::pgtls(&["config", "--example"], home.path());
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(text, pgtls::config::example());
    let parsed = pgtls::config::Config::parse(&text, Path::new("example.toml")).expect("parses");
    assert!(!parsed.read_only);
    assert_eq!(parsed.min_evidence(), chrono::Duration::hours(24));
}
