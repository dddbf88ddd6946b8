//! The one `[[target]]` schema: a server pgtls watches, with every per-server option. A targets file
//! (`--targets FILE`) and the config file's `[[target]]` tables are read by the same type, so an option added for
//! one server (a pooler, a log, a bundle) is at once valid in both places.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::conn::params::ConnParams;

/// One server and everything pgtls needs to watch it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetEntry {
    /// The `target` label in metrics and the row in the Servers screen; default `host:port/dbname`.
    #[serde(default)]
    pub name: Option<String>,
    /// Anything psql accepts: a connection string, a URI, `service=NAME`.
    pub conninfo: String,
    /// The server's log file (connection lines, refused handshakes), followed through rotation.
    #[serde(default)]
    pub server_log: Option<PathBuf>,
    /// Connection strings of the admin consoles (`dbname=pgbouncer`) of poolers in front of this server.
    #[serde(default)]
    pub pgbouncer: Vec<String>,
    /// The log file of each of those poolers, in the same order (`--pgbouncer-log`): refused clients.
    #[serde(default)]
    pub pgbouncer_log: Vec<PathBuf>,
    /// Root bundles (PEM) that clients of this server ship, checked against the chain it presents.
    #[serde(default)]
    pub bundles: Vec<PathBuf>,
    /// This server's client ledger file.
    #[serde(default)]
    pub ledger: Option<PathBuf>,
}

/// The file read by `--targets`: only `[[target]]` tables.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetsFile {
    #[serde(default)]
    target: Vec<TargetEntry>,
}

/// Longest accepted target name: it becomes a label value and part of a file name.
pub const MAX_NAME_CHARS: usize = 128;

/// Why a targets file was not used; every variant names the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetsError {
    /// Missing, unreadable, not a regular file, too large or not UTF-8.
    #[error("targets {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: crate::files::TextFileError,
    },
    /// Not TOML, an unknown key or a value of the wrong type: file, line and key.
    #[error(transparent)]
    Syntax(#[from] crate::config::SyntaxError),
    /// An entry that names no server, or a bad or repeated name.
    #[error("targets {}: {source}", path.display())]
    Target { path: PathBuf, source: TargetError },
}

/// One `[[target]]` entry that cannot be watched, and which one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{which}: {problem}")]
pub struct TargetError {
    pub which: Which,
    pub problem: Problem,
}

/// An entry as the message names it: by its name, else by its place in the file (from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Which {
    Named(String),
    Numbered(usize),
}

impl std::fmt::Display for Which {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Which::Named(name) => write!(f, "target {}", crate::conn::text::quoted(name)),
            Which::Numbered(n) => write!(f, "target #{n}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("conninfo is empty")]
    EmptyConninfo,
    /// Paired by position: with one missing, every later log would be read as another pooler's.
    #[error(
        "pgbouncer_log needs one file per pgbouncer entry, in the same order ({poolers} pgbouncer, {logs} \
         pgbouncer_log)"
    )]
    UnpairedPoolerLogs { poolers: usize, logs: usize },
    #[error("name is empty")]
    EmptyName,
    #[error("name has control or bidi characters")]
    UnsafeName,
    #[error("name is longer than {MAX_NAME_CHARS} characters")]
    NameTooLong,
    #[error("name used twice")]
    DuplicateName,
}

