//! The TOML configuration: alert rules, the ledger's client key and the what-if's evidence window.
//!
//! Looked up at `--config PATH`, else `$XDG_CONFIG_HOME/pgtls/config.toml`, else
//! `~/.config/pgtls/config.toml`; without a file the documented defaults apply. Errors name the
//! file, the line and the key.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

// The `[alerts]` table's types belong to the alert rules that read them; the configuration only gathers the tables.
pub use crate::analysis::alerts::config::{AlertsConfig, Mute, RuleConfig, RuleSeverity};

/// What the example says before its alert rules.
const EXAMPLE_HEAD: &str = r#"# pgtls configuration (all keys optional; these are the defaults)

read_only = false            # true: K and C (terminate, cancel a session) are off, as with --read-only

[alerts]
bell = false                 # ring the terminal bell when a new critical alert appears
expiry_warn_days = 30        # probe: certificates expiring within this many days

"#;

/// What the example says after its alert rules.
const EXAMPLE_TAIL: &str = r#"[alerts.mute]                # sessions of these applications or users never raise session alerts
applications = []
users = []

[ledger]
key = ["user", "database", "application", "address"]   # drop "address" for pooled apps

[whatif]
min_evidence = "24h"         # watch at least this long before calling a change safe

# Servers to watch (none by default; a --targets file holds the same tables):
# [[target]]
# name = "orders-primary"                        # default host:port/dbname
# conninfo = "service=orders"                    # anything psql accepts
# server_log = "/var/log/postgresql/orders.log"
# pgbouncer = ["host=pool port=6432 dbname=pgbouncer"]
# pgbouncer_log = ["/var/log/postgresql/pgbouncer.log"]   # one per pgbouncer entry, same order
# bundles = ["/etc/ssl/certs/app-roots.pem"]
# ledger = "/var/lib/pgtls/orders.ledger"
"#;

/// An example with every default, printed by `pgtls config --example` and shown in docs/configuration.md: every alert
/// rule with its default severity, from the rule table the alerts take it from.
pub fn example() -> String {
    use crate::analysis::alerts::{RULES, Severity};
    let mut out = String::from(EXAMPLE_HEAD);
    // Commented out: the defaults need no line, and an explicit severity would pin one the rule may raise on its own
    // (after_replication turns critical when a standby is refused).
    out.push_str(
        "# Every rule, with its default severity; to change one, uncomment its line: severity = \"critical\" |\n\
         # \"warning\" | \"info\" | \"off\", and the rule fires when its count is above `threshold`.\n\
         [alerts.rules]\n",
    );
    let width = RULES.iter().map(|r| r.key.len()).max().unwrap_or(0);
    for rule in RULES {
        let severity = match rule.severity {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        };
        out.push_str(&format!(
            "# {:width$} = {{ severity = {:<11} threshold = 0 }}   # {}\n",
            rule.key,
            format!("\"{severity}\","),
            rule.about
        ));
    }
    out.push('\n');
    out.push_str(EXAMPLE_TAIL);
    out
}

