//! Resolve what a DBA would give `psql` into concrete connection parameters.
//!
//! Precedence follows libpq: values in the connection string win, then the
//! service file (named by `service=` or `PGSERVICE`), then `PG*` environment
//! variables, then built-in defaults. Resolution is pure apart from reading
//! the service file and checking whether a few default files exist; the
//! password file is deliberately not consulted here because its answer
//! depends on which host is being tried (see [`ConnParams::password_for`]).

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::conninfo;
use crate::error::{ConnInfoError, ServiceError};
use crate::pgpass::{self, PgpassLookup};
use crate::rules::{self, Rules};
use crate::service;
use crate::text::quoted;

pub const DEFAULT_PORT: u16 = 5432;
pub const DEFAULT_APPLICATION_NAME: &str = "pgtls";

/// libpq's `sslmode`, ordered from weakest to strongest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum SslMode {
    Disable,
    Allow,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub const ALL: [SslMode; 6] = [
        SslMode::Disable,
        SslMode::Allow,
        SslMode::Prefer,
        SslMode::Require,
        SslMode::VerifyCa,
        SslMode::VerifyFull,
    ];

    /// The libpq spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether a connection without TLS is refused.
    pub fn requires_tls(self) -> bool {
        self >= SslMode::Require
    }
}

impl FromStr for SslMode {
    type Err = ConnInfoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SslMode::ALL
            .into_iter()
            .find(|mode| mode.as_str() == s)
            .ok_or_else(|| ConnInfoError::InvalidValue(format!("invalid sslmode value: {}", quoted(s))))
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where trusted CA certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    File(PathBuf),
    /// `sslrootcert=system`: the TLS library's default trust store.
    System,
}

/// One host to try, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostTarget {
    /// Host name, IP address, or Unix-socket directory (starting with `/`).
    /// When only `hostaddr` was given this holds the address as written, as
    /// libpq's `PQhost` does, so that password file lookups and certificate
    /// checks use it.
    pub host: String,
    /// When set, connect here without resolving `host`.
    pub hostaddr: Option<IpAddr>,
    pub port: u16,
    /// `host` was given (not copied from `hostaddr`): only then is there a name to verify and send as SNI.
    pub host_given: bool,
}

impl HostTarget {
    /// The name TLS checks (verify-full) and sends (SNI): `host`, never an address copied from `hostaddr`.
    pub fn tls_name(&self) -> &str {
        if self.host_given { &self.host } else { "" }
    }

    /// Whether this target is a Unix-domain socket rather than TCP.
    pub fn is_unix_socket(&self) -> bool {
        self.hostaddr.is_none() && (self.host.starts_with('/') || self.host.starts_with('@'))
    }
}

/// Fully resolved connection parameters.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnParams {
    /// At least one entry.
    pub targets: Vec<HostTarget>,
    pub dbname: String,
    pub user: String,
    /// Explicit password (connection string, service file or `PGPASSWORD`);
    /// `None` means the password file should be consulted per host.
    pub password: Option<String>,
    /// Empty when neither `passfile`/`PGPASSFILE` nor a home directory is known.
    pub passfile: PathBuf,
    pub application_name: String,
    pub connect_timeout: Option<Duration>,
    pub options: Option<String>,
    pub target_session_attrs: Option<String>,
    pub sslmode: SslMode,
    /// The user chose `sslmode` (parameter, service file, `PGSSLMODE` or
    /// `PGREQUIRESSL`) rather than getting the default.
    pub sslmode_explicit: bool,
    /// Explicitly given; `None` means libpq's default file applies.
    pub sslrootcert: Option<RootCert>,
    /// `~/.postgresql/root.crt`; empty when the home directory is unknown.
    pub default_rootcert: PathBuf,
    /// Explicit, or the default `~/.postgresql/postgresql.crt` if it exists.
    pub sslcert: Option<PathBuf>,
    pub sslcert_explicit: bool,
    /// Explicit, or the default `~/.postgresql/postgresql.key` if it exists.
    pub sslkey: Option<PathBuf>,
    pub sslkey_explicit: bool,
    pub sslpassword: Option<String>,
    /// Canonical spelling: `TLSv1`, `TLSv1.1`, `TLSv1.2` or `TLSv1.3`.
    /// `None` when not given; libpq itself then defaults the minimum to TLSv1.2.
    pub ssl_min_protocol_version: Option<String>,
    pub ssl_max_protocol_version: Option<String>,
    /// `postgres` or `direct`.
    pub sslnegotiation: Option<String>,
    pub service: Option<String>,
    /// Every other libpq keyword that was set (e.g. `channel_binding`,
    /// `keepalives`), in libpq's keyword order, so the connect step can honour
    /// or report them.
    pub extra: Vec<(String, String)>,
    /// Things the user should be told about but that do not stop a connection.
    pub warnings: Vec<String>,
    /// Every other keyword's effect, typed (see [`crate::rules`]).
    pub rules: Rules,
    /// Settings libpq sends from the environment at start-up (`PGDATESTYLE`, `PGTZ`, `PGGEQO`), as
    /// (setting, value); "default" means not sent.
    pub session_settings: Vec<(String, String)>,
    /// The longest row, error or notice accepted from the server, in bytes; `None` for
    /// [`crate::inspect::MAX_LONG_MESSAGE`]. Not a libpq keyword: set by a caller whose peer has no reason to send
    /// long ones (a pooler's admin console).
    pub message_limit: Option<usize>,
}

const MASK: &str = "****";

impl ConnParams {
    /// A connection string equivalent to these parameters, readable back by
    /// [`conninfo::parse`], with every secret replaced by `****`.
    pub fn display_masked(&self) -> String {
        let mut parts: Vec<(&str, String)> = Vec::new();
        let hosts: Vec<&str> = self.targets.iter().map(|t| t.host.as_str()).collect();
        parts.push(("host", hosts.join(",")));
        if self.targets.iter().any(|t| t.hostaddr.is_some()) {
            let addrs: Vec<String> = self
                .targets
                .iter()
                .map(|t| t.hostaddr.map(|a| a.to_string()).unwrap_or_default())
                .collect();
            parts.push(("hostaddr", addrs.join(",")));
        }
        let first_port = self.targets.first().map_or(DEFAULT_PORT, |t| t.port);
        let ports = if self.targets.iter().all(|t| t.port == first_port) {
            first_port.to_string()
        } else {
            let ports: Vec<String> = self.targets.iter().map(|t| t.port.to_string()).collect();
            ports.join(",")
        };
        parts.push(("port", ports));
        parts.push(("dbname", self.dbname.clone()));
        parts.push(("user", self.user.clone()));
        if self.password.is_some() {
            parts.push(("password", MASK.to_string()));
        }
        if let Some(service) = &self.service {
            parts.push(("service", service.clone()));
        }
        parts.push(("application_name", self.application_name.clone()));
        if let Some(timeout) = self.connect_timeout {
            parts.push(("connect_timeout", timeout.as_secs().to_string()));
        }
        if let Some(options) = &self.options {
            parts.push(("options", options.clone()));
        }
        if let Some(attrs) = &self.target_session_attrs {
            parts.push(("target_session_attrs", attrs.clone()));
        }
        parts.push(("sslmode", self.sslmode.to_string()));
        match &self.sslrootcert {
            Some(RootCert::System) => parts.push(("sslrootcert", "system".to_string())),
            Some(RootCert::File(path)) => parts.push(("sslrootcert", path_text(path))),
            None => {}
        }
        if let Some(cert) = &self.sslcert {
            parts.push(("sslcert", path_text(cert)));
        }
        if let Some(key) = &self.sslkey {
            parts.push(("sslkey", path_text(key)));
        }
        if self.sslpassword.is_some() {
            parts.push(("sslpassword", MASK.to_string()));
        }
        if let Some(v) = &self.ssl_min_protocol_version {
            parts.push(("ssl_min_protocol_version", v.clone()));
        }
        if let Some(v) = &self.ssl_max_protocol_version {
            parts.push(("ssl_max_protocol_version", v.clone()));
        }
        if let Some(v) = &self.sslnegotiation {
            parts.push(("sslnegotiation", v.clone()));
        }
        for (key, value) in &self.extra {
            let shown = if conninfo::is_secret_key(key) {
                MASK.to_string()
            } else {
                value.clone()
            };
            parts.push((key.as_str(), shown));
        }
        let rendered: Vec<String> = parts
            .into_iter()
            .map(|(key, value)| format!("{key}={}", conninfo::quote_value(&value)))
            .collect();
        rendered.join(" ")
    }

