//! `--web-config FILE`: TLS and basic authentication for the HTTP endpoints, in the file format of Prometheus's
//! exporter-toolkit (the one node_exporter and postgres_exporter read), so one file serves them all:
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: /etc/pgtls/web.crt
//!   key_file: /etc/pgtls/web.key
//! basic_auth_users:
//!   prometheus: $2y$10$...   # bcrypt, e.g. `htpasswd -nBC 10 prometheus`
//! ```
//!
//! Relative paths are read from the file's directory, as exporter-toolkit does. Keys pgtls does not implement are
//! refused by name rather than silently ignored: a setting that looks on but is not is worse than an error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebConfig {
    pub tls: Option<TlsFiles>,
    /// User name -> bcrypt hash.
    pub users: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    tls_server_config: Option<TlsSection>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsSection {
    cert_file: PathBuf,
    key_file: PathBuf,
}

/// Why a `--web-config` file was not used: the file, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("web config {}: {problem}", path.display())]
pub struct WebConfigError {
    pub path: PathBuf,
    pub problem: WebConfigProblem,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebConfigProblem {
    /// Missing, unreadable, not a regular file, too large or not UTF-8.
    #[error(transparent)]
    Read(#[from] crate::files::TextFileError),
    /// Not YAML, or a key pgtls does not implement (refused by name), in the parser's words on one line.
    #[error("{0}")]
    Syntax(String),
    #[error("basic_auth_users: bad user name {}", crate::conn::text::quoted(.0))]
    BadUserName(String),
    /// Only bcrypt hashes are taken: a plain-text password in the file would be a leak waiting to happen.
    #[error(
        "basic_auth_users: the entry for {} is not a bcrypt hash (make one with `htpasswd -nBC 10 USER`)",
        crate::conn::text::quoted(.0)
    )]
    NotBcrypt(String),
}

impl WebConfig {
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let text = crate::files::read_small_text(path).map_err(|e| WebConfigError {
            path: path.to_path_buf(),
            problem: e.into(),
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<WebConfig, WebConfigError> {
        let fail = |problem| WebConfigError {
            path: path.to_path_buf(),
            problem,
        };
        // An empty file is an empty mapping, as in exporter-toolkit.
        let file: File = if text.trim().is_empty() {
            File::default()
        } else {
            serde_norway::from_str(text).map_err(|e| fail(WebConfigProblem::Syntax(one_line(&e.to_string()))))?
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let tls = file.tls_server_config.map(|t| TlsFiles {
            cert_file: base.join(t.cert_file),
            key_file: base.join(t.key_file),
        });
        for (user, hash) in &file.basic_auth_users {
            if user.is_empty() || user.contains(':') || user.chars().any(crate::conn::text::is_unsafe_char) {
                return Err(fail(WebConfigProblem::BadUserName(user.clone())));
            }
            if hash.parse::<bcrypt::HashParts>().is_err() {
                return Err(fail(WebConfigProblem::NotBcrypt(user.clone())));
            }
        }
        Ok(WebConfig {
            tls,
            users: file.basic_auth_users,
        })
    }

    pub fn auth_required(&self) -> bool {
        !self.users.is_empty()
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_exporter_toolkit_files_relative_to_their_directory() {
        let hash = bcrypt::hash("pw", 4).unwrap();
        let text = format!(
            "tls_server_config:\n  cert_file: web.crt\n  key_file: /abs/web.key\nbasic_auth_users:\n  prometheus: '{hash}'\n"
        );
        let c = WebConfig::parse(&text, Path::new("/etc/pgtls/web.yml")).unwrap();
        let tls = c.tls.unwrap();
        assert_eq!(tls.cert_file, PathBuf::from("/etc/pgtls/web.crt"));
        assert_eq!(tls.key_file, PathBuf::from("/abs/web.key"));
        assert!(c.users.contains_key("prometheus"));
        assert_eq!(WebConfig::parse("", Path::new("/x.yml")).unwrap(), WebConfig::default());
    }

    #[test]
    fn refuses_what_it_would_not_honour() {
        let e = WebConfig::parse("basic_auth_users:\n  bob: hunter2\n", Path::new("/w.yml")).unwrap_err();
        assert_eq!(e.problem, WebConfigProblem::NotBcrypt("bob".into()));
        let e = e.to_string();
        assert!(e.contains("not a bcrypt hash") && !e.contains("hunter2"), "{e}");
        let e = WebConfig::parse("http_server_config:\n  http2: false\n", Path::new("/w.yml")).unwrap_err();
        assert!(matches!(e.problem, WebConfigProblem::Syntax(_)), "{e:?}");
        assert!(e.to_string().contains("http_server_config"), "{e}");
        let e = WebConfig::parse(
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: c\n",
            Path::new("/w.yml"),
        )
        .unwrap_err();
        assert!(matches!(e.problem, WebConfigProblem::Syntax(_)), "{e:?}");
        assert!(e.to_string().contains("client_ca_file"), "{e}");
        assert!(WebConfig::parse("basic_auth_users: [", Path::new("/w.yml")).is_err());
    }
}