/// The alert rules as docs/configuration.md lists them: name, default severity, what it counts.
pub fn rules_markdown_table() -> String {
    let mut out = String::from("| rule | default severity | raised for |\n|---|---|---|\n");
    for rule in crate::analysis::alerts::RULES {
        out.push_str(&format!(
            "| `{}` | {:?} | {} |\n",
            rule.key,
            rule.severity,
            rule.about.replace('|', "\\|")
        ));
    }
    out
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The dashboard never signals a backend (`K`, `C`), as with `--read-only`.
    pub read_only: bool,
    pub alerts: AlertsConfig,
    pub ledger: LedgerConfig,
    pub whatif: WhatIfConfig,
    /// Servers to watch, each with its own options (the same `[[target]]` tables a `--targets` file holds).
    #[serde(rename = "target")]
    pub targets: Vec<crate::targets::TargetEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LedgerConfig {
    pub key: Vec<String>,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig {
            key: ["user", "database", "application", "address"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WhatIfConfig {
    /// e.g. "24h", "90m", "7d".
    pub min_evidence: String,
}

impl Default for WhatIfConfig {
    fn default() -> Self {
        WhatIfConfig {
            min_evidence: "24h".to_string(),
        }
    }
}

/// Why the configuration was not used. Every variant names the file; the words are the one line users read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Missing, unreadable, not a regular file, too large or not UTF-8.
    #[error("config {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: crate::files::TextFileError,
    },
    /// Not TOML, an unknown key or a value of the wrong type: file, line and key.
    #[error(transparent)]
    Syntax(#[from] SyntaxError),
    /// A `[[target]]` table that names no server, or a bad or repeated name.
    #[error("config {}: {source}", path.display())]
    Target {
        path: PathBuf,
        source: crate::targets::TargetError,
    },
    /// `ledger.key` names no field or an unknown one.
    #[error("config {}: key ledger.key: {source}", path.display())]
    LedgerKey {
        path: PathBuf,
        source: crate::analysis::ledger::KeyError,
    },
    /// `whatif.min_evidence` is not a duration pgtls accepts.
    #[error("config {}: key whatif.min_evidence: {source}", path.display())]
    MinEvidence { path: PathBuf, source: DurationError },
    /// `[alerts.rules.NAME]` for a rule that does not exist.
    #[error(
        "config {}: key alerts.rules.{name}: unknown rule (known: {})",
        path.display(),
        crate::analysis::alerts::RULE_KEYS.join(", ")
    )]
    UnknownRule { path: PathBuf, name: String },
}

/// A TOML file pgtls could not read as its schema: which file, where, and the parser's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SyntaxError {
    /// "config" or "targets": the word the message starts with.
    pub file: &'static str,
    pub path: PathBuf,
    /// 1-based; none when the parser gave no position.
    pub line: Option<usize>,
    /// `table.key` where the error is, empty when the line names none.
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (file, path, message) = (self.file, self.path.display(), &self.message);
        match self.line {
            None => write!(f, "{file} {path}: {message}"),
            Some(line) if self.key.is_empty() => write!(f, "{file} {path}: line {line}: {message}"),
            Some(line) => write!(f, "{file} {path}: line {line}, key {}: {message}", self.key),
        }
    }
}

/// A duration pgtls does not accept (`--watch`, `--min-evidence`, `whatif.min_evidence`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("\"{text}\" is not a duration like 90s, 15m, 24h or 7d")]
    NotADuration { text: String },
    #[error("\"{text}\" is too long (at most {MAX_DURATION_DAYS}d)")]
    TooLong { text: String },
}

/// A `--since` that is not a time pgtls reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{text}\" is not a time like 2026-12-02T10:00:00Z or \"2026-12-02 10:00\" (UTC)")]
pub struct TimeError {
    pub text: String,
}

impl Config {
    /// `explicit`, else the XDG location if it exists, else defaults. Returns the file used.
    pub fn load(explicit: Option<&Path>) -> Result<(Config, Option<PathBuf>), ConfigError> {
        let path = match explicit {
            Some(p) => Some(p.to_path_buf()),
            None => default_path().filter(|p| p.exists()),
        };
        let Some(path) = path else {
            return Ok((Config::default(), None));
        };
        let text = crate::files::read_small_text(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let config = Config::parse(&text, &path)?;
        Ok((config, Some(path)))
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| describe_error(&e, text, "config", path))?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let path = || path.to_path_buf();
        crate::targets::validate(&self.targets).map_err(|source| ConfigError::Target { path: path(), source })?;
        crate::analysis::ledger::KeyFields::from_names(&self.ledger.key)
            .map_err(|source| ConfigError::LedgerKey { path: path(), source })?;
        parse_duration(&self.whatif.min_evidence)
            .map_err(|source| ConfigError::MinEvidence { path: path(), source })?;
        if let Some(name) = self
            .alerts
            .rules
            .keys()
            .find(|name| !crate::analysis::alerts::RULE_KEYS.contains(&name.as_str()))
        {
            return Err(ConfigError::UnknownRule {
                path: path(),
                name: name.clone(),
            });
        }
        Ok(())
    }

    pub fn min_evidence(&self) -> chrono::Duration {
        parse_duration(&self.whatif.min_evidence).unwrap_or(chrono::Duration::hours(24))
    }
}

pub fn default_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("pgtls").join("config.toml"))
}

