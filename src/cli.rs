//! Command-line interface: `pgtls [CONNINFO]` opens the dashboard; subcommands for scripts and the demo.

// The doc comments below are clap's help text, written for a terminal: `[:SS]` there is an optional part of a time,
// not a rustdoc link.
#![allow(rustdoc::broken_intra_doc_links)]

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

use crate::conn::params::{ConnParams, Environment, PsqlOptions, resolve_psql};
use crate::output::Format;

// `-h` is the host, as in psql, so clap's own help flag is replaced by `--help`/`-?` (psql's pair) on every command.
#[derive(Debug, Parser)]
#[command(
    name = "pgtls",
    version,
    about = "Live view of how every PostgreSQL client is connected: TLS 1.3, TLS 1.2, older, or no encryption",
    after_help = "Before a COMMAND, pgtls takes --config, -h, -p, -U and -d, for the commands that take them.",
    args_conflicts_with_subcommands = true,
    disable_help_flag = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub dashboard: DashboardArgs,
    #[command(flatten)]
    pub help: HelpFlag,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Poll once and print the result (table, JSON or CSV); exit 2 if the server cannot be reached.
    #[command(disable_help_flag = true)]
    Snapshot(SnapshotArgs),
    /// Monitoring plugin: would anyone break if the target were applied? One summary line, perfdata,
    /// exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (cannot connect or cannot see).
    #[command(disable_help_flag = true)]
    Check(CheckArgs),
    /// Export a ledger file (--ledger) as CSV or JSON: every client seen, with the TLS it used.
    #[command(disable_help_flag = true)]
    Ledger(LedgerArgs),
    /// Write a report for a change ticket: server, TLS settings and certificate, the verdict for each target, every
    /// holdout with its evidence, the 7-day trend and, once in force, what followed. HTML or Markdown, by the
    /// output file's extension (.html, .md); self-contained, no script, no network.
    #[command(disable_help_flag = true)]
    Report(ReportArgs),
    /// Read the server's certificate chain and the TLS versions and suites it accepts (like openssl s_client / sslyze).
    /// Exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    #[command(disable_help_flag = true)]
    Probe(ProbeArgs),
    /// Write the three root CAs Azure Database for PostgreSQL names for its 2026 CA rotation into one PEM
    /// (--azure), or say which of them a bundle holds, misses or holds expired (--check FILE: exit 0 OK,
    /// 2 CRITICAL, 3 UNKNOWN). No network access.
    #[command(disable_help_flag = true)]
    Bundle(BundleArgs),
    /// Start a throwaway TLS-enabled PostgreSQL with a mix of clients and open the dashboard on it.
    #[command(disable_help_flag = true)]
    #[cfg_attr(
        not(feature = "demo"),
        command(about = "Not in this build (built without the demo feature, for a server): the default build has it.")
    )]
    Demo(DemoArgs),
    /// Watch many servers for weeks and export what pgtls sees as Prometheus metrics (/metrics), with a JSON API.
    /// Reloads the targets on SIGHUP, stops on SIGTERM.
    #[command(disable_help_flag = true)]
    Serve(ServeArgs),
    /// Print the man page (roff), generated from this command line's definition: pgtls(1), or with COMMAND the page
    /// pgtls(1) names as pgtls-COMMAND(1).
    #[command(disable_help_flag = true)]
    Man(ManArgs),
    /// Print shell completions for bash, zsh, fish, elvish or powershell.
    #[command(disable_help_flag = true)]
    Completions(CompletionsArgs),
    /// Print the configuration file with every default (`--example`).
    #[command(disable_help_flag = true)]
    Config(ConfigArgs),
}

#[derive(Debug, Args, Clone)]
pub struct ManArgs {
    /// Print this subcommand's page (pgtls-COMMAND(1)) instead of pgtls(1).
    #[arg(value_name = "COMMAND", value_parser = clap::builder::PossibleValuesParser::new(crate::cmd::docs::MAN_PAGES))]
    pub command: Option<String>,
    #[command(flatten)]
    pub help: HelpFlag,
}

