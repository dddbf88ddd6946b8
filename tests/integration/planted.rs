//! Nothing a database user plants runs as the monitor. pgtls runs as a superuser or a pg_monitor role; a user who may
//! create objects in `public` (everyone on 13 and 14, the database owner on 15+), or in a schema named like the
//! monitor's role, can plant functions, aggregates, operators, types and views that shadow pg_catalog's, and a
//! database owner can put them first with `ALTER DATABASE ... SET search_path`. Here every such look-alike raises a LOG
//! marker; a control query from an ordinary connection proves each kind of trap fires, then every command of pgtls
//! that talks SQL runs against the armed database, each must succeed, and no marker may appear.
//!
//! Runs on PostgreSQL 13 and 18 (the ends of the provisioner's matrix) and on the lab's default server. As in
//! tests/integration/versions.rs, a version without binaries is skipped with a note, except under `CI=true`.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail by panicking")]

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use pgtls::collect::Collector;
use pgtls::collect::act::{self, SignalKind, SignalOutcome, SignalRequest};
use pgtls::lab::demo::{MONITOR_ROLE, grant_monitor};
use pgtls::lab::{Lab, LabOptions, SUPERUSER, SessionKind};

const MARK: &str = "PGTLS-PLANTED";

/// Functions with the exact signatures pgtls's statements call, each delegating to pg_catalog after the marker.
const FUNCTIONS: &[(&str, &str, &str, &str)] = &[
    ("now", "", "timestamptz", "pg_catalog.now()"),
    ("current_setting", "a text", "text", "pg_catalog.current_setting(a)"),
    (
        "current_setting",
        "a text, b boolean",
        "text",
        "pg_catalog.current_setting(a, b)",
    ),
    ("host", "a inet", "text", "pg_catalog.host(a)"),
    ("current_database", "", "name", "pg_catalog.current_database()"),
    ("pg_backend_pid", "", "integer", "pg_catalog.pg_backend_pid()"),
    ("pg_get_userbyid", "a oid", "name", "pg_catalog.pg_get_userbyid(a)"),
    ("quote_ident", "a text", "text", "pg_catalog.quote_ident(a)"),
    (
        "starts_with",
        "a text, b text",
        "boolean",
        "pg_catalog.starts_with(a, b)",
    ),
    (
        "set_config",
        "a text, b text, c boolean",
        "text",
        "pg_catalog.set_config(a, b, c)",
    ),
    (
        "pg_has_role",
        "a name, b text",
        "boolean",
        "pg_catalog.pg_has_role(a, b)",
    ),
    ("pg_conf_load_time", "", "timestamptz", "pg_catalog.pg_conf_load_time()"),
    (
        "pg_cancel_backend",
        "a integer",
        "boolean",
        "pg_catalog.pg_cancel_backend(a)",
    ),
    (
        "pg_terminate_backend",
        "a integer",
        "boolean",
        "pg_catalog.pg_terminate_backend(a)",
    ),
    (
        "pg_current_logfile",
        "a text",
        "text",
        "pg_catalog.pg_current_logfile(a)",
    ),
    (
        "pg_read_binary_file",
        "a text, b bigint, c bigint",
        "bytea",
        "pg_catalog.pg_read_binary_file(a, b, c)",
    ),
    (
        "pg_read_file",
        "a text, b bigint, c bigint",
        "text",
        "pg_catalog.pg_read_file(a, b, c)",
    ),
    ("octet_length", "a text", "integer", "pg_catalog.octet_length(a)"),
    ("pg_is_in_recovery", "", "boolean", "pg_catalog.pg_is_in_recovery()"),
    ("format", "a text, b text, c text", "text", "pg_catalog.format(a, b, c)"),
    (
        "has_parameter_privilege",
        "a text, b text",
        "boolean",
        "pg_catalog.has_parameter_privilege(a, b)",
    ),
    // Aurora's marker, outside pg_catalog: looked up by the platform detection, never called, never believed.
    ("aurora_version", "", "text", "'planted'::pg_catalog.text"),
];

/// Operators pgtls's comparisons would pick (left type, right type, operator, pg_catalog's own to delegate to).
const OPERATORS: &[(&str, &str, &str)] = &[
    ("text", "text", "="),
    ("name", "name", "="),
    ("name", "text", "="),
    ("oid", "oid", "="),
    ("integer", "integer", "="),
    ("bigint", "integer", "="),
    ("timestamptz", "timestamptz", "="),
    ("integer", "integer", "<>"),
    ("integer", "integer", ">="),
    ("text", "text", "~~"),
];

