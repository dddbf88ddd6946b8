//! Parse libpq connection strings, in both the keyword/value form and the
//! `postgresql://` URI form, into ordered key/value pairs.
//!
//! The goal is that anything a DBA pastes into `psql` is understood the same
//! way here, so the parsing rules and error wording follow libpq's
//! `fe-connect.c`. Where libpq would echo a password back in an error, the
//! message is reworded instead: these errors end up on screens and in logs.

pub use crate::error::ConnInfoError;
use crate::text::quoted;

/// One libpq connection keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionSpec {
    pub keyword: &'static str,
    /// Environment variable libpq falls back to when neither the connection
    /// string nor the service file sets the keyword.
    pub envvar: Option<&'static str>,
    /// Never displayed or echoed in errors.
    pub secret: bool,
}

const fn opt(keyword: &'static str, envvar: Option<&'static str>) -> OptionSpec {
    OptionSpec {
        keyword,
        envvar,
        secret: false,
    }
}

const fn secret(keyword: &'static str, envvar: Option<&'static str>) -> OptionSpec {
    OptionSpec {
        keyword,
        envvar,
        secret: true,
    }
}

/// Every keyword libpq (up to PostgreSQL 18) accepts, in libpq's own order.
/// Unknown keywords are rejected rather than ignored, as libpq does, so a
/// typo such as `sslmdoe=verify-full` cannot silently weaken a connection.
pub const OPTIONS: &[OptionSpec] = &[
    opt("service", Some("PGSERVICE")),
    opt("user", Some("PGUSER")),
    secret("password", Some("PGPASSWORD")),
    opt("passfile", Some("PGPASSFILE")),
    opt("channel_binding", Some("PGCHANNELBINDING")),
    opt("connect_timeout", Some("PGCONNECT_TIMEOUT")),
    opt("dbname", Some("PGDATABASE")),
    opt("host", Some("PGHOST")),
    opt("hostaddr", Some("PGHOSTADDR")),
    opt("port", Some("PGPORT")),
    opt("client_encoding", Some("PGCLIENTENCODING")),
    opt("options", Some("PGOPTIONS")),
    opt("application_name", Some("PGAPPNAME")),
    opt("fallback_application_name", None),
    opt("keepalives", None),
    opt("keepalives_idle", None),
    opt("keepalives_interval", None),
    opt("keepalives_count", None),
    opt("tcp_user_timeout", None),
    opt("sslmode", Some("PGSSLMODE")),
    opt("sslnegotiation", Some("PGSSLNEGOTIATION")),
    opt("sslcompression", Some("PGSSLCOMPRESSION")),
    opt("sslcert", Some("PGSSLCERT")),
    opt("sslkey", Some("PGSSLKEY")),
    opt("sslcertmode", Some("PGSSLCERTMODE")),
    secret("sslpassword", None),
    opt("sslrootcert", Some("PGSSLROOTCERT")),
    opt("sslcrl", Some("PGSSLCRL")),
    opt("sslcrldir", Some("PGSSLCRLDIR")),
    opt("sslsni", Some("PGSSLSNI")),
    opt("sslkeylogfile", None),
    opt("requirepeer", Some("PGREQUIREPEER")),
    opt("require_auth", Some("PGREQUIREAUTH")),
    opt("ssl_min_protocol_version", Some("PGSSLMINPROTOCOLVERSION")),
    opt("ssl_max_protocol_version", Some("PGSSLMAXPROTOCOLVERSION")),
    opt("min_protocol_version", Some("PGMINPROTOCOLVERSION")),
    opt("max_protocol_version", Some("PGMAXPROTOCOLVERSION")),
    opt("gssencmode", Some("PGGSSENCMODE")),
    opt("krbsrvname", Some("PGKRBSRVNAME")),
    opt("gsslib", Some("PGGSSLIB")),
    opt("gssdelegation", Some("PGGSSDELEGATION")),
    opt("replication", None),
    opt("target_session_attrs", Some("PGTARGETSESSIONATTRS")),
    opt("load_balance_hosts", Some("PGLOADBALANCEHOSTS")),
    secret("scram_client_key", None),
    secret("scram_server_key", None),
    opt("oauth_issuer", None),
    opt("oauth_client_id", None),
    secret("oauth_client_secret", None),
    opt("oauth_scope", None),
];

