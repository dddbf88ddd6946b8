//! How to raise the floor on each platform, and how to get the connection log pgtls needs there: only the detected
//! platform's steps, with `<placeholders>` for what pgtls cannot know (resource group, server, parameter group,
//! instance, cluster). Every step says whether a restart is needed and how to undo it.

use serde::{Deserialize, Serialize};

use crate::analysis::change::Change;
use crate::model::PlatformName;

/// One thing to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeStep {
    /// What the step does, in one sentence.
    pub title: String,
    /// The exact commands, in order; empty when the step is only words (nothing to run here).
    pub commands: Vec<String>,
    pub restart: Restart,
    /// How to undo it.
    pub undo: String,
    /// What else to know, and the provider's page the step follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Whether the step needs the server restarted (or rebooted) to take effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Restart {
    No,
    Yes,
    /// The step changes nothing (a setting that cannot be set there, a platform pgtls could not tell).
    NothingChanges,
}

impl Restart {
    pub fn label(self) -> &'static str {
        match self {
            Restart::No => "no restart needed",
            Restart::Yes => "restart needed",
            Restart::NothingChanges => "nothing changes",
        }
    }
}

impl ChangeStep {
    /// The step as plain lines (numbered by the caller): the title, each command indented, then restart, undo and
    /// note. The views, `check` and the report all write it so.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![self.title.clone()];
        out.extend(self.commands.iter().map(|c| format!("    {c}")));
        out.push(format!("  restart: {}", self.restart.label()));
        out.push(format!("  undo: {}", self.undo));
        if let Some(note) = &self.note {
            out.push(format!("  note: {note}"));
        }
        out
    }
}

fn step(title: &str, commands: &[&str], restart: Restart, undo: &str, note: Option<&str>) -> ChangeStep {
    ChangeStep {
        title: title.to_string(),
        commands: commands.iter().map(|c| c.to_string()).collect(),
        restart,
        undo: undo.to_string(),
        note: note.map(str::to_string),
    }
}

const AZURE_TLS_DOC: &str = "https://github.com/MicrosoftDocs/azure-docs/blob/main/articles/postgresql/flexible-server/how-to-connect-tls-ssl.md";
const AZURE_SSL_PARAMS_DOC: &str = "https://github.com/MicrosoftDocs/azure-databases-docs/blob/main/articles/postgresql/flexible-server/includes/param-12-connections-authentication-ssl.md";
const RDS_SSL_DOC: &str = "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/PostgreSQL.Concepts.General.SSL.html";
const CLOUDSQL_SSL_DOC: &str = "https://cloud.google.com/sql/docs/postgres/configure-ssl-instance";
const ALLOYDB_SSL_DOC: &str = "https://cloud.google.com/alloydb/docs/instance-ssl";
const CNPG_CONF_DOC: &str = "https://cloudnative-pg.io/documentation/current/postgresql_conf";