    /// The password to use for `target`: the explicit one if given, otherwise
    /// the password file's answer for this host, port, database and user.
    pub fn password_for(&self, target: &HostTarget) -> PgpassLookup {
        if let Some(password) = &self.password {
            return PgpassLookup {
                password: Some(password.clone()),
                warning: None,
            };
        }
        pgpass::lookup(&self.passfile, &target.host, target.port, &self.dbname, &self.user)
    }

    /// Value of a keyword kept in [`ConnParams::extra`].
    pub fn extra_value(&self, keyword: &str) -> Option<&str> {
        self.extra
            .iter()
            .rev()
            .find(|(k, _)| k == keyword)
            .map(|(_, v)| v.as_str())
    }
}

fn path_text(path: &Path) -> String {
    path.display().to_string()
}

impl fmt::Debug for ConnParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let extra: Vec<(&str, &str)> = self
            .extra
            .iter()
            .map(|(k, v)| {
                let shown = if conninfo::is_secret_key(k) { MASK } else { v.as_str() };
                (k.as_str(), shown)
            })
            .collect();
        f.debug_struct("ConnParams")
            .field("targets", &self.targets)
            .field("dbname", &self.dbname)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| MASK))
            .field("passfile", &self.passfile)
            .field("application_name", &self.application_name)
            .field("connect_timeout", &self.connect_timeout)
            .field("options", &self.options)
            .field("target_session_attrs", &self.target_session_attrs)
            .field("sslmode", &self.sslmode)
            .field("sslmode_explicit", &self.sslmode_explicit)
            .field("sslrootcert", &self.sslrootcert)
            .field("default_rootcert", &self.default_rootcert)
            .field("sslcert", &self.sslcert)
            .field("sslcert_explicit", &self.sslcert_explicit)
            .field("sslkey", &self.sslkey)
            .field("sslkey_explicit", &self.sslkey_explicit)
            .field("sslpassword", &self.sslpassword.as_ref().map(|_| MASK))
            .field("ssl_min_protocol_version", &self.ssl_min_protocol_version)
            .field("ssl_max_protocol_version", &self.ssl_max_protocol_version)
            .field("sslnegotiation", &self.sslnegotiation)
            .field("service", &self.service)
            .field("extra", &extra)
            .field("warnings", &self.warnings)
            .field("rules", &self.rules)
            .field("session_settings", &self.session_settings)
            .finish()
    }
}

/// The process context libpq reads: `PG*` variables, the home directory and
/// the OS user. Kept as a value so resolution can be tested without touching
/// the real environment.
#[derive(Clone)]
pub struct Environment {
    vars: HashMap<String, String>,
    pub home: Option<PathBuf>,
    pub os_user: String,
    /// Used when no host is given.
    pub default_socket_dir: String,
    /// Stands in for libpq's compiled-in SYSCONFDIR when `PGSYSCONFDIR` is unset.
    pub sysconfdir: Option<PathBuf>,
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values are omitted because PGPASSWORD may be among them.
        let mut names: Vec<&str> = self.vars.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("Environment")
            .field("vars", &names)
            .field("home", &self.home)
            .field("os_user", &self.os_user)
            .field("default_socket_dir", &self.default_socket_dir)
            .field("sysconfdir", &self.sysconfdir)
            .finish()
    }
}

/// Debian and Ubuntu build libpq with this SYSCONFDIR, so that is where
/// their DBAs keep the system-wide `pg_service.conf`.
const DEBIAN_SYSCONFDIR: &str = "/etc/postgresql-common";

/// `/var/run/postgresql` where it exists (Debian, Ubuntu, Red Hat packages),
/// otherwise upstream's `/tmp`.
pub fn default_socket_dir() -> String {
    if Path::new("/var/run/postgresql").is_dir() {
        "/var/run/postgresql".to_string()
    } else {
        "/tmp".to_string()
    }
}

impl Environment {
    /// Captures the current process's context. Only `PG*` variables are kept;
    /// nothing else is needed and other variables may hold unrelated secrets.
    pub fn from_process() -> Self {
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .filter(|(k, _)| k.starts_with("PG"))
            .collect();
        let passwd = nix::unistd::User::from_uid(nix::unistd::geteuid()).ok().flatten();
        // libpq (since PostgreSQL 16) prefers $HOME over the passwd entry.
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .or_else(|| passwd.as_ref().map(|u| u.dir.clone()));
        let os_user = passwd
            .map(|u| u.name)
            .or_else(|| std::env::var("USER").ok())
            .or_else(|| std::env::var("LOGNAME").ok())
            .unwrap_or_default();
        let sysconfdir = Some(PathBuf::from(DEBIAN_SYSCONFDIR)).filter(|dir| dir.is_dir());
        Environment {
            vars,
            home,
            os_user,
            default_socket_dir: default_socket_dir(),
            sysconfdir,
        }
    }

    /// An explicit context, mainly for tests and for callers that build their
    /// own. No system service directory is assumed.
    pub fn new(vars: HashMap<String, String>, home: Option<PathBuf>, os_user: impl Into<String>) -> Self {
        Environment {
            vars,
            home,
            os_user: os_user.into(),
            default_socket_dir: default_socket_dir(),
            sysconfdir: None,
        }
    }

    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// Service files in search order: `PGSERVICEFILE` (which must exist, as
    /// in libpq) or `~/.pg_service.conf`, then `pg_service.conf` in
    /// `PGSYSCONFDIR` or the system directory.
    pub fn service_files(&self) -> Result<Vec<PathBuf>, ServiceError> {
        let mut files = Vec::new();
        if let Some(path) = self.var("PGSERVICEFILE") {
            let path = PathBuf::from(path);
            if !path.exists() {
                return Err(ServiceError::FileNotFound { path });
            }
            files.push(path);
        } else if let Some(home) = &self.home {
            files.push(home.join(".pg_service.conf"));
        }
        let sysconfdir = self
            .var("PGSYSCONFDIR")
            .map(PathBuf::from)
            .or_else(|| self.sysconfdir.clone());
        if let Some(dir) = sysconfdir {
            files.push(dir.join("pg_service.conf"));
        }
        Ok(files)
    }
}

