//! What every command promises a script, whatever it is given: plugin usage errors are UNKNOWN, a closed pipe ends
//! the output quietly, overflowing durations and hostile input files are one-line errors naming the value.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail by panicking")]

use crate::common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use pgtls::lab::{SUPERUSER, SessionKind};

fn binary() -> std::ffi::OsString {
    std::env::var_os("PGTLS_TEST_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_pgtls").into())
}

/// Like `common::pgtls`, but with stdout a pipe whose reader has already gone (as after `| head -1`), and with the
/// address space capped so a runaway read fails fast instead of exhausting the machine.
fn run(args: &[&str], home: &Path, stdout_closed: bool) -> Output {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -v 4000000; exec \"$@\"")
        .arg("sh")
        .arg(binary())
        .args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("PG") {
            cmd.env_remove(key);
        }
    }
    cmd.env("HOME", home).stderr(Stdio::piped());
    if stdout_closed {
        let (read, write) = nix::unistd::pipe().unwrap();
        drop(read);
        cmd.stdout(Stdio::from(write));
    } else {
        cmd.stdout(Stdio::piped());
    }
    cmd.output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_bad_flag_is_unknown_for_the_plugins_and_a_usage_error_elsewhere() {
    let home = tempfile::tempdir().unwrap();
    for (args, code) in [
        (&["check", "--bogus"][..], 3),
        (&["check", "--format", "yaml"][..], 3),
        (&["check", "--watch"][..], 3),
        (&["probe", "--bogus"][..], 3),
        (&["probe", "--warn-days", "soon"][..], 3),
        (&["snapshot", "--bogus"][..], 64),
        (&["--bogus"][..], 64),
        (&["serve", "--bogus"][..], 64),
        (&["ledger", "--bogus"][..], 64),
        (&["demo", "--bogus"][..], 64),
        (&["config", "--bogus"][..], 64),
        (&["man", "--bogus"][..], 64),
        (&["completions", "--bogus"][..], 64),
        (&["bundle", "--bogus"][..], 3),
        (&["bundle", "--check"][..], 3),
        (&["--interval", "abc", "host=127.0.0.1 port=1"][..], 64),
        (&["--interval", "0", "host=127.0.0.1 port=1"][..], 64),
        (&["serve", "--interval", "0", "host=127.0.0.1 port=1"][..], 64),
        (&["check", "--help"][..], 0),
        // Global flags before the subcommand: the command still decides the family of its usage errors.
        (&["--config", "/dev/null", "bundle", "--bogus"][..], 3),
        (&["-h", "db", "check", "--bogus"][..], 3),
        (&["--config=/dev/null", "snapshot", "--bogus"][..], 64),
        (&["bundle"][..], 3),
        (&["bundle", "--check", "a.pem", "--azure"][..], 3),
        // A subcommand's name after dashboard flags is a misplaced command, not a database called "snapshot".
        (&["--interval", "2", "snapshot"][..], 64),
        (&["host=127.0.0.1 port=1", "snapshot"][..], 64),
    ] {
        let out = run(args, home.path(), false);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn overflowing_durations_are_errors_naming_the_value() {
    let home = tempfile::tempdir().unwrap();
    // Parsed before connecting: no server needed.
    let out = run(&["check", "--watch", "99999999999999h"], home.path(), false);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{text}{}", stderr(&out));
    assert!(
        text.starts_with("PGTLS UNKNOWN - --watch: \"99999999999999h\" is too long"),
        "{text}"
    );
    let out = run(
        &["check", "--min-evidence", "999999999999999999999d"],
        home.path(),
        false,
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));

    let config = home.path().join("config.toml");
    std::fs::write(&config, "[whatif]\nmin_evidence = \"99999999999999h\"\n").unwrap();
    let config = config.display().to_string();
    let out = run(&["--config", &config, "host=127.0.0.1 port=1"], home.path(), false);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("key whatif.min_evidence: \"99999999999999h\" is too long"),
        "{}",
        stderr(&out)
    );
    let out = run(&["check", "--config", &config], home.path(), false);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));

    let out = run(&["--interval", "1e400", "host=127.0.0.1 port=1"], home.path(), false);
    assert_eq!(out.status.code(), Some(64));
    assert!(stderr(&out).contains("not inf"), "{}", stderr(&out));
}