#[derive(Debug, Args, Clone)]
pub struct CompletionsArgs {
    /// The shell to write completions for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
    #[command(flatten)]
    pub help: HelpFlag,
}

#[derive(Debug, Args, Clone)]
pub struct ConfigArgs {
    /// Print the documented default configuration (every key, with its default and what it does).
    #[arg(long, required = true)]
    pub example: bool,
    #[command(flatten)]
    pub help: HelpFlag,
}

impl Cli {
    /// Worker threads of the async runtime. One server's dashboard draws on the main thread (the runtime's
    /// `block_on`), so one worker is enough for its poller, its connection and its history service; with one
    /// worker these wake each other through its local queue instead of waking a second thread, which profiling at
    /// 200 sessions found to be a good part of the per-refresh cost (docs/performance.md, "Side by side").
    /// A fleet and `serve` poll many servers at once and keep two.
    pub fn runtime_workers(&self) -> usize {
        match &self.command {
            None if !self.dashboard.is_fleet() => 1,
            _ => 2,
        }
    }

    /// What clap cannot say: the psql flags need a single server. One line, for stderr.
    // A String: the CLI edge, where the error is the usage line itself and nothing branches on it.
    pub fn check(&self) -> Result<(), String> {
        if self.command.is_none() {
            not_a_command(&self.dashboard.conn.conninfo).map_err(|e| e.to_string())?;
        }
        let conn = match &self.command {
            None if self.dashboard.is_fleet() => return single_target_flags(&self.dashboard.conn, true),
            None => &self.dashboard.conn,
            Some(Command::Snapshot(a)) => &a.conn,
            Some(Command::Check(a)) => &a.conn,
            Some(Command::Probe(a)) => &a.conn,
            Some(Command::Report(a)) => &a.conn,
            Some(Command::Serve(a)) => return a.check(),
            Some(
                Command::Ledger(_)
                | Command::Demo(_)
                | Command::Bundle(_)
                | Command::Man(_)
                | Command::Completions(_)
                | Command::Config(_),
            ) => return Ok(()),
        };
        conn.options().map(|_| ())
    }
}

/// The flags every connecting command takes, which may therefore also come before the subcommand's name
/// (`pgtls --config F snapshot CONNINFO`), each with the value it takes.
pub const GLOBAL_FLAGS: [&str; 9] = [
    "--config",
    "-h",
    "--host",
    "-p",
    "--port",
    "-U",
    "--username",
    "-d",
    "--dbname",
];

/// The command line with the subcommand's name moved ahead of the [`GLOBAL_FLAGS`] written before it, so clap
/// (whose dashboard flags conflict with subcommands) reads `pgtls -h db snapshot` as `pgtls snapshot -h db`.
/// Anything else before the name leaves the line as it is: the dashboard then reads it, and [`Cli::check`] refuses
/// a subcommand's name as a connection string.
pub fn hoist_global_flags(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let mut at = 1;
    while let Some(word) = args.get(at).and_then(|a| a.to_str()) {
        let attached = GLOBAL_FLAGS.iter().any(|flag| {
            // `--config=F` and psql's `-hdb`: the value is in the same word.
            let rest = word.strip_prefix(flag);
            rest.is_some_and(|r| {
                if flag.starts_with("--") {
                    r.starts_with('=')
                } else {
                    !r.is_empty()
                }
            })
        });
        if GLOBAL_FLAGS.contains(&word) {
            at += 2;
        } else if attached {
            at += 1;
        } else {
            break;
        }
    }
    let is_command = args.get(at).and_then(|a| a.to_str()).is_some_and(is_subcommand);
    if at == 1 || at >= args.len() || !is_command {
        return args;
    }
    let mut hoisted = args;
    let name = hoisted.remove(at);
    hoisted.insert(1, name);
    hoisted
}