/// The longest duration accepted anywhere (`--watch`, `--min-evidence`, `whatif.min_evidence`): ten years is
/// already absurd for watching a server, and a bound keeps every later sum (deadlines, ages) far from overflow.
pub const MAX_DURATION_DAYS: i64 = 3650;

/// "90s", "15m", "24h", "7d" (whole numbers), at most [`MAX_DURATION_DAYS`].
pub fn parse_duration(text: &str) -> Result<chrono::Duration, DurationError> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let not_a_duration = || DurationError::NotADuration { text: text.to_string() };
    let too_long = || DurationError::TooLong { text: text.to_string() };
    let seconds_per_unit: i64 = match unit {
        "s" | "" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(not_a_duration()),
    };
    // All digits: a parse failure is either empty text or a number beyond i64, which is too long.
    let n: i64 = match number.parse() {
        Ok(n) => n,
        Err(_) if number.is_empty() => return Err(not_a_duration()),
        Err(_) => return Err(too_long()),
    };
    let seconds = n.checked_mul(seconds_per_unit).ok_or_else(too_long)?;
    if seconds > MAX_DURATION_DAYS * 86_400 {
        return Err(too_long());
    }
    Ok(chrono::Duration::seconds(seconds))
}

/// `--since`: RFC 3339 (`2026-12-02T10:00:00+01:00`) or `YYYY-MM-DD HH:MM[:SS]`, the latter in UTC, as the server's
/// log and pgtls's own times are shown, so that a time copied from either means the same instant.
pub fn parse_since(text: &str) -> Result<chrono::DateTime<chrono::Utc>, TimeError> {
    let text = text.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    let bare = text.strip_suffix("UTC").unwrap_or(text).trim();
    [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|f| chrono::NaiveDateTime::parse_from_str(bare, f).ok())
    .map(|t| t.and_utc())
    .ok_or_else(|| TimeError { text: text.to_string() })
}

