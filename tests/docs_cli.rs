//! `pgtls man`, `pgtls completions SHELL`, `pgtls config --example`: generated from the definitions pgtls runs on.

mod common;

use std::path::Path;

#[test]
fn the_man_page_documents_every_subcommand() {
    let home = tempfile::tempdir().expect("home");
    let out = common::pgtls(&["man"], home.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let page = String::from_utf8(out.stdout).expect("utf-8");
    assert!(
        page.starts_with(".ie") || page.contains(".TH pgtls"),
        "{}",
        &page[..page.len().min(300)]
    );
    for sub in ["snapshot", "check", "probe", "demo", "serve", "bundle", "completions"] {
        assert!(page.contains(sub), "{sub} missing from the man page");
    }
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
    assert_eq!(text, pgtls::config::EXAMPLE);
    let parsed = pgtls::config::Config::parse(&text, Path::new("example.toml")).expect("parses");
    assert!(!parsed.read_only);
    assert_eq!(parsed.min_evidence(), chrono::Duration::hours(24));
}
