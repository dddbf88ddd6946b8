//! The password file (`~/.pgpass` or `PGPASSFILE`), matched with libpq's rules.
//!
//! Each line is `hostname:port:database:username:password`. Any of the first
//! four fields may be `*`, `\:` and `\\` escape a colon and a backslash, and
//! lines starting with `#` are comments. The first matching line wins.

use std::fmt;
use std::path::Path;

/// One of the first four fields of a password file line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// An unescaped `*`, matching anything.
    Any,
    /// A literal value, escapes already removed.
    Exact(String),
}

impl Field {
    fn matches(&self, value: &str) -> bool {
        match self {
            Field::Any => true,
            Field::Exact(expected) => expected == value,
        }
    }
}

/// A parsed password file line.
#[derive(Clone, PartialEq, Eq)]
pub struct PgpassEntry {
    pub hostname: Field,
    pub port: Field,
    pub database: Field,
    pub username: Field,
    pub password: String,
}

impl fmt::Debug for PgpassEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgpassEntry")
            .field("hostname", &self.hostname)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("username", &self.username)
            .field("password", &"****")
            .finish()
    }
}

impl PgpassEntry {
    /// Whether this line applies to a connection, using libpq's host rule:
    /// a `localhost` line also covers Unix-socket connections, because libpq
    /// looks up socket connections under the name `localhost`.
    pub fn matches(&self, host: &str, port: u16, dbname: &str, user: &str) -> bool {
        let host_matches = if host.is_empty() {
            self.hostname.matches("localhost")
        } else if is_socket_path(host) {
            self.hostname.matches(host) || self.hostname.matches("localhost")
        } else {
            self.hostname.matches(host)
        };
        // libpq compares the port as text, so "05432" in the file never
        // matches; to_string reproduces that.
        host_matches
            && self.port.matches(&port.to_string())
            && self.database.matches(dbname)
            && self.username.matches(user)
    }
}

/// libpq treats absolute paths and Linux abstract socket names (`@name`) as
/// Unix-socket hosts.
fn is_socket_path(host: &str) -> bool {
    host.starts_with('/') || host.starts_with('@')
}

/// Parses one line; `None` for comments, blank lines and lines with fewer
/// than five fields (which libpq can never match).
pub fn parse_line(line: &str) -> Option<PgpassEntry> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.is_empty() || line.starts_with('#') {
        return None;
    }

    // (value, whether any escape occurred); an escaped "\*" is a literal star.
    let mut fields: Vec<(String, bool)> = Vec::with_capacity(5);
    let mut current = String::new();
    let mut escaped = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(next) => {
                    current.push(next);
                    escaped = true;
                }
                // A trailing backslash stays literal, as libpq's
                // de-escaping of the password leaves it.
                None => current.push('\\'),
            },
            ':' => {
                fields.push((std::mem::take(&mut current), escaped));
                escaped = false;
                // Anything after the password's terminating colon is ignored.
                if fields.len() == 5 {
                    break;
                }
            }
            c => current.push(c),
        }
    }
    if fields.len() < 5 {
        fields.push((current, escaped));
    }
    if fields.len() < 5 {
        return None;
    }

    let mut fields = fields.into_iter();
    let mut next_field = || {
        fields.next().map(|(value, escaped)| {
            if value == "*" && !escaped {
                Field::Any
            } else {
                Field::Exact(value)
            }
        })
    };
    let hostname = next_field()?;
    let port = next_field()?;
    let database = next_field()?;
    let username = next_field()?;
    let password = match next_field()? {
        Field::Any => "*".to_string(),
        Field::Exact(password) => password,
    };
    Some(PgpassEntry {
        hostname,
        port,
        database,
        username,
        password,
    })
}

/// The password from `line` if it applies to this connection.
pub fn match_line(line: &str, host: &str, port: u16, dbname: &str, user: &str) -> Option<String> {
    parse_line(line)
        .filter(|entry| entry.matches(host, port, dbname, user))
        .map(|entry| entry.password)
}

/// The password from the first matching line of a password file's content.
pub fn find_password(content: &str, host: &str, port: u16, dbname: &str, user: &str) -> Option<String> {
    // libpq gives up without a database or user name rather than letting
    // wildcards match an empty value.
    if dbname.is_empty() || user.is_empty() {
        return None;
    }
    content
        .lines()
        .find_map(|line| match_line(line, host, port, dbname, user))
}

