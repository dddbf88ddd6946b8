//! `pgtls bundle` (issue 18): the Azure rotation's three roots, identified by their published SHA-256
//! fingerprints (written out here again, independent of the pins in the code), and `--check`'s verdicts.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail by panicking")]

use crate::common;

use openssl::hash::MessageDigest;
use openssl::x509::X509;

const PUBLISHED: [(&str, &str); 3] = [
    (
        "DigiCert Global Root CA",
        "4348A0E9444C78CB265E058D5E8944B4D84F9662BD26DB257F8934A443C70161",
    ),
    (
        "DigiCert Global Root G2",
        "CB3CCBB76031E5E0138F8DD39A23F9DE47FFC35E43C1144CEA27D46A5AB1CB5F",
    ),
    (
        "Microsoft RSA Root Certificate Authority 2017",
        "C741F70F4B2A8D88BF2E71C14122EF53EF10EBA0CFA5E64CFA20F418853073E0",
    ),
];

fn hex_sha256(cert: &X509) -> String {
    cert.digest(MessageDigest::sha256())
        .unwrap()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

#[test]
fn azure_writes_the_three_published_roots_with_a_comment_naming_each() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("azure-roots.pem");
    let out = common::pgtls(&["bundle", "--azure", "-o", &file.display().to_string()], home.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&file).unwrap();
    let certs = X509::stack_from_pem(text.as_bytes()).unwrap();
    let found: Vec<String> = certs.iter().map(hex_sha256).collect();
    assert_eq!(
        found,
        PUBLISHED.iter().map(|(_, fp)| fp.to_string()).collect::<Vec<_>>()
    );
    for (name, _) in PUBLISHED {
        assert!(
            text.lines().any(|l| l.starts_with("# ") && l.contains(name)),
            "a comment line names {name}"
        );
    }
    let stdout = common::pgtls(&["bundle", "--azure"], home.path());
    assert_eq!(
        String::from_utf8_lossy(&stdout.stdout),
        text,
        "stdout and -o write the same bundle"
    );

    let ok = common::pgtls(&["bundle", "--check", &file.display().to_string()], home.path());
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stdout));

    // Only G2 (what a client that followed older advice ships): two missing, CRITICAL.
    let g2 = home.path().join("g2.pem");
    std::fs::write(&g2, certs[1].to_pem().unwrap()).unwrap();
    let missing = common::pgtls(&["bundle", "--check", &g2.display().to_string()], home.path());
    let shown = String::from_utf8_lossy(&missing.stdout);
    assert_eq!(missing.status.code(), Some(2), "{shown}");
    assert!(
        shown.contains("DigiCert Global Root CA") && shown.contains("MISSING"),
        "{shown}"
    );
    let json = common::pgtls(
        &["bundle", "--check", &g2.display().to_string(), "-f", "json"],
        home.path(),
    );
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let states: Vec<&str> = v["roots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["missing", "present", "missing"]);

    let unreadable = common::pgtls(&["bundle", "--check", "/dev/zero"], home.path());
    assert_eq!(unreadable.status.code(), Some(3));
}