/// Whether a word names a subcommand (`help` included).
fn is_subcommand(word: &str) -> bool {
    use clap::CommandFactory;
    word == "help" || Cli::command().get_subcommands().any(|c| c.get_name() == word)
}

/// A subcommand's name where the dashboard expects a connection string: a misplaced command, never a database.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "\"{word}\" is a command, not a connection string: give it first (only --config, -h, -p, -U and -d may come \
     before it), or write dbname={word} for a database of that name"
)]
pub struct MisplacedCommand {
    pub word: String,
}

fn not_a_command(conninfo: &[String]) -> Result<(), MisplacedCommand> {
    match conninfo.iter().find(|word| is_subcommand(word)) {
        Some(word) => Err(MisplacedCommand { word: word.clone() }),
        None => Ok(()),
    }
}

/// `--help` and psql's `-?`.
#[derive(Debug, Args, Clone, Default)]
pub struct HelpFlag {
    /// Print help (-h is the host, as in psql).
    #[arg(short = '?', long = "help", action = ArgAction::Help)]
    help: Option<bool>,
}

/// Where to connect, exactly as psql takes it.
#[derive(Debug, Args, Clone, Default)]
pub struct ConnArgs {
    /// libpq connection string or URI, e.g. "host=db port=5432 sslmode=verify-full" or
    /// postgresql://monitor@db/postgres, or a database name, as psql takes it. PG* environment variables,
    /// .pgpass and service files apply. Several (dashboard, serve): one server each.
    #[arg(value_name = "CONNINFO")]
    pub conninfo: Vec<String>,
    /// Server host name, address or socket directory (psql's -h; a host in CONNINFO wins, as in psql).
    #[arg(short = 'h', long, value_name = "HOSTNAME")]
    pub host: Option<String>,
    /// Server port (psql's -p; a port in CONNINFO wins).
    #[arg(short = 'p', long, value_name = "PORT")]
    pub port: Option<String>,
    /// User name to connect as (psql's -U; a user in CONNINFO wins).
    #[arg(short = 'U', long, value_name = "USERNAME")]
    pub username: Option<String>,
    /// Database name, or a connection string or URI in place of CONNINFO (psql's -d).
    #[arg(short = 'd', long, value_name = "DBNAME")]
    pub dbname: Option<String>,
}

impl ConnArgs {
    /// The psql options these arguments amount to, or why they do not name one server.
    /// psql's flags given, as written: `-h`, `-p`, `-U`, `-d`.
    fn given_flags(&self) -> Vec<&'static str> {
        [
            (self.host.is_some(), "-h"),
            (self.port.is_some(), "-p"),
            (self.username.is_some(), "-U"),
            (self.dbname.is_some(), "-d"),
        ]
        .into_iter()
        .filter_map(|(given, flag)| given.then_some(flag))
        .collect()
    }

    // A String: the CLI edge; the message names the flags as the user typed them, and only exit status 64 follows.
    pub fn options(&self) -> Result<PsqlOptions, String> {
        let flags = self.given_flags();
        let dbname = match (self.conninfo.as_slice(), &self.dbname) {
            ([], dbname) => dbname.clone(),
            ([one], None) => Some(one.clone()),
            // psql would read the second word as the user name; for pgtls more words are more servers.
            ([_], Some(_)) => {
                return Err(
                    "-d and a CONNINFO both say where to connect: give one (put the database in CONNINFO as dbname=)"
                        .to_string(),
                );
            }
            (several, _) if !flags.is_empty() => {
                let verb = if flags.len() == 1 { "applies" } else { "apply" };
                return Err(format!(
                    "{} {verb} to one server, but {} connection strings name several: put host=, port=, user=, \
                     dbname= in each instead",
                    flags.join(" "),
                    several.len()
                ));
            }
            (several, _) => {
                return Err(format!(
                    "{} connection strings given: pgtls connects to one server at a time",
                    several.len()
                ));
            }
        };
        Ok(PsqlOptions {
            host: self.host.clone(),
            port: self.port.clone(),
            user: self.username.clone(),
            dbname,
        })
    }

    /// Resolve as psql would: the flags, then the connection string (which wins), the service file, PG*
    /// variables and defaults.
    // A String: the CLI edge; either the flags' usage line or ConnInfoError's words, shown and exited on.
    pub fn resolve(&self, env: &Environment) -> Result<ConnParams, String> {
        let options = self.options()?;
        resolve_psql(&options, env).map_err(|e| e.to_string())
    }
}

