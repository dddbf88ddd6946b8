//! Shared helpers for tests against the real lab server.
#![allow(dead_code)]

pub mod tmux;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

use pgtls::conn::params::{ConnParams, Environment, resolve};
use pgtls::lab::{Lab, LabOptions};

pub async fn lab() -> Lab {
    Lab::start(LabOptions::default()).await.expect("lab starts")
}

/// An environment with no PG* variables and a home without ~/.postgresql, so the developer's setup cannot leak in.
pub fn clean_env(home: &Path) -> Environment {
    Environment::new(
        HashMap::<String, String>::new(),
        Some(home.to_path_buf()),
        "tester".to_string(),
    )
}

pub fn params(conninfo: &str, home: &Path) -> ConnParams {
    resolve(Some(conninfo), &clean_env(home)).expect("conninfo resolves")
}

/// Run the real binary with a clean PG* environment and HOME.
pub fn pgtls(args: &[&str], home: &Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgtls"));
    for (key, _) in std::env::vars() {
        if key.starts_with("PG") {
            cmd.env_remove(key);
        }
    }
    cmd.env("HOME", home).args(args).output().expect("pgtls runs")
}
