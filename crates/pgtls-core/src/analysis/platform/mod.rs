//! Which platform a server runs on, from the marks it shows a monitor, and how the floor is raised there.
//!
//! The collector reads the [`Marks`] once per connection (`pgtls_collect::collect::platform`); [`classify`] turns
//! them into a [`Platform`]; [`steps::change_steps`] and [`steps::log_steps`] say what to do on it. Everything here
//! is a function of its arguments.

pub mod steps;

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{Platform, PlatformName};

pub use steps::{ChangeStep, Restart, change_steps, log_steps};

/// What the server showed, as the collector read it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Marks {
    /// Provider settings the server knows (by name, [`PROBED_SETTINGS`] and any name under [`SETTING_PREFIXES`]):
    /// `Some(value)`, or `None` when it exists but the role may not read it.
    pub settings: BTreeMap<String, Option<String>>,
    /// The roles of [`roles()`] that exist.
    pub roles: BTreeSet<String>,
    /// `pg_catalog.aurora_version()` exists. Only pg_catalog counts: a function of that name anywhere else may
    /// have been planted by a database user, and pgtls never calls it anyway.
    pub aurora_version: bool,
    /// `ssl_cert_file` as read (it is readable by every role), `None` when it could not be.
    pub ssl_cert_file: Option<String>,
    /// `archive_command`, `None` when hidden from the role (it needs pg_read_all_settings) or unset.
    pub archive_command: Option<String>,
    /// The monitor's role may `ALTER SYSTEM SET ssl_min_protocol_version`: a superuser, or (15+) granted that.
    pub may_alter_system: AlterSystem,
}

/// Why the monitor may, or may not, run `ALTER SYSTEM`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AlterSystem {
    Superuser,
    /// PostgreSQL 15+: `GRANT ALTER SYSTEM ON PARAMETER ssl_min_protocol_version`.
    Granted,
    #[default]
    No,
}

/// The provider a mark belongs to. Aurora carries RDS's marks too, so both are one family here, told apart by
/// `aurora_version()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Family {
    Azure,
    Aws,
    CloudSql,
    AlloyDb,
    CloudNativePg,
}

/// A setting whose existence marks a provider, with the provider's page that names it.
struct SettingMark {
    name: &'static str,
    family: Family,
    doc: &'static str,
}

/// Settings probed by name with `current_setting(name, true)`: a provider's placeholder need not appear in
/// pg_settings. `require_secure_transport` exists on Azure flexible server only (vanilla PostgreSQL answers NULL).
pub const PROBED_SETTINGS: &[&str] = &[
    "azure.extensions",
    "require_secure_transport",
    "rds.extensions",
    "rds.force_ssl",
    "cloudsql.iam_authentication",
    "alloydb.iam_authentication",
];

const SETTING_MARKS: &[SettingMark] = &[
    SettingMark {
        name: "azure.extensions",
        family: Family::Azure,
        doc: "https://learn.microsoft.com/azure/postgresql/extensions/how-to-allow-extensions",
    },
    SettingMark {
        name: "require_secure_transport",
        family: Family::Azure,
        doc: "https://github.com/MicrosoftDocs/azure-docs/blob/main/articles/postgresql/flexible-server/how-to-connect-tls-ssl.md",
    },
    SettingMark {
        name: "rds.extensions",
        family: Family::Aws,
        // "SHOW rds.extensions;" lists the extensions RDS supports.
        doc: "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/PostgreSQL.Concepts.General.FeatureSupport.Extensions.html",
    },
    SettingMark {
        name: "rds.force_ssl",
        family: Family::Aws,
        doc: "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/PostgreSQL.Concepts.General.SSL.html",
    },
    SettingMark {
        name: "cloudsql.iam_authentication",
        family: Family::CloudSql,
        doc: "https://cloud.google.com/sql/docs/postgres/create-edit-iam-instances",
    },
    SettingMark {
        name: "alloydb.iam_authentication",
        family: Family::AlloyDb,
        doc: "https://cloud.google.com/alloydb/docs/reference/alloydb-flags",
    },
];

/// Name prefixes of settings that only a provider's own modules define (read from pg_settings, where real
/// settings appear): each page lists settings under that prefix.
pub const SETTING_PREFIXES: &[&str] = &["azure.", "rds.", "cloudsql.", "alloydb."];