#[derive(Debug, Args, Clone)]
pub struct DashboardArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Seconds between refreshes.
    #[arg(short = 'i', long, default_value_t = 2.0, value_name = "SECONDS")]
    pub interval: f64,
    /// Never terminate or cancel a session: K and C only say they are off (also `read_only = true` in the config).
    #[arg(long)]
    pub read_only: bool,
    /// TOML file of `[[target]]` tables: open the Servers screen over all of them (as with several CONNINFOs).
    #[arg(long, value_name = "FILE")]
    pub targets: Option<PathBuf>,
    /// A root bundle (PEM) your clients use as sslrootcert, judged on the Certificates screen against the chain
    /// the server sends (verify-full, verify-ca, which root anchors). Repeatable; added to the `bundles` of the
    /// config's `[[target]]` when it has exactly one.
    #[arg(long = "bundle", value_name = "FILE")]
    pub bundles: Vec<PathBuf>,
    #[command(flatten)]
    pub history: HistoryArgs,
}

impl DashboardArgs {
    /// Several servers: more than one connection string, or a targets file.
    pub fn is_fleet(&self) -> bool {
        self.conn.conninfo.len() > 1 || self.targets.is_some()
    }
}

/// Where pgtls keeps and finds history: the client ledger, the connection log, the config.
#[derive(Debug, Args, Clone, Default)]
pub struct HistoryArgs {
    /// Keep the client ledger in this file (JSON lines, append-only) and reload it on start.
    #[arg(long, value_name = "PATH")]
    pub ledger: Option<PathBuf>,
    /// Read connection lines (log_connections=on) from this server log file, following rotation.
    /// Without it pgtls reads the log through pg_read_file() when the role may.
    #[arg(long, value_name = "PATH")]
    pub server_log: Option<PathBuf>,
    /// Configuration file (default: $XDG_CONFIG_HOME/pgtls/config.toml or ~/.config/pgtls/config.toml).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Read the server log only from now on, instead of from its start.
    #[arg(long)]
    pub log_from_now: bool,
    /// Seconds a poll may take before the data is marked stale, the query cancelled and the connection
    /// remade (default: twice the interval, between 5 and 30).
    #[arg(long, value_name = "SECONDS")]
    pub poll_timeout: Option<f64>,
    /// When the change took effect (RFC 3339, or "YYYY-MM-DD HH:MM[:SS]" in UTC), for the after-change view
    /// when neither the server log, pgtls's own polls nor pg_conf_load_time() can tell.
    #[arg(long, value_name = "TIME", value_parser = crate::config::parse_since)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    #[command(flatten)]
    pub poolers: PoolerArgs,
}

/// PgBouncer poolers in front of the server.
#[derive(Debug, Args, Clone, Default)]
pub struct PoolerArgs {
    /// Connection string of the admin console of a PgBouncer in front of this server (dbname=pgbouncer; the role
    /// must be in its admin_users or stats_users), polled with the server. Pooled sessions then show and are judged
    /// by their client's own TLS leg, not the pooler's. Repeat for more poolers.
    #[arg(long = "pgbouncer", value_name = "CONNINFO")]
    pub pgbouncer: Vec<String>,
    /// PgBouncer's own log file (its `logfile`), one per --pgbouncer in the same order: the clients the pooler
    /// refuses (TLS handshakes its client_tls_protocols fails, plain clients its client_tls_sslmode turns away)
    /// join the after-change view. Read from its start (the dashboard: from now with --log-from-now), following
    /// rotation.
    #[arg(long = "pgbouncer-log", value_name = "PATH")]
    pub pgbouncer_log: Vec<PathBuf>,
}

