//! What several commands read from their arguments the same way (the poll interval and timeout, the plan of targets
//! for `serve` and the dashboard over several servers), so commands never call into each other for it.

use std::collections::BTreeSet;
use std::time::Duration;

use super::Failure;
use crate::cli::ConnArgs;
use crate::collect::engine;
use crate::collect::fleet::Planned;
use crate::config::Config;
use crate::conn::params::Environment;
use crate::targets::{self, TargetEntry};

/// Every target, resolved and named, in order: the arguments', the targets file's, the config's. A String: the CLI
/// edge, where each typed error below is given the target or flag it came from and shown as one usage line.
pub(super) fn plan(
    conn: &ConnArgs,
    targets_file: Option<&std::path::Path>,
    config: &Config,
) -> Result<Vec<Planned>, String> {
    let env = Environment::from_process();
    let mut planned = Vec::new();
    let from_file = match targets_file {
        Some(path) => targets::load_file(path).map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    if conn.conninfo.len() <= 1 && from_file.is_empty() && config.targets.is_empty() {
        // One server: exactly as the dashboard resolves it, psql's flags included.
        let params = conn.resolve(&env)?;
        let entry = TargetEntry {
            conninfo: conn.conninfo.first().cloned().unwrap_or_default(),
            ..TargetEntry::default()
        };
        let name = engine::name_of(&entry, &params);
        planned.push(Planned { entry, params, name });
        return Ok(planned);
    }
    let entries = conn
        .conninfo
        .iter()
        .map(|conninfo| TargetEntry {
            conninfo: conninfo.clone(),
            ..TargetEntry::default()
        })
        .chain(from_file)
        .chain(config.targets.iter().cloned());
    let mut names = BTreeSet::new();
    for entry in entries {
        let params = engine::resolve_entry(&entry, &env).map_err(|e| {
            format!(
                "target {}: {e}",
                crate::conn::text::quoted(entry.name.as_deref().unwrap_or(&entry.conninfo))
            )
        })?;
        let name = engine::name_of(&entry, &params);
        for bundle in &entry.bundles {
            crate::probe::bundles::read_bundle(bundle)
                .map_err(|e| format!("target {}: {e}", crate::conn::text::quoted(&name)))?;
        }
        // The engine resolves them again when it starts; a mistake in the file is refused here, whole.
        crate::collect::pooler::Poolers::resolve(&entry.pgbouncer, &env)
            .and_then(|p| p.with_logs(&entry.pgbouncer_log))
            .map_err(|e| format!("target {}: {e}", crate::conn::text::quoted(&name)))?;
        if !names.insert(name.clone()) {
            return Err(format!(
                "two targets are named {}: give each a name in the targets file",
                crate::conn::text::quoted(&name)
            ));
        }
        planned.push(Planned { entry, params, name });
    }
    Ok(planned)
}

pub(super) fn poll_timeout(seconds: f64) -> Result<Duration, Failure> {
    if seconds.is_finite() && (1.0..=3600.0).contains(&seconds) {
        Ok(Duration::from_secs_f64(seconds))
    } else {
        Err(Failure::usage(format!(
            "--poll-timeout must be between 1 and 3600 seconds, not {seconds}"
        )))
    }
}

pub(super) fn interval(seconds: f64) -> Result<Duration, Failure> {
    if seconds.is_finite() && (0.1..=3600.0).contains(&seconds) {
        Ok(Duration::from_secs_f64(seconds))
    } else {
        Err(Failure::usage(format!(
            "--interval must be between 0.1 and 3600 seconds, not {seconds}"
        )))
    }
}
