//! `scripts/test`, the README's test command, run against stand-in system tools: it installs only what is missing,
//! judged by the command the tests run, not by which package provides it.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail by panicking")]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn stand_in(dir: &Path, name: &str, body: &str) {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Runs the script with a PATH of stand-ins (dpkg knows no package at all, as when psql came from elsewhere) and
/// returns what apt-get was asked to do.
fn apt_calls(commands: &[&str], openssl_found: bool) -> String {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let log = dir.path().join("apt.log");
    for command in commands {
        stand_in(&bin, command, "exit 0");
    }
    stand_in(&bin, "dpkg-query", "exit 1");
    stand_in(&bin, "apt-get", &format!("echo \"$*\" >> '{}'", log.display()));
    stand_in(&bin, "id", "echo 0");
    stand_in(&bin, "cargo", "exit 0");
    stand_in(&bin, "pkg-config", if openssl_found { "exit 0" } else { "exit 1" });
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/test");
    let out = Command::new("bash")
        .arg(&script)
        .env("PATH", format!("{}:/bin", bin.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/test failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(&log).unwrap_or_default()
}

// These stand in for the commands the script checks; /usr/bin and /usr/sbin are also looked at, so a command present
// on this machine is "there" either way, which is the script's promise.
const ALL: [&str; 5] = ["psql", "tmux", "pgbouncer", "prometheus", "openssl"];

#[test]
fn present_commands_install_nothing_even_when_dpkg_does_not_know_their_package() {
    let calls = apt_calls(&ALL, true);
    assert_eq!(calls, "", "apt-get was run though every command was there");
}

#[test]
fn only_the_missing_library_is_installed() {
    let calls = apt_calls(&ALL, false);
    let install = calls
        .lines()
        .find(|l| l.contains("install"))
        .expect("apt-get install was not run");
    assert!(install.ends_with("libssl-dev"), "{install}");
    assert!(!install.contains("postgresql-client"), "{install}");
}