impl PoolerArgs {
    pub fn resolve(
        &self,
        env: &Environment,
    ) -> Result<crate::collect::pooler::Poolers, crate::collect::pooler::PoolerSetupError> {
        crate::collect::pooler::Poolers::resolve(&self.pgbouncer, env)?.with_logs(&self.pgbouncer_log)
    }
}

#[derive(Debug, Args, Clone)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(flatten)]
    pub poolers: PoolerArgs,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// CSV: keep every field byte-exact (no leading ' on formula-shaped text, no escaped control characters).
    #[arg(long)]
    pub raw: bool,
    /// Configuration file: its `[alerts]` rules shape the alerts the table and JSON list (default:
    /// $XDG_CONFIG_HOME/pgtls/config.toml or ~/.config/pgtls/config.toml).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub help: HelpFlag,
}

#[derive(Debug, Args, Clone)]
pub struct DemoArgs {
    /// Directory holding PostgreSQL's initdb and postgres (default: $PGTLS_PG_BINDIR, pg_config,
    /// /usr/lib/postgresql/*/bin, else a pinned build fetched once into pgtls's cache).
    #[arg(long, value_name = "DIR")]
    pub pg_bindir: Option<PathBuf>,
    /// Never download PostgreSQL: when none is installed, say what to install instead (also PGTLS_OFFLINE=1).
    #[arg(long)]
    pub offline: bool,
    /// Seconds between refreshes.
    #[arg(short = 'i', long, default_value_t = 1.0, value_name = "SECONDS")]
    pub interval: f64,
    /// Raise ssl_min_protocol_version to TLSv1.3 on the demo server after this many seconds (ALTER SYSTEM and a
    /// reload): the TLS 1.2 jobs are then refused, the sslmode=prefer one falls back to plain text, and the TLS 1.2
    /// sessions already open linger.
    #[arg(long, value_name = "SECONDS")]
    pub raise_after: Option<f64>,
    /// Configuration file for the demo's dashboard (alert rules, ledger key; default:
    /// $XDG_CONFIG_HOME/pgtls/config.toml or ~/.config/pgtls/config.toml). Read before the server starts.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub help: HelpFlag,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProbeFormat {
    Text,
    Json,
}

#[derive(Debug, Args, Clone)]
pub struct ProbeArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = ProbeFormat::Text)]
    pub format: ProbeFormat,
    /// Warn when a certificate expires within this many days.
    #[arg(long, default_value_t = 30, value_name = "DAYS")]
    pub warn_days: i64,
    /// List every accepted TLS 1.2 suite (one connection, and one server log line, per suite).
    #[arg(long)]
    pub full_cipher_scan: bool,
    /// Offer every TLS version, even those outside the server's ssl_min/max_protocol_version (each one refused is
    /// a failed handshake in the server's log). Without it the probe reads the range over SQL when it can
    #[arg(long)]
    pub full_scan: bool,
    /// A root bundle (PEM) your clients use as sslrootcert: would verify-full and verify-ca succeed with exactly
    /// this file, and which of its roots anchors the chain the server sends. Repeatable; exit 2 when one fails
    /// verify-full
    #[arg(long = "bundle", value_name = "FILE")]
    pub bundles: Vec<PathBuf>,
    #[command(flatten)]
    pub help: HelpFlag,
}