/// Relations pgtls reads, as views that fire the marker.
const VIEWS: &[&str] = &[
    "pg_settings",
    "pg_stat_activity",
    "pg_roles",
    "pg_database",
    "pg_extension",
    "pg_namespace",
    "pg_proc",
    "pg_hba_file_rules",
];

/// Types pgtls casts to, as domains whose CHECK fires the marker.
const TYPES: &[&str] = &["text", "int2", "int4", "int8", "bool", "timestamptz"];

fn plant_sql(schema: &str) -> String {
    let mut sql = format!("CREATE SCHEMA IF NOT EXISTS {schema};\n");
    let tag = |what: &str| format!("'{schema}.{what}'");
    for (name, args, returns, call) in FUNCTIONS {
        let arg_types: Vec<&str> = args
            .split(", ")
            .filter(|a| !a.is_empty())
            .map(|a| a.split_once(' ').unwrap().1)
            .collect();
        sql.push_str(&format!(
            "CREATE FUNCTION {schema}.{name}({args}) RETURNS {returns} LANGUAGE plpgsql \
             SET search_path = pg_catalog AS $f$BEGIN PERFORM planted.mark({}); RETURN {call}; END$f$;\n",
            tag(&format!("{name}({})", arg_types.join(",")))
        ));
    }
    // A set-returning look-alike (the platform's marks unnest their name lists).
    sql.push_str(&format!(
        "CREATE FUNCTION {schema}.unnest(a text[]) RETURNS SETOF text LANGUAGE plpgsql \
         SET search_path = pg_catalog AS $f$BEGIN PERFORM planted.mark({}); \
         RETURN QUERY SELECT u FROM pg_catalog.unnest(a) AS u; END$f$;\n",
        tag("unnest(text[])")
    ));
    // Aggregates: pg_catalog.array_agg(anynonarray) is polymorphic, so an exact array_agg(text) wins over it.
    sql.push_str(&format!(
        "CREATE FUNCTION {schema}.agg_text(s text[], v text) RETURNS text[] LANGUAGE plpgsql \
           SET search_path = pg_catalog AS $f$BEGIN PERFORM planted.mark({}); RETURN s || v; END$f$;\n\
         CREATE AGGREGATE {schema}.array_agg(text) (sfunc = {schema}.agg_text, stype = text[]);\n\
         CREATE FUNCTION {schema}.agg_count(s bigint) RETURNS bigint LANGUAGE plpgsql \
           SET search_path = pg_catalog AS $f$BEGIN PERFORM planted.mark({}); RETURN s + 1; END$f$;\n\
         CREATE AGGREGATE {schema}.count(*) (sfunc = {schema}.agg_count, stype = bigint, initcond = '0');\n\
         CREATE FUNCTION {schema}.agg_and(s boolean, v boolean) RETURNS boolean LANGUAGE plpgsql \
           SET search_path = pg_catalog AS $f$BEGIN PERFORM planted.mark({}); RETURN s AND v; END$f$;\n\
         CREATE AGGREGATE {schema}.bool_and(boolean) (sfunc = {schema}.agg_and, stype = boolean);\n",
        tag("array_agg"),
        tag("count"),
        tag("bool_and"),
    ));
    for (i, (left, right, op)) in OPERATORS.iter().enumerate() {
        sql.push_str(&format!(
            "CREATE FUNCTION {schema}.op_{i}(a {left}, b {right}) RETURNS boolean LANGUAGE plpgsql \
               SET search_path = pg_catalog AS $f$BEGIN PERFORM planted.mark({}); \
               RETURN a OPERATOR(pg_catalog.{op}) b; END$f$;\n\
             CREATE OPERATOR {schema}.{op} (leftarg = {left}, rightarg = {right}, function = {schema}.op_{i});\n",
            tag(&format!("{left} {op} {right}")),
        ));
    }
    for view in VIEWS {
        sql.push_str(&format!(
            "CREATE VIEW {schema}.{view} AS SELECT * FROM pg_catalog.{view} WHERE planted.mark({});\n",
            tag(view)
        ));
    }
    for ty in TYPES {
        sql.push_str(&format!(
            "CREATE DOMAIN {schema}.{ty} AS pg_catalog.{ty} CHECK (planted.mark({}));\n",
            tag(&format!("type {ty}"))
        ));
    }
    sql
}

