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
}

#[derive(Debug, Args, Clone)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
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