fn prefix_family(name: &str) -> Option<(Family, &'static str)> {
    if name.starts_with("azure.") {
        // Lists azure.extensions among the server parameters.
        Some((
            Family::Azure,
            "https://learn.microsoft.com/azure/postgresql/extensions/how-to-allow-extensions",
        ))
    } else if name.starts_with("rds.") {
        // rds.force_ssl, among RDS's own parameters.
        Some((
            Family::Aws,
            "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/PostgreSQL.Concepts.General.SSL.html",
        ))
    } else if name.starts_with("cloudsql.") {
        // cloudsql.iam_authentication and the other cloudsql.* flags.
        Some((
            Family::CloudSql,
            "https://cloud.google.com/sql/docs/postgres/create-edit-iam-instances",
        ))
    } else if name.starts_with("alloydb.") {
        // The alloydb.* flags (alloydb.iam_authentication, alloydb.enable_pgaudit, ...).
        Some((
            Family::AlloyDb,
            "https://cloud.google.com/alloydb/docs/reference/alloydb-flags",
        ))
    } else {
        None
    }
}

/// A role whose existence marks a provider.
struct RoleMark {
    name: &'static str,
    family: Family,
    /// Marks on its own; `false` for a name anyone might create (CloudNativePG's `streaming_replica`), which only
    /// backs up its family's other marks.
    decisive: bool,
    doc: &'static str,
}

const ROLE_MARKS: &[RoleMark] = &[
    // "Your Azure Database for PostgreSQL server is created with three default roles: azure_pg_admin, azuresu, ..."
    RoleMark {
        name: "azure_pg_admin",
        family: Family::Azure,
        decisive: true,
        doc: "https://learn.microsoft.com/en-us/training/modules/secure-azure-database-for-postgresql/3-describe-built-server-roles",
    },
    RoleMark {
        name: "azuresu",
        family: Family::Azure,
        decisive: true,
        doc: "https://learn.microsoft.com/en-us/training/modules/secure-azure-database-for-postgresql/3-describe-built-server-roles",
    },
    // The same page exists in the Aurora user guide: Aurora carries it too.
    RoleMark {
        name: "rds_superuser",
        family: Family::Aws,
        decisive: true,
        doc: "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/Appendix.PostgreSQL.CommonDBATasks.Roles.rds_superuser.html",
    },
    RoleMark {
        name: "cloudsqlsuperuser",
        family: Family::CloudSql,
        decisive: true,
        doc: "https://cloud.google.com/sql/docs/postgres/users",
    },
    RoleMark {
        name: "alloydbsuperuser",
        family: Family::AlloyDb,
        decisive: true,
        doc: "https://cloud.google.com/alloydb/docs/database-users/about",
    },
    // The operator's replication user, authenticated by certificate; with the /controller/ paths below.
    RoleMark {
        name: "streaming_replica",
        family: Family::CloudNativePg,
        decisive: false,
        doc: "https://cloudnative-pg.io/documentation/current/certificates",
    },
];

/// The roles the collector looks up in pg_roles.
pub fn roles() -> Vec<&'static str> {
    ROLE_MARKS.iter().map(|r| r.name).collect()
}

/// CloudNativePG mounts its certificates and its own binary under /controller/ in every instance's pod:
/// `ssl_cert_file = '/controller/certificates/server.crt'` and `archive_command = '/controller/manager wal-archive
/// ...'`. https://cloudnative-pg.io/documentation/current/postgresql_conf (the fixed parameters the operator sets).
const CNPG_DOC: &str = "https://cloudnative-pg.io/documentation/current/postgresql_conf";
const CNPG_PATH: &str = "/controller/";

/// Azure's server parameters list `ssl_cert_file` as read-only `/datadrive/certs/cert.pem`.
const AZURE_CERT_DIR: &str = "/datadrive/certs/";
const AZURE_SSL_PARAMS_DOC: &str = "https://github.com/MicrosoftDocs/azure-databases-docs/blob/main/articles/postgresql/flexible-server/includes/param-12-connections-authentication-ssl.md";

/// `aurora_version()`: "Returns the string value of the Amazon Aurora PostgreSQL-Compatible Edition version number."
const AURORA_DOC: &str = "https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora_version.html";