/// The three places a value can come from before defaults apply.
struct Layers<'a> {
    conninfo: HashMap<String, String>,
    service: HashMap<String, String>,
    env: &'a Environment,
}

impl Layers<'_> {
    fn value(&self, key: &str) -> Option<&str> {
        if let Some(v) = self.conninfo.get(key) {
            return Some(v);
        }
        if let Some(v) = self.service.get(key) {
            return Some(v);
        }
        let envvar = conninfo::option_spec(key)?.envvar?;
        self.env.var(envvar)
    }

    /// libpq treats an empty value like an absent one for almost every
    /// keyword; being lenient for the rest avoids surprising errors.
    fn non_empty(&self, key: &str) -> Option<&str> {
        self.value(key).filter(|v| !v.is_empty())
    }
}

/// Keywords that have their own field in [`ConnParams`]; all others go to
/// [`ConnParams::extra`].
const MODELED: &[&str] = &[
    "service",
    "user",
    "password",
    "passfile",
    "connect_timeout",
    "dbname",
    "host",
    "hostaddr",
    "port",
    "options",
    "application_name",
    "fallback_application_name",
    "sslmode",
    "sslnegotiation",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslrootcert",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "target_session_attrs",
];

/// Keywords whose values libpq checks against a fixed list before connecting.
const ENUMERATED: &[(&str, &[&str])] = &[
    ("channel_binding", &["disable", "prefer", "require"]),
    ("sslcertmode", &["disable", "allow", "require"]),
    ("gssencmode", &["disable", "prefer", "require"]),
    ("load_balance_hosts", &["disable", "random"]),
    (
        "target_session_attrs",
        &["any", "read-write", "read-only", "primary", "standby", "prefer-standby"],
    ),
    ("sslnegotiation", &["postgres", "direct"]),
];

fn check_enumerated(key: &str, value: &str) -> Result<(), ConnInfoError> {
    let allowed = ENUMERATED.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    match allowed {
        Some(allowed) if !allowed.contains(&value) => Err(ConnInfoError::InvalidValue(format!(
            "invalid {key} value: {}",
            quoted(value)
        ))),
        _ => Ok(()),
    }
}

const TLS_VERSIONS: [&str; 4] = ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"];

/// Index into [`TLS_VERSIONS`]; libpq accepts any letter case.
fn tls_version(layers: &Layers<'_>, key: &str) -> Result<Option<usize>, ConnInfoError> {
    let Some(value) = layers.non_empty(key) else {
        return Ok(None);
    };
    TLS_VERSIONS
        .iter()
        .position(|v| v.eq_ignore_ascii_case(value))
        .map(Some)
        .ok_or_else(|| ConnInfoError::InvalidValue(format!("invalid \"{key}\" value: {}", quoted(value))))
}

/// libpq's `pqParseIntParam`: surrounding whitespace allowed, must fit in i32.
pub(crate) fn parse_int(value: &str, key: &str) -> Result<i32, ConnInfoError> {
    value.trim().parse::<i32>().map_err(|_| {
        ConnInfoError::InvalidValue(format!(
            "invalid integer value {} for connection option \"{key}\"",
            quoted(value)
        ))
    })
}

fn parse_port(value: &str) -> Result<u16, ConnInfoError> {
    if value.trim().is_empty() {
        return Ok(DEFAULT_PORT);
    }
    let port = parse_int(value, "port")?;
    u16::try_from(port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| ConnInfoError::InvalidValue(format!("invalid port number: {}", quoted(value))))
}

fn parse_connect_timeout(value: &str) -> Result<Option<Duration>, ConnInfoError> {
    if value.trim().is_empty() {
        return Ok(None);
    }
    let seconds = parse_int(value, "connect_timeout")?;
    Ok(match seconds {
        ..=0 => None,
        n => Some(Duration::from_secs(u64::from(n.unsigned_abs()))),
    })
}

/// Expands `host`, `hostaddr` and `port` lists into targets with the same
/// pairing and count rules as libpq's `pqConnectOptions2`.
fn build_targets(layers: &Layers<'_>, env: &Environment) -> Result<Vec<HostTarget>, ConnInfoError> {
    let hostaddrs: Vec<&str> = layers
        .non_empty("hostaddr")
        .map(|v| v.split(',').collect())
        .unwrap_or_default();
    let hosts: Vec<&str> = layers
        .non_empty("host")
        .map(|v| v.split(',').collect())
        .unwrap_or_default();
    let count = if !hostaddrs.is_empty() {
        hostaddrs.len()
    } else {
        hosts.len().max(1)
    };
    if !hosts.is_empty() && hosts.len() != count {
        return Err(ConnInfoError::InvalidValue(format!(
            "could not match {} host names to {count} hostaddr values",
            hosts.len()
        )));
    }

    let ports: Vec<u16> = match layers.non_empty("port") {
        None => vec![DEFAULT_PORT; count],
        Some(list) => {
            let items: Vec<&str> = list.split(',').collect();
            if items.len() != 1 && items.len() != count {
                return Err(ConnInfoError::InvalidValue(format!(
                    "could not match {} port numbers to {count} hosts",
                    items.len()
                )));
            }
            let parsed = items.into_iter().map(parse_port).collect::<Result<Vec<_>, _>>()?;
            if parsed.len() == 1 {
                vec![parsed[0]; count]
            } else {
                parsed
            }
        }
    };

    (0..count)
        .map(|i| {
            let addr_text = hostaddrs.get(i).copied().unwrap_or("");
            let host_text = hosts.get(i).copied().unwrap_or("");
            let hostaddr = if addr_text.is_empty() {
                None
            } else {
                Some(addr_text.parse::<IpAddr>().map_err(|_| {
                    ConnInfoError::InvalidValue(format!("could not parse network address {}", quoted(addr_text)))
                })?)
            };
            let host = if !host_text.is_empty() {
                host_text.to_string()
            } else if hostaddr.is_some() {
                addr_text.to_string()
            } else {
                env.default_socket_dir.clone()
            };
            Ok(HostTarget {
                host,
                hostaddr,
                port: ports[i],
                host_given: !host_text.is_empty() || hostaddr.is_none(),
            })
        })
        .collect()
}

/// psql's connection options: `-h`, `-p`, `-U`, and the database slot that `-d` or psql's first non-option
/// argument fills.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PsqlOptions {
    pub host: Option<String>,
    pub port: Option<String>,
    pub user: Option<String>,
    /// A database name, or a whole connection string or URI (libpq expands it).
    pub dbname: Option<String>,
}

/// libpq's `recognized_connection_string`: a database name with `=` in it or a URI prefix is expanded as a
/// connection string.
pub fn is_connection_string(value: &str) -> bool {
    conninfo::is_uri(value) || value.contains('=')
}

/// The keyword/value pairs psql hands to `PQconnectdbParams` with `expand_dbname`, later pairs winning.
///
/// psql puts host, port and user *before* dbname, so a connection string in the database slot overrides the
/// flags, even with an empty value (`user=` brings back the default user); flags fill only what it leaves
/// unsaid. Empty flags are ignored, as libpq ignores empty array entries.
pub fn psql_pairs(options: &PsqlOptions) -> Result<Vec<(String, String)>, ConnInfoError> {
    let given = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
    let mut pairs: Vec<(String, String)> = [
        ("host", given(&options.host)),
        ("port", given(&options.port)),
        ("user", given(&options.user)),
    ]
    .into_iter()
    .filter_map(|(key, value)| Some((key.to_string(), value?)))
    .collect();
    if let Some(dbname) = given(&options.dbname) {
        if is_connection_string(&dbname) {
            pairs.extend(conninfo::parse(&dbname)?);
        } else {
            pairs.push(("dbname".to_string(), dbname));
        }
    }
    Ok(pairs)
}