/// One line: file, line, key, and what is wrong.
pub(crate) fn describe_error(e: &toml::de::Error, text: &str, file: &'static str, path: &Path) -> SyntaxError {
    let message = e.message().trim().replace('\n', " ");
    let Some(span) = e.span() else {
        return SyntaxError {
            file,
            path: path.to_path_buf(),
            line: None,
            key: String::new(),
            message,
        };
    };
    let line_no = text[..span.start.min(text.len())].matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or("");
    // The table is the nearest [header] above; the key is what stands before '=' on the line.
    let table = text
        .lines()
        .take(line_no)
        .filter_map(|l| {
            let l = l.trim();
            l.starts_with('[')
                .then(|| l.trim_matches(|c| c == '[' || c == ']').trim().to_string())
        })
        .last();
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_string());
    let full_key = match (table, key) {
        (Some(t), Some(k)) => format!("{t}.{k}"),
        (None, Some(k)) => k,
        (Some(t), None) => t,
        (None, None) => String::new(),
    };
    SyntaxError {
        file,
        path: path.to_path_buf(),
        line: Some(line_no),
        key: full_key,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/pgtls.toml"))
    }

    /// The words a user reads, once the variant is the expected one.
    fn words(e: ConfigError, expected: fn(&ConfigError) -> bool) -> String {
        assert!(expected(&e), "{e:?}");
        e.to_string()
    }

    #[test]
    fn the_example_is_the_default() {
        let text = example();
        let example = parse(&text).unwrap();
        let defaults = Config::default();
        // Every rule is named with the severity it raises unconfigured, commented out: copying the example changes
        // nothing.
        for rule in crate::analysis::alerts::RULES {
            let severity = format!("{:?}", rule.severity).to_lowercase();
            assert!(
                text.lines()
                    .any(|l| l.starts_with(&format!("# {} ", rule.key))
                        && l.contains(&format!("severity = \"{severity}\""))),
                "{} is not listed with its default {severity}",
                rule.key
            );
        }
        assert_eq!(example, defaults);
        assert_eq!(parse("").unwrap(), Config::default());
        assert_eq!(Config::default().min_evidence(), chrono::Duration::hours(24));
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = words(
            parse("[alerts]\nbell = true\nexpiry_warn_days = \"soon\"\n").unwrap_err(),
            |e| matches!(e, ConfigError::Syntax(SyntaxError { line: Some(_), .. })),
        );
        assert!(
            e.starts_with("config /etc/pgtls.toml: line 3, key alerts.expiry_warn_days:"),
            "{e}"
        );
        let e = words(
            parse("[alerts.rules.tls12_sessions]\nseverity = \"loud\"\n").unwrap_err(),
            |e| matches!(e, ConfigError::Syntax(SyntaxError { line: Some(_), .. })),
        );
        assert!(e.contains("line 2, key alerts.rules.tls12_sessions.severity"), "{e}");
        let e = words(parse("[ledger]\nkeys = [\"user\"]\n").unwrap_err(), |e| {
            matches!(e, ConfigError::Syntax(SyntaxError { line: Some(_), .. }))
        });
        assert!(
            e.contains("line 2, key ledger.keys") && e.contains("unknown field"),
            "{e}"
        );
        let e = words(
            parse("[alerts.rules.no_such_rule]\nthreshold = 1\n").unwrap_err(),
            |e| matches!(e, ConfigError::UnknownRule { name, .. } if name == "no_such_rule"),
        );
        assert!(e.contains("key alerts.rules.no_such_rule: unknown rule"), "{e}");
        let e = words(parse("[whatif]\nmin_evidence = \"a while\"\n").unwrap_err(), |e| {
            matches!(
                e,
                ConfigError::MinEvidence {
                    source: DurationError::NotADuration { .. },
                    ..
                }
            )
        });
        assert!(e.contains("key whatif.min_evidence"), "{e}");
        let e = words(parse("[ledger]\nkey = []\n").unwrap_err(), |e| {
            matches!(
                e,
                ConfigError::LedgerKey {
                    source: crate::analysis::ledger::KeyError::Empty,
                    ..
                }
            )
        });
        assert!(e.contains("key ledger.key: an empty key"), "{e}");
        let e = words(parse("[ledger]\nkey = [\"user\", \"host\"]\n").unwrap_err(), |e| {
            matches!(e, ConfigError::LedgerKey { .. })
        });
        assert!(e.contains("unknown ledger key field \"host\""), "{e}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), chrono::Duration::seconds(90));
        assert_eq!(parse_duration("15m").unwrap(), chrono::Duration::minutes(15));
        assert_eq!(parse_duration("7d").unwrap(), chrono::Duration::days(7));
        assert!(parse_duration("1.5h").is_err());
        assert_eq!(parse_duration("3650d").unwrap(), chrono::Duration::days(3650));
    }

    #[test]
    fn overflowing_durations_are_errors_naming_the_value() {
        for text in [
            "99999999999999h",
            "99999999999999999999999s",
            "3651d",
            "9223372036854775807m",
        ] {
            let e = parse_duration(text).unwrap_err();
            assert_eq!(e, DurationError::TooLong { text: text.to_string() });
            let e = e.to_string();
            assert!(e.contains(text) && e.contains("too long"), "{e}");
        }
        let e = words(
            parse("[whatif]\nmin_evidence = \"99999999999999h\"\n").unwrap_err(),
            |e| {
                matches!(
                    e,
                    ConfigError::MinEvidence {
                        source: DurationError::TooLong { .. },
                        ..
                    }
                )
            },
        );
        assert!(
            e.contains("key whatif.min_evidence") && e.contains("99999999999999h"),
            "{e}"
        );
    }

    #[test]
    fn target_tables_share_the_targets_file_schema() {
        let config = parse("read_only = true\n[[target]]\nname = \"a\"\nconninfo = \"host=a\"\n").unwrap();
        assert_eq!(config.targets.len(), 1);
        assert_eq!(config.targets[0].conninfo, "host=a");
        let e = words(
            parse("[[target]]\nconninfo = \"host=a\"\nlog = 1\n").unwrap_err(),
            |e| matches!(e, ConfigError::Syntax(SyntaxError { line: Some(_), .. })),
        );
        assert!(
            e.contains("line 3, key target.log") && e.contains("unknown field"),
            "{e}"
        );
    }

    #[test]
    fn read_only_is_off_unless_the_file_says_so() {
        assert!(!parse("").unwrap().read_only);
        assert!(parse("read_only = true\n").unwrap().read_only);
        assert!(parse("read_only = \"yes\"\n").is_err(), "a boolean, not a word");
    }
}
