//! Connection service files (`pg_service.conf`), read with libpq's rules.
//!
//! A service file is INI-like: `[name]` sections holding `keyword=value`
//! lines, with `#` comments and blank lines. As in libpq, only the lines of
//! the requested section are validated, so a file that works with `psql`
//! works here even if some other section contains something odd.

use std::io;
use std::path::{Path, PathBuf};

use crate::conninfo;
pub use crate::error::{ConnInfoError, ServiceError};

/// Finds the section `[service]` in the text of a service file.
///
/// Returns `Ok(None)` when the file has no such section. Within the section
/// the first occurrence of a keyword wins, because libpq never overrides a
/// value that is already set. `path` is only used in error messages.
///
/// libpq takes everything after the first `=` verbatim; this also tolerates
/// spaces around the `=`, which libpq would reject as an unknown keyword.
pub fn find_service(content: &str, service: &str, path: &Path) -> Result<Option<Vec<(String, String)>>, ServiceError> {
    let mut in_section = false;
    let mut entries: Option<Vec<(String, String)>> = None;

    for (index, raw_line) in content.lines().enumerate() {
        let line_no = index + 1;
        let line = raw_line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }

        if let Some(header) = line.strip_prefix('[') {
            if in_section {
                break;
            }
            // libpq compares a prefix and then expects ']', ignoring anything
            // after the bracket.
            in_section = header.strip_prefix(service).is_some_and(|after| after.starts_with(']'));
            if in_section {
                entries = Some(Vec::new());
            }
            continue;
        }
        if !in_section {
            continue;
        }

        let Some((keyword, value)) = line.split_once('=') else {
            return Err(ServiceError::Syntax {
                path: path.to_path_buf(),
                line: line_no,
            });
        };
        let keyword = keyword.trim_end();
        let value = value.trim_start();
        if keyword == "service" {
            return Err(ServiceError::Nested {
                path: path.to_path_buf(),
                line: line_no,
            });
        }
        let (keyword, value) = conninfo::canonical_option(keyword, value.to_string()).map_err(|err| match err {
            ConnInfoError::InvalidOption(keyword) => ServiceError::InvalidOption {
                path: path.to_path_buf(),
                line: line_no,
                keyword,
            },
            _ => ServiceError::Syntax {
                path: path.to_path_buf(),
                line: line_no,
            },
        })?;
        if let Some(entries) = entries.as_mut()
            && !entries.iter().any(|(k, _)| *k == keyword)
        {
            entries.push((keyword, value));
        }
    }
    Ok(entries)
}

