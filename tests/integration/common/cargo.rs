//! What cargo says about the workspace, for the tests that check its shape (layers, MSRV).

use std::process::Command;

use serde_json::Value;

/// `cargo metadata` of the workspace, as JSON (with `--locked`: the tests read Cargo.lock as committed).
pub fn metadata() -> Value {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}