/// Looks up a keyword in [`OPTIONS`].
pub fn option_spec(keyword: &str) -> Option<&'static OptionSpec> {
    OPTIONS.iter().find(|o| o.keyword == keyword)
}

/// Whether libpq accepts `keyword` (including the legacy `requiressl`).
pub fn is_known_key(keyword: &str) -> bool {
    keyword == "requiressl" || option_spec(keyword).is_some()
}

/// Whether the value of `keyword` must never be shown.
pub fn is_secret_key(keyword: &str) -> bool {
    option_spec(keyword).is_some_and(|o| o.secret)
}

/// Renders a value so that [`parse`] reads it back unchanged: bare when that
/// is unambiguous, otherwise single-quoted with `\` escapes.
pub fn quote_value(value: &str) -> String {
    let needs_quotes = value.is_empty() || value.chars().any(|c| is_space(c) || c == '\'' || c == '\\');
    if !needs_quotes {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// Whether `input` uses the URI form rather than keyword/value pairs.
pub fn is_uri(input: &str) -> bool {
    uri_prefix_len(input.trim_matches(is_space)).is_some()
}

/// Parses a connection string into `(keyword, value)` pairs in the order they
/// appear. A keyword may repeat; as in libpq the last occurrence wins.
///
/// The legacy `requiressl` keyword is translated to `sslmode` here, exactly
/// where libpq translates it, and in URIs `ssl=true` becomes
/// `sslmode=require`.
pub fn parse(input: &str) -> Result<Vec<(String, String)>, ConnInfoError> {
    // Pasted strings routinely carry a trailing newline; libpq would choke on
    // it in the URI form, which helps nobody. Only libpq's own spaces are
    // trimmed: `str::trim` would also eat Unicode spaces (U+2000, U+3000)
    // that end an unquoted value, changing it (found by the 100,000-case run).
    let input = input.trim_matches(is_space);
    match uri_prefix_len(input) {
        Some(prefix) => parse_uri(input, prefix),
        None => parse_keyword_value(input),
    }
}

/// Validates a keyword and applies libpq's `requiressl` translation.
pub(crate) fn canonical_option(keyword: &str, value: String) -> Result<(String, String), ConnInfoError> {
    if keyword == "requiressl" {
        let mode = if value.starts_with('1') { "require" } else { "prefer" };
        return Ok(("sslmode".to_string(), mode.to_string()));
    }
    if option_spec(keyword).is_none() {
        return Err(ConnInfoError::InvalidOption(keyword.to_string()));
    }
    Ok((keyword.to_string(), value))
}

/// libpq uses C `isspace`, which includes vertical tab, unlike
/// `char::is_ascii_whitespace`.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

fn parse_keyword_value(input: &str) -> Result<Vec<(String, String)>, ConnInfoError> {
    let chars: Vec<char> = input.chars().collect();
    let len = chars.len();
    let mut i = 0;
    let mut pairs = Vec::new();
    // An unquoted password containing a space splits into the password and a
    // stray word; echoing that word back would print part of the password.
    let mut after_unquoted_secret: Option<String> = None;

    while i < len {
        if is_space(chars[i]) {
            i += 1;
            continue;
        }

        let start = i;
        while i < len && chars[i] != '=' && !is_space(chars[i]) {
            i += 1;
        }
        let keyword: String = chars[start..i].iter().collect();
        while i < len && is_space(chars[i]) {
            i += 1;
        }
        if i >= len || chars[i] != '=' {
            let msg = match &after_unquoted_secret {
                Some(secret_key) => format!(
                    "missing \"=\" after the value of {} in connection info string (quote values that contain spaces)",
                    quoted(secret_key)
                ),
                None => format!("missing \"=\" after {} in connection info string", quoted(&keyword)),
            };
            return Err(ConnInfoError::Syntax(msg));
        }
        i += 1;
        while i < len && is_space(chars[i]) {
            i += 1;
        }

        let mut value = String::new();
        let was_quoted = i < len && chars[i] == '\'';
        if was_quoted {
            i += 1;
            loop {
                if i >= len {
                    return Err(ConnInfoError::Syntax(
                        "unterminated quoted string in connection info string".to_string(),
                    ));
                }
                match chars[i] {
                    '\\' => {
                        i += 1;
                        if i < len {
                            value.push(chars[i]);
                            i += 1;
                        }
                    }
                    '\'' => {
                        i += 1;
                        break;
                    }
                    c => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
        } else {
            while i < len && !is_space(chars[i]) {
                if chars[i] == '\\' {
                    i += 1;
                    if i < len {
                        value.push(chars[i]);
                        i += 1;
                    }
                } else {
                    value.push(chars[i]);
                    i += 1;
                }
            }
        }

        let pair = canonical_option(&keyword, value).map_err(|err| match (&after_unquoted_secret, err) {
            // A misspelt keyword is named; any other word might be the rest of a password with a space.
            (Some(_), ConnInfoError::InvalidOption(word)) if is_near_keyword(&word) => {
                ConnInfoError::InvalidOption(word)
            }
            (Some(secret_key), ConnInfoError::InvalidOption(_)) => ConnInfoError::Syntax(format!(
                "invalid connection option after the value of {} (quote values that contain spaces)",
                quoted(secret_key)
            )),
            (_, err) => err,
        })?;
        after_unquoted_secret = (!was_quoted && is_secret_key(&keyword)).then_some(keyword);
        pairs.push(pair);
    }
    Ok(pairs)
}

/// Within two edits of a libpq keyword (`sslmdoe`, `hots`): a typo, not a fragment of a password.
fn is_near_keyword(word: &str) -> bool {
    OPTIONS.iter().any(|o| edit_distance(word, o.keyword) <= 2)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

fn uri_prefix_len(input: &str) -> Option<usize> {
    ["postgresql://", "postgres://"]
        .iter()
        .find(|prefix| input.starts_with(*prefix))
        .map(|prefix| prefix.len())
}

/// Which part of a URI is being percent-decoded; secrets are named rather
/// than quoted in error messages.
enum Part<'a> {
    Plain,
    SecretValueOf(&'a str),
}

fn uri_decode(raw: &str, part: Part<'_>) -> Result<String, ConnInfoError> {
    let describe = || match &part {
        Part::Plain => quoted(raw),
        Part::SecretValueOf(key) => format!("the value of {}", quoted(key)),
    };

    // libpq tolerates spaces around a component but not inside it, since an
    // inner space almost always means a forgotten %20.
    let trimmed = raw.trim_matches(' ');
    if trimmed.contains(' ') {
        return Err(ConnInfoError::Syntax(format!(
            "unexpected spaces found in {}, use percent-encoded spaces (%20) instead",
            describe()
        )));
    }

    let bytes = trimmed.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let hi = bytes.get(i + 1).and_then(|b| (*b as char).to_digit(16));
        let lo = bytes.get(i + 2).and_then(|b| (*b as char).to_digit(16));
        let (Some(hi), Some(lo)) = (hi, lo) else {
            return Err(ConnInfoError::Syntax(format!(
                "invalid percent-encoded token: {}",
                describe()
            )));
        };
        let byte = (hi * 16 + lo) as u8;
        if byte == 0 {
            return Err(ConnInfoError::Syntax(format!(
                "forbidden value %00 in percent-encoded value: {}",
                describe()
            )));
        }
        out.push(byte);
        i += 3;
    }
    String::from_utf8(out)
        .map_err(|_| ConnInfoError::Syntax(format!("percent-encoded value is not valid UTF-8: {}", describe())))
}

fn byte_at(s: &str, i: usize) -> Option<u8> {
    s.as_bytes().get(i).copied()
}

/// Follows libpq's `conninfo_uri_parse_options`:
/// `postgresql://[user[:password]@][host][:port][,...][/dbname][?key=value&...]`.
fn parse_uri(input: &str, prefix_len: usize) -> Result<Vec<(String, String)>, ConnInfoError> {
    let rest = &input[prefix_len..];
    let mut pairs = Vec::new();
    let mut p = 0;

    // libpq looks for '@' only up to the first '/', so a '/' in a password
    // must be percent-encoded.
    if let Some(at) = rest.find(['@', '/']).filter(|&i| byte_at(rest, i) == Some(b'@')) {
        let userinfo = &rest[..at];
        let (user, password) = match userinfo.split_once(':') {
            Some((user, password)) => (user, Some(password)),
            None => (userinfo, None),
        };
        if !user.is_empty() {
            pairs.push(("user".to_string(), uri_decode(user, Part::Plain)?));
        }
        if let Some(password) = password.filter(|pw| !pw.is_empty()) {
            let decoded = uri_decode(password, Part::SecretValueOf("password"))?;
            pairs.push(("password".to_string(), decoded));
        }
        p = at + 1;
    }

    // Hosts and ports are accumulated as comma-separated lists, like libpq,
    // so "h1:1,h2" yields port "1," and the second host gets the default.
    let mut hosts = String::new();
    let mut ports = String::new();
    let terminator = loop {
        if byte_at(rest, p) == Some(b'[') {
            let open = p + 1;
            let Some(len) = rest[open..].find(']') else {
                return Err(ConnInfoError::Syntax(
                    "end of string reached when looking for matching \"]\" in IPv6 host address in URI".to_string(),
                ));
            };
            if len == 0 {
                return Err(ConnInfoError::Syntax(
                    "IPv6 host address may not be empty in URI".to_string(),
                ));
            }
            hosts.push_str(&rest[open..open + len]);
            p = open + len + 1;
            if let Some(c) = rest[p..].chars().next()
                && !matches!(c, ':' | '/' | '?' | ',')
            {
                return Err(ConnInfoError::Syntax(format!(
                    "unexpected character {} at position {} in URI (expected \":\" or \"/\")",
                    quoted(&c.to_string()),
                    prefix_len + p + 1
                )));
            }
        } else {
            let start = p;
            while byte_at(rest, p).is_some_and(|b| !matches!(b, b':' | b'/' | b'?' | b',')) {
                p += 1;
            }
            hosts.push_str(&rest[start..p]);
        }

        let mut term = byte_at(rest, p);
        if term == Some(b':') {
            p += 1;
            let start = p;
            while byte_at(rest, p).is_some_and(|b| !matches!(b, b'/' | b'?' | b',')) {
                p += 1;
            }
            ports.push_str(&rest[start..p]);
            term = byte_at(rest, p);
        }
        if term != Some(b',') {
            break term;
        }
        p += 1;
        hosts.push(',');
        ports.push(',');
    };

    if !hosts.is_empty() {
        pairs.push(("host".to_string(), uri_decode(&hosts, Part::Plain)?));
    }
    if !ports.is_empty() {
        let decoded = uri_decode(&ports, Part::Plain)?;
        // A non-numeric "port" is most often a password containing an
        // unencoded '/', which moved the '@' out of reach; checking here keeps
        // that fragment of the password out of the later port error.
        if !decoded
            .split(',')
            .all(|port| port.trim().bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(ConnInfoError::Syntax(
                "invalid port number in URI (percent-encode \"/\", \"@\", \":\" and \"?\" in user names and passwords)"
                    .to_string(),
            ));
        }
        pairs.push(("port".to_string(), decoded));
    }

    let mut terminator = terminator;
    if terminator == Some(b'/') {
        p += 1;
        let start = p;
        while byte_at(rest, p).is_some_and(|b| b != b'?') {
            p += 1;
        }
        let dbname = &rest[start..p];
        // An empty dbname would block PGDATABASE, so it is left unset.
        if !dbname.is_empty() {
            pairs.push(("dbname".to_string(), uri_decode(dbname, Part::Plain)?));
        }
        terminator = byte_at(rest, p);
    }

    if terminator == Some(b'?') {
        parse_uri_params(&rest[p + 1..], &mut pairs)?;
    }
    Ok(pairs)
}

fn parse_uri_params(query: &str, pairs: &mut Vec<(String, String)>) -> Result<(), ConnInfoError> {
    let mut remaining = query;
    while !remaining.is_empty() {
        let (param, next) = match remaining.split_once('&') {
            Some((param, next)) => (param, next),
            None => (remaining, ""),
        };
        remaining = next;

        let Some((raw_key, raw_value)) = param.split_once('=') else {
            return Err(ConnInfoError::Syntax(format!(
                "missing key/value separator \"=\" in URI query parameter: {}",
                quoted(param)
            )));
        };
        if raw_value.contains('=') {
            return Err(ConnInfoError::Syntax(format!(
                "extra key/value separator \"=\" in URI query parameter: {}",
                quoted(raw_key)
            )));
        }

        let key = uri_decode(raw_key, Part::Plain)?;
        let part = if is_secret_key(&key) {
            Part::SecretValueOf(&key)
        } else {
            Part::Plain
        };
        let value = uri_decode(raw_value, part)?;

        // JDBC spelling, accepted by libpq for compatibility.
        let pair = if key == "ssl" && value == "true" {
            ("sslmode".to_string(), "require".to_string())
        } else {
            canonical_option(&key, value).map_err(|err| match err {
                ConnInfoError::InvalidOption(key) => ConnInfoError::InvalidUriParameter(key),
                other => other,
            })?
        };
        pairs.push(pair);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn err(input: &str) -> String {
        parse(input).unwrap_err().to_string()
    }

    /// Only C `isspace` separates or is trimmed, as in libpq: every other Unicode white space belongs to the value,
    /// at either end of it, quoted or not.
    #[test]
    fn unicode_spaces_are_part_of_values() {
        let others = ('\u{80}'..='\u{10FFFF}').filter(|c| c.is_whitespace());
        for c in others.chain(['\u{1c}', '\u{1d}', '\u{1e}', '\u{1f}']) {
            for value in [format!("{c}x"), format!("x{c}"), c.to_string()] {
                let input = format!("application_name={}", quote_value(&value));
                assert_eq!(
                    parse(&input).unwrap(),
                    kv(&[("application_name", &value)]),
                    "U+{:04X}",
                    c as u32
                );
            }
        }
    }

    // --- URI examples from the libpq documentation (34.1.1.2) ---

    #[test]
    fn uri_bare_scheme_is_empty() {
        assert_eq!(parse("postgresql://").unwrap(), kv(&[]));
        assert_eq!(parse("postgres://").unwrap(), kv(&[]));
    }

    #[test]
    fn uri_host_only() {
        assert_eq!(parse("postgresql://localhost").unwrap(), kv(&[("host", "localhost")]));
    }

    #[test]
    fn uri_host_and_port() {
        assert_eq!(
            parse("postgresql://localhost:5433").unwrap(),
            kv(&[("host", "localhost"), ("port", "5433")])
        );
    }

    #[test]
    fn uri_host_and_dbname() {
        assert_eq!(
            parse("postgresql://localhost/mydb").unwrap(),
            kv(&[("host", "localhost"), ("dbname", "mydb")])
        );
    }

    #[test]
    fn uri_user_at_host() {
        assert_eq!(
            parse("postgresql://user@localhost").unwrap(),
            kv(&[("user", "user"), ("host", "localhost")])
        );
    }

    #[test]
    fn uri_user_password_at_host() {
        assert_eq!(
            parse("postgresql://user:secret@localhost").unwrap(),
            kv(&[("user", "user"), ("password", "secret"), ("host", "localhost")])
        );
    }

    #[test]
    fn uri_with_query_parameters() {
        assert_eq!(
            parse("postgresql://other@localhost/otherdb?connect_timeout=10&application_name=myapp").unwrap(),
            kv(&[
                ("user", "other"),
                ("host", "localhost"),
                ("dbname", "otherdb"),
                ("connect_timeout", "10"),
                ("application_name", "myapp"),
            ])
        );
    }

    #[test]
    fn uri_multiple_hosts() {
        assert_eq!(
            parse("postgresql://host1:123,host2:456/somedb?target_session_attrs=any&application_name=myapp").unwrap(),
            kv(&[
                ("host", "host1,host2"),
                ("port", "123,456"),
                ("dbname", "somedb"),
                ("target_session_attrs", "any"),
                ("application_name", "myapp"),
            ])
        );
    }

    #[test]
    fn uri_multiple_hosts_with_some_ports_missing_keeps_positions() {
        assert_eq!(
            parse("postgresql://host1:123,host2,host3:789").unwrap(),
            kv(&[("host", "host1,host2,host3"), ("port", "123,,789")])
        );
    }

    #[test]
    fn uri_ipv6_literal() {
        assert_eq!(
            parse("postgresql://[2001:db8::1234]/database").unwrap(),
            kv(&[("host", "2001:db8::1234"), ("dbname", "database")])
        );
        assert_eq!(
            parse("postgresql://[::1]:5432").unwrap(),
            kv(&[("host", "::1"), ("port", "5432")])
        );
    }

    #[test]
    fn uri_socket_dir_in_query() {
        assert_eq!(
            parse("postgresql:///dbname?host=/var/lib/postgresql").unwrap(),
            kv(&[("dbname", "dbname"), ("host", "/var/lib/postgresql")])
        );
    }

    #[test]
    fn uri_socket_dir_percent_encoded_in_host() {
        assert_eq!(
            parse("postgresql://%2Fvar%2Flib%2Fpostgresql/dbname").unwrap(),
            kv(&[("host", "/var/lib/postgresql"), ("dbname", "dbname")])
        );
    }

    #[test]
    fn uri_empty_host_with_query_host_and_port() {
        assert_eq!(
            parse("postgresql:///mydb?host=localhost&port=5433").unwrap(),
            kv(&[("dbname", "mydb"), ("host", "localhost"), ("port", "5433")])
        );
    }

    #[test]
    fn uri_percent_decoding_everywhere() {
        assert_eq!(
            parse("postgres://us%40er:p%40ss%2Fw%3Ad@h%6Fst/my%20db?application_name=a%26b").unwrap(),
            kv(&[
                ("user", "us@er"),
                ("password", "p@ss/w:d"),
                ("host", "host"),
                ("dbname", "my db"),
                ("application_name", "a&b"),
            ])
        );
    }

    #[test]
    fn uri_password_may_contain_colon_after_the_first() {
        assert_eq!(
            parse("postgresql://u:a:b@h").unwrap(),
            kv(&[("user", "u"), ("password", "a:b"), ("host", "h")])
        );
    }

    #[test]
    fn uri_ssl_true_maps_to_sslmode_require() {
        assert_eq!(
            parse("postgresql://h/db?ssl=true").unwrap(),
            kv(&[("host", "h"), ("dbname", "db"), ("sslmode", "require")])
        );
        assert_eq!(
            err("postgresql://h/db?ssl=false"),
            "invalid URI query parameter: \"ssl\""
        );
    }

    #[test]
    fn uri_empty_dbname_is_not_set() {
        assert_eq!(parse("postgresql://h/").unwrap(), kv(&[("host", "h")]));
        assert_eq!(parse("postgresql://h?").unwrap(), kv(&[("host", "h")]));
    }

    #[test]
    fn uri_unknown_query_parameter() {
        assert_eq!(err("postgresql://h?foo=bar"), "invalid URI query parameter: \"foo\"");
    }

    #[test]
    fn uri_query_separator_errors() {
        assert_eq!(
            err("postgresql://h?sslmode"),
            "missing key/value separator \"=\" in URI query parameter: \"sslmode\""
        );
        assert_eq!(
            err("postgresql://h?password=a=b"),
            "extra key/value separator \"=\" in URI query parameter: \"password\""
        );
    }

    #[test]
    fn uri_ipv6_errors() {
        assert_eq!(
            err("postgresql://[::1"),
            "end of string reached when looking for matching \"]\" in IPv6 host address in URI"
        );
        assert_eq!(err("postgresql://[]/db"), "IPv6 host address may not be empty in URI");
        assert_eq!(
            err("postgresql://[::1]x/db"),
            "unexpected character \"x\" at position 19 in URI (expected \":\" or \"/\")"
        );
    }

    #[test]
    fn uri_percent_errors() {
        assert_eq!(err("postgresql://h/db%zz"), "invalid percent-encoded token: \"db%zz\"");
        assert_eq!(
            err("postgresql://h/db%00"),
            "forbidden value %00 in percent-encoded value: \"db%00\""
        );
        assert_eq!(
            err("postgresql://h/my db"),
            "unexpected spaces found in \"my db\", use percent-encoded spaces (%20) instead"
        );
    }

    #[test]
    fn uri_errors_never_echo_the_password() {
        for input in [
            "postgresql://u:hunter%zz2@h/db",
            "postgresql://u:hunter%002@h/db",
            "postgresql://u:hunter 2@h/db",
            "postgresql://h/db?password=hunter%zz2",
            "postgresql://h/db?password=hunter%FF2",
            // An unencoded '/' hides the '@', so "hunter" lands in the port.
            "postgresql://u:hunter/2@h/db",
        ] {
            let msg = err(input);
            assert!(!msg.contains("hunter"), "{input} -> {msg}");
            assert!(!msg.contains('\n'), "{input} -> {msg}");
        }
        assert_eq!(
            err("postgresql://u:hunter%zz2@h/db"),
            "invalid percent-encoded token: the value of \"password\""
        );
    }

    #[test]
    fn uri_requiressl_is_translated() {
        assert_eq!(
            parse("postgresql://h?requiressl=1").unwrap(),
            kv(&[("host", "h"), ("sslmode", "require")])
        );
    }

    // --- keyword/value strings ---

    #[test]
    fn keyword_value_basic() {
        assert_eq!(
            parse("host=localhost port=5432 dbname=mydb connect_timeout=10").unwrap(),
            kv(&[
                ("host", "localhost"),
                ("port", "5432"),
                ("dbname", "mydb"),
                ("connect_timeout", "10"),
            ])
        );
    }

    #[test]
    fn keyword_value_quotes_and_escapes() {
        assert_eq!(
            parse(r"host=localhost dbname='my db' password='it\'s' options='-c a\\b'").unwrap(),
            kv(&[
                ("host", "localhost"),
                ("dbname", "my db"),
                ("password", "it's"),
                ("options", r"-c a\b"),
            ])
        );
    }

    #[test]
    fn keyword_value_backslash_escapes_in_unquoted_values() {
        assert_eq!(
            parse(r"dbname=my\ db user=a\\b").unwrap(),
            kv(&[("dbname", "my db"), ("user", r"a\b")])
        );
    }

    #[test]
    fn keyword_value_spaces_around_equals_and_empty_values() {
        assert_eq!(
            parse("  host = localhost\tport\n=\n5432 password='' user = ''  ").unwrap(),
            kv(&[("host", "localhost"), ("port", "5432"), ("password", ""), ("user", ""),])
        );
    }

    #[test]
    fn keyword_value_empty_input() {
        assert_eq!(parse("").unwrap(), kv(&[]));
        assert_eq!(parse("   \n").unwrap(), kv(&[]));
    }

    #[test]
    fn keyword_value_repeated_keys_are_kept_in_order() {
        assert_eq!(parse("host=a host=b").unwrap(), kv(&[("host", "a"), ("host", "b")]));
    }

    #[test]
    fn keyword_value_quoted_value_followed_directly_by_next_key() {
        assert_eq!(
            parse("dbname='x'user=y").unwrap(),
            kv(&[("dbname", "x"), ("user", "y")])
        );
    }

    #[test]
    fn keyword_value_requiressl_translation() {
        assert_eq!(parse("requiressl=1").unwrap(), kv(&[("sslmode", "require")]));
        assert_eq!(parse("requiressl=0").unwrap(), kv(&[("sslmode", "prefer")]));
    }

    #[test]
    fn keyword_value_accepts_every_documented_key() {
        for key in [
            "host",
            "hostaddr",
            "port",
            "dbname",
            "user",
            "password",
            "passfile",
            "application_name",
            "fallback_application_name",
            "connect_timeout",
            "options",
            "target_session_attrs",
            "sslmode",
            "sslrootcert",
            "sslcert",
            "sslkey",
            "sslpassword",
            "sslcrl",
            "sslcrldir",
            "sslcertmode",
            "sslnegotiation",
            "sslcompression",
            "sslsni",
            "ssl_min_protocol_version",
            "ssl_max_protocol_version",
            "service",
            "channel_binding",
            "gssencmode",
            "requiressl",
            "keepalives",
            "keepalives_idle",
            "keepalives_interval",
            "keepalives_count",
            "tcp_user_timeout",
            "load_balance_hosts",
            "require_auth",
            "client_encoding",
            "krbsrvname",
            "gsslib",
            "gssdelegation",
            "replication",
        ] {
            let parsed = parse(&format!("{key}=1"));
            assert!(parsed.is_ok(), "{key}: {parsed:?}");
            assert!(is_known_key(key), "{key}");
        }
    }

    #[test]
    fn keyword_value_unknown_key() {
        assert_eq!(err("host=a foo=bar"), "invalid connection option \"foo\"");
        assert_eq!(
            parse("sslmdoe=require").unwrap_err(),
            ConnInfoError::InvalidOption("sslmdoe".to_string())
        );
    }

    #[test]
    fn a_misspelt_keyword_after_a_password_is_named() {
        assert_eq!(
            parse("password=hunter2 sslmdoe=require").unwrap_err().to_string(),
            "invalid connection option \"sslmdoe\""
        );
        let err = parse("password=hunter2 zebra=1").unwrap_err().to_string();
        assert!(err.contains("after the value of \"password\""), "{err}");
        assert!(!err.contains("zebra"), "{err}");
    }

    #[test]
    fn keyword_value_bare_word_is_an_error() {
        assert_eq!(err("mydb"), "missing \"=\" after \"mydb\" in connection info string");
        assert_eq!(
            err("host=a port"),
            "missing \"=\" after \"port\" in connection info string"
        );
    }

    #[test]
    fn keyword_value_unterminated_quote() {
        assert_eq!(
            err("dbname='abc"),
            "unterminated quoted string in connection info string"
        );
        assert_eq!(
            err(r"dbname='abc\'"),
            "unterminated quoted string in connection info string"
        );
    }

    #[test]
    fn keyword_value_errors_never_echo_the_password() {
        for input in [
            "password=hunter two host=x",
            "password=hunter two=x",
            "password='hunter",
            "sslpassword=hunter two",
        ] {
            let msg = err(input);
            assert!(!msg.contains("hunter"), "{input} -> {msg}");
            assert!(!msg.contains("two"), "{input} -> {msg}");
        }
        assert_eq!(
            err("password=hunter two host=x"),
            "missing \"=\" after the value of \"password\" in connection info string (quote values that contain spaces)"
        );
    }

    #[test]
    fn errors_are_single_line_even_with_control_characters() {
        let msg = err("bad\u{7}key=1");
        assert!(!msg.contains('\u{7}'));
        assert_eq!(msg, "invalid connection option \"bad\\x07key\"");
        let msg = err("postgresql://h?a\nb=1");
        assert!(!msg.contains('\n'), "{msg}");
    }

    #[test]
    fn quote_value_round_trips() {
        for value in ["plain", "", "has space", r"it's", r"back\slash", "tab\there"] {
            let input = format!("dbname={}", quote_value(value));
            assert_eq!(parse(&input).unwrap(), kv(&[("dbname", value)]), "{input}");
        }
        assert_eq!(quote_value("plain"), "plain");
        assert_eq!(quote_value(""), "''");
    }

    #[test]
    fn uri_detection() {
        assert!(is_uri("postgresql://x"));
        assert!(is_uri("  postgres://x"));
        assert!(!is_uri("host=postgresql://x"));
        assert!(!is_uri("Postgresql://x"));
    }

    #[test]
    fn secret_keys() {
        assert!(is_secret_key("password"));
        assert!(is_secret_key("sslpassword"));
        assert!(!is_secret_key("passfile"));
        assert!(!is_secret_key("nonsense"));
    }
}
