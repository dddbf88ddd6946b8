//! What each libpq keyword does in pgtls: typed rules for the connect step, and [`KEYWORDS`], the table
//! docs/connecting.md shows. No keyword is silently ignored: it is applied as libpq 18 applies it, refused with a
//! one-line reason, or has no effect exactly where libpq's has none.

use std::path::PathBuf;

use crate::error::ConnInfoError;
use crate::text::quoted;

/// `channel_binding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChannelBindingMode {
    Disable,
    #[default]
    Prefer,
    Require,
}

/// An authentication method a server can ask for, by libpq's `require_auth` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Password,
    Md5,
    Gss,
    Sspi,
    ScramSha256,
}

impl AuthMethod {
    const NAMES: [(&'static str, AuthMethod); 5] = [
        ("password", AuthMethod::Password),
        ("md5", AuthMethod::Md5),
        ("gss", AuthMethod::Gss),
        ("sspi", AuthMethod::Sspi),
        ("scram-sha-256", AuthMethod::ScramSha256),
    ];

    /// The AuthenticationRequest code a server sends (8, GSS continue, counts as gss).
    pub fn from_code(code: i32) -> Option<AuthMethod> {
        match code {
            3 => Some(AuthMethod::Password),
            5 => Some(AuthMethod::Md5),
            7 | 8 => Some(AuthMethod::Gss),
            9 => Some(AuthMethod::Sspi),
            10 => Some(AuthMethod::ScramSha256),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        Self::NAMES.iter().find(|(_, m)| *m == self).map_or("", |(n, _)| n)
    }

    /// libpq's reason when `require_auth` does not allow this request.
    pub fn requested(self) -> &'static str {
        match self {
            AuthMethod::Password => "server requested a cleartext password",
            AuthMethod::Md5 => "server requested a hashed password",
            AuthMethod::Gss => "server requested GSSAPI authentication",
            AuthMethod::Sspi => "server requested SSPI authentication",
            AuthMethod::ScramSha256 => "server requested SASL authentication",
        }
    }
}

/// `require_auth`: a list of methods the server may use, or (all `!`-prefixed) may not use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequireAuth {
    raw: String,
    negated: bool,
    methods: Vec<AuthMethod>,
    /// `none` listed: the server may skip authentication (trust, or a certificate alone).
    none: bool,
}

impl RequireAuth {
    pub fn parse(raw: &str) -> Result<RequireAuth, ConnInfoError> {
        let mut parsed = RequireAuth {
            raw: raw.to_string(),
            negated: false,
            methods: Vec::new(),
            none: false,
        };
        let mut seen: Vec<&str> = Vec::new();
        for (i, item) in raw.split(',').enumerate() {
            let (negated, name) = match item.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, item),
            };
            if i == 0 {
                parsed.negated = negated;
            } else if negated != parsed.negated {
                let message = if negated {
                    format!(
                        "negative require_auth method {} cannot be mixed with non-negative methods",
                        quoted(item)
                    )
                } else {
                    format!(
                        "require_auth method {} cannot be mixed with negative methods",
                        quoted(item)
                    )
                };
                return Err(ConnInfoError::InvalidValue(message));
            }
            if seen.contains(&name) {
                return Err(ConnInfoError::InvalidValue(format!(
                    "require_auth method {} is specified more than once",
                    quoted(item)
                )));
            }
            seen.push(name);
            if name == "none" {
                parsed.none = true;
            } else if let Some((_, m)) = AuthMethod::NAMES.iter().find(|(n, _)| *n == name) {
                parsed.methods.push(*m);
            } else if name == "oauth" {
                // libpq 18 knows it; pgtls cannot do OAuth, so a server asking for it is refused anyway.
            } else {
                return Err(ConnInfoError::InvalidValue(format!(
                    "invalid require_auth value: {}",
                    quoted(item)
                )));
            }
        }
        Ok(parsed)
    }

    pub fn allows(&self, method: AuthMethod) -> bool {
        self.methods.contains(&method) != self.negated
    }

    pub fn allows_none(&self) -> bool {
        self.none != self.negated
    }

    pub fn failure(&self, reason: &str) -> String {
        format!(
            "authentication method requirement {} failed: {reason}",
            quoted(&self.raw)
        )
    }
}