/// Resolves psql-style options (see [`psql_pairs`]) as [`resolve`] does a connection string.
pub fn resolve_psql(options: &PsqlOptions, env: &Environment) -> Result<ConnParams, ConnInfoError> {
    resolve_pairs(psql_pairs(options)?, env)
}

/// Resolves an optional connection string (keyword/value or URI) against the
/// service file, the environment and the defaults.
pub fn resolve(conninfo: Option<&str>, env: &Environment) -> Result<ConnParams, ConnInfoError> {
    let pairs = match conninfo {
        Some(input) => conninfo::parse(input)?,
        None => Vec::new(),
    };
    resolve_pairs(pairs, env)
}

/// Resolves explicit keyword/value pairs (later ones override earlier ones, as in libpq) against the service
/// file, the environment and the defaults.
pub fn resolve_pairs(pairs: Vec<(String, String)>, env: &Environment) -> Result<ConnParams, ConnInfoError> {
    let explicit: HashMap<String, String> = pairs.into_iter().collect();

    let service_name = explicit
        .get("service")
        .map(String::as_str)
        .or_else(|| env.var("PGSERVICE"))
        .filter(|name| !name.is_empty())
        .map(str::to_string);
    let mut from_service = HashMap::new();
    if let Some(name) = &service_name {
        let files = env.service_files()?;
        for (key, value) in service::lookup(name, &files)? {
            from_service.entry(key).or_insert(value);
        }
    }

    let layers = Layers {
        conninfo: explicit,
        service: from_service,
        env,
    };
    let mut warnings = Vec::new();

    let user = layers
        .non_empty("user")
        .map_or_else(|| env.os_user.clone(), str::to_string);
    if user.is_empty() {
        return Err(ConnInfoError::InvalidValue(
            "could not determine the user name to connect as; set user or PGUSER".to_string(),
        ));
    }
    let dbname = layers.non_empty("dbname").unwrap_or(&user).to_string();
    let targets = build_targets(&layers, env)?;

    let password = layers.non_empty("password").map(str::to_string);
    let passfile = layers
        .non_empty("passfile")
        .map(PathBuf::from)
        .or_else(|| env.home.as_ref().map(|h| h.join(".pgpass")))
        .unwrap_or_default();
    let application_name = layers
        .non_empty("application_name")
        .or_else(|| layers.non_empty("fallback_application_name"))
        .unwrap_or(DEFAULT_APPLICATION_NAME)
        .to_string();
    let connect_timeout = match layers.value("connect_timeout") {
        Some(v) => parse_connect_timeout(v)?,
        None => None,
    };
    let options = layers.non_empty("options").map(str::to_string);
    let target_session_attrs = layers.non_empty("target_session_attrs").map(str::to_string);
    if let Some(attrs) = &target_session_attrs {
        check_enumerated("target_session_attrs", attrs)?;
    }

    let (mut sslmode, sslmode_explicit) = match layers.non_empty("sslmode") {
        Some(v) => (v.parse::<SslMode>()?, true),
        None if env.var("PGREQUIRESSL").is_some_and(|v| v.starts_with('1')) => {
            warnings.push("PGREQUIRESSL is deprecated; set PGSSLMODE=require instead".to_string());
            (SslMode::Require, true)
        }
        None => (SslMode::default(), false),
    };

    let sslrootcert = layers.non_empty("sslrootcert").map(|v| {
        if v == "system" {
            RootCert::System
        } else {
            RootCert::File(PathBuf::from(v))
        }
    });
    if sslrootcert == Some(RootCert::System) && !sslmode_explicit {
        // Public CAs will sign for any domain, so only hostname checking
        // makes the system store meaningful; libpq upgrades the default.
        sslmode = SslMode::VerifyFull;
    }

    let sslnegotiation = layers.non_empty("sslnegotiation").map(str::to_string);
    if let Some(negotiation) = &sslnegotiation {
        check_enumerated("sslnegotiation", negotiation)?;
        if negotiation == "direct" && !sslmode.requires_tls() {
            return Err(ConnInfoError::InvalidValue(format!(
                "weak sslmode {} may not be used with sslnegotiation=direct (use \"require\", \"verify-ca\", or \"verify-full\")",
                quoted(sslmode.as_str())
            )));
        }
    }
    if sslrootcert == Some(RootCert::System) && sslmode != SslMode::VerifyFull {
        return Err(ConnInfoError::InvalidValue(format!(
            "weak sslmode {} may not be used with sslrootcert=system (use \"verify-full\")",
            quoted(sslmode.as_str())
        )));
    }

    let min_version = tls_version(&layers, "ssl_min_protocol_version")?;
    let max_version = tls_version(&layers, "ssl_max_protocol_version")?;
    if let (Some(min), Some(max)) = (min_version, max_version)
        && min > max
    {
        return Err(ConnInfoError::InvalidValue(
            "invalid SSL protocol version range".to_string(),
        ));
    }

    let pg_dir = env.home.as_ref().map(|h| h.join(".postgresql"));
    let default_rootcert = pg_dir.as_ref().map(|d| d.join("root.crt")).unwrap_or_default();
    let (sslcert, sslcert_explicit) = client_file(&layers, "sslcert", pg_dir.as_deref(), "postgresql.crt");
    let (sslkey, sslkey_explicit) = client_file(&layers, "sslkey", pg_dir.as_deref(), "postgresql.key");
    if let Some(cert) = sslcert.as_ref().filter(|_| sslcert_explicit)
        && !cert.exists()
    {
        // libpq silently sends no certificate in this case, which then
        // surfaces as a confusing authentication failure.
        warnings.push(format!(
            "client certificate file {} does not exist; no client certificate will be sent",
            quoted(&cert.display().to_string())
        ));
    }
    let sslpassword = layers.non_empty("sslpassword").map(str::to_string);

    let mut extra = Vec::new();
    for spec in conninfo::OPTIONS {
        if MODELED.contains(&spec.keyword) {
            continue;
        }
        if let Some(value) = layers.non_empty(spec.keyword) {
            check_enumerated(spec.keyword, value)?;
            extra.push((spec.keyword.to_string(), value.to_string()));
        }
    }

    let rules = rules::rules(|key| layers.non_empty(key))?;
    // libpq's EnvironmentOptions: these variables become start-up settings unless they say "default".
    let session_settings = [("PGDATESTYLE", "datestyle"), ("PGTZ", "timezone"), ("PGGEQO", "geqo")]
        .into_iter()
        .filter_map(|(var, setting)| {
            env.var(var)
                .filter(|v| !v.eq_ignore_ascii_case("default"))
                .map(|v| (setting.to_string(), v.to_string()))
        })
        .collect();

    Ok(ConnParams {
        targets,
        dbname,
        user,
        password,
        passfile,
        application_name,
        connect_timeout,
        options,
        target_session_attrs,
        sslmode,
        sslmode_explicit,
        sslrootcert,
        default_rootcert,
        sslcert,
        sslcert_explicit,
        sslkey,
        sslkey_explicit,
        sslpassword,
        ssl_min_protocol_version: min_version.map(|i| TLS_VERSIONS[i].to_string()),
        ssl_max_protocol_version: max_version.map(|i| TLS_VERSIONS[i].to_string()),
        sslnegotiation,
        service: service_name,
        extra,
        warnings,
        rules,
        session_settings,
        message_limit: None,
    })
}