/// The platform the marks tell, with every mark as evidence. Marks of two providers give `Unknown`, never a guess;
/// no mark at all gives `SelfHosted` only when the monitor's role may `ALTER SYSTEM` (which no managed service
/// grants), else `Unknown`.
pub fn classify(marks: &Marks) -> Platform {
    let mut found: Vec<(Family, String)> = Vec::new();
    let mut backing: Vec<(Family, String)> = Vec::new();

    if marks.aurora_version {
        found.push((
            Family::Aws,
            format!("function pg_catalog.aurora_version() exists ({AURORA_DOC})"),
        ));
    }
    for (name, value) in &marks.settings {
        let state = if value.is_some() {
            "exists"
        } else {
            "exists (hidden from this role)"
        };
        let known = SETTING_MARKS.iter().find(|m| m.name == name.as_str());
        let mark = known.map(|m| (m.family, m.doc)).or_else(|| prefix_family(name));
        if let Some((family, doc)) = mark {
            found.push((family, format!("setting {name} {state} ({doc})")));
        }
    }
    for role in ROLE_MARKS {
        if marks.roles.contains(role.name) {
            let line = format!("role {} exists ({})", role.name, role.doc);
            if role.decisive {
                found.push((role.family, line));
            } else {
                backing.push((role.family, line));
            }
        }
    }
    if marks
        .ssl_cert_file
        .as_deref()
        .is_some_and(|f| f.starts_with(AZURE_CERT_DIR))
    {
        found.push((
            Family::Azure,
            format!("ssl_cert_file is under {AZURE_CERT_DIR} ({AZURE_SSL_PARAMS_DOC})"),
        ));
    }
    if marks.ssl_cert_file.as_deref().is_some_and(|f| f.starts_with(CNPG_PATH)) {
        found.push((
            Family::CloudNativePg,
            format!("ssl_cert_file is under {CNPG_PATH} ({CNPG_DOC})"),
        ));
    }
    if marks
        .archive_command
        .as_deref()
        .is_some_and(|c| c.contains("/controller/manager"))
    {
        found.push((
            Family::CloudNativePg,
            format!("archive_command runs /controller/manager ({CNPG_DOC})"),
        ));
    }

    let families: BTreeSet<Family> = found.iter().map(|(f, _)| *f).collect();
    let mut evidence: Vec<String> = found.iter().map(|(_, e)| e.clone()).collect();
    match families.len() {
        0 => {
            let name = match marks.may_alter_system {
                AlterSystem::Superuser => {
                    evidence
                        .push("no provider's mark; the monitor's role is a superuser, so it may ALTER SYSTEM".into());
                    PlatformName::SelfHosted
                }
                AlterSystem::Granted => {
                    evidence.push(
                        "no provider's mark; the monitor's role has ALTER SYSTEM on ssl_min_protocol_version".into(),
                    );
                    PlatformName::SelfHosted
                }
                AlterSystem::No => {
                    evidence.push(
                        "no provider's mark, and the monitor's role may not ALTER SYSTEM: a self-hosted server and a \
                         managed service pgtls does not know look the same from here"
                            .into(),
                    );
                    PlatformName::Unknown
                }
            };
            // A lone streaming_replica role is worth saying, not worth deciding on.
            evidence.extend(backing.into_iter().map(|(_, e)| e));
            Platform { name, evidence }
        }
        1 => {
            let family = found[0].0;
            evidence.extend(backing.into_iter().filter(|(f, _)| *f == family).map(|(_, e)| e));
            let name = match family {
                Family::Azure => PlatformName::Azure,
                Family::Aws if marks.aurora_version => PlatformName::Aurora,
                Family::Aws => PlatformName::Rds,
                Family::CloudSql => PlatformName::CloudSql,
                Family::AlloyDb => PlatformName::AlloyDb,
                Family::CloudNativePg => PlatformName::CloudNativePg,
            };
            Platform { name, evidence }
        }
        _ => {
            let names: Vec<&str> = families.iter().map(|f| family_label(*f)).collect();
            evidence.insert(
                0,
                format!(
                    "marks of more than one platform ({}): pgtls does not guess",
                    names.join(", ")
                ),
            );
            evidence.extend(backing.into_iter().map(|(_, e)| e));
            Platform {
                name: PlatformName::Unknown,
                evidence,
            }
        }
    }
}

fn family_label(family: Family) -> &'static str {
    match family {
        Family::Azure => "Azure",
        Family::Aws => "Amazon RDS/Aurora",
        Family::CloudSql => "Cloud SQL",
        Family::AlloyDb => "AlloyDB",
        Family::CloudNativePg => "CloudNativePG",
    }
}