/// The steps that make `change` on `platform`, and only that platform's.
pub fn change_steps(platform: PlatformName, change: Change) -> Vec<ChangeStep> {
    match (platform, change) {
        (PlatformName::SelfHosted, Change::MinTls13) => vec![step(
            "Set the minimum and reload the configuration (as a superuser, or a role granted ALTER SYSTEM on it)",
            &[
                "ALTER SYSTEM SET ssl_min_protocol_version = 'TLSv1.3';",
                "SELECT pg_reload_conf();",
            ],
            Restart::No,
            "ALTER SYSTEM RESET ssl_min_protocol_version; SELECT pg_reload_conf();",
            Some(
                "or set ssl_min_protocol_version = 'TLSv1.3' in postgresql.conf and reload (pg_ctl reload); a value \
                 set with ALTER SYSTEM (postgresql.auto.conf) wins over postgresql.conf. Established sessions keep \
                 their TLS version until they reconnect",
            ),
        )],
        (PlatformName::SelfHosted, Change::TlsRequired) => vec![step(
            "In pg_hba.conf, turn each `host` line that admits TCP clients into `hostssl` (and remove `hostnossl` \
             lines that admit anyone), then reload",
            &["SELECT pg_reload_conf();"],
            Restart::No,
            "put the previous pg_hba.conf lines back and SELECT pg_reload_conf();",
            Some("pg_hba.conf is read on reload; existing plain-text sessions stay until they reconnect"),
        )],
        (PlatformName::Azure, Change::MinTls13) => vec![step(
            "Set the server parameter ssl_min_protocol_version",
            &[
                "az postgres flexible-server parameter set --resource-group <rg> --server-name <server> --name \
                 ssl_min_protocol_version --value TLSv1.3",
            ],
            Restart::No,
            "az postgres flexible-server parameter set --resource-group <rg> --server-name <server> --name \
             ssl_min_protocol_version --value TLSv1.2",
            Some(&format!(
                "a dynamic parameter (no restart); Azure allows TLSv1.2 and TLSv1.3 only ({AZURE_SSL_PARAMS_DOC})"
            )),
        )],
        (PlatformName::Azure, Change::TlsRequired) => vec![step(
            "Require TLS for every connection (the default on flexible server)",
            &[
                "az postgres flexible-server parameter set --resource-group <rg> --server-name <server> --name \
                 require_secure_transport --value on",
            ],
            Restart::No,
            "az postgres flexible-server parameter set --resource-group <rg> --server-name <server> --name \
             require_secure_transport --value off",
            Some(AZURE_TLS_DOC),
        )],
        (PlatformName::Rds, change) => rds_steps(change),
        (PlatformName::Aurora, change) => aurora_steps(change),
        (PlatformName::CloudSql, Change::MinTls13) => vec![not_settable(
            "Cloud SQL for PostgreSQL",
            "its documented SSL settings are the SSL mode and the server certificates",
            CLOUDSQL_SSL_DOC,
        )],
        (PlatformName::CloudSql, Change::TlsRequired) => vec![step(
            "Allow only encrypted connections (SSL mode)",
            &["gcloud sql instances patch <instance> --ssl-mode=ENCRYPTED_ONLY"],
            Restart::No,
            "gcloud sql instances patch <instance> --ssl-mode=ALLOW_UNENCRYPTED_AND_ENCRYPTED",
            Some(&format!(
                "applies to new connections only: unencrypted sessions already open stay until the instance \
                 restarts ({CLOUDSQL_SSL_DOC})"
            )),
        )],
        (PlatformName::AlloyDb, Change::MinTls13) => vec![not_settable(
            "AlloyDB",
            "its documented SSL setting is the SSL enforcement mode",
            ALLOYDB_SSL_DOC,
        )],
        (PlatformName::AlloyDb, Change::TlsRequired) => vec![step(
            "Allow only encrypted connections (the default on AlloyDB)",
            &[
                "gcloud alloydb instances update <instance> --cluster=<cluster> --region=<region> --ssl-mode=ENCRYPTED_ONLY",
            ],
            Restart::No,
            "gcloud alloydb instances update <instance> --cluster=<cluster> --region=<region> \
             --ssl-mode=ALLOW_UNENCRYPTED_AND_ENCRYPTED",
            Some(ALLOYDB_SSL_DOC),
        )],
        (PlatformName::CloudNativePg, Change::MinTls13) => vec![step(
            "Set the parameter in the Cluster resource (.spec.postgresql.parameters); the operator applies it to \
             every instance",
            &["kubectl patch cluster <cluster> -n <namespace> --type merge -p \
                 '{\"spec\":{\"postgresql\":{\"parameters\":{\"ssl_min_protocol_version\":\"TLSv1.3\"}}}}'"],
            Restart::No,
            "set ssl_min_protocol_version in .spec.postgresql.parameters back to its previous value",
            Some(&format!(
                "CloudNativePG's default has been TLSv1.3 since 1.21.2/1.22, so a lower floor here was set on purpose \
                 in the Cluster resource: removing it also restores TLSv1.3. ALTER SYSTEM is disabled by default and \
                 not replicated; do not use it ({CNPG_CONF_DOC})"
            )),
        )],
        (PlatformName::CloudNativePg, Change::TlsRequired) => vec![step(
            "Reject TCP connections without TLS: add these lines to .spec.postgresql.pg_hba in the Cluster resource \
             (the operator puts them before its own last rule)",
            &["hostnossl all all 0.0.0.0/0 reject", "hostnossl all all ::/0 reject"],
            Restart::No,
            "remove those two lines from .spec.postgresql.pg_hba",
            Some(CNPG_CONF_DOC),
        )],
        (PlatformName::Unknown, change) => vec![ChangeStep {
            title: format!(
                "pgtls could not tell the platform (see the evidence), so it shows no platform's commands: the change \
                 is {}",
                change.label()
            ),
            commands: Vec::new(),
            restart: Restart::NothingChanges,
            undo: "nothing to undo".to_string(),
            note: Some(
                "docs/platforms.md lists each platform's way; connect as a role that may ALTER SYSTEM to let pgtls \
                 tell a self-hosted server"
                    .to_string(),
            ),
        }],
    }
}

