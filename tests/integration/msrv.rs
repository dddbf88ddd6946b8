//! The `rust-version` pgtls declares is true for its dependencies: no crate in Cargo.lock asks for a newer Rust.
//!
//! The claim is checked three ways: this test (every dependency's own `rust-version`, from `cargo metadata`, on any
//! toolchain), clippy's `incompatible_msrv` lint (our own code calling a standard library API newer than the
//! declared version), and `.ci/run`, which installs that toolchain with rustup and checks every target with it,
//! the one proof that also covers language features and dependencies that declare no `rust-version`.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail by panicking")]

/// `1.88` or `1.88.0` as a comparable triple.
fn version(text: &str) -> (u64, u64, u64) {
    let mut parts = text.split('.').map(|p| p.parse::<u64>().expect("numeric rust-version"));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

#[test]
fn declared_rust_version_covers_every_dependency() {
    let meta = crate::common::cargo::metadata();
    let members: Vec<&str> = meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    let packages = meta["packages"].as_array().unwrap();

    let declared: Vec<(&str, &str)> = packages
        .iter()
        .filter(|p| members.contains(&p["id"].as_str().unwrap()))
        .map(|p| {
            let name = p["name"].as_str().unwrap();
            let rv = p["rust_version"]
                .as_str()
                .unwrap_or_else(|| panic!("workspace member {name} declares no rust-version"));
            (name, rv)
        })
        .collect();
    assert_eq!(declared.len(), members.len());
    let ours = declared[0].1;
    for (name, rv) in &declared {
        assert_eq!(
            version(rv),
            version(ours),
            "{name} declares rust-version {rv}, pgtls {ours}"
        );
    }

    let mut newest: Option<((u64, u64, u64), String)> = None;
    let mut newer_than_declared = Vec::new();
    let mut undeclared = Vec::new();
    for p in packages
        .iter()
        .filter(|p| !members.contains(&p["id"].as_str().unwrap()))
    {
        let name = format!("{} {}", p["name"].as_str().unwrap(), p["version"].as_str().unwrap());
        match p["rust_version"].as_str() {
            Some(rv) => {
                let v = version(rv);
                if v > version(ours) {
                    newer_than_declared.push(format!("{name} needs {rv}"));
                }
                if newest.as_ref().is_none_or(|(n, _)| v > *n) {
                    newest = Some((v, name));
                }
            }
            None => undeclared.push(name),
        }
    }
    assert!(
        newer_than_declared.is_empty(),
        "rust-version {ours} is too old for: {}",
        newer_than_declared.join(", ")
    );
    let (newest, by) = newest.expect("some dependency declares a rust-version");
    // Declaring more than the dependencies need is allowed only when our own code needs it; today it does not, so a
    // higher number would be a claim nothing backs.
    assert_eq!(
        version(ours),
        newest,
        "rust-version {ours} is newer than any dependency needs (the newest, {by}, needs {}.{}.{}); lower it unless \
         our own code needs it, and say why in Cargo.toml",
        newest.0,
        newest.1,
        newest.2
    );
    eprintln!(
        "rust-version {ours}: set by {by}; {} dependencies declare none: {}",
        undeclared.len(),
        undeclared.join(", ")
    );
}

#[test]
fn versions_compare_as_numbers() {
    assert!(version("1.88") > version("1.9"));
    assert_eq!(version("1.88"), version("1.88.0"));
    assert!(version("1.88.1") > version("1.88"));
}