/// Arm the lab's `postgres` database: look-alikes in `public` and in schemas named like both monitor roles, put first
/// by the database's and the monitor role's own search_path.
async fn plant(lab: &Lab) {
    let admin = lab.admin().await.unwrap();
    let mut sql = "CREATE SCHEMA planted;\n\
        CREATE FUNCTION planted.mark(what text) RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog \
          AS $f$BEGIN RAISE LOG 'PGTLS-PLANTED %', what; RETURN true; END$f$;\n\
        GRANT USAGE ON SCHEMA planted TO PUBLIC;\n"
        .to_string();
    for schema in ["public", SUPERUSER, MONITOR_ROLE] {
        sql.push_str(&plant_sql(schema));
        sql.push_str(&format!("GRANT USAGE ON SCHEMA {schema} TO PUBLIC;\n"));
    }
    sql.push_str(&format!(
        "ALTER DATABASE postgres SET search_path = \"$user\", public, pg_catalog;\n\
         ALTER ROLE {MONITOR_ROLE} SET search_path = {MONITOR_ROLE}, public, pg_catalog;\n"
    ));
    admin.batch_execute(&sql).await.unwrap();
}

/// The marker lines the server has logged (a marker's own LOG line, not the CONTEXT or STATEMENT lines after it).
fn markers(lab: &Lab) -> Vec<String> {
    log_texts(lab)
        .iter()
        .flat_map(|text| {
            text.lines()
                .filter(|l| l.contains(&format!("LOG:  {MARK}")))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A connection as any application would make one, with the database's search path: the planted objects must fire.
async fn control_query(lab: &Lab) -> Vec<String> {
    let before = markers(lab).len();
    let (client, connection) = tokio_postgres::connect(&lab.conninfo(SUPERUSER), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(
            "SELECT now(), array_agg(name), count(*), bool_and(name = 'ssl'), NULL::text \
               FROM pg_settings WHERE name LIKE 'ssl%'",
        )
        .await
        .unwrap();
    let mut fired = Vec::new();
    for kind in [
        "now()",
        "array_agg",
        "count",
        "bool_and",
        "text = text",
        "text ~~ text",
        "pg_settings",
        "type text",
    ] {
        let seen = common::wait_until(
            &format!("the planted {kind} fires"),
            Duration::from_secs(20),
            async || {
                let all = markers(lab);
                let new = &all[before..];
                new.iter().find(|l| l.contains(kind)).cloned().ok_or(new.len())
            },
        )
        .await;
        fired.push(seen);
    }
    fired
}

async fn run_on(lab: &Lab, home: &Path) {
    grant_monitor(&lab.clone_for_clients()).await.unwrap();
    plant(lab).await;
    let fired = control_query(lab).await;
    assert!(fired.len() >= 8, "{fired:?}");

    let superuser = lab.conninfo(SUPERUSER) + " sslmode=require application_name=pgtls-planted-su";
    let monitor = format!(
        "host={} port={} user={MONITOR_ROLE} password={} dbname=postgres sslmode=require application_name=pgtls-planted-mon",
        lab.clone_for_clients().host,
        lab.clone_for_clients().port,
        pgtls::lab::LAB_PASSWORD
    );
    let victim = lab.open(SessionKind::Tls12, SUPERUSER, "planted-victim").await.unwrap();
    let armed = markers(lab).len();

    // snapshot, as a superuser and as a pg_monitor role.
    for (conninfo, platform) in [(&superuser, "self_hosted"), (&monitor, "unknown")] {
        let out = common::pgtls(&["snapshot", "--format", "json", conninfo], home);
        assert!(
            out.status.success(),
            "snapshot: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let apps: Vec<&str> = json["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["application_name"].as_str())
            .collect();
        assert!(apps.contains(&"planted-victim"), "{apps:?}");
        // The look-alike aurora_version() in public and in the role-named schemas is no Aurora: a superuser sees
        // a self-hosted server, a pg_monitor role (no ALTER SYSTEM) cannot tell.
        assert_eq!(json["platform"]["name"], platform, "{}", json["platform"]);
    }

    // check, with the log read through the server (logging_collector is on, no --server-log).
    let out = common::pgtls(&["check", "--format", "json", &superuser], home);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        matches!(out.status.code(), Some(0..=2)),
        "check: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("planted-victim"),
        "check names the TLS 1.2 holdout: {stdout}"
    );
    assert!(
        stdout.contains("read through SQL") && !stdout.contains("unavailable"),
        "the log was read through SQL: {stdout}"
    );

    // serve: one target, scraped until it reports the server's sessions.
    let serve_home = tempfile::tempdir().unwrap();
    let serve = ServeChild::start(&superuser, serve_home.path());
    let body = common::wait_until("serve reports the target up", Duration::from_secs(60), async || {
        let body = serve.get("/metrics").ok_or("no answer".to_string())?;
        if body.contains("pgtls_up{") && body.contains("} 1") && body.contains("pgtls_sessions{") {
            Ok(body)
        } else {
            Err(body)
        }
    })
    .await;
    assert!(body.contains("pgtls_sessions"), "{body}");
    drop(serve);

    // The dashboard: polls, the history service (log through SQL, pg_hba_file_rules, the certificate file).
    let tmux = common::tmux::Tmux::start(&[&superuser], home, 160, 48);
    tmux.wait_for("the dashboard shows the victim", Duration::from_secs(30), |s| {
        s.contains("planted-victim")
    });
    tmux.keys(&["q"]);
    assert_eq!(tmux.exit_status(Duration::from_secs(10)), Some(0));

    // K and C, through the collector's own connection as the dashboard does, plus its other reads.
    let params = common::params(&superuser, home);
    let mut collector = Collector::connect(&params).await.unwrap();
    let snapshot = collector.poll().await.unwrap();
    let session = snapshot
        .sessions
        .iter()
        .find(|s| s.pid == victim.pid)
        .expect("the victim is polled");
    assert!(collector.hba_rules().await.is_ok());
    let (_, cert) = pgtls::collect::cert_file::read(collector.client(), Duration::from_secs(10)).await;
    assert!(cert.is_ok(), "{cert:?}");
    for kind in [SignalKind::Cancel, SignalKind::Terminate] {
        let outcome = act::signal(
            collector.client(),
            SignalRequest {
                kind,
                pid: session.pid,
                backend_start: session.backend_start.unwrap(),
            },
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(outcome, SignalOutcome::Sent, "{kind:?}");
    }

    // Every marker the server logged since the trap was armed would be planted code that ran as the monitor. The
    // victim's termination is logged after everything above, so the log is complete up to here once it shows.
    common::wait_until("the termination reaches the log", Duration::from_secs(20), async || {
        if log_contains(lab, "terminating connection due to administrator command") {
            Ok(())
        } else {
            Err("not yet")
        }
    })
    .await;
    let ran: std::collections::BTreeMap<String, usize> =
        markers(lab)[armed..].iter().fold(Default::default(), |mut seen, line| {
            let what = line.split(MARK).nth(1).unwrap_or(line).trim().to_string();
            *seen.entry(what).or_default() += 1;
            seen
        });
    assert!(
        ran.is_empty(),
        "planted objects ran as the monitor (object: times): {ran:?}"
    );
}

/// sslinfo's `ssl_is_used()` runs as the monitor from whatever schema the extension sits in: called only where no
/// user but a superuser could have put a function under that name, skipped with a reason elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslinfo_is_called_only_where_no_user_could_replace_it() {
    let home = tempfile::tempdir().unwrap();
    let lab = lab_on(None).await;
    if !lab.sslinfo {
        common::fail("sslinfo is not available on the lab server (contrib missing)");
    }
    let admin = lab.admin().await.unwrap();
    lab.ensure_role("mallory").await.unwrap();
    for sql in [
        "CREATE DATABASE owned_by_mallory OWNER mallory",
        "CREATE DATABASE shared_schema",
    ] {
        admin.batch_execute(sql).await.unwrap();
    }
    drop(admin);
    let handle = lab.clone_for_clients();
    let at = |db: &str| {
        format!(
            "host={} port={} user={SUPERUSER} password={} dbname={db} sslmode=require",
            handle.host,
            handle.port,
            pgtls::lab::LAB_PASSWORD
        )
    };
    let as_superuser = |db: &'static str, sql: &'static str| {
        let conninfo = at(db);
        async move {
            let (client, connection) = tokio_postgres::connect(&conninfo, postgres_openssl_none())
                .await
                .unwrap();
            tokio::spawn(connection);
            client.batch_execute(sql).await.unwrap();
        }
    };
    // 15+: public belongs to pg_database_owner, here a database owned by an ordinary role.
    as_superuser("owned_by_mallory", "CREATE EXTENSION sslinfo SCHEMA public").await;
    // A superuser's schema that everyone may create in, where someone added an overload.
    as_superuser(
        "shared_schema",
        "CREATE SCHEMA open_to_all; GRANT CREATE, USAGE ON SCHEMA open_to_all TO PUBLIC; \
         CREATE EXTENSION sslinfo SCHEMA open_to_all; \
         CREATE FUNCTION open_to_all.ssl_is_used(a integer DEFAULT 0) RETURNS boolean LANGUAGE sql AS 'SELECT true'",
    )
    .await;

    let snapshot = |db: &str| {
        let out = common::pgtls(&["snapshot", "--format", "json", &at(db)], home.path());
        assert!(out.status.success(), "{db}: {}", String::from_utf8_lossy(&out.stderr));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (
            json["monitor"]["ssl_is_used"].clone(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (used, stderr) = snapshot("postgres");
    assert_eq!(
        used,
        serde_json::Value::Bool(true),
        "the lab's own sslinfo (public, superuser's database): {stderr}"
    );
    assert!(!stderr.contains("sslinfo"), "{stderr}");
    for db in ["owned_by_mallory", "shared_schema"] {
        let (used, stderr) = snapshot(db);
        assert_eq!(used, serde_json::Value::Null, "{db}");
        assert!(
            stderr.contains("ssl_is_used() is not called"),
            "{db}: the user is told why: {stderr}"
        );
    }
}

/// TLS without verification, for the test's own set-up connections.
fn postgres_openssl_none() -> postgres_openssl::MakeTlsConnector {
    let mut builder = openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls()).unwrap();
    builder.set_verify(openssl::ssl::SslVerifyMode::NONE);
    postgres_openssl::MakeTlsConnector::new(builder.build())
}

fn log_contains(lab: &Lab, needle: &str) -> bool {
    log_texts(lab).iter().any(|text| text.contains(needle))
}

/// Every log the server writes: the stderr file and the logging collector's files.
fn log_texts(lab: &Lab) -> Vec<String> {
    let mut files: Vec<PathBuf> = vec![lab.log_file.clone()];
    if let Ok(dir) = std::fs::read_dir(lab.data_dir.join("log")) {
        files.extend(dir.flatten().map(|e| e.path()));
    }
    files.sort();
    files
        .iter()
        .filter_map(|f| std::fs::read(f).ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .collect()
}

/// `pgtls serve` on a free port, killed on drop.
struct ServeChild {
    child: std::process::Child,
    port: u16,
}

impl ServeChild {
    fn start(conninfo: &str, home: &Path) -> ServeChild {
        let port = pgtls::lab::server::free_port().unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_pgtls"))
            .env("HOME", home)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--interval",
                "1",
                conninfo,
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        ServeChild { child, port }
    }

    fn get(&self, path: &str) -> Option<String> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        Some(response.split_once("\r\n\r\n")?.1.to_string())
    }
}

impl Drop for ServeChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn lab_on(bindir: Option<PathBuf>) -> Lab {
    Lab::start(LabOptions {
        bindir,
        settings: vec![("logging_collector".into(), "on".into())],
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| common::fail(&format!("the lab cannot start: {e:#}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_look_alikes_never_run_on_the_default_server() {
    let home = tempfile::tempdir().unwrap();
    let lab = lab_on(None).await;
    run_on(&lab, home.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_look_alikes_never_run_on_postgresql_13_and_18() {
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
    for major in [13, 18] {
        let bin = match common::version_bindir(major) {
            Ok(bin) => bin,
            Err(e) if in_ci => panic!("PostgreSQL {major}: {e:?}"),
            Err(e) => {
                eprintln!("PostgreSQL {major} skipped: {e:?}");
                continue;
            }
        };
        let home = tempfile::tempdir().unwrap();
        let lab = lab_on(Some(bin.dir.clone())).await;
        assert_eq!(lab.major_version, major);
        run_on(&lab, home.path()).await;
    }
}
