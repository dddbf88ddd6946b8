//! The platform, told from the marks a server shows a monitor, on the real lab: each provider simulated by what it
//! leaves behind (a provider's placeholder settings through `ALTER DATABASE ... SET`, since `ALTER SYSTEM` refuses
//! unknown names on some versions; its roles through `CREATE ROLE`; Aurora's function in pg_catalog; CloudNativePG's
//! `/controller/` archive_command), read by the real binary's `check --format json`. Each platform's output carries
//! its own steps and no other platform's; marks that disagree give "unknown"; a look-alike of `aurora_version()`
//! outside pg_catalog is not Aurora.
//!
//! One server of its own, and one platform at a time: roles are cluster-wide, and another test's lab must not see
//! them.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail by panicking")]

use crate::common;

use std::path::Path;

use pgtls::lab::demo::{MONITOR_ROLE, grant_monitor};
use pgtls::lab::{Lab, SUPERUSER};
use serde_json::Value;

fn conninfo(lab: &Lab, user: &str, db: &str) -> String {
    format!(
        "{} sslmode=verify-full sslrootcert={}",
        lab.conninfo(user)
            .replace("host=127.0.0.1", "host=localhost hostaddr=127.0.0.1")
            .replace("dbname=postgres", &format!("dbname={db}")),
        lab.certs.ca_cert.display()
    )
}

/// `pgtls check --format json` as `user` in `db`, with `extra` arguments.
fn check(lab: &Lab, home: &Path, user: &str, db: &str, extra: &[&str]) -> Value {
    let conninfo = conninfo(lab, user, db);
    let mut args = vec!["check", conninfo.as_str(), "--format", "json"];
    args.extend_from_slice(extra);
    let out = common::pgtls(&args, home);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "check as {user} in {db} printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Words only one platform's tooling uses: a platform's steps must carry none of another's.
const OWN_WORDS: &[(&str, &[&str])] = &[
    ("self_hosted", &["ALTER SYSTEM SET", "pg_hba.conf"]),
    ("azure_flexible_server", &["az postgres"]),
    ("rds", &["modify-db-parameter-group", "modify-db-instance "]),
    ("aurora", &["db-cluster-parameter-group"]),
    ("cloud_sql", &["gcloud sql"]),
    ("alloydb", &["gcloud alloydb"]),
    ("cloudnativepg", &["kubectl"]),
];

/// The platform's name, after checking that the steps in `json` are that platform's alone.
fn platform_of(json: &Value) -> String {
    let name = json["platform"]["name"].as_str().expect("platform.name").to_string();
    assert!(
        json["platform"]["evidence"].as_array().is_some_and(|e| !e.is_empty()),
        "every verdict says why: {}",
        json["platform"]
    );
    let commands: Vec<String> = ["change_steps", "log_steps"]
        .iter()
        .flat_map(|key| json[*key].as_array().expect(key).clone())
        .flat_map(|step| {
            let mut all: Vec<String> = step["commands"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_string())
                .collect();
            all.push(step["undo"].as_str().unwrap().to_string());
            all
        })
        .collect();
    let text = commands.join("\n");
    for (platform, words) in OWN_WORDS {
        if *platform == name {
            assert!(
                words.iter().any(|w| text.contains(w)),
                "{name}'s steps lack its own tooling:\n{text}"
            );
        } else {
            for word in *words {
                assert!(
                    !text.contains(word),
                    "{name}'s steps carry {platform}'s {word}:\n{text}"
                );
            }
        }
    }
    if name == "unknown" {
        assert!(
            json["change_steps"]
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["commands"].as_array().unwrap().is_empty()),
            "no platform's commands when the platform is unknown: {}",
            json["change_steps"]
        );
    }
    name
}

async fn sql(lab: &Lab, statements: &str) {
    lab.admin()
        .await
        .unwrap()
        .batch_execute(statements)
        .await
        .unwrap_or_else(|e| panic!("{statements}: {:?}", e.as_db_error().map(|d| d.message())));
}