/// An explicitly named client certificate or key, else libpq's default file
/// in `~/.postgresql` if it exists. Returns the path and whether it was explicit.
fn client_file(layers: &Layers<'_>, key: &str, pg_dir: Option<&Path>, default_name: &str) -> (Option<PathBuf>, bool) {
    if let Some(path) = layers.non_empty(key) {
        return (Some(PathBuf::from(path)), true);
    }
    let default = pg_dir.map(|d| d.join(default_name)).filter(|path| path.is_file());
    (default, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Environment {
        let mut env = Environment::new(
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            None,
            "alice",
        );
        env.default_socket_dir = "/sock".to_string();
        env
    }

    fn resolve_ok(conninfo: &str, env: &Environment) -> ConnParams {
        match resolve(Some(conninfo), env) {
            Ok(params) => params,
            Err(err) => panic!("{conninfo}: {err}"),
        }
    }

    fn resolve_err(conninfo: &str, env: &Environment) -> String {
        resolve(Some(conninfo), env).unwrap_err().to_string()
    }

    fn target(host: &str, port: u16) -> HostTarget {
        HostTarget {
            host: host.to_string(),
            hostaddr: None,
            port,
            host_given: true,
        }
    }

    fn psql(host: Option<&str>, port: Option<&str>, user: Option<&str>, dbname: Option<&str>) -> ConnParams {
        let options = PsqlOptions {
            host: host.map(str::to_string),
            port: port.map(str::to_string),
            user: user.map(str::to_string),
            dbname: dbname.map(str::to_string),
        };
        resolve_psql(&options, &env(&[("PGUSER", "envuser")])).unwrap()
    }

    /// What psql 15 did with the same arguments (checked by hand with `psql -h … -c 'select current_user, …'`,
    /// and against the lab in tests/integration/snapshot_cli.rs).
    #[test]
    fn psql_flags_fill_what_the_connection_string_leaves_unsaid() {
        let p = psql(Some("127.0.0.1"), Some("6000"), Some("bob"), Some("shop"));
        assert_eq!((p.targets[0].host.as_str(), p.targets[0].port), ("127.0.0.1", 6000));
        assert_eq!((p.user.as_str(), p.dbname.as_str()), ("bob", "shop"));
        // `psql -h 127.0.0.1 -U bob "host=/sock2 user=alice dbname=shop"`: the string wins.
        let p = psql(
            Some("127.0.0.1"),
            None,
            Some("bob"),
            Some("host=/sock2 user=alice dbname=shop"),
        );
        assert_eq!((p.targets[0].host.as_str(), p.user.as_str()), ("/sock2", "alice"));
        // A URI that names no host or user leaves the flags in force.
        let p = psql(
            Some("db.example"),
            Some("6000"),
            Some("bob"),
            Some("postgresql:///shop"),
        );
        assert_eq!(
            (
                p.targets[0].host.as_str(),
                p.targets[0].port,
                p.user.as_str(),
                p.dbname.as_str()
            ),
            ("db.example", 6000, "bob", "shop")
        );
        let p = psql(None, None, Some("bob"), Some("postgresql://alice@db.example/shop"));
        assert_eq!(p.user, "alice");
        // An empty value in the string still overrides the flag, and then libpq's default applies: the OS user,
        // not PGUSER (psql 15 with PGUSER=bob -U carol "... user=" connects as the OS user).
        let p = psql(None, None, Some("bob"), Some("dbname=shop user="));
        assert_eq!(p.user, "alice");
        // Empty flags are ignored; no flags at all is the environment.
        let p = psql(Some(""), None, None, None);
        assert_eq!((p.targets[0].host.as_str(), p.user.as_str()), ("/sock", "envuser"));
        assert!(is_connection_string("postgres://x") && is_connection_string("a=b") && !is_connection_string("shop"));
    }

    #[test]
    fn sslmode_spellings_round_trip() {
        for mode in SslMode::ALL {
            assert_eq!(mode.to_string().parse::<SslMode>().unwrap(), mode);
        }
        assert_eq!(SslMode::VerifyCa.to_string(), "verify-ca");
        assert_eq!(SslMode::default(), SslMode::Prefer);
        assert!(SslMode::Require.requires_tls());
        assert!(!SslMode::Prefer.requires_tls());
    }

    #[test]
    fn invalid_sslmode_message() {
        assert_eq!(
            "verify_full".parse::<SslMode>().unwrap_err().to_string(),
            "invalid sslmode value: \"verify_full\""
        );
        assert_eq!(resolve_err("sslmode=x", &env(&[])), "invalid sslmode value: \"x\"");
    }

    #[test]
    fn defaults_without_anything() {
        let params = resolve(None, &env(&[])).unwrap();
        assert_eq!(params.targets, vec![target("/sock", 5432)]);
        assert!(params.targets[0].is_unix_socket());
        assert_eq!(params.user, "alice");
        assert_eq!(params.dbname, "alice");
        assert_eq!(params.password, None);
        assert_eq!(params.passfile, PathBuf::new());
        assert_eq!(params.application_name, "pgtls");
        assert_eq!(params.connect_timeout, None);
        assert_eq!(params.sslmode, SslMode::Prefer);
        assert!(!params.sslmode_explicit);
        assert_eq!(params.sslrootcert, None);
        assert_eq!(params.sslcert, None);
        assert_eq!(params.sslkey, None);
        assert_eq!(params.service, None);
        assert!(params.extra.is_empty());
        assert!(params.warnings.is_empty());
    }

    #[test]
    fn default_socket_dir_follows_the_filesystem() {
        let expected = if Path::new("/var/run/postgresql").is_dir() {
            "/var/run/postgresql"
        } else {
            "/tmp"
        };
        assert_eq!(default_socket_dir(), expected);
        let plain = Environment::new(HashMap::new(), None, "bob");
        let params = resolve(None, &plain).unwrap();
        assert_eq!(params.targets[0].host, expected);
    }

    #[test]
    fn home_based_defaults() {
        let home = tempfile::tempdir().unwrap();
        let mut env = env(&[]);
        env.home = Some(home.path().to_path_buf());

        let params = resolve(None, &env).unwrap();
        assert_eq!(params.passfile, home.path().join(".pgpass"));
        assert_eq!(params.default_rootcert, home.path().join(".postgresql/root.crt"));
        // Default client files count only when they exist.
        assert_eq!(params.sslcert, None);
        assert_eq!(params.sslkey, None);

        let pg_dir = home.path().join(".postgresql");
        std::fs::create_dir(&pg_dir).unwrap();
        std::fs::write(pg_dir.join("postgresql.crt"), "cert").unwrap();
        std::fs::write(pg_dir.join("postgresql.key"), "key").unwrap();
        let params = resolve(None, &env).unwrap();
        assert_eq!(params.sslcert, Some(pg_dir.join("postgresql.crt")));
        assert!(!params.sslcert_explicit);
        assert_eq!(params.sslkey, Some(pg_dir.join("postgresql.key")));
        assert!(!params.sslkey_explicit);
        assert!(params.warnings.is_empty());
    }

    #[test]
    fn explicit_client_files_are_marked_and_missing_cert_warns() {
        let params = resolve_ok("sslcert=/nope/client.crt sslkey=/nope/client.key", &env(&[]));
        assert_eq!(params.sslcert, Some(PathBuf::from("/nope/client.crt")));
        assert!(params.sslcert_explicit);
        assert_eq!(params.sslkey, Some(PathBuf::from("/nope/client.key")));
        assert!(params.sslkey_explicit);
        assert_eq!(
            params.warnings,
            vec![
                "client certificate file \"/nope/client.crt\" does not exist; no client certificate will be sent"
                    .to_string()
            ]
        );
    }

    #[test]
    fn environment_variables_are_used() {
        let env = env(&[
            ("PGHOST", "envhost"),
            ("PGHOSTADDR", "10.0.0.5"),
            ("PGPORT", "6543"),
            ("PGDATABASE", "envdb"),
            ("PGUSER", "envuser"),
            ("PGPASSWORD", "envpw"),
            ("PGPASSFILE", "/etc/pgpass"),
            ("PGAPPNAME", "envapp"),
            ("PGSSLMODE", "verify-ca"),
            ("PGSSLROOTCERT", "/etc/ca.crt"),
            ("PGSSLCERT", "/etc/c.crt"),
            ("PGSSLKEY", "/etc/c.key"),
            ("PGSSLMINPROTOCOLVERSION", "TLSv1.2"),
            ("PGSSLMAXPROTOCOLVERSION", "TLSv1.3"),
            ("PGSSLNEGOTIATION", "direct"),
            ("PGCONNECT_TIMEOUT", "7"),
            ("PGOPTIONS", "-c statement_timeout=5s"),
            ("PGTARGETSESSIONATTRS", "read-write"),
            ("PGCHANNELBINDING", "require"),
        ]);
        let params = resolve(None, &env).unwrap();
        assert_eq!(
            params.targets,
            vec![HostTarget {
                host: "envhost".into(),
                hostaddr: Some("10.0.0.5".parse().unwrap()),
                port: 6543,
                host_given: true,
            }]
        );
        assert_eq!(params.dbname, "envdb");
        assert_eq!(params.user, "envuser");
        assert_eq!(params.password.as_deref(), Some("envpw"));
        assert_eq!(params.passfile, PathBuf::from("/etc/pgpass"));
        assert_eq!(params.application_name, "envapp");
        assert_eq!(params.sslmode, SslMode::VerifyCa);
        assert!(params.sslmode_explicit);
        assert_eq!(params.sslrootcert, Some(RootCert::File(PathBuf::from("/etc/ca.crt"))));
        assert_eq!(params.sslcert, Some(PathBuf::from("/etc/c.crt")));
        assert_eq!(params.sslkey, Some(PathBuf::from("/etc/c.key")));
        assert_eq!(params.ssl_min_protocol_version.as_deref(), Some("TLSv1.2"));
        assert_eq!(params.ssl_max_protocol_version.as_deref(), Some("TLSv1.3"));
        assert_eq!(params.sslnegotiation.as_deref(), Some("direct"));
        assert_eq!(params.connect_timeout, Some(Duration::from_secs(7)));
        assert_eq!(params.options.as_deref(), Some("-c statement_timeout=5s"));
        assert_eq!(params.target_session_attrs.as_deref(), Some("read-write"));
        assert_eq!(params.extra_value("channel_binding"), Some("require"));
    }

    /// A service file plus environment where every layer sets something, so
    /// each key shows which layer won.
    fn layered_env(dir: &Path) -> Environment {
        let service_file = dir.join("services.conf");
        std::fs::write(
            &service_file,
            "[svc]\nhost=svc-host\nport=7000\ndbname=svc-db\napplication_name=svc-app\n",
        )
        .unwrap();
        env(&[
            ("PGSERVICEFILE", service_file.to_str().unwrap()),
            ("PGHOST", "env-host"),
            ("PGPORT", "8000"),
            ("PGDATABASE", "env-db"),
            ("PGUSER", "env-user"),
            ("PGAPPNAME", "env-app"),
        ])
    }

    #[test]
    fn precedence_explicit_over_service_over_env_over_default() {
        let dir = tempfile::tempdir().unwrap();
        let env = layered_env(dir.path());
        let params = resolve_ok("service=svc host=explicit-host", &env);

        assert_eq!(params.targets[0].host, "explicit-host"); // explicit
        assert_eq!(params.targets[0].port, 7000); // service beats PGPORT
        assert_eq!(params.dbname, "svc-db"); // service beats PGDATABASE
        assert_eq!(params.application_name, "svc-app");
        assert_eq!(params.user, "env-user"); // env beats OS user
        assert_eq!(params.sslmode, SslMode::Prefer); // default
        assert_eq!(params.service.as_deref(), Some("svc"));
    }

    #[test]
    fn pgservice_environment_variable_selects_the_service() {
        let dir = tempfile::tempdir().unwrap();
        let mut env = layered_env(dir.path());
        env.vars.insert("PGSERVICE".into(), "svc".into());
        let params = resolve(None, &env).unwrap();
        assert_eq!(params.targets[0].host, "svc-host");
        assert_eq!(params.service.as_deref(), Some("svc"));
        // Without a service the environment applies.
        env.vars.remove("PGSERVICE");
        let params = resolve(None, &env).unwrap();
        assert_eq!(params.targets[0].host, "env-host");
        assert_eq!(params.dbname, "env-db");
    }

    #[test]
    fn service_from_home_and_sysconfdir() {
        let home = tempfile::tempdir().unwrap();
        let sys = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join(".pg_service.conf"), "[mine]\nport=1111\n").unwrap();
        std::fs::write(
            sys.path().join("pg_service.conf"),
            "[mine]\nport=2222\n[shared]\nport=3333\n",
        )
        .unwrap();
        let mut env = env(&[("PGSYSCONFDIR", sys.path().to_str().unwrap())]);
        env.home = Some(home.path().to_path_buf());

        assert_eq!(resolve_ok("service=mine", &env).targets[0].port, 1111);
        assert_eq!(resolve_ok("service=shared", &env).targets[0].port, 3333);
        assert_eq!(
            resolve_err("service=absent", &env),
            "definition of service \"absent\" not found"
        );
    }

    #[test]
    fn missing_explicit_service_file_is_an_error() {
        let env = env(&[("PGSERVICEFILE", "/nonexistent/pg_service.conf")]);
        assert_eq!(
            resolve_err("service=x", &env),
            "service file \"/nonexistent/pg_service.conf\" not found"
        );
        // Without a service the file is never needed.
        assert!(resolve(Some("host=h"), &env).is_ok());
    }

    #[test]
    fn service_file_errors_propagate() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.conf");
        std::fs::write(&file, "[svc]\nhost=a\nbogus\n").unwrap();
        let env = env(&[("PGSERVICEFILE", file.to_str().unwrap())]);
        let err = resolve(Some("service=svc"), &env).unwrap_err();
        assert!(matches!(
            err,
            ConnInfoError::Service(ServiceError::Syntax { line: 3, .. })
        ));
        assert!(err.to_string().contains("line 3"));
    }

    #[test]
    fn explicit_empty_value_blocks_environment() {
        // As in libpq, dbname='' counts as given, so PGDATABASE is not used
        // and the default (the user name) applies.
        let env = env(&[("PGDATABASE", "envdb")]);
        assert_eq!(resolve_ok("dbname=''", &env).dbname, "alice");
        assert_eq!(resolve_ok("user=bob", &env).dbname, "envdb");
    }

    #[test]
    fn uri_resolves_end_to_end() {
        let params = resolve_ok(
            "postgresql://user:secret@host1:123,host2:456/somedb?target_session_attrs=any&application_name=myapp",
            &env(&[]),
        );
        assert_eq!(params.targets, vec![target("host1", 123), target("host2", 456)]);
        assert_eq!(params.user, "user");
        assert_eq!(params.password.as_deref(), Some("secret"));
        assert_eq!(params.dbname, "somedb");
        assert_eq!(params.target_session_attrs.as_deref(), Some("any"));
        assert_eq!(params.application_name, "myapp");
    }

    #[test]
    fn uri_socket_directory_host() {
        let params = resolve_ok("postgresql://%2Fvar%2Flib%2Fpostgresql/dbname", &env(&[]));
        assert_eq!(params.targets, vec![target("/var/lib/postgresql", 5432)]);
        assert!(params.targets[0].is_unix_socket());
        let params = resolve_ok("postgresql:///mydb?host=localhost&port=5433", &env(&[]));
        assert_eq!(params.targets, vec![target("localhost", 5433)]);
        assert_eq!(params.dbname, "mydb");
    }

    #[test]
    fn uri_ipv6_host() {
        let params = resolve_ok("postgresql://[2001:db8::1234]/database", &env(&[]));
        assert_eq!(params.targets, vec![target("2001:db8::1234", 5432)]);
        assert!(!params.targets[0].is_unix_socket());
    }

    #[test]
    fn uri_partial_ports_use_the_default_for_missing_ones() {
        let params = resolve_ok("postgresql://a:1,b,c:3", &env(&[("PGPORT", "9999")]));
        assert_eq!(params.targets, vec![target("a", 1), target("b", 5432), target("c", 3)]);
    }

    #[test]
    fn multiple_hosts_one_port() {
        let params = resolve_ok("host=a,b,c port=1", &env(&[]));
        assert_eq!(params.targets, vec![target("a", 1), target("b", 1), target("c", 1)]);
    }

    #[test]
    fn multiple_hosts_one_port_each() {
        let params = resolve_ok("host=a,b,c port=1,2,3", &env(&[]));
        assert_eq!(params.targets, vec![target("a", 1), target("b", 2), target("c", 3)]);
    }

    #[test]
    fn port_count_mismatch() {
        assert_eq!(
            resolve_err("host=a,b,c port=1,2", &env(&[])),
            "could not match 2 port numbers to 3 hosts"
        );
    }

    #[test]
    fn empty_host_element_means_default_and_empty_port_means_5432() {
        let params = resolve_ok("host=a,,c port=1,,3", &env(&[]));
        assert_eq!(
            params.targets,
            vec![target("a", 1), target("/sock", 5432), target("c", 3)]
        );
    }

    #[test]
    fn hostaddr_lists() {
        let params = resolve_ok("host=a.example,b.example hostaddr=10.0.0.1,::1", &env(&[]));
        assert_eq!(
            params.targets,
            vec![
                HostTarget {
                    host: "a.example".into(),
                    hostaddr: Some("10.0.0.1".parse().unwrap()),
                    port: 5432,
                    host_given: true,
                },
                HostTarget {
                    host: "b.example".into(),
                    hostaddr: Some("::1".parse().unwrap()),
                    port: 5432,
                    host_given: true,
                },
            ]
        );
        assert_eq!(
            resolve_err("host=a,b,c hostaddr=10.0.0.1,10.0.0.2", &env(&[])),
            "could not match 3 host names to 2 hostaddr values"
        );
    }

    #[test]
    fn hostaddr_alone_names_the_target() {
        let params = resolve_ok("hostaddr=192.0.2.7 port=6000", &env(&[]));
        assert_eq!(params.targets[0].host, "192.0.2.7");
        assert_eq!(params.targets[0].hostaddr, Some("192.0.2.7".parse().unwrap()));
        assert!(!params.targets[0].is_unix_socket());
    }

    #[test]
    fn invalid_hostaddr_and_ports() {
        let env = env(&[]);
        assert_eq!(
            resolve_err("hostaddr=db.example.com", &env),
            "could not parse network address \"db.example.com\""
        );
        assert_eq!(
            resolve_err("port=abc", &env),
            "invalid integer value \"abc\" for connection option \"port\""
        );
        assert_eq!(resolve_err("port=0", &env), "invalid port number: \"0\"");
        assert_eq!(resolve_err("port=70000", &env), "invalid port number: \"70000\"");
        assert_eq!(resolve_ok("port=' 5433 '", &env).targets[0].port, 5433);
    }

    #[test]
    fn sslrootcert_system_defaults_to_verify_full() {
        let params = resolve_ok("host=db sslrootcert=system", &env(&[]));
        assert_eq!(params.sslrootcert, Some(RootCert::System));
        assert_eq!(params.sslmode, SslMode::VerifyFull);
        assert!(!params.sslmode_explicit);

        let params = resolve(None, &env(&[("PGSSLROOTCERT", "system")])).unwrap();
        assert_eq!(params.sslmode, SslMode::VerifyFull);

        let params = resolve_ok("sslrootcert=system sslmode=verify-full", &env(&[]));
        assert_eq!(params.sslmode, SslMode::VerifyFull);
        assert!(params.sslmode_explicit);
    }

    #[test]
    fn sslrootcert_system_rejects_weaker_explicit_modes() {
        assert_eq!(
            resolve_err("sslrootcert=system sslmode=require", &env(&[])),
            "weak sslmode \"require\" may not be used with sslrootcert=system (use \"verify-full\")"
        );
        assert_eq!(
            resolve_err("sslrootcert=system", &env(&[("PGSSLMODE", "verify-ca")])),
            "weak sslmode \"verify-ca\" may not be used with sslrootcert=system (use \"verify-full\")"
        );
    }

    #[test]
    fn sslrootcert_file() {
        let params = resolve_ok("sslrootcert=/etc/ssl/ca.pem", &env(&[]));
        assert_eq!(
            params.sslrootcert,
            Some(RootCert::File(PathBuf::from("/etc/ssl/ca.pem")))
        );
        assert_eq!(params.sslmode, SslMode::Prefer);
    }

    #[test]
    fn requiressl_keyword_and_environment() {
        let params = resolve_ok("requiressl=1", &env(&[]));
        assert_eq!(params.sslmode, SslMode::Require);
        assert!(params.sslmode_explicit);

        let params = resolve(None, &env(&[("PGREQUIRESSL", "1")])).unwrap();
        assert_eq!(params.sslmode, SslMode::Require);
        assert_eq!(params.warnings.len(), 1);
        assert!(params.warnings[0].contains("PGREQUIRESSL"));

        // PGSSLMODE takes precedence over PGREQUIRESSL.
        let params = resolve(None, &env(&[("PGREQUIRESSL", "1"), ("PGSSLMODE", "disable")])).unwrap();
        assert_eq!(params.sslmode, SslMode::Disable);
        assert!(params.warnings.is_empty());
    }

    #[test]
    fn sslnegotiation_rules() {
        let env = env(&[]);
        assert_eq!(
            resolve_err("sslnegotiation=direct", &env),
            "weak sslmode \"prefer\" may not be used with sslnegotiation=direct (use \"require\", \"verify-ca\", or \"verify-full\")"
        );
        let params = resolve_ok("sslnegotiation=direct sslmode=require", &env);
        assert_eq!(params.sslnegotiation.as_deref(), Some("direct"));
        assert_eq!(
            resolve_err("sslnegotiation=fast", &env),
            "invalid sslnegotiation value: \"fast\""
        );
    }

    #[test]
    fn tls_protocol_versions() {
        let env = env(&[]);
        let params = resolve_ok(
            "ssl_min_protocol_version=tlsv1.2 ssl_max_protocol_version=TLSV1.3",
            &env,
        );
        assert_eq!(params.ssl_min_protocol_version.as_deref(), Some("TLSv1.2"));
        assert_eq!(params.ssl_max_protocol_version.as_deref(), Some("TLSv1.3"));
        assert_eq!(
            resolve_err("ssl_min_protocol_version=SSLv3", &env),
            "invalid \"ssl_min_protocol_version\" value: \"SSLv3\""
        );
        assert_eq!(
            resolve_err(
                "ssl_min_protocol_version=TLSv1.3 ssl_max_protocol_version=TLSv1.2",
                &env
            ),
            "invalid SSL protocol version range"
        );
        assert!(
            resolve(
                Some("ssl_min_protocol_version=TLSv1 ssl_max_protocol_version=TLSv1"),
                &env
            )
            .is_ok()
        );
    }

    #[test]
    fn connect_timeout_rules() {
        let env = env(&[]);
        let timeout = |s: &str| resolve_ok(s, &env).connect_timeout;
        assert_eq!(timeout("connect_timeout=10"), Some(Duration::from_secs(10)));
        assert_eq!(timeout("connect_timeout=1"), Some(Duration::from_secs(1)));
        assert_eq!(timeout("connect_timeout=0"), None);
        assert_eq!(timeout("connect_timeout=-5"), None);
        assert_eq!(timeout("connect_timeout=''"), None);
        assert_eq!(
            resolve_err("connect_timeout=soon", &env),
            "invalid integer value \"soon\" for connection option \"connect_timeout\""
        );
    }

    #[test]
    fn target_session_attrs_validation() {
        assert_eq!(
            resolve_err("target_session_attrs=master", &env(&[])),
            "invalid target_session_attrs value: \"master\""
        );
        assert_eq!(
            resolve_ok("target_session_attrs=prefer-standby", &env(&[]))
                .target_session_attrs
                .as_deref(),
            Some("prefer-standby")
        );
    }

    #[test]
    fn application_name_fallbacks() {
        let env = env(&[]);
        assert_eq!(resolve_ok("fallback_application_name=fb", &env).application_name, "fb");
        assert_eq!(
            resolve_ok("application_name=main fallback_application_name=fb", &env).application_name,
            "main"
        );
        assert_eq!(resolve_ok("application_name=''", &env).application_name, "pgtls");
    }

    #[test]
    fn empty_password_means_none() {
        assert_eq!(resolve_ok("password=''", &env(&[])).password, None);
    }

    #[test]
    fn extra_keywords_are_kept_and_validated() {
        let params = resolve_ok("keepalives=1 channel_binding=require gssencmode=disable", &env(&[]));
        assert_eq!(
            params.extra,
            vec![
                ("channel_binding".to_string(), "require".to_string()),
                ("keepalives".to_string(), "1".to_string()),
                ("gssencmode".to_string(), "disable".to_string()),
            ]
        );
        assert_eq!(
            resolve_err("channel_binding=always", &env(&[])),
            "invalid channel_binding value: \"always\""
        );
    }

    #[test]
    fn parse_errors_propagate() {
        assert_eq!(
            resolve_err("host=a foo=bar", &env(&[])),
            "invalid connection option \"foo\""
        );
        assert_eq!(
            resolve_err("mydb", &env(&[])),
            "missing \"=\" after \"mydb\" in connection info string"
        );
    }

    #[test]
    fn missing_os_user_without_user_is_an_error() {
        let mut env = env(&[]);
        env.os_user.clear();
        assert!(resolve(None, &env).is_err());
        assert_eq!(resolve_ok("user=bob", &env).user, "bob");
    }

    #[test]
    fn display_masked_hides_secrets_and_parses_back() {
        let params = resolve_ok(
            "host=a,b port=1,2 dbname='my db' user=u password=hunter2 sslpassword=keypass \
             sslmode=verify-full sslrootcert=system connect_timeout=5 oauth_client_secret=c2VjcmV0",
            &env(&[]),
        );
        let shown = params.display_masked();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("keypass"), "{shown}");
        assert!(!shown.contains("c2VjcmV0"), "{shown}");
        assert!(shown.contains("password=****"), "{shown}");
        assert!(shown.contains("sslpassword=****"), "{shown}");

        let reparsed: HashMap<String, String> = conninfo::parse(&shown).unwrap().into_iter().collect();
        assert_eq!(reparsed["host"], "a,b");
        assert_eq!(reparsed["port"], "1,2");
        assert_eq!(reparsed["dbname"], "my db");
        assert_eq!(reparsed["user"], "u");
        assert_eq!(reparsed["sslmode"], "verify-full");
        assert_eq!(reparsed["sslrootcert"], "system");
        assert_eq!(reparsed["connect_timeout"], "5");
        assert_eq!(reparsed["application_name"], "pgtls");
    }

    #[test]
    fn display_masked_collapses_a_shared_port_and_omits_absent_password() {
        let params = resolve_ok("host=a,b port=6000", &env(&[]));
        let shown = params.display_masked();
        assert!(
            shown.starts_with("host=a,b port=6000 dbname=alice user=alice"),
            "{shown}"
        );
        assert!(!shown.contains("password"), "{shown}");
    }

    #[test]
    fn debug_output_hides_secrets() {
        let params = resolve_ok("password=hunter2 sslpassword=keypass", &env(&[]));
        let debug = format!("{params:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(!debug.contains("keypass"), "{debug}");
        let env_debug = format!("{:?}", env(&[("PGPASSWORD", "hunter2")]));
        assert!(env_debug.contains("PGPASSWORD"));
        assert!(!env_debug.contains("hunter2"), "{env_debug}");
    }

    #[cfg(unix)]
    #[test]
    fn password_for_uses_explicit_password_then_pgpass() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let passfile = dir.path().join("pgpass");
        std::fs::write(&passfile, "localhost:5432:*:alice:from-file\nb:5432:*:*:b-pass\n").unwrap();
        std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o600)).unwrap();
        let env = env(&[("PGPASSFILE", passfile.to_str().unwrap())]);

        let params = resolve_ok("host=,b", &env);
        // The first target is the default socket, which pgpass calls localhost.
        assert_eq!(
            params.password_for(&params.targets[0]).password.as_deref(),
            Some("from-file")
        );
        assert_eq!(
            params.password_for(&params.targets[1]).password.as_deref(),
            Some("b-pass")
        );

        let params = resolve_ok("host=b password=explicit", &env);
        assert_eq!(
            params.password_for(&params.targets[0]).password.as_deref(),
            Some("explicit")
        );
    }

    #[test]
    fn from_process_keeps_only_pg_variables() {
        let env = Environment::from_process();
        assert!(env.vars.keys().all(|k| k.starts_with("PG")));
        assert!(!env.default_socket_dir.is_empty());
    }
}