#[test]
fn device_and_huge_input_files_are_refused_in_one_line() {
    let home = tempfile::tempdir().unwrap();
    let conninfo = "host=127.0.0.1 port=1 sslmode=disable";
    let big = home.path().join("big.toml");
    std::fs::File::create(&big).unwrap().set_len(1 << 33).unwrap();
    let big = big.display().to_string();
    for (args, code, message) in [
        (
            vec!["--config", "/dev/zero", conninfo],
            64,
            "config /dev/zero: not a regular file",
        ),
        (vec!["--config", &big, conninfo], 64, "larger than 4 MiB"),
        (
            vec!["--ledger", "/dev/zero", conninfo],
            64,
            "--ledger /dev/zero: not a regular file",
        ),
        (vec!["ledger", "/dev/zero"], 64, "ledger /dev/zero: not a regular file"),
        (
            vec!["check", "--config", "/dev/zero", conninfo],
            3,
            "config /dev/zero: not a regular file",
        ),
        (
            vec!["check", "--server-log", "/dev/zero", conninfo],
            3,
            "--server-log /dev/zero: not a regular file",
        ),
        (
            vec!["snapshot", "host=127.0.0.1 port=1 sslmode=require sslcert=/dev/zero"],
            2,
            "could not read certificate file \"/dev/zero\": not a regular file",
        ),
        (
            vec![
                "snapshot",
                "host=127.0.0.1 port=1 sslmode=require sslrootcert=/dev/zero",
            ],
            2,
            "could not read root certificate file \"/dev/zero\": not a regular file",
        ),
    ] {
        let out = run(&args, home.path(), false);
        let both = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        assert_eq!(out.status.code(), Some(code), "{args:?}: {both}");
        assert!(both.contains(message), "{args:?}: {both}");
        assert_eq!(both.lines().count(), 1, "{args:?}: {both}");
    }
}

/// `pgtls check --format json | head -c1`, `pgtls probe | head -1`, `pgtls snapshot | head -1`: the reader is gone
/// before pgtls writes. Like grep and psql, pgtls stops quietly: no panic, no "Broken pipe" message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_pipe_ends_every_command_quietly() {
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let _session = lab.open(SessionKind::Tls13, "app13", "modern-app").await.unwrap();
    let conninfo = format!("{} sslmode=require", lab.conninfo(SUPERUSER));
    let ledger = home.path().join("ledger.jsonl");
    let ledger = ledger.display().to_string();
    for args in [
        vec!["snapshot", &conninfo],
        vec!["snapshot", &conninfo, "--format", "json"],
        vec!["snapshot", &conninfo, "--format", "csv"],
        vec!["check", &conninfo, "--format", "json", "--ledger", &ledger],
        vec!["check", &conninfo],
        vec!["probe", &conninfo],
        vec!["probe", &conninfo, "--format", "json"],
        vec!["ledger", &ledger],
    ] {
        let out = run(&args, home.path(), true);
        let err = stderr(&out);
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe") && !err.contains("writing output"),
            "{args:?}: {err}"
        );
        // snapshot and ledger succeed; the plugins keep their verdict (the lab's self-signed CA and the
        // unverified connection make it a WARNING), which is still the right answer for a monitor.
        let code = out.status.code();
        match args[0] {
            "snapshot" | "ledger" => assert_eq!(code, Some(0), "{args:?}: {err}"),
            _ => assert!(matches!(code, Some(0..=2)), "{args:?}: {code:?} {err}"),
        }
    }
}