fn not_settable(platform: &str, why: &str, doc: &str) -> ChangeStep {
    ChangeStep {
        title: format!(
            "Not settable here: {platform} documents no setting for the minimum TLS version ({why}); pgtls does not \
             invent one"
        ),
        commands: Vec::new(),
        restart: Restart::NothingChanges,
        undo: "nothing to undo".to_string(),
        note: Some(format!(
            "ask the provider, or require TLS (--target tls-required) and upgrade the clients on TLS 1.2 ({doc})"
        )),
    }
}

/// A default DB parameter group cannot be modified: the first step, when the instance still uses one.
fn rds_steps(change: Change) -> Vec<ChangeStep> {
    let (param, value, reset) = match change {
        Change::MinTls13 => ("ssl_min_protocol_version", "TLSv1.3", "ssl_min_protocol_version"),
        Change::TlsRequired => ("rds.force_ssl", "1", "rds.force_ssl"),
    };
    vec![
        step(
            "Only if the instance uses a default DB parameter group (default.postgresNN), which cannot be modified: \
             create a custom group, attach it, reboot",
            &[
                "aws rds create-db-parameter-group --db-parameter-group-name <group> --db-parameter-group-family \
                 <family> --description \"TLS floor\"",
                "aws rds modify-db-instance --db-instance-identifier <instance> --db-parameter-group-name <group>",
                "aws rds reboot-db-instance --db-instance-identifier <instance>",
            ],
            Restart::Yes,
            "aws rds modify-db-instance --db-instance-identifier <instance> --db-parameter-group-name <previous-group> \
             and reboot",
            Some("<family> is the group family of the engine version, e.g. postgres16"),
        ),
        step(
            &format!("Set {param} in the instance's DB parameter group"),
            &[&format!(
                "aws rds modify-db-parameter-group --db-parameter-group-name <group> --parameters \
                 \"ParameterName={param},ParameterValue={value},ApplyMethod=immediate\""
            )],
            Restart::No,
            &format!(
                "aws rds reset-db-parameter-group --db-parameter-group-name <group> --parameters \
                 \"ParameterName={reset},ApplyMethod=immediate\""
            ),
            Some(&match change {
                Change::MinTls13 => format!("RDS for PostgreSQL accepts TLS 1.3 from version 16 ({RDS_SSL_DOC})"),
                Change::TlsRequired => format!("rds.force_ssl = 1 makes pg_hba.conf hostssl-only ({RDS_SSL_DOC})"),
            }),
        ),
    ]
}