#[derive(Debug, Args, Clone)]
#[command(group(clap::ArgGroup::new("bundle_action").required(true).args(["azure", "check"])))]
pub struct BundleArgs {
    /// Write DigiCert Global Root CA, DigiCert Global Root G2 and Microsoft RSA Root Certificate Authority 2017
    /// (shipped with pgtls, checked against their published SHA-256 fingerprints), a comment line naming each.
    #[arg(long)]
    pub azure: bool,
    /// Write to this file instead of standard output.
    #[arg(short = 'o', long, value_name = "FILE", requires = "azure")]
    pub output: Option<PathBuf>,
    /// Say which of the three roots this PEM bundle holds, which are missing and which expired.
    #[arg(long, value_name = "FILE")]
    pub check: Option<PathBuf>,
    /// Output format of --check.
    #[arg(short, long, value_enum, default_value_t = ProbeFormat::Text)]
    pub format: ProbeFormat,
    #[command(flatten)]
    pub help: HelpFlag,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckFormat {
    Text,
    Json,
}

/// `--target`: the names clap shows for [`crate::analysis::whatif::Change`], which (in the pure layer) knows no clap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckTarget {
    /// ssl_min_protocol_version = TLSv1.3
    #[value(name = "TLSv1.3", alias = "tls13")]
    MinTls13,
    /// TLS for every TCP client: hostssl-only pg_hba.conf, or require_secure_transport = on.
    #[value(name = "tls-required")]
    TlsRequired,
}

impl From<CheckTarget> for crate::analysis::whatif::Change {
    fn from(target: CheckTarget) -> Self {
        match target {
            CheckTarget::MinTls13 => Self::MinTls13,
            CheckTarget::TlsRequired => Self::TlsRequired,
        }
    }
}

#[derive(Debug, Args, Clone)]
pub struct CheckArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// The change to assess.
    #[arg(long, value_enum, default_value_t = CheckTarget::MinTls13)]
    pub target: CheckTarget,
    /// Keep polling (every second) for this long before answering, e.g. 30s, 5m.
    #[arg(long, value_name = "DURATION")]
    pub watch: Option<String>,
    /// Below this much observed time the verdict is "not enough evidence" (WARNING).
    #[arg(long, default_value = "0s", value_name = "DURATION")]
    pub min_evidence: String,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = CheckFormat::Text)]
    pub format: CheckFormat,
    /// Once the target is in force: when it took effect (RFC 3339, or "YYYY-MM-DD HH:MM[:SS]" in UTC), used
    /// when neither the server log, the ledger's polls nor pg_conf_load_time() can tell.
    #[arg(long, value_name = "TIME", value_parser = crate::config::parse_since)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Once the target is in force: refused and downgraded clients count if seen within this long, e.g. 24h, 7d.
    #[arg(long, default_value = "24h", value_name = "DURATION")]
    pub window: String,
    /// Read connection lines from this server log file (from its start).
    #[arg(long, value_name = "PATH")]
    pub server_log: Option<PathBuf>,
    /// Add to and read from this client ledger file.
    #[arg(long, value_name = "PATH")]
    pub ledger: Option<PathBuf>,
    /// Configuration file.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub poolers: PoolerArgs,
    #[command(flatten)]
    pub help: HelpFlag,
}

/// Where `serve` listens unless told: loopback, outside the 9100-9999 range of Prometheus's default port
/// allocations (9187 is postgres_exporter's), at 19187 to be remembered beside it.
pub const SERVE_LISTEN: &str = "127.0.0.1:19187";