/// `target_session_attrs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TargetSessionAttrs {
    #[default]
    Any,
    ReadWrite,
    ReadOnly,
    Primary,
    Standby,
    PreferStandby,
}

impl TargetSessionAttrs {
    fn parse(value: &str) -> Result<Self, ConnInfoError> {
        Ok(match value {
            "any" => Self::Any,
            "read-write" => Self::ReadWrite,
            "read-only" => Self::ReadOnly,
            "primary" => Self::Primary,
            "standby" => Self::Standby,
            "prefer-standby" => Self::PreferStandby,
            other => {
                return Err(ConnInfoError::InvalidValue(format!(
                    "invalid target_session_attrs value: {}",
                    quoted(other)
                )));
            }
        })
    }
}

/// `sslcertmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslCertMode {
    Disable,
    #[default]
    Allow,
    Require,
}

/// Everything beyond host, user and sslmode that changes how a connection is made or refused.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rules {
    pub channel_binding: ChannelBindingMode,
    pub require_auth: Option<RequireAuth>,
    pub target_session_attrs: TargetSessionAttrs,
    pub sslcrl: Option<PathBuf>,
    pub sslcrldir: Option<PathBuf>,
    /// `sslsni` (default on): send the host name in the TLS handshake unless it is an IP literal.
    pub sslsni: bool,
    /// Raw `keepalives*` and `tcp_user_timeout` values: libpq parses them only when it opens a TCP
    /// socket, so a bad one fails there and never for a Unix socket.
    pub keepalives: Option<String>,
    pub keepalives_idle: Option<String>,
    pub keepalives_interval: Option<String>,
    pub keepalives_count: Option<String>,
    pub tcp_user_timeout: Option<String>,
    pub requirepeer: Option<String>,
    pub sslcertmode: SslCertMode,
    /// `load_balance_hosts=random`: hosts (and each host's addresses) are tried in random order.
    pub load_balance_random: bool,
    pub sslkeylogfile: Option<PathBuf>,
}