/// When the marks could not be read at all: unknown, and why.
pub fn unreadable(reason: &str) -> Platform {
    Platform {
        name: PlatformName::Unknown,
        evidence: vec![format!("the platform's marks could not be read: {reason}")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_setting(name: &str) -> Marks {
        let mut m = Marks::default();
        m.settings.insert(name.to_string(), Some("x".to_string()));
        m
    }

    #[test]
    fn each_provider_is_told_by_its_own_marks() {
        assert_eq!(classify(&with_setting("azure.extensions")).name, PlatformName::Azure);
        assert_eq!(
            classify(&with_setting("require_secure_transport")).name,
            PlatformName::Azure
        );
        assert_eq!(classify(&with_setting("rds.force_ssl")).name, PlatformName::Rds);
        assert_eq!(
            classify(&with_setting("cloudsql.iam_authentication")).name,
            PlatformName::CloudSql
        );
        assert_eq!(
            classify(&with_setting("cloudsql.enable_pgaudit")).name,
            PlatformName::CloudSql
        );
        assert_eq!(
            classify(&with_setting("alloydb.iam_authentication")).name,
            PlatformName::AlloyDb
        );
        let mut role = Marks::default();
        role.roles.insert("cloudsqlsuperuser".into());
        assert_eq!(classify(&role).name, PlatformName::CloudSql);
    }

    #[test]
    fn aurora_is_tested_before_rds_whose_marks_it_carries() {
        let mut m = with_setting("rds.extensions");
        m.roles.insert("rds_superuser".into());
        assert_eq!(classify(&m).name, PlatformName::Rds);
        m.aurora_version = true;
        let p = classify(&m);
        assert_eq!(p.name, PlatformName::Aurora);
        assert!(p.evidence.iter().any(|e| e.contains("aurora_version")), "{p:?}");
    }

    #[test]
    fn marks_that_disagree_give_unknown() {
        let mut m = with_setting("azure.extensions");
        m.roles.insert("rds_superuser".into());
        m.may_alter_system = AlterSystem::Superuser;
        let p = classify(&m);
        assert_eq!(p.name, PlatformName::Unknown);
        assert!(
            p.evidence[0].contains("Azure") && p.evidence[0].contains("RDS"),
            "{p:?}"
        );
        // Aurora's function with Cloud SQL's role is no Aurora either.
        let mut m = Marks {
            aurora_version: true,
            ..Marks::default()
        };
        m.roles.insert("cloudsqlsuperuser".into());
        assert_eq!(classify(&m).name, PlatformName::Unknown);
    }

    #[test]
    fn cloudnativepg_needs_its_paths_and_a_lone_replica_role_decides_nothing() {
        let mut m = Marks {
            may_alter_system: AlterSystem::Superuser,
            ..Marks::default()
        };
        m.roles.insert("streaming_replica".into());
        let p = classify(&m);
        assert_eq!(p.name, PlatformName::SelfHosted);
        m.ssl_cert_file = Some("/controller/certificates/server.crt".into());
        let p = classify(&m);
        assert_eq!(p.name, PlatformName::CloudNativePg);
        assert!(p.evidence.iter().any(|e| e.contains("streaming_replica")), "{p:?}");
        let only_archive = Marks {
            archive_command: Some(
                "/controller/manager wal-archive --log-destination /controller/log/postgres.json %p".into(),
            ),
            ..Marks::default()
        };
        assert_eq!(classify(&only_archive).name, PlatformName::CloudNativePg);
    }

    #[test]
    fn self_hosted_needs_a_role_that_may_alter_system() {
        let none = Marks::default();
        assert_eq!(classify(&none).name, PlatformName::Unknown);
        for how in [AlterSystem::Superuser, AlterSystem::Granted] {
            let m = Marks {
                may_alter_system: how,
                ..Marks::default()
            };
            assert_eq!(classify(&m).name, PlatformName::SelfHosted);
        }
        // A superuser on a managed service is still that service: the mark decides.
        let mut m = with_setting("azure.extensions");
        m.may_alter_system = AlterSystem::Superuser;
        assert_eq!(classify(&m).name, PlatformName::Azure);
    }

    #[test]
    fn azures_certificate_directory_marks_azure() {
        let m = Marks {
            ssl_cert_file: Some("/datadrive/certs/cert.pem".into()),
            may_alter_system: AlterSystem::Superuser,
            ..Marks::default()
        };
        assert_eq!(classify(&m).name, PlatformName::Azure);
    }

    #[test]
    fn a_hidden_setting_still_marks() {
        let mut m = Marks::default();
        m.settings.insert("rds.force_ssl".into(), None);
        let p = classify(&m);
        assert_eq!(p.name, PlatformName::Rds);
        assert!(p.evidence[0].contains("hidden"), "{p:?}");
    }

    #[test]
    fn every_rule_names_its_page() {
        for m in SETTING_MARKS {
            assert!(m.doc.starts_with("https://"), "{}", m.name);
        }
        for r in ROLE_MARKS {
            assert!(r.doc.starts_with("https://"), "{}", r.name);
        }
        for name in PROBED_SETTINGS {
            assert!(
                SETTING_MARKS.iter().any(|m| m.name == *name),
                "{name} probed but not a mark"
            );
        }
    }
}
