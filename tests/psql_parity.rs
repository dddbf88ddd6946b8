//! pgtls connects like psql: the same connection strings, environment and files give the same
//! outcome (connected or refused) for `pgtls snapshot` and `psql -c 'select 1'`, against the real lab.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use pgtls::lab::{CERT_USER, LAB_PASSWORD, SUPERUSER, TLS_ONLY_USER};

struct Case {
    name: &'static str,
    conninfo: String,
    env: Vec<(&'static str, String)>,
    /// HOME for this case (with or without ~/.postgresql files).
    home: PathBuf,
    expect_ok: bool,
}

fn psql() -> Option<PathBuf> {
    ["/usr/bin/psql", "/usr/local/bin/psql"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn run(program: &Path, args: &[&str], case: &Case) -> (bool, String) {
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &case.home)
        .env("PGCONNECT_TIMEOUT", "5");
    for (k, v) in &case.env {
        cmd.env(k, v);
    }
    let out = cmd.args(args).output().expect("runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

fn write(path: &Path, contents: &[u8], mode: u32) {
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test]
async fn the_same_outcome_as_psql_for_every_sslmode_root_host_and_password_source() {
    let Some(psql) = psql() else {
        panic!("psql is needed for this test (apt-get install postgresql-client)");
    };
    let lab = common::lab().await;
    lab.ensure_role(TLS_ONLY_USER).await.unwrap();
    lab.ensure_role(CERT_USER).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // Trust material: the lab's CA, an unrelated CA, and a bundle of three roots with the right one last.
    let right_ca = std::fs::read(&lab.certs.ca_cert).unwrap();
    let other1 = pgtls::lab::issue_ca("Other Root CA 1").unwrap().cert.to_pem().unwrap();
    let other2 = pgtls::lab::issue_ca("Other Root CA 2").unwrap().cert.to_pem().unwrap();
    let (right, wrong, bundle) = (d.join("right.crt"), d.join("wrong.crt"), d.join("bundle.crt"));
    write(&right, &right_ca, 0o644);
    write(&wrong, &other1, 0o644);
    write(&bundle, &[other1.clone(), other2, right_ca.clone()].concat(), 0o644);

    // Client certificate: as issued (PKCS#8), as a traditional PKCS#1 key, and a key that does not match.
    let (cert, key, key_rsa, key_other) = (
        d.join("client.crt"),
        d.join("client.key"),
        d.join("client-rsa.key"),
        d.join("other.key"),
    );
    write(&cert, &std::fs::read(&lab.certs.client_cert).unwrap(), 0o644);
    let key_pem = std::fs::read(&lab.certs.client_key).unwrap();
    write(&key, &key_pem, 0o600);
    let pkey = openssl::pkey::PKey::private_key_from_pem(&key_pem).unwrap();
    write(&key_rsa, &pkey.rsa().unwrap().private_key_to_pem().unwrap(), 0o600);
    let other_key = openssl::rsa::Rsa::generate(2048).unwrap().private_key_to_pem().unwrap();
    write(&key_other, &other_key, 0o600);

    // Homes: empty; with ~/.postgresql/root.crt = the wrong CA; with the right CA.
    let home_empty = d.join("home-empty");
    let home_wrong_root = d.join("home-wrong-root");
    let home_right_root = d.join("home-right-root");
    for (home, root) in [
        (&home_empty, None),
        (&home_wrong_root, Some(&other1)),
        (&home_right_root, Some(&right_ca)),
    ] {
        std::fs::create_dir_all(home.join(".postgresql")).unwrap();
        if let Some(pem) = root {
            write(&home.join(".postgresql/root.crt"), pem, 0o644);
        }
    }
    // .pgpass variants and a service file.
    let port = lab.port;
    let pgpass_ok = d.join("pgpass-ok");
    write(
        &pgpass_ok,
        format!("# comment\n127.0.0.1:{port}:*:{SUPERUSER}:{LAB_PASSWORD}\n").as_bytes(),
        0o600,
    );
    let pgpass_open = d.join("pgpass-open");
    write(
        &pgpass_open,
        format!("127.0.0.1:{port}:*:{SUPERUSER}:{LAB_PASSWORD}\n").as_bytes(),
        0o644,
    );
    let pgpass_wrong = d.join("pgpass-wrong");
    write(
        &pgpass_wrong,
        format!("*:*:*:{SUPERUSER}:not-the-password\n").as_bytes(),
        0o600,
    );
    let services = d.join("pg_service.conf");
    write(
        &services,
        format!(
            "[lab]\nhost=localhost\nhostaddr=127.0.0.1\nport={port}\nuser={SUPERUSER}\ndbname=postgres\nsslmode=verify-full\nsslrootcert={}\n\n\
             [lab-wrong-ca]\nhost=localhost\nhostaddr=127.0.0.1\nport={port}\nuser={SUPERUSER}\nsslmode=verify-full\nsslrootcert={}\n",
            right.display(),
            wrong.display()
        )
        .as_bytes(),
        0o644,
    );

    let base = format!("host=localhost hostaddr=127.0.0.1 port={port} dbname=postgres");
    let su = format!("{base} user={SUPERUSER} password={LAB_PASSWORD}");
    let wrong_host = format!(
        "host=wronghost hostaddr=127.0.0.1 port={port} dbname=postgres user={SUPERUSER} password={LAB_PASSWORD}"
    );
    let refused = pgtls::lab::server::free_port().unwrap();
    let case = |name, conninfo: String, expect_ok| Case {
        name,
        conninfo,
        env: vec![],
        home: home_empty.clone(),
        expect_ok,
    };
    let mut cases = vec![
        case("disable", format!("{su} sslmode=disable"), true),
        case("allow", format!("{su} sslmode=allow"), true),
        case("prefer", format!("{su} sslmode=prefer"), true),
        case("require", format!("{su} sslmode=require"), true),
        case(
            "verify-ca right CA",
            format!("{su} sslmode=verify-ca sslrootcert={}", right.display()),
            true,
        ),
        case(
            "verify-full right CA",
            format!("{su} sslmode=verify-full sslrootcert={}", right.display()),
            true,
        ),
        case(
            "verify-ca wrong CA",
            format!("{su} sslmode=verify-ca sslrootcert={}", wrong.display()),
            false,
        ),
        case(
            "verify-full wrong CA",
            format!("{su} sslmode=verify-full sslrootcert={}", wrong.display()),
            false,
        ),
        case(
            "require + wrong CA file = verify-ca",
            format!("{su} sslmode=require sslrootcert={}", wrong.display()),
            false,
        ),
        case(
            "prefer + wrong CA falls back to plain text",
            format!("{su} sslmode=prefer sslrootcert={}", wrong.display()),
            true,
        ),
        case(
            "verify-ca without CA file",
            format!("{su} sslmode=verify-ca sslrootcert={}/missing.crt", d.display()),
            false,
        ),
        case(
            "verify-full without CA file",
            format!("{su} sslmode=verify-full"),
            false,
        ),
        case(
            "require with a missing CA file",
            format!("{su} sslmode=require sslrootcert={}/missing.crt", d.display()),
            true,
        ),
        case(
            "verify-full bundle of three, right root last",
            format!("{su} sslmode=verify-full sslrootcert={}", bundle.display()),
            true,
        ),
        case(
            "verify-ca bundle of three",
            format!("{su} sslmode=verify-ca sslrootcert={}", bundle.display()),
            true,
        ),
        case(
            "verify-full wrong host name",
            format!("{wrong_host} sslmode=verify-full sslrootcert={}", right.display()),
            false,
        ),
        case(
            "verify-ca wrong host name",
            format!("{wrong_host} sslmode=verify-ca sslrootcert={}", right.display()),
            true,
        ),
        case("require wrong host name", format!("{wrong_host} sslmode=require"), true),
        case(
            "client certificate",
            format!(
                "{base} user={CERT_USER} sslmode=verify-full sslrootcert={} sslcert={} sslkey={}",
                right.display(),
                cert.display(),
                key.display()
            ),
            true,
        ),
        case(
            "client certificate, PKCS#1 key",
            format!(
                "{base} user={CERT_USER} sslmode=require sslcert={} sslkey={}",
                cert.display(),
                key_rsa.display()
            ),
            true,
        ),
        case(
            "client certificate required but none given",
            format!("{base} user={CERT_USER} sslmode=require"),
            false,
        ),
        case(
            "client key that does not match",
            format!(
                "{base} user={CERT_USER} sslmode=require sslcert={} sslkey={}",
                cert.display(),
                key_other.display()
            ),
            false,
        ),
        case(
            "TLS-only role over plain text",
            format!("{base} user={TLS_ONLY_USER} password={LAB_PASSWORD} sslmode=disable"),
            false,
        ),
        case(
            "TLS-only role with allow retries with TLS",
            format!("{base} user={TLS_ONLY_USER} password={LAB_PASSWORD} sslmode=allow"),
            true,
        ),
        case(
            "wrong password",
            format!("{base} user={SUPERUSER} password=wrong sslmode=require"),
            false,
        ),
        case(
            "refused port",
            format!("host=127.0.0.1 port={refused} user=x password=x sslmode=disable"),
            false,
        ),
        case(
            "TLS 1.2 cap",
            format!("{su} sslmode=require ssl_max_protocol_version=TLSv1.2"),
            true,
        ),
        case(
            "TLS 1.3 floor",
            format!("{su} sslmode=require ssl_min_protocol_version=TLSv1.3"),
            true,
        ),
        case(
            "URI with verify-full",
            format!(
                "postgresql://{SUPERUSER}:{LAB_PASSWORD}@localhost:{port}/postgres?hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={}",
                right.display()
            ),
            true,
        ),
        case(
            "sslrootcert=system does not trust the lab CA",
            format!("{su} sslrootcert=system sslmode=verify-full"),
            false,
        ),
    ];
    let with_env = |name, conninfo: String, env: Vec<(&'static str, String)>, home: &PathBuf, expect_ok| Case {
        name,
        conninfo,
        env,
        home: home.clone(),
        expect_ok,
    };
    let no_pw = format!("host=127.0.0.1 port={port} dbname=postgres user={SUPERUSER} sslmode=require");
    cases.extend([
        with_env(
            ".pgpass",
            no_pw.clone(),
            vec![("PGPASSFILE", pgpass_ok.display().to_string())],
            &home_empty,
            true,
        ),
        with_env(
            ".pgpass readable by others is ignored",
            no_pw.clone(),
            vec![("PGPASSFILE", pgpass_open.display().to_string())],
            &home_empty,
            false,
        ),
        with_env(
            ".pgpass wrong password",
            no_pw,
            vec![("PGPASSFILE", pgpass_wrong.display().to_string())],
            &home_empty,
            false,
        ),
        with_env(
            "service file",
            format!("service=lab password={LAB_PASSWORD}"),
            vec![("PGSERVICEFILE", services.display().to_string())],
            &home_empty,
            true,
        ),
        with_env(
            "service file with the wrong CA",
            format!("service=lab-wrong-ca password={LAB_PASSWORD}"),
            vec![("PGSERVICEFILE", services.display().to_string())],
            &home_empty,
            false,
        ),
        with_env(
            "environment only",
            String::new(),
            vec![
                ("PGHOST", "localhost".into()),
                ("PGHOSTADDR", "127.0.0.1".into()),
                ("PGPORT", port.to_string()),
                ("PGUSER", SUPERUSER.into()),
                ("PGDATABASE", "postgres".into()),
                ("PGPASSWORD", LAB_PASSWORD.into()),
                ("PGSSLMODE", "verify-full".into()),
                ("PGSSLROOTCERT", right.display().to_string()),
            ],
            &home_empty,
            true,
        ),
        with_env(
            "environment with the wrong CA",
            String::new(),
            vec![
                ("PGHOST", "localhost".into()),
                ("PGHOSTADDR", "127.0.0.1".into()),
                ("PGPORT", port.to_string()),
                ("PGUSER", SUPERUSER.into()),
                ("PGPASSWORD", LAB_PASSWORD.into()),
                ("PGSSLMODE", "verify-full".into()),
                ("PGSSLROOTCERT", wrong.display().to_string()),
            ],
            &home_empty,
            false,
        ),
        with_env(
            "~/.postgresql/root.crt makes require verify (wrong CA)",
            format!("{su} sslmode=require"),
            vec![],
            &home_wrong_root,
            false,
        ),
        with_env(
            "~/.postgresql/root.crt for verify-full (right CA)",
            format!("{su} sslmode=verify-full"),
            vec![],
            &home_right_root,
            true,
        ),
        with_env(
            "explicit parameters win over the environment",
            format!("{su} sslmode=disable"),
            vec![
                ("PGSSLMODE", "verify-full".into()),
                ("PGSSLROOTCERT", wrong.display().to_string()),
            ],
            &home_empty,
            true,
        ),
        with_env(
            "explicit require + PGSSLROOTCERT wrong CA = verify-ca",
            format!("{su} sslmode=require"),
            vec![
                ("PGSSLMODE", "verify-full".into()),
                ("PGSSLROOTCERT", wrong.display().to_string()),
            ],
            &home_empty,
            false,
        ),
    ]);
    assert!(cases.len() >= 25);

    let mut report = Vec::new();
    let mut mismatches = 0;
    for case in &cases {
        let mut psql_args = vec!["-X", "-A", "-t", "-c", "select 1"];
        let mut pgtls_args = vec!["snapshot", "--format", "json"];
        if !case.conninfo.is_empty() {
            psql_args.insert(0, &case.conninfo);
            pgtls_args.insert(1, &case.conninfo);
        } else {
            psql_args.insert(0, "");
            pgtls_args.insert(1, "");
        }
        let (psql_ok, psql_err) = run(&psql, &psql_args, case);
        let (pgtls_ok, pgtls_err) = run(Path::new(env!("CARGO_BIN_EXE_pgtls")), &pgtls_args, case);
        let agree = psql_ok == pgtls_ok && psql_ok == case.expect_ok;
        if !agree {
            mismatches += 1;
        }
        assert!(
            !pgtls_err.contains(LAB_PASSWORD),
            "{}: password leaked: {pgtls_err}",
            case.name
        );
        if !pgtls_ok {
            assert_eq!(pgtls_err.lines().count(), 1, "{}: one line: {pgtls_err}", case.name);
        }
        report.push(format!(
            "{} {:<52} psql={:<4} pgtls={:<4} expected={:<4} | psql: {} | pgtls: {}",
            if agree { "ok  " } else { "DIFF" },
            case.name,
            psql_ok,
            pgtls_ok,
            case.expect_ok,
            psql_err.lines().next().unwrap_or(""),
            pgtls_err
        ));
    }
    println!("{}", report.join("\n"));
    assert_eq!(mismatches, 0, "pgtls and psql disagree:\n{}", report.join("\n"));
}