/// Aurora keeps these parameters in the DB cluster parameter group.
fn aurora_steps(change: Change) -> Vec<ChangeStep> {
    let (param, value) = match change {
        Change::MinTls13 => ("ssl_min_protocol_version", "TLSv1.3"),
        Change::TlsRequired => ("rds.force_ssl", "1"),
    };
    vec![
        step(
            "Only if the cluster uses a default DB cluster parameter group, which cannot be modified: create a custom \
             one, attach it, reboot each instance",
            &[
                "aws rds create-db-cluster-parameter-group --db-cluster-parameter-group-name <group> \
                 --db-parameter-group-family <family> --description \"TLS floor\"",
                "aws rds modify-db-cluster --db-cluster-identifier <cluster> --db-cluster-parameter-group-name <group>",
                "aws rds reboot-db-instance --db-instance-identifier <instance>",
            ],
            Restart::Yes,
            "aws rds modify-db-cluster --db-cluster-identifier <cluster> --db-cluster-parameter-group-name \
             <previous-group> and reboot each instance",
            Some("<family> is the group family of the engine version, e.g. aurora-postgresql16"),
        ),
        step(
            &format!("Set {param} in the cluster's DB cluster parameter group"),
            &[&format!(
                "aws rds modify-db-cluster-parameter-group --db-cluster-parameter-group-name <group> --parameters \
                 \"ParameterName={param},ParameterValue={value},ApplyMethod=immediate\""
            )],
            Restart::No,
            &format!(
                "aws rds reset-db-cluster-parameter-group --db-cluster-parameter-group-name <group> --parameters \
                 \"ParameterName={param},ApplyMethod=immediate\""
            ),
            Some(
                "https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/AuroraPostgreSQL.Security.html \
                 (TLS settings of Aurora PostgreSQL)",
            ),
        ),
    ]
}