#[tokio::test]
async fn each_platform_is_told_by_its_marks_and_gets_only_its_steps() {
    let mut lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    grant_monitor(&lab).await.unwrap();
    let version: i32 = lab
        .admin()
        .await
        .unwrap()
        .query_one(
            "SELECT pg_catalog.current_setting('server_version_num')::pg_catalog.int4",
            &[],
        )
        .await
        .unwrap()
        .get(0);

    // No mark: a superuser may ALTER SYSTEM, so self-hosted; a pg_monitor role may not, so pgtls cannot tell.
    let json = check(&lab, home, SUPERUSER, "postgres", &[]);
    assert_eq!(platform_of(&json), "self_hosted", "{}", json["platform"]);
    let steps = json["change_steps"].to_string();
    assert!(
        steps.contains("ALTER SYSTEM SET ssl_min_protocol_version = 'TLSv1.3';"),
        "{steps}"
    );
    assert!(steps.contains("SELECT pg_reload_conf();"), "{steps}");
    let json = check(&lab, home, MONITOR_ROLE, "postgres", &[]);
    assert_eq!(platform_of(&json), "unknown", "{}", json["platform"]);
    if version >= 150_000 {
        sql(
            &lab,
            &format!("GRANT ALTER SYSTEM ON PARAMETER ssl_min_protocol_version TO {MONITOR_ROLE}"),
        )
        .await;
        let json = check(&lab, home, MONITOR_ROLE, "postgres", &[]);
        assert_eq!(platform_of(&json), "self_hosted", "{}", json["platform"]);
        assert!(json["platform"]["evidence"].to_string().contains("has ALTER SYSTEM"));
        sql(
            &lab,
            &format!("REVOKE ALTER SYSTEM ON PARAMETER ssl_min_protocol_version FROM {MONITOR_ROLE}"),
        )
        .await;
    }

    // A provider's placeholder settings, one database each (a database setting is no server-wide mark for the
    // others). The text output names the platform and the steps too.
    for (db, settings, expected) in [
        (
            "p_azure",
            &[("azure.extensions", "pg_stat_statements")][..],
            "azure_flexible_server",
        ),
        (
            "p_rds",
            &[("rds.extensions", "pg_stat_statements"), ("rds.force_ssl", "1")][..],
            "rds",
        ),
        ("p_cloudsql", &[("cloudsql.iam_authentication", "on")][..], "cloud_sql"),
        ("p_alloydb", &[("alloydb.iam_authentication", "on")][..], "alloydb"),
        (
            "p_conflict",
            &[
                ("azure.extensions", "pg_stat_statements"),
                ("cloudsql.iam_authentication", "on"),
            ][..],
            "unknown",
        ),
    ] {
        // CREATE DATABASE cannot run in the implicit transaction of a multi-statement string.
        sql(&lab, &format!("CREATE DATABASE {db}")).await;
        let mut statements = String::new();
        for (name, value) in settings {
            statements.push_str(&format!("ALTER DATABASE {db} SET \"{name}\" = '{value}';"));
        }
        sql(&lab, &statements).await;
        let json = check(&lab, home, MONITOR_ROLE, db, &[]);
        assert_eq!(platform_of(&json), expected, "{db}: {}", json["platform"]);
        let evidence = json["platform"]["evidence"].to_string();
        for (name, _) in settings {
            assert!(evidence.contains(name), "{db}: {evidence}");
        }
        let tls_required = check(&lab, home, MONITOR_ROLE, db, &["--target", "tls-required"]);
        assert_eq!(platform_of(&tls_required), expected);
        match expected {
            "azure_flexible_server" => {
                assert!(json["change_steps"].to_string().contains(
                    "az postgres flexible-server parameter set --resource-group <rg> --server-name <server> --name \
                     ssl_min_protocol_version --value TLSv1.3"
                ));
                assert!(
                    tls_required["change_steps"]
                        .to_string()
                        .contains("require_secure_transport --value on")
                );
            }
            "rds" => {
                let steps = json["change_steps"].to_string();
                assert!(
                    steps.contains(
                        "ParameterName=ssl_min_protocol_version,ParameterValue=TLSv1.3,ApplyMethod=immediate"
                    )
                );
                assert!(steps.contains("default DB parameter group"), "{steps}");
                assert!(
                    tls_required["change_steps"]
                        .to_string()
                        .contains("ParameterName=rds.force_ssl")
                );
            }
            "cloud_sql" | "alloydb" => {
                assert!(
                    json["change_steps"][0]["title"]
                        .as_str()
                        .unwrap()
                        .starts_with("Not settable here")
                );
                assert!(
                    tls_required["change_steps"]
                        .to_string()
                        .contains("--ssl-mode=ENCRYPTED_ONLY")
                );
            }
            _ => {
                assert!(evidence.contains("more than one platform"), "{evidence}");
            }
        }
        let text = common::pgtls(&["check", &conninfo(&lab, MONITOR_ROLE, db)], home);
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(
            text.contains("\nPlatform: ") && text.contains("\nChange steps ("),
            "{text}"
        );
    }

    // Roles, server-wide, one provider at a time.
    for (role, expected) in [
        ("cloudsqlsuperuser", "cloud_sql"),
        ("alloydbsuperuser", "alloydb"),
        ("azure_pg_admin", "azure_flexible_server"),
    ] {
        sql(&lab, &format!("CREATE ROLE {role}")).await;
        let json = check(&lab, home, MONITOR_ROLE, "postgres", &[]);
        assert_eq!(platform_of(&json), expected, "{role}: {}", json["platform"]);
        if role != "azure_pg_admin" {
            sql(&lab, &format!("DROP ROLE {role}")).await;
        }
    }
    // Azure's role beside RDS's: marks that disagree.
    sql(&lab, "CREATE ROLE rds_superuser").await;
    let json = check(&lab, home, MONITOR_ROLE, "postgres", &[]);
    assert_eq!(platform_of(&json), "unknown", "{}", json["platform"]);
    sql(&lab, "DROP ROLE azure_pg_admin").await;
    let json = check(&lab, home, MONITOR_ROLE, "postgres", &[]);
    assert_eq!(platform_of(&json), "rds", "{}", json["platform"]);

    // A look-alike of Aurora's function outside pg_catalog (a database user's to plant) is no Aurora.
    sql(
        &lab,
        "CREATE SCHEMA planted; CREATE FUNCTION planted.aurora_version() RETURNS pg_catalog.text LANGUAGE sql \
         AS $$ SELECT 'planted' $$",
    )
    .await;
    let json = check(&lab, home, MONITOR_ROLE, "postgres", &[]);
    assert_eq!(platform_of(&json), "rds", "{}", json["platform"]);
    // Aurora's own, in pg_catalog (where only a superuser with allow_system_table_mods can put one): Aurora, tested
    // before RDS whose marks it carries.
    sql(
        &lab,
        "SET allow_system_table_mods = on; CREATE FUNCTION pg_catalog.aurora_version() RETURNS pg_catalog.text \
         LANGUAGE sql AS $$ SELECT '16.4.1' $$",
    )
    .await;
    let json = check(&lab, home, MONITOR_ROLE, "postgres", &[]);
    assert_eq!(platform_of(&json), "aurora", "{}", json["platform"]);
    assert!(
        json["change_steps"]
            .to_string()
            .contains("modify-db-cluster-parameter-group")
    );
    sql(
        &lab,
        "SET allow_system_table_mods = on; DROP FUNCTION pg_catalog.aurora_version(); DROP SCHEMA planted CASCADE; \
         DROP ROLE rds_superuser",
    )
    .await;

    // CloudNativePG: its replication role alone decides nothing; with the operator's /controller/ archive_command
    // it is CloudNativePG. The operator always turns archive_mode on; without it the server shows archive_command as
    // "(disabled)", so the lab restarts with it on (no WAL segment fills during the test, so nothing is archived).
    sql(&lab, "CREATE ROLE streaming_replica").await;
    let json = check(&lab, home, SUPERUSER, "postgres", &[]);
    assert_eq!(platform_of(&json), "self_hosted", "{}", json["platform"]);
    lab.set_config(
        "archive_command",
        "/controller/manager wal-archive --log-destination /controller/log/postgres.json %p",
    )
    .await
    .unwrap();
    lab.set_config("archive_mode", "on").await.unwrap();
    lab.restart_server().unwrap();
    let json = check(&lab, home, MONITOR_ROLE, "postgres", &[]);
    assert_eq!(platform_of(&json), "cloudnativepg", "{}", json["platform"]);
    let steps = json["change_steps"].to_string();
    assert!(
        steps.contains(".spec.postgresql.parameters") && steps.contains("1.21.2/1.22"),
        "{steps}"
    );
    assert!(json["platform"]["evidence"].to_string().contains("streaming_replica"));
    // A superuser on CloudNativePG is still CloudNativePG: the marks decide, not the privilege.
    let json = check(&lab, home, SUPERUSER, "postgres", &[]);
    assert_eq!(platform_of(&json), "cloudnativepg", "{}", json["platform"]);
}

/// The platform is read once per connection, not per poll: a mark that appears while pgtls stays connected shows
/// after the next connection, not before.
#[tokio::test]
async fn the_platform_is_read_once_per_connection() {
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let params = common::params(&conninfo(&lab, SUPERUSER, "postgres"), home.path());
    let mut collector = pgtls::collect::Collector::connect(&params).await.unwrap();
    assert_eq!(
        collector.poll().await.unwrap().platform.name,
        pgtls::model::PlatformName::SelfHosted
    );
    sql(&lab, "CREATE ROLE cloudsqlsuperuser").await;
    // The role is there (a fresh connection sees it) ...
    let fresh = pgtls::collect::Collector::connect(&params).await.unwrap();
    assert_eq!(fresh.preflight().platform.name, pgtls::model::PlatformName::CloudSql);
    // ... and the connection that read the marks before keeps what it read.
    assert_eq!(
        collector.poll().await.unwrap().platform.name,
        pgtls::model::PlatformName::SelfHosted
    );
    sql(&lab, "DROP ROLE cloudsqlsuperuser").await;
}