/// Builds the rules from the resolved keyword values (`value(keyword)` gives a non-empty value after
/// connection string, service file and environment are layered), refusing what pgtls cannot honour.
pub fn rules<'a>(value: impl Fn(&str) -> Option<&'a str>) -> Result<Rules, ConnInfoError> {
    let enumerated = |key: &str, allowed: &[&str]| -> Result<Option<&'a str>, ConnInfoError> {
        match value(key) {
            Some(v) if !allowed.contains(&v) => Err(ConnInfoError::InvalidValue(format!(
                "invalid {key} value: {}",
                quoted(v)
            ))),
            other => Ok(other),
        }
    };
    let refuse = |keyword: &'static str, value: &str, reason: &'static str| ConnInfoError::Unsupported {
        keyword,
        value: value.to_string(),
        reason,
    };

    let channel_binding = match enumerated("channel_binding", &["disable", "prefer", "require"])? {
        Some("disable") => ChannelBindingMode::Disable,
        Some("require") => ChannelBindingMode::Require,
        _ => ChannelBindingMode::Prefer,
    };
    let require_auth = value("require_auth").map(RequireAuth::parse).transpose()?;
    let target_session_attrs = value("target_session_attrs")
        .map(TargetSessionAttrs::parse)
        .transpose()?
        .unwrap_or_default();
    let sslcertmode = match enumerated("sslcertmode", &["disable", "allow", "require"])? {
        Some("disable") => SslCertMode::Disable,
        Some("require") => SslCertMode::Require,
        _ => SslCertMode::Allow,
    };
    let load_balance_random = enumerated("load_balance_hosts", &["disable", "random"])? == Some("random");

    if let Some(mode) = enumerated("gssencmode", &["disable", "prefer", "require"])?
        && mode == "require"
    {
        return Err(refuse("gssencmode", mode, "pgtls has no GSSAPI support"));
    }
    if let Some(encoding) = value("client_encoding") {
        let utf8 = ["utf8", "utf-8", "unicode", "auto"].contains(&encoding.to_ascii_lowercase().as_str());
        if !utf8 {
            return Err(refuse(
                "client_encoding",
                encoding,
                "pgtls reads every text column as UTF-8 (use UTF8 or auto)",
            ));
        }
    }
    if let Some(replication) = value("replication") {
        let off = ["0", "off", "false", "no"].contains(&replication.to_ascii_lowercase().as_str());
        if !off {
            return Err(refuse(
                "replication",
                replication,
                "pgtls monitors over ordinary sessions and never opens a replication connection",
            ));
        }
    }
    if let Some(min) = value("min_protocol_version") {
        match min {
            "3.0" => {}
            "3.2" | "latest" => {
                return Err(refuse("min_protocol_version", min, "pgtls speaks protocol 3.0 only"));
            }
            other => {
                return Err(ConnInfoError::InvalidValue(format!(
                    "invalid min_protocol_version value: {}",
                    quoted(other)
                )));
            }
        }
    }
    if let Some(max) = value("max_protocol_version") {
        // 3.0 is what pgtls speaks and what libpq 18 defaults to; a higher maximum is only an offer.
        if !["3.0", "3.2", "latest"].contains(&max) {
            return Err(ConnInfoError::InvalidValue(format!(
                "invalid max_protocol_version value: {}",
                quoted(max)
            )));
        }
    }
    for key in ["scram_client_key", "scram_server_key"] {
        if value(key).is_some() {
            let keyword = if key == "scram_client_key" {
                "scram_client_key"
            } else {
                "scram_server_key"
            };
            return Err(refuse(
                keyword,
                "****",
                "pgtls cannot authenticate with stored SCRAM keys",
            ));
        }
    }
    let sslsni = match value("sslsni") {
        None => true,
        // libpq looks at the first character only.
        Some(v) => v.starts_with('1'),
    };

    Ok(Rules {
        channel_binding,
        require_auth,
        target_session_attrs,
        sslcrl: value("sslcrl").map(PathBuf::from),
        sslcrldir: value("sslcrldir").map(PathBuf::from),
        sslsni,
        keepalives: value("keepalives").map(str::to_string),
        keepalives_idle: value("keepalives_idle").map(str::to_string),
        keepalives_interval: value("keepalives_interval").map(str::to_string),
        keepalives_count: value("keepalives_count").map(str::to_string),
        tcp_user_timeout: value("tcp_user_timeout").map(str::to_string),
        requirepeer: value("requirepeer").map(str::to_string),
        sslcertmode,
        load_balance_random,
        sslkeylogfile: value("sslkeylogfile").map(PathBuf::from),
    })
}

/// How pgtls treats one libpq keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Treatment {
    /// Applied with libpq's meaning.
    Applied,
    /// Some values are applied, others refused with a reason (see the note).
    Partly,
    /// Accepted; has an effect only in a situation pgtls refuses anyway (see the note), as in libpq.
    NoEffect,
}

impl Treatment {
    pub fn label(self) -> &'static str {
        match self {
            Treatment::Applied => "applied",
            Treatment::Partly => "applied / refused",
            Treatment::NoEffect => "no effect",
        }
    }
}