/// The other half of the exit-code contract: a server that cannot be reached is 2 for the plain commands (as psql)
/// and UNKNOWN for the plugins, never a usage error and never a verdict.
#[test]
fn every_command_that_connects_says_cannot_connect_in_its_own_code() {
    let home = tempfile::tempdir().unwrap();
    // Port 1 on loopback: refused at once.
    let nowhere = "host=127.0.0.1 port=1 sslmode=disable connect_timeout=5";
    for (args, code) in [
        (vec![nowhere], 2),
        (vec!["snapshot", nowhere], 2),
        (vec!["snapshot", "--format", "json", nowhere], 2),
        (vec!["check", nowhere], 3),
        (vec!["probe", nowhere], 3),
    ] {
        let out = run(&args, home.path(), false);
        let both = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        assert_eq!(out.status.code(), Some(code), "{args:?}: {both}");
        assert!(
            both.contains("Connection refused") || both.contains("connection refused"),
            "{args:?}: {both}"
        );
        assert_eq!(both.lines().count(), 1, "{args:?}: one line: {both}");
    }
}

/// The README's exit-status table is the one `src/cmd/exit.rs` defines; `UPDATE_README=1` rewrites it.
#[test]
fn the_documented_exit_statuses_are_the_table_the_code_uses() {
    const START: &str =
        "<!-- exit:start (generated by `UPDATE_README=1 cargo test --test integration cli_contract::`) -->\n";
    const END: &str = "<!-- exit:end -->";
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let (before, rest) = readme.split_once(START).expect("README has the exit:start marker");
    let (current, after) = rest.split_once(END).expect("README has the exit:end marker");
    let wanted = pgtls::cmd::exit::markdown_table();
    if std::env::var_os("UPDATE_README").is_some() {
        std::fs::write(&path, format!("{before}{START}{wanted}{END}{after}")).unwrap();
        return;
    }
    assert_eq!(
        current, wanted,
        "README exit table is stale: UPDATE_README=1 cargo test --test integration cli_contract::"
    );
}

/// `pgtls --config F snapshot CONNINFO` and `pgtls -h H -p P snapshot`: the flags every connecting command takes go
/// before the subcommand too, and snapshot's alerts follow the configuration's rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_flags_go_before_the_subcommand_and_snapshot_reads_the_config() {
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let _session = lab.open(SessionKind::Tls12, "app12", "old-app").await.unwrap();
    let conninfo = format!("{} sslmode=require", lab.conninfo(SUPERUSER));
    let quiet = home.path().join("quiet.toml");
    std::fs::write(&quiet, "[alerts.rules.tls12_sessions]\nseverity = \"off\"\n").unwrap();
    let quiet = quiet.display().to_string();
    let json = |args: &[&str]| -> serde_json::Value {
        let out = run(args, home.path(), false);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let keys = |value: &serde_json::Value| -> Vec<String> {
        value["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["key"].as_str().unwrap().to_string())
            .collect()
    };
    let loud = json(&["snapshot", "--format", "json", &conninfo]);
    assert!(keys(&loud).contains(&"tls12_sessions".to_string()), "{:?}", keys(&loud));
    for args in [
        vec!["--config", &quiet, "snapshot", "--format", "json", &conninfo],
        vec!["snapshot", "--config", &quiet, "--format", "json", &conninfo],
    ] {
        let value = json(&args);
        assert!(
            !keys(&value).contains(&"tls12_sessions".to_string()),
            "{args:?}: {:?}",
            keys(&value)
        );
        assert!(!value["sessions"].as_array().unwrap().is_empty(), "{args:?}");
    }
    let host = lab.socket_dir.display().to_string();
    let port = lab.port.to_string();
    let value = json(&[
        "-h", &host, "-p", &port, "-U", SUPERUSER, "-d", "postgres", "snapshot", "--format", "json",
    ]);
    assert!(!value["sessions"].as_array().unwrap().is_empty());
    let table = run(&["--config", &quiet, "snapshot", &conninfo], home.path(), false);
    assert_eq!(table.status.code(), Some(0), "{}", stderr(&table));
    let broken = home.path().join("broken.toml");
    std::fs::write(&broken, "[alerts.rules.no_such_rule]\nseverity = \"off\"\n").unwrap();
    let broken = broken.display().to_string();
    let out = run(&["--config", &broken, "snapshot", &conninfo], home.path(), false);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    // The demo reads the configuration too, and says it is broken before starting a server for nothing.
    let out = run(&["--config", &broken, "demo", "--offline"], home.path(), false);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(!stderr(&out).contains("starting a throwaway"), "{}", stderr(&out));
}