#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    /// One target per connection string (anything psql accepts); -h/-p/-U/-d only with a single target.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Address and port of the HTTP endpoints (/metrics, /healthz, /api/v1/targets).
    #[arg(long, default_value = SERVE_LISTEN, value_name = "ADDR:PORT")]
    pub listen: String,
    /// Seconds between polls of each target.
    #[arg(short = 'i', long, default_value_t = 15.0, value_name = "SECONDS")]
    pub interval: f64,
    /// TOML file of `[[target]]` tables (name, conninfo, server_log, pgbouncer, pgbouncer_log, bundles, ledger); re-read on SIGHUP.
    #[arg(long, value_name = "FILE")]
    pub targets: Option<PathBuf>,
    /// Keep each target's client ledger here (`<name>.ledger`, the name made safe for a file name) unless its entry
    /// names a ledger file.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// TLS and basic authentication for the endpoints, in Prometheus exporter-toolkit's web config format (YAML).
    #[arg(long, value_name = "FILE")]
    pub web_config: Option<PathBuf>,
    /// Seconds between certificate probes of each target (each opens about ten connections).
    #[arg(long, default_value_t = 3600.0, value_name = "SECONDS")]
    pub probe_interval: f64,
    /// Export one `pgtls_client` series per ledger client, up to this many over all targets (0: none).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub client_series: usize,
    /// Configuration file (alert rules, ledger key, evidence window; its `[[target]]` tables are targets too).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub help: HelpFlag,
}

impl ServeArgs {
    // A String: the CLI edge, as Cli::check.
    pub fn check(&self) -> Result<(), String> {
        single_target_flags(&self.conn, self.conn.conninfo.len() > 1 || self.targets.is_some())
    }
}

/// psql's flags describe one server: with several targets they would be ambiguous. Said as `ConnArgs::options`
/// says it for one command, naming the flags given. A String: the usage line of the CLI edge.
fn single_target_flags(conn: &ConnArgs, several: bool) -> Result<(), String> {
    let flags = conn.given_flags();
    if flags.is_empty() || !several {
        return Ok(());
    }
    let verb = if flags.len() == 1 { "applies" } else { "apply" };
    Err(format!(
        "{} {verb} to one server, but several are named (connection strings or a targets file): put host=, port=, \
         user=, dbname= in each instead",
        flags.join(" ")
    ))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LedgerFormat {
    Csv,
    Json,
}

#[derive(Debug, Args, Clone)]
pub struct LedgerArgs {
    /// The ledger file written by `pgtls --ledger PATH` or `pgtls check --ledger PATH`.
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = LedgerFormat::Csv)]
    pub format: LedgerFormat,
    /// CSV: keep every field byte-exact (no leading ' on formula-shaped text, no escaped control characters).
    #[arg(long)]
    pub raw: bool,
    /// Print the trend instead of the clients: per clock hour of the week ending with the last moment watched,
    /// sessions and distinct clients on TLSv1.3, TLSv1.2, older TLS, no TLS, refused (JSON: one object; CSV: one
    /// row per hour). Each client's own hours are in its `hours` field either way (JSON).
    #[arg(long)]
    pub trend: bool,
    #[command(flatten)]
    pub help: HelpFlag,
}

#[derive(Debug, Args, Clone)]
pub struct ReportArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Where to write the report; .html (or .htm) writes HTML, .md (or .markdown) Markdown.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Read the client ledger kept by `pgtls --ledger PATH`, `check` or `serve` (read-only, without its lock):
    /// the holdouts, their evidence and the trend come from it. Without it the report has only this one poll.
    #[arg(long, value_name = "PATH")]
    pub ledger: Option<PathBuf>,
    /// Below this much observed time a verdict is "not enough evidence".
    #[arg(long, default_value = "0s", value_name = "DURATION")]
    pub min_evidence: String,
    /// Once a target is in force: when it took effect (RFC 3339, or "YYYY-MM-DD HH:MM[:SS]" in UTC), used when
    /// neither the ledger nor pg_conf_load_time() can tell.
    #[arg(long, value_name = "TIME", value_parser = crate::config::parse_since)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Do not probe the server's certificate (the probe's TLS 1.0-1.2 handshakes leave lines in the server log).
    #[arg(long)]
    pub no_probe: bool,
    /// Configuration file (the ledger's key).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub help: HelpFlag,
}