/// Every keyword libpq 18 documents, with its treatment and a note. The keyword table of docs/connecting.md is
/// made from it.
pub const KEYWORDS: &[(&str, Treatment, &str)] = &[
    (
        "host",
        Treatment::Applied,
        "names, IP addresses, socket directories, lists; `@` abstract sockets refused by the OS",
    ),
    (
        "hostaddr",
        Treatment::Applied,
        "connects there; `host` is still the name checked by verify-full and sent as SNI",
    ),
    ("port", Treatment::Applied, "one for all hosts or one per host"),
    ("dbname", Treatment::Applied, "defaults to the user name"),
    ("user", Treatment::Applied, "defaults to the OS user"),
    ("password", Treatment::Applied, "never shown: masked in every display"),
    (
        "passfile",
        Treatment::Applied,
        "`.pgpass` rules, ignored (with libpq's warning) unless mode 0600",
    ),
    (
        "require_auth",
        Treatment::Applied,
        "checked on each authentication request before any answer, as libpq",
    ),
    (
        "channel_binding",
        Treatment::Applied,
        "SCRAM-SHA-256-PLUS over OpenSSL's tls-server-end-point; require refuses anything else",
    ),
    (
        "connect_timeout",
        Treatment::Applied,
        "per host and address, whole start-up; pgtls defaults to 30 s where libpq waits forever",
    ),
    (
        "client_encoding",
        Treatment::Partly,
        "UTF8 / auto applied; any other encoding refused (pgtls decodes text as UTF-8)",
    ),
    (
        "options",
        Treatment::Applied,
        "sent to the server; a bad setting fails as in psql",
    ),
    ("application_name", Treatment::Applied, "default `pgtls`"),
    (
        "fallback_application_name",
        Treatment::Applied,
        "used when application_name is unset",
    ),
    (
        "keepalives",
        Treatment::Applied,
        "SO_KEEPALIVE on TCP sockets (default on)",
    ),
    ("keepalives_idle", Treatment::Applied, "TCP_KEEPIDLE"),
    ("keepalives_interval", Treatment::Applied, "TCP_KEEPINTVL"),
    ("keepalives_count", Treatment::Applied, "TCP_KEEPCNT"),
    (
        "tcp_user_timeout",
        Treatment::Applied,
        "TCP_USER_TIMEOUT (milliseconds)",
    ),
    (
        "replication",
        Treatment::Partly,
        "false/0/off/no applied; true and database refused: pgtls never opens a replication connection",
    ),
    (
        "gssencmode",
        Treatment::Partly,
        "disable and prefer applied (no GSSAPI credentials, so no GSS encryption); require refused",
    ),
    (
        "sslmode",
        Treatment::Applied,
        "all six modes with libpq's fallbacks; require becomes verify-ca when a root file exists",
    ),
    (
        "sslnegotiation",
        Treatment::Applied,
        "postgres and direct (ALPN `postgresql`)",
    ),
    (
        "sslcompression",
        Treatment::NoEffect,
        "libpq 18 accepts and ignores it: TLS compression is gone",
    ),
    (
        "sslcert",
        Treatment::Applied,
        "certificate chain file; a missing file means no certificate, as libpq",
    ),
    (
        "sslkey",
        Treatment::Applied,
        "PEM key (PKCS#8, PKCS#1, SEC1, encrypted with sslpassword); 0600/0640 rule",
    ),
    (
        "sslcertmode",
        Treatment::Applied,
        "disable never sends a certificate; require fails unless one was sent",
    ),
    ("sslpassword", Treatment::Applied, "decrypts the key; never shown"),
    (
        "sslrootcert",
        Treatment::Applied,
        "file (every certificate in it trusted) or `system`",
    ),
    (
        "sslcrl",
        Treatment::Applied,
        "loaded with CRL_CHECK and CRL_CHECK_ALL when a root file is used; a missing file is ignored",
    ),
    ("sslcrldir", Treatment::Applied, "OpenSSL hashed directory, as sslcrl"),
    (
        "sslsni",
        Treatment::Applied,
        "SNI with the host name unless it is an IP literal; 0 sends none",
    ),
    (
        "sslkeylogfile",
        Treatment::Applied,
        "TLS secrets appended in NSS key log format (for Wireshark)",
    ),
    (
        "requirepeer",
        Treatment::Applied,
        "Unix sockets: the server process's account, from SO_PEERCRED",
    ),
    (
        "ssl_min_protocol_version",
        Treatment::Applied,
        "default TLSv1.2, as libpq",
    ),
    (
        "ssl_max_protocol_version",
        Treatment::Applied,
        "TLSv1.3 can be the bound (OpenSSL)",
    ),
    (
        "min_protocol_version",
        Treatment::Partly,
        "3.0 applied; 3.2 and latest refused: pgtls speaks protocol 3.0",
    ),
    (
        "max_protocol_version",
        Treatment::Applied,
        "pgtls speaks 3.0, libpq 18's default",
    ),
    (
        "krbsrvname",
        Treatment::NoEffect,
        "only for GSSAPI authentication, which pgtls refuses with a clear error",
    ),
    ("gsslib", Treatment::NoEffect, "only for GSSAPI, as krbsrvname"),
    ("gssdelegation", Treatment::NoEffect, "only for GSSAPI, as krbsrvname"),
    (
        "scram_client_key",
        Treatment::Partly,
        "refused when set: pgtls cannot authenticate with stored SCRAM keys",
    ),
    (
        "scram_server_key",
        Treatment::Partly,
        "refused when set, as scram_client_key",
    ),
    (
        "service",
        Treatment::Applied,
        "PGSERVICEFILE or ~/.pg_service.conf, then PGSYSCONFDIR",
    ),
    (
        "target_session_attrs",
        Treatment::Applied,
        "all six values; each host checked as libpq, prefer-standby in two passes",
    ),
    (
        "load_balance_hosts",
        Treatment::Applied,
        "random shuffles hosts and their addresses",
    ),
    (
        "oauth_issuer",
        Treatment::NoEffect,
        "only when a server asks for OAUTHBEARER, which pgtls refuses with a clear error",
    ),
    ("oauth_client_id", Treatment::NoEffect, "as oauth_issuer"),
    (
        "oauth_client_secret",
        Treatment::NoEffect,
        "as oauth_issuer; never shown",
    ),
    ("oauth_scope", Treatment::NoEffect, "as oauth_issuer"),
];

