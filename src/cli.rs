//! Command-line interface: `pgtls [CONNINFO]` opens the dashboard; subcommands for scripts and the demo.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::output::Format;

#[derive(Debug, Parser)]
#[command(
    name = "pgtls",
    version,
    about = "Live view of how every PostgreSQL client is connected: TLS 1.3, TLS 1.2, older, or no encryption",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub dashboard: DashboardArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Poll once and print the result (table, JSON or CSV); exit 2 if the server cannot be reached.
    Snapshot(SnapshotArgs),
    /// Monitoring plugin: would anyone break if the target were applied? One summary line, perfdata,
    /// exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (cannot connect or cannot see).
    Check(CheckArgs),
    /// Export a ledger file (--ledger) as CSV or JSON: every client seen, with the TLS it used.
    Ledger(LedgerArgs),
    /// Read the server's certificate chain and the TLS versions and suites it accepts (like openssl s_client / sslyze).
    /// Exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    Probe(ProbeArgs),
    /// Start a throwaway TLS-enabled PostgreSQL with a mix of clients and open the dashboard on it.
    Demo(DemoArgs),
}

/// Where to connect, exactly as psql takes it.
#[derive(Debug, Args, Clone, Default)]
pub struct ConnArgs {
    /// libpq connection string or URI, e.g. "host=db port=5432 sslmode=verify-full" or
    /// postgresql://monitor@db/postgres. PG* environment variables, .pgpass and service files apply.
    #[arg(value_name = "CONNINFO")]
    pub conninfo: Option<String>,
}

#[derive(Debug, Args, Clone)]
pub struct DashboardArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Seconds between refreshes.
    #[arg(short = 'i', long, default_value_t = 2.0, value_name = "SECONDS")]
    pub interval: f64,
    #[command(flatten)]
    pub history: HistoryArgs,
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
}

#[derive(Debug, Args, Clone)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// CSV: keep every field byte-exact (no leading ' on formula-shaped text, no escaped control characters).
    #[arg(long)]
    pub raw: bool,
}

#[derive(Debug, Args, Clone)]
pub struct DemoArgs {
    /// Directory holding PostgreSQL's initdb and postgres (default: $PGTLS_PG_BINDIR, pg_config, /usr/lib/postgresql/*/bin).
    #[arg(long, value_name = "DIR")]
    pub pg_bindir: Option<PathBuf>,
    /// Seconds between refreshes.
    #[arg(short = 'i', long, default_value_t = 1.0, value_name = "SECONDS")]
    pub interval: f64,
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckFormat {
    Text,
    Json,
}

#[derive(Debug, Args, Clone)]
pub struct CheckArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// The change to assess.
    #[arg(long, value_enum, default_value_t = crate::analysis::whatif::Target::MinTls13)]
    pub target: crate::analysis::whatif::Target,
    /// Keep polling (every second) for this long before answering, e.g. 30s, 5m.
    #[arg(long, value_name = "DURATION")]
    pub watch: Option<String>,
    /// Below this much observed time the verdict is "not enough evidence" (WARNING).
    #[arg(long, default_value = "0s", value_name = "DURATION")]
    pub min_evidence: String,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = CheckFormat::Text)]
    pub format: CheckFormat,
    /// Read connection lines from this server log file (from its start).
    #[arg(long, value_name = "PATH")]
    pub server_log: Option<PathBuf>,
    /// Add to and read from this client ledger file.
    #[arg(long, value_name = "PATH")]
    pub ledger: Option<PathBuf>,
    /// Configuration file.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
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
}