/// The usage of docs/usage.md, generated from the clap definition so every subcommand and flag is there (the
/// `readme` test compares, `UPDATE_README=1` rewrites): a synopsis per command, then one table of flags each.
pub fn usage_markdown() -> String {
    use clap::CommandFactory;
    let root = Cli::command();
    let mut commands: Vec<(String, &clap::Command)> = vec![("pgtls".to_string(), &root)];
    commands.extend(
        root.get_subcommands()
            .filter(|c| c.get_name() != "help")
            .map(|c| (format!("pgtls {}", c.get_name()), c)),
    );
    let mut out = String::from("```sh\n");
    for (name, cmd) in &commands {
        let positionals: Vec<String> = cmd.get_positionals().map(synopsis_word).collect();
        out.push_str(&format!("{name} [OPTIONS] {}\n", positionals.join(" ")).replace(" \n", "\n"));
    }
    out.push_str("```\n");
    for (name, cmd) in &commands {
        let about = cmd.get_about().map(|a| one_line(&a.to_string())).unwrap_or_default();
        out.push_str(&format!(
            "\n`{name}`: {about}\n\n| argument | meaning | default |\n|---|---|---|\n"
        ));
        for arg in cmd.get_arguments() {
            if matches!(arg.get_id().as_str(), "help" | "version") {
                continue;
            }
            let help = arg
                .get_long_help()
                .or_else(|| arg.get_help())
                .map(|h| one_line(&h.to_string()))
                .unwrap_or_default();
            let default: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            let default = if arg.get_action().takes_values() && !default.is_empty() {
                format!("`{}`", default.join(","))
            } else {
                String::new()
            };
            out.push_str(&format!(
                "| {} | {} | {default} |\n",
                flag_cell(arg),
                help.replace('|', "\\|")
            ));
        }
    }
    out
}

/// `[CONNINFO]...` or `PATH` as a synopsis shows a positional argument.
fn synopsis_word(arg: &clap::Arg) -> String {
    let name = arg
        .get_value_names()
        .and_then(|names| names.first().map(|n| n.to_string()))
        .unwrap_or_else(|| arg.get_id().to_string().to_uppercase());
    let many = matches!(arg.get_action(), ArgAction::Append);
    match (arg.is_required_set(), many) {
        (true, false) => name,
        (true, true) => format!("{name}..."),
        (false, false) => format!("[{name}]"),
        (false, true) => format!("[{name}]..."),
    }
}

/// `` `-f`, `--format table|json|csv` `` for an option, `` `CONNINFO` `` for a positional.
fn flag_cell(arg: &clap::Arg) -> String {
    if arg.is_positional() {
        return format!("`{}`", synopsis_word(arg));
    }
    let value = if arg.get_action().takes_values() {
        let possible: Vec<String> = arg
            .get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| v.get_name().to_string())
            .collect();
        if possible.is_empty() {
            let names = arg.get_value_names().map(|n| n.join(" ")).unwrap_or_default();
            format!(" {names}")
        } else {
            format!(" {}", possible.join("\\|"))
        }
    } else {
        String::new()
    };
    let mut names = Vec::new();
    if let Some(short) = arg.get_short() {
        names.push(format!("`-{short}`"));
    }
    if let Some(long) = arg.get_long() {
        names.push(format!("`--{long}{value}`"));
    }
    names.join(", ")
}

/// Help text as one table cell: its lines joined.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod runtime_tests {
    use clap::Parser;

    use super::Cli;

    fn workers(args: &[&str]) -> usize {
        Cli::try_parse_from(args).expect("arguments parse").runtime_workers()
    }

    /// One server's dashboard runs on one worker beside its drawing thread; a fleet and serve keep two.
    #[test]
    fn one_worker_only_for_one_servers_dashboard() {
        assert_eq!(workers(&["pgtls", "host=db1"]), 1);
        assert_eq!(workers(&["pgtls"]), 1);
        assert_eq!(workers(&["pgtls", "host=db1", "host=db2"]), 2);
        assert_eq!(workers(&["pgtls", "serve", "host=db1"]), 2);
        assert_eq!(workers(&["pgtls", "snapshot", "host=db1"]), 2);
    }
}