/// Variables libpq reads that name no keyword: each becomes a start-up setting (unless it says "default").
pub const SESSION_VARIABLES: &[(&str, &str)] = &[
    ("PGDATESTYLE", "sent as the datestyle setting"),
    ("PGTZ", "sent as the timezone setting"),
    ("PGGEQO", "sent as the geqo setting"),
];

/// The keyword table of docs/connecting.md, generated from [`KEYWORDS`] and the environment variables libpq reads.
pub fn markdown_table() -> String {
    let mut out = String::from("| keyword | variable | in pgtls | how |\n|---|---|---|---|\n");
    for (var, how) in SESSION_VARIABLES {
        out.push_str(&format!("| | `{var}` | applied | {how}, as libpq does |\n"));
    }
    for (keyword, treatment, note) in KEYWORDS {
        let envvar = crate::conninfo::option_spec(keyword)
            .and_then(|s| s.envvar)
            .map_or_else(String::new, |v| format!("`{v}`"));
        out.push_str(&format!(
            "| `{keyword}` | {envvar} | {} | {note} |\n",
            treatment.label()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_keyword_libpq_accepts_has_a_treatment() {
        for spec in crate::conninfo::OPTIONS {
            assert!(
                KEYWORDS.iter().any(|(k, _, _)| *k == spec.keyword),
                "{} has no row in KEYWORDS",
                spec.keyword
            );
        }
        for (keyword, _, _) in KEYWORDS {
            assert!(
                crate::conninfo::option_spec(keyword).is_some(),
                "{keyword} is not a libpq keyword"
            );
        }
    }

    #[test]
    fn require_auth_lists_follow_libpq() {
        let scram = RequireAuth::parse("scram-sha-256").unwrap();
        assert!(scram.allows(AuthMethod::ScramSha256) && !scram.allows(AuthMethod::Password) && !scram.allows_none());
        let not_password = RequireAuth::parse("!password,!md5").unwrap();
        assert!(not_password.allows(AuthMethod::ScramSha256) && !not_password.allows(AuthMethod::Md5));
        assert!(not_password.allows_none());
        assert!(RequireAuth::parse("none").unwrap().allows_none());
        assert!(RequireAuth::parse("password,!md5").is_err());
        assert!(RequireAuth::parse("md5,md5").is_err());
        assert!(RequireAuth::parse("kerberos").is_err());
    }

    fn from(pairs: &'static [(&'static str, &'static str)]) -> Result<Rules, ConnInfoError> {
        rules(|k| pairs.iter().find(|(key, _)| *key == k).map(|(_, v)| *v))
    }

    #[test]
    fn what_pgtls_cannot_do_is_refused_by_name() {
        for (pairs, keyword) in [
            (&[("gssencmode", "require")][..], "gssencmode"),
            (&[("client_encoding", "LATIN1")][..], "client_encoding"),
            (&[("replication", "database")][..], "replication"),
            (&[("min_protocol_version", "3.2")][..], "min_protocol_version"),
            (&[("scram_client_key", "c2VjcmV0")][..], "scram_client_key"),
        ] {
            let err = from(pairs).unwrap_err().to_string();
            assert!(err.starts_with(&format!("{keyword}=")), "{err}");
            assert!(!err.contains("c2VjcmV0"), "a key must never be shown: {err}");
        }
        assert!(
            from(&[
                ("gssencmode", "prefer"),
                ("client_encoding", "auto"),
                ("replication", "off")
            ])
            .is_ok()
        );
    }
}