/// Read a targets file; errors name the file, line and key, as the config's do.
pub fn load_file(path: &Path) -> Result<Vec<TargetEntry>, TargetsError> {
    let text = crate::files::read_small_text(path).map_err(|source| TargetsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_file(&text, path)
}

pub fn parse_file(text: &str, path: &Path) -> Result<Vec<TargetEntry>, TargetsError> {
    let file: TargetsFile =
        toml::from_str(text).map_err(|e| crate::config::describe_error(&e, text, "targets", path))?;
    validate(&file.target).map_err(|source| TargetsError::Target {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(file.target)
}

/// Every entry names a server; explicit names are printable, bounded and unique.
pub fn validate(entries: &[TargetEntry]) -> Result<(), TargetError> {
    let mut seen = BTreeSet::new();
    for (i, entry) in entries.iter().enumerate() {
        let fail = |problem| {
            let which = match &entry.name {
                Some(name) => Which::Named(name.clone()),
                None => Which::Numbered(i + 1),
            };
            Err(TargetError { which, problem })
        };
        if entry.conninfo.trim().is_empty() {
            return fail(Problem::EmptyConninfo);
        }
        if !entry.pgbouncer_log.is_empty() && entry.pgbouncer_log.len() != entry.pgbouncer.len() {
            return fail(Problem::UnpairedPoolerLogs {
                poolers: entry.pgbouncer.len(),
                logs: entry.pgbouncer_log.len(),
            });
        }
        if let Some(name) = &entry.name {
            if name.trim().is_empty() {
                return fail(Problem::EmptyName);
            }
            // A name becomes a label value and a screen cell: no control or bidi characters to escape there.
            if name.chars().any(crate::conn::text::is_unsafe_char) {
                return fail(Problem::UnsafeName);
            }
            if name.chars().count() > MAX_NAME_CHARS {
                return fail(Problem::NameTooLong);
            }
            if !seen.insert(name.as_str()) {
                return fail(Problem::DuplicateName);
            }
        }
    }
    Ok(())
}

/// The name a target gets when its entry gives none: `host:port/dbname`, as the dashboard's header says it.
pub fn default_name(params: &ConnParams) -> String {
    let (host, port) = params
        .targets
        .first()
        .map(|t| (t.host.clone(), t.port))
        .unwrap_or_else(|| (String::new(), 5432));
    format!("{host}:{port}/{}", params.dbname)
}

/// A file name for per-target state (ledger, journal) under a state directory. Only `[A-Za-z0-9._-]` survive, so a
/// name can neither leave the directory nor collide with a hidden file; a hash of the whole name keeps two names
/// that clean to the same text (`a/b`, `a_b`) apart.
pub fn file_stem(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{cleaned}-{:016x}", fnv1a(name.as_bytes()))
}

/// A hash of a target's name that is the same in every run and release (file names, probe schedules).
pub fn stable_hash(name: &str) -> u64 {
    fnv1a(name.as_bytes())
}

/// FNV-1a: stable across releases and platforms (std's hashers are not), which a file name must be.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<TargetEntry>, TargetsError> {
        parse_file(text, Path::new("/etc/pgtls/targets.toml"))
    }

    /// The entry's problem and the words a user reads.
    fn invalid(text: &str) -> (Problem, String) {
        let e = parse(text).unwrap_err();
        let TargetsError::Target { source, .. } = &e else {
            panic!("not an entry's problem: {e:?}")
        };
        (source.problem.clone(), e.to_string())
    }

    /// A file that is not the schema: the words a user reads.
    fn syntax(text: &str) -> String {
        match parse(text).unwrap_err() {
            e @ TargetsError::Syntax(_) => e.to_string(),
            other => panic!("not a syntax error: {other:?}"),
        }
    }

    #[test]
    fn the_issue_example_parses() {
        let targets = parse(
            r#"
[[target]]
name = "orders-primary"
conninfo = "service=orders"
server_log = "/var/log/postgresql/orders.log"
pgbouncer = ["host=pool dbname=pgbouncer"]
pgbouncer_log = ["/var/log/postgresql/pgbouncer.log"]
bundles = ["/etc/ssl/app-roots.pem"]

[[target]]
conninfo = "host=replica"
"#,
        )
        .unwrap();
        assert_eq!(targets.len(), 2);
        assert_eq!(targets[0].name.as_deref(), Some("orders-primary"));
        assert_eq!(targets[0].pgbouncer, vec!["host=pool dbname=pgbouncer".to_string()]);
        assert_eq!(targets[0].bundles, vec![PathBuf::from("/etc/ssl/app-roots.pem")]);
        assert_eq!(
            targets[0].pgbouncer_log,
            vec![PathBuf::from("/var/log/postgresql/pgbouncer.log")]
        );
        assert_eq!(targets[1].name, None);
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn errors_name_the_file_and_the_target() {
        let (problem, e) = invalid("[[target]]\nname = \"a\"\nconninfo = \"\"\n");
        assert_eq!(problem, Problem::EmptyConninfo);
        assert_eq!(e, "targets /etc/pgtls/targets.toml: target \"a\": conninfo is empty");
        let (problem, e) =
            invalid("[[target]]\nconninfo = \"x\"\nname = \"a\"\n[[target]]\nconninfo = \"y\"\nname = \"a\"\n");
        assert_eq!(problem, Problem::DuplicateName);
        assert!(e.ends_with("target \"a\": name used twice"), "{e}");
        let (problem, e) = invalid("[[target]]\nconninfo = \"x\"\nname = \"a\\u001b[2J\"\n");
        assert_eq!(problem, Problem::UnsafeName);
        assert!(e.contains("control or bidi characters") && !e.contains('\u{1b}'), "{e}");
        let e = syntax("[[target]]\nconninfo = \"x\"\nlog = \"/x\"\n");
        assert!(
            e.starts_with("targets /etc/pgtls/targets.toml: line 3") && e.contains("unknown field"),
            "{e}"
        );
        let (problem, e) = invalid("[[target]]\nconninfo = \"x\"\npgbouncer_log = [\"/var/log/p.log\"]\n");
        assert_eq!(problem, Problem::UnpairedPoolerLogs { poolers: 0, logs: 1 });
        assert!(
            e.ends_with("target #1: pgbouncer_log needs one file per pgbouncer entry, in the same order (0 pgbouncer, 1 pgbouncer_log)"),
            "{e}"
        );
        let e = syntax("[[target]]\nname = \"b\"\n");
        assert!(e.contains("conninfo"), "{e}");
        let e = syntax("[[server]]\nconninfo = \"x\"\n");
        assert!(e.contains("unknown field"), "{e}");
    }

    #[test]
    fn file_stems_stay_in_the_directory_and_apart() {
        for hostile in [
            "../../etc/passwd",
            "/abs",
            ".hidden",
            "a/b",
            "a_b",
            "naïve",
            "",
            "x\u{0}y",
            "CON",
        ] {
            let stem = file_stem(hostile);
            assert!(
                stem.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')),
                "{hostile:?} -> {stem}"
            );
            assert!(!stem.starts_with('.'), "{stem}");
        }
        assert_ne!(file_stem("a/b"), file_stem("a_b"));
        assert_eq!(file_stem("orders-primary"), file_stem("orders-primary"));
        assert!(file_stem(&"x".repeat(10_000)).len() < 100);
    }
}