/// Result of consulting a password file.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PgpassLookup {
    pub password: Option<String>,
    /// libpq's warning text when the file was ignored; it is meant to be
    /// shown to the user, as libpq prints it to stderr.
    pub warning: Option<String>,
}

impl fmt::Debug for PgpassLookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgpassLookup")
            .field("password", &self.password.as_ref().map(|_| "****"))
            .field("warning", &self.warning)
            .finish()
    }
}

/// Looks a connection up in the password file at `path`.
///
/// A missing or unreadable file is simply no match, as in libpq. On Unix a
/// file that is not a regular file, or that group or others can access, is
/// ignored with libpq's warning.
pub fn lookup(path: &Path, host: &str, port: u16, dbname: &str, user: &str) -> PgpassLookup {
    let Ok(metadata) = std::fs::metadata(path) else {
        return PgpassLookup::default();
    };
    if !metadata.is_file() {
        return PgpassLookup {
            password: None,
            warning: Some(format!(
                "WARNING: password file \"{}\" is not a plain file",
                path.display()
            )),
        };
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if metadata.permissions().mode() & 0o077 != 0 {
            return PgpassLookup {
                password: None,
                warning: Some(format!(
                    "WARNING: password file \"{}\" has group or world access; permissions should be u=rw (0600) or less",
                    path.display()
                )),
            };
        }
    }
    let Ok(bytes) = std::fs::read(path) else {
        return PgpassLookup::default();
    };
    // Decoding lossily keeps one non-UTF-8 line from hiding the rest of the
    // file; a mangled password on such a line would fail to match anyway.
    let content = String::from_utf8_lossy(&bytes);
    PgpassLookup {
        password: find_password(&content, host, port, dbname, user),
        warning: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_fields() {
        let entry = parse_line("db.example.com:5432:sales:report:s3cret").unwrap();
        assert_eq!(
            entry,
            PgpassEntry {
                hostname: Field::Exact("db.example.com".into()),
                port: Field::Exact("5432".into()),
                database: Field::Exact("sales".into()),
                username: Field::Exact("report".into()),
                password: "s3cret".into(),
            }
        );
    }

    #[test]
    fn wildcards_and_escapes() {
        let entry = parse_line(r"*:*:\*:us\:er:pa\:ss\\word").unwrap();
        assert_eq!(entry.hostname, Field::Any);
        assert_eq!(entry.port, Field::Any);
        assert_eq!(entry.database, Field::Exact("*".into()));
        assert_eq!(entry.username, Field::Exact("us:er".into()));
        assert_eq!(entry.password, r"pa:ss\word");
    }

    #[test]
    fn comments_blank_and_short_lines_never_match() {
        assert_eq!(parse_line("# h:5432:d:u:p"), None);
        assert_eq!(parse_line(""), None);
        assert_eq!(parse_line("\r\n"), None);
        assert_eq!(parse_line("h:5432:d:u"), None);
        assert_eq!(match_line("h:5432:d:u", "h", 5432, "d", "u"), None);
    }

    #[test]
    fn empty_password_and_trailing_fields() {
        assert_eq!(match_line("h:5432:d:u:", "h", 5432, "d", "u"), Some(String::new()));
        // Text after an unescaped colon ending the password is ignored.
        assert_eq!(
            match_line("h:5432:d:u:pw:extra", "h", 5432, "d", "u"),
            Some("pw".into())
        );
        assert_eq!(match_line("h:5432:d:u:pw\r\n", "h", 5432, "d", "u"), Some("pw".into()));
    }

    #[test]
    fn match_requires_every_field() {
        let line = "db:5432:sales:report:pw";
        assert_eq!(match_line(line, "db", 5432, "sales", "report"), Some("pw".into()));
        assert_eq!(match_line(line, "other", 5432, "sales", "report"), None);
        assert_eq!(match_line(line, "db", 5433, "sales", "report"), None);
        assert_eq!(match_line(line, "db", 5432, "hr", "report"), None);
        assert_eq!(match_line(line, "db", 5432, "sales", "admin"), None);
    }

    #[test]
    fn port_is_compared_as_text() {
        assert_eq!(match_line("db:05432:*:*:pw", "db", 5432, "x", "y"), None);
    }

    #[test]
    fn wildcard_fields_match_anything() {
        let line = "*:*:*:*:any";
        assert_eq!(match_line(line, "h", 1, "d", "u"), Some("any".into()));
        assert_eq!(match_line(line, "/tmp", 5432, "d", "u"), Some("any".into()));
    }

    #[test]
    fn escaped_colon_in_host_matches_ipv6() {
        assert_eq!(
            match_line(r"\:\:1:5432:*:*:v6", "::1", 5432, "d", "u"),
            Some("v6".into())
        );
    }

    #[test]
    fn first_match_wins() {
        let content = "\
# most specific first
db:5432:sales:report:specific
*:*:*:report:generic
db:5432:sales:report:never-reached
";
        assert_eq!(
            find_password(content, "db", 5432, "sales", "report"),
            Some("specific".into())
        );
        assert_eq!(
            find_password(content, "db", 5432, "hr", "report"),
            Some("generic".into())
        );
        assert_eq!(find_password(content, "db", 5432, "hr", "admin"), None);
    }

    #[test]
    fn localhost_matches_unix_socket_connections() {
        let content = "localhost:5432:*:*:local\n";
        assert_eq!(
            find_password(content, "/var/run/postgresql", 5432, "d", "u"),
            Some("local".into())
        );
        assert_eq!(find_password(content, "/tmp", 5432, "d", "u"), Some("local".into()));
        assert_eq!(find_password(content, "", 5432, "d", "u"), Some("local".into()));
        assert_eq!(
            find_password(content, "localhost", 5432, "d", "u"),
            Some("local".into())
        );
        assert_eq!(find_password(content, "127.0.0.1", 5432, "d", "u"), None);
    }

    #[test]
    fn socket_directory_can_also_be_named_literally() {
        let content = "/tmp:5432:*:*:tmp-socket\n";
        assert_eq!(
            find_password(content, "/tmp", 5432, "d", "u"),
            Some("tmp-socket".into())
        );
        assert_eq!(find_password(content, "localhost", 5432, "d", "u"), None);
    }

    #[test]
    fn empty_dbname_or_user_never_matches() {
        let content = "*:*:*:*:pw\n";
        assert_eq!(find_password(content, "h", 5432, "", "u"), None);
        assert_eq!(find_password(content, "h", 5432, "d", ""), None);
    }

    #[test]
    fn debug_output_hides_passwords() {
        let entry = parse_line("h:1:d:u:hunter2").unwrap();
        assert!(!format!("{entry:?}").contains("hunter2"));
        let found = PgpassLookup {
            password: Some("hunter2".into()),
            warning: None,
        };
        assert!(!format!("{found:?}").contains("hunter2"));
    }

    #[cfg(unix)]
    fn write_with_mode(dir: &Path, mode: u32, content: &str) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(".pgpass");
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[cfg(unix)]
    #[test]
    fn lookup_reads_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_with_mode(dir.path(), 0o600, "db:5432:*:report:pw\n");
        let found = lookup(&path, "db", 5432, "sales", "report");
        assert_eq!(found.password.as_deref(), Some("pw"));
        assert_eq!(found.warning, None);
    }

    #[cfg(unix)]
    #[test]
    fn lookup_ignores_group_or_world_readable_file_with_libpq_warning() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_with_mode(dir.path(), 0o644, "*:*:*:*:pw\n");
        let found = lookup(&path, "db", 5432, "sales", "report");
        assert_eq!(found.password, None);
        assert_eq!(
            found.warning,
            Some(format!(
                "WARNING: password file \"{}\" has group or world access; permissions should be u=rw (0600) or less",
                path.display()
            ))
        );

        let path = write_with_mode(dir.path(), 0o604, "*:*:*:*:pw\n");
        assert!(lookup(&path, "db", 5432, "d", "u").warning.is_some());
    }

    #[test]
    fn lookup_missing_file_is_no_match_without_warning() {
        let dir = tempfile::tempdir().unwrap();
        let found = lookup(&dir.path().join("nope"), "db", 5432, "d", "u");
        assert_eq!(found, PgpassLookup::default());
        assert_eq!(lookup(Path::new(""), "db", 5432, "d", "u"), PgpassLookup::default());
    }

    #[test]
    fn lookup_directory_is_not_a_plain_file() {
        let dir = tempfile::tempdir().unwrap();
        let found = lookup(dir.path(), "db", 5432, "d", "u");
        assert_eq!(found.password, None);
        assert_eq!(
            found.warning,
            Some(format!(
                "WARNING: password file \"{}\" is not a plain file",
                dir.path().display()
            ))
        );
    }
}