/// How to turn on `log_connections` on `platform` and bring its log to `--server-log` (managed services do not
/// allow `pg_read_file`).
pub fn log_steps(platform: PlatformName) -> Vec<ChangeStep> {
    match platform {
        PlatformName::SelfHosted => vec![step(
            "Log connections, then pass the log file to pgtls (or run pgtls as a role that may pg_read_file)",
            &[
                "ALTER SYSTEM SET log_connections = on; SELECT pg_reload_conf();",
                "pgtls ... --server-log /var/log/postgresql/postgresql-<version>-main.log",
            ],
            Restart::No,
            "ALTER SYSTEM RESET log_connections; SELECT pg_reload_conf();",
            None,
        )],
        PlatformName::Azure => vec![step(
            "Log connections, keep the server logs for download (server parameter logfiles.download_enable), list \
             them and download the current one",
            &[
                "az postgres flexible-server parameter set --resource-group <rg> --server-name <server> --name \
                 log_connections --value on",
                "az postgres flexible-server parameter set --resource-group <rg> --server-name <server> --name \
                 logfiles.download_enable --value on",
                "az postgres flexible-server server-logs list --resource-group <rg> --server-name <server>",
                "az postgres flexible-server server-logs download --resource-group <rg> --server-name <server> --name \
                 <serverlogs/file.log>",
                "pgtls ... --server-log <file.log>",
            ],
            Restart::No,
            "set log_connections and logfiles.download_enable back to off",
            Some("https://learn.microsoft.com/cli/azure/postgres/flexible-server/server-logs"),
        )],
        PlatformName::Rds | PlatformName::Aurora => {
            let group = if platform == PlatformName::Aurora {
                "aws rds modify-db-cluster-parameter-group --db-cluster-parameter-group-name <group>"
            } else {
                "aws rds modify-db-parameter-group --db-parameter-group-name <group>"
            };
            vec![step(
                "Log connections, then download the instance's current log file",
                &[
                    &format!(
                        "{group} --parameters \"ParameterName=log_connections,ParameterValue=1,ApplyMethod=immediate\""
                    ),
                    "aws rds describe-db-log-files --db-instance-identifier <instance>",
                    "aws rds download-db-log-file-portion --db-instance-identifier <instance> --log-file-name \
                     <error/postgresql.log.YYYY-MM-DD-HH> --starting-token 0 --output text > rds.log",
                    "pgtls ... --server-log rds.log",
                ],
                Restart::No,
                "set log_connections back to 0 in the same parameter group",
                Some("RDS writes the stderr format with its own log_line_prefix, which pgtls reads from the server"),
            )]
        }
        PlatformName::CloudSql => vec![step(
            "Log connections (--database-flags replaces every flag: list the instance's other flags too), then read \
             the postgres.log entries from Cloud Logging",
            &[
                "gcloud sql instances patch <instance> --database-flags=log_connections=on,<other-flags>",
                "gcloud logging read 'resource.type=\"cloudsql_database\" AND \
                 logName=\"projects/<project>/logs/cloudsql.googleapis.com%2Fpostgres.log\"' --format='value(textPayload)' \
                 > cloudsql.log",
                "pgtls ... --server-log cloudsql.log",
            ],
            Restart::No,
            "gcloud sql instances patch <instance> --database-flags=<other-flags> (or --clear-database-flags)",
            Some("gcloud logging read returns the newest entries first: sort the file by time before reading it"),
        )],
        PlatformName::AlloyDb => vec![step(
            "Log connections (--database-flags replaces every flag: list the instance's other flags too), then read \
             the instance's postgres.log entries from Cloud Logging",
            &[
                "gcloud alloydb instances update <instance> --cluster=<cluster> --region=<region> \
                 --database-flags=log_connections=on,<other-flags>",
                "gcloud logging read 'resource.type=\"alloydb.googleapis.com/Instance\" AND \
                 logName=\"projects/<project>/logs/alloydb.googleapis.com%2Fpostgres.log\"' --format='value(textPayload)' \
                 > alloydb.log",
                "pgtls ... --server-log alloydb.log",
            ],
            Restart::No,
            "update the instance's --database-flags without log_connections",
            Some("gcloud logging read returns the newest entries first: sort the file by time before reading it"),
        )],
        PlatformName::CloudNativePg => vec![step(
            "Log connections through the Cluster resource; the instance writes its log as JSON to the pod's output",
            &[
                "kubectl patch cluster <cluster> -n <namespace> --type merge -p \
                 '{\"spec\":{\"postgresql\":{\"parameters\":{\"log_connections\":\"on\"}}}}'",
                "kubectl logs <pod> -n <namespace> -f > cnpg.log",
            ],
            Restart::No,
            "remove log_connections from .spec.postgresql.parameters",
            Some(
                "CloudNativePG wraps each PostgreSQL log record in its own JSON line (the csvlog fields under \
                 `record`), which is not one of the formats --server-log reads (stderr, csvlog, jsonlog): pgtls \
                 cannot follow it yet",
            ),
        )],
        PlatformName::Unknown => vec![ChangeStep {
            title: "Turn on log_connections where the server's configuration lives, and pass its log to --server-log"
                .to_string(),
            commands: Vec::new(),
            restart: Restart::NothingChanges,
            undo: "nothing to undo".to_string(),
            note: Some("docs/platforms.md says how on each platform pgtls knows".to_string()),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Words that belong to one platform's tooling only.
    fn owns(platform: PlatformName) -> &'static [&'static str] {
        match platform {
            PlatformName::SelfHosted => &["ALTER SYSTEM", "pg_hba.conf"],
            PlatformName::Azure => &["az postgres"],
            PlatformName::Rds => &["modify-db-parameter-group", "modify-db-instance "],
            PlatformName::Aurora => &["db-cluster-parameter-group"],
            PlatformName::CloudSql => &["gcloud sql"],
            PlatformName::AlloyDb => &["gcloud alloydb"],
            PlatformName::CloudNativePg => &["kubectl"],
            PlatformName::Unknown => &[],
        }
    }

    fn text(steps: &[ChangeStep]) -> String {
        steps.iter().flat_map(|s| s.lines()).collect::<Vec<_>>().join("\n")
    }

    #[test]
    fn each_platform_gets_only_its_own_commands() {
        for platform in PlatformName::ALL {
            for change in [Change::MinTls13, Change::TlsRequired] {
                let commands: String = change_steps(platform, change)
                    .iter()
                    .chain(log_steps(platform).iter())
                    .flat_map(|s| s.commands.iter().cloned().chain([s.undo.clone()]))
                    .collect::<Vec<_>>()
                    .join("\n");
                for other in PlatformName::ALL.into_iter().filter(|o| *o != platform) {
                    for word in owns(other) {
                        // CloudNativePG says not to use ALTER SYSTEM, in its note, never in a command.
                        assert!(
                            !commands.contains(word),
                            "{platform:?}/{change:?} carries {other:?}'s {word}:\n{commands}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_issues_commands_are_there_verbatim() {
        let azure = text(&change_steps(PlatformName::Azure, Change::MinTls13));
        assert!(azure.contains(
            "az postgres flexible-server parameter set --resource-group <rg> --server-name <server> --name \
             ssl_min_protocol_version --value TLSv1.3"
        ));
        assert!(
            text(&change_steps(PlatformName::Azure, Change::TlsRequired))
                .contains("require_secure_transport --value on")
        );
        let rds = text(&change_steps(PlatformName::Rds, Change::MinTls13));
        assert!(rds.contains(
            "aws rds modify-db-parameter-group --db-parameter-group-name <group> --parameters \
             \"ParameterName=ssl_min_protocol_version,ParameterValue=TLSv1.3,ApplyMethod=immediate\""
        ));
        assert!(rds.contains("default DB parameter group") && rds.contains("reboot-db-instance"));
        assert!(text(&change_steps(PlatformName::Rds, Change::TlsRequired)).contains("ParameterName=rds.force_ssl"));
        assert!(
            text(&change_steps(PlatformName::Aurora, Change::MinTls13)).contains("modify-db-cluster-parameter-group")
        );
        assert!(
            text(&change_steps(PlatformName::CloudSql, Change::TlsRequired))
                .contains("gcloud sql instances patch <instance> --ssl-mode=ENCRYPTED_ONLY")
        );
        let self_hosted = text(&change_steps(PlatformName::SelfHosted, Change::MinTls13));
        assert!(self_hosted.contains("ALTER SYSTEM SET ssl_min_protocol_version = 'TLSv1.3';"));
        assert!(self_hosted.contains("SELECT pg_reload_conf();"));
        let cnpg = text(&change_steps(PlatformName::CloudNativePg, Change::MinTls13));
        assert!(cnpg.contains(".spec.postgresql.parameters") && cnpg.contains("1.21.2/1.22"));
    }

    #[test]
    fn google_services_say_not_settable_rather_than_invent_a_setting() {
        for platform in [PlatformName::CloudSql, PlatformName::AlloyDb] {
            let steps = change_steps(platform, Change::MinTls13);
            assert_eq!(steps.len(), 1);
            assert!(steps[0].title.starts_with("Not settable here"), "{steps:?}");
            assert!(steps[0].commands.is_empty());
            assert_eq!(steps[0].restart, Restart::NothingChanges);
        }
    }

    #[test]
    fn every_step_says_restart_and_undo() {
        for platform in PlatformName::ALL {
            for change in [Change::MinTls13, Change::TlsRequired] {
                for s in change_steps(platform, change).iter().chain(log_steps(platform).iter()) {
                    assert!(!s.undo.is_empty(), "{s:?}");
                    let lines = s.lines().join("\n");
                    assert!(lines.contains("restart: ") && lines.contains("undo: "), "{lines}");
                }
            }
        }
        // A reboot is a restart.
        assert_eq!(
            change_steps(PlatformName::Rds, Change::MinTls13)[0].restart,
            Restart::Yes
        );
    }
}
