//! Reads the platform's marks once per connection (see [`crate::analysis::platform`] for what they mean).

use std::collections::BTreeMap;

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use super::{CollectError, poll_error, sql};
use crate::analysis::platform::{self, AlterSystem, Marks};
use crate::model::Platform;

/// The platform of the server behind `client`. A statement the server refuses leaves the platform unknown, with
/// the reason as its evidence; a broken connection is the caller's error.
pub async fn detect(client: &Client, version_num: u32, superuser: bool) -> Result<Platform, CollectError> {
    match read(client, version_num, superuser).await {
        Ok(marks) => Ok(platform::classify(&marks)),
        Err(e) => match e.as_db_error() {
            Some(db) => Ok(platform::unreadable(db.message())),
            None => Err(poll_error(e)),
        },
    }
}

async fn read(client: &Client, version_num: u32, superuser: bool) -> Result<Marks, tokio_postgres::Error> {
    let roles: Vec<String> = platform::roles().into_iter().map(str::to_string).collect();
    let prefixes: Vec<String> = platform::SETTING_PREFIXES.iter().map(|p| p.to_string()).collect();
    let row = client
        .query_one(&sql::platform_marks(version_num), &[&roles, &prefixes])
        .await?;
    let mut marks = Marks {
        roles: row.try_get::<_, Vec<String>>("roles")?.into_iter().collect(),
        aurora_version: row.try_get("aurora_version")?,
        ..Marks::default()
    };
    let names: Vec<String> = row.try_get("setting_names")?;
    let values: Vec<Option<String>> = row.try_get("setting_values")?;
    marks.settings = names.into_iter().zip(values).collect();
    let granted: bool = row.try_get("alter_system_granted")?;
    marks.may_alter_system = match (superuser, granted) {
        (true, _) => AlterSystem::Superuser,
        (false, true) => AlterSystem::Granted,
        (false, false) => AlterSystem::No,
    };

    // Placeholders a provider's configuration sets do not appear in pg_settings: ask for each by name. Prepared
    // once; the executions are sent together.
    let probe = client.prepare(sql::PROBE_SETTING).await?;
    let mut names: Vec<&str> = platform::PROBED_SETTINGS.to_vec();
    names.extend(["ssl_cert_file", "archive_command"]);
    let params: Vec<[&(dyn tokio_postgres::types::ToSql + Sync); 1]> = names.iter().map(|n| [n as _]).collect();
    let answers = futures_util::future::join_all(params.iter().map(|p| client.query_one(&probe, p))).await;
    let mut probed: BTreeMap<&str, Probed> = BTreeMap::new();
    for (name, answer) in names.iter().zip(answers) {
        let probed_value = match answer {
            Ok(row) => match row.try_get::<_, Option<String>>(0)? {
                Some(value) => Probed::Value(value),
                None => Probed::Absent,
            },
            Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => Probed::Hidden,
            Err(e) => return Err(e),
        };
        probed.insert(name, probed_value);
    }
    for name in platform::PROBED_SETTINGS {
        match probed.remove(name) {
            Some(Probed::Value(v)) => {
                marks.settings.insert(name.to_string(), Some(v));
            }
            Some(Probed::Hidden) => {
                marks.settings.entry(name.to_string()).or_insert(None);
            }
            Some(Probed::Absent) | None => {}
        }
    }
    marks.ssl_cert_file = probed.remove("ssl_cert_file").and_then(Probed::value);
    marks.archive_command = probed.remove("archive_command").and_then(Probed::value);
    Ok(marks)
}

enum Probed {
    Value(String),
    Hidden,
    Absent,
}

impl Probed {
    fn value(self) -> Option<String> {
        match self {
            Probed::Value(v) if !v.is_empty() => Some(v),
            _ => None,
        }
    }
}