/// Looks `service` up in `files`, in order; the first file that has the
/// section wins and later files are not consulted. Missing files are skipped,
/// as libpq skips a missing `~/.pg_service.conf` or system file.
///
/// The usual order is the user file (`PGSERVICEFILE` or
/// `~/.pg_service.conf`) followed by `$PGSYSCONFDIR/pg_service.conf`.
pub fn lookup(service: &str, files: &[PathBuf]) -> Result<Vec<(String, String)>, ServiceError> {
    for path in files {
        match std::fs::metadata(path) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            _ => {}
        }
        // Bounded and regular files only: PGSERVICEFILE=/dev/zero must not be read to the end.
        let io_error = |message: String| ServiceError::Io {
            path: path.clone(),
            message,
        };
        let bytes = crate::files::read_small(path).map_err(|e| io_error(e.to_string()))?;
        let content =
            String::from_utf8(bytes).map_err(|_| io_error("stream did not contain valid UTF-8".to_string()))?;
        if let Some(entries) = find_service(&content, service, path)? {
            return Ok(entries);
        }
    }
    Err(ServiceError::NotFound {
        service: service.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_is_refused_not_read_to_its_end() {
        let err = lookup("x", &[PathBuf::from("/dev/zero")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "could not read service file \"/dev/zero\": not a regular file"
        );
    }

    const SAMPLE: &str = "\
# comment at the top
[other]
host=other.example.com
this line is broken but belongs to another section

[mydb]
  host=db.example.com
port = 5433
# a comment inside the section
dbname=sales

user=report
host=ignored-because-first-wins
[mydb-replica]
host=replica.example.com
";

    fn pairs(entries: &[(&str, &str)]) -> Vec<(String, String)> {
        entries.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn finds_the_requested_section_only() {
        let found = find_service(SAMPLE, "mydb", Path::new("f.conf")).unwrap();
        assert_eq!(
            found,
            Some(pairs(&[
                ("host", "db.example.com"),
                ("port", "5433"),
                ("dbname", "sales"),
                ("user", "report"),
            ]))
        );
    }

    #[test]
    fn section_name_must_match_exactly_not_by_prefix() {
        let found = find_service(SAMPLE, "mydb-replica", Path::new("f.conf")).unwrap();
        assert_eq!(found, Some(pairs(&[("host", "replica.example.com")])));
        assert_eq!(find_service(SAMPLE, "my", Path::new("f.conf")).unwrap(), None);
    }

    #[test]
    fn missing_section_is_none() {
        assert_eq!(find_service(SAMPLE, "absent", Path::new("f.conf")).unwrap(), None);
    }

    #[test]
    fn empty_section_is_found_but_empty() {
        let found = find_service("[empty]\n[next]\nhost=x\n", "empty", Path::new("f")).unwrap();
        assert_eq!(found, Some(Vec::new()));
    }

    #[test]
    fn malformed_line_names_file_and_line() {
        let content = "[svc]\nhost=a\nnot a key value line\n";
        let err = find_service(content, "svc", Path::new("/etc/pg_service.conf")).unwrap_err();
        assert_eq!(
            err,
            ServiceError::Syntax {
                path: PathBuf::from("/etc/pg_service.conf"),
                line: 3
            }
        );
        assert_eq!(
            err.to_string(),
            "syntax error in service file \"/etc/pg_service.conf\", line 3: expected keyword=value"
        );
    }

    #[test]
    fn unknown_keyword_names_file_line_and_keyword() {
        let err = find_service("[svc]\nhots=a\n", "svc", Path::new("s.conf")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "syntax error in service file \"s.conf\", line 2: invalid connection option \"hots\""
        );
    }

    #[test]
    fn nested_service_is_rejected() {
        let err = find_service("[svc]\nservice=other\n", "svc", Path::new("s.conf")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "nested service specifications not supported in service file \"s.conf\", line 2"
        );
    }

    #[test]
    fn values_are_taken_verbatim_after_the_equals_sign() {
        let found = find_service(
            "[svc]\noptions=-c search_path=a,b\npassword='quoted'\nsslrootcert=\n",
            "svc",
            Path::new("s"),
        )
        .unwrap();
        assert_eq!(
            found,
            Some(pairs(&[
                ("options", "-c search_path=a,b"),
                ("password", "'quoted'"),
                ("sslrootcert", ""),
            ]))
        );
    }

    #[test]
    fn crlf_line_endings_are_accepted() {
        let found = find_service("[svc]\r\nhost=a\r\nport=1\r\n", "svc", Path::new("s")).unwrap();
        assert_eq!(found, Some(pairs(&[("host", "a"), ("port", "1")])));
    }

    #[test]
    fn lookup_prefers_the_first_file_with_the_section() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("user.conf");
        let system = dir.path().join("pg_service.conf");
        std::fs::write(&user, "[a]\nhost=user-a\n").unwrap();
        std::fs::write(&system, "[a]\nhost=system-a\n[b]\nhost=system-b\n").unwrap();
        let files = vec![user, system];

        assert_eq!(lookup("a", &files).unwrap(), pairs(&[("host", "user-a")]));
        assert_eq!(lookup("b", &files).unwrap(), pairs(&[("host", "system-b")]));
    }

    #[test]
    fn lookup_skips_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let system = dir.path().join("pg_service.conf");
        std::fs::write(&system, "[a]\nport=6000\n").unwrap();
        let files = vec![dir.path().join("does-not-exist.conf"), system];
        assert_eq!(lookup("a", &files).unwrap(), pairs(&[("port", "6000")]));
    }

    #[test]
    fn lookup_reports_absent_service() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pg_service.conf");
        std::fs::write(&file, "[a]\nport=6000\n").unwrap();
        let err = lookup("x", &[file]).unwrap_err();
        assert_eq!(err.to_string(), "definition of service \"x\" not found");
        assert_eq!(
            lookup("x", &[]).unwrap_err(),
            ServiceError::NotFound {
                service: "x".to_string()
            }
        );
    }

    #[test]
    fn lookup_reports_errors_from_the_matching_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pg_service.conf");
        std::fs::write(&file, "[a]\n\nbroken\n").unwrap();
        let err = lookup("a", std::slice::from_ref(&file)).unwrap_err();
        assert_eq!(err, ServiceError::Syntax { path: file, line: 3 });
    }

    #[test]
    fn lookup_reports_unreadable_file() {
        let dir = tempfile::tempdir().unwrap();
        // A directory exists but cannot be read as a file.
        let err = lookup("a", &[dir.path().to_path_buf()]).unwrap_err();
        assert!(matches!(err, ServiceError::Io { .. }), "{err:?}");
        assert!(err.to_string().starts_with("could not read service file"));
    }
}
