//! `pgtls man [COMMAND]`, `pgtls completions SHELL` and `pgtls config --example`: documents generated from the clap
//! definition, the key table, the exit-status table and the configuration's own defaults, so they cannot drift from
//! what pgtls accepts and does.

use std::io::Write;
use std::process::ExitCode;

use clap::CommandFactory;
use roff::{Roff, bold, roman};

use super::Failure;
use crate::cli::Cli;

/// The subcommands `pgtls man` prints a page of: pgtls(1) names each as pgtls-NAME(1).
pub const MAN_PAGES: [&str; 11] = [
    "snapshot",
    "check",
    "ledger",
    "report",
    "probe",
    "bundle",
    "demo",
    "serve",
    "man",
    "completions",
    "config",
];

pub fn man(command: Option<&str>) -> Result<ExitCode, Failure> {
    let page = man_page(command).map_err(|e| Failure::error(format!("cannot render the man page: {e}")))?;
    write_out(&page)
}

/// pgtls(1), or pgtls-COMMAND(1) for a subcommand: clap_mangen's sections from the command-line definition, then
/// KEYS, EXIT STATUS, ENVIRONMENT, FILES and SEE ALSO.
pub fn man_page(command: Option<&str>) -> std::io::Result<Vec<u8>> {
    // clap's implicit `help` subcommand has no page of its own, so pgtls(1) does not name one.
    let mut root = Cli::command().disable_help_subcommand(true);
    // Gives each subcommand its page name (pgtls-snapshot) and its synopsis name (pgtls snapshot).
    root.build();
    let source = format!("pgtls {}", env!("CARGO_PKG_VERSION"));
    let mut page = Vec::new();
    let Some(name) = command else {
        let man = clap_mangen::Man::new(root.clone()).source(source);
        man.render_title(&mut page)?;
        man.render_name_section(&mut page)?;
        man.render_synopsis_section(&mut page)?;
        man.render_description_section(&mut page)?;
        man.render_options_section(&mut page)?;
        man.render_subcommands_section(&mut page)?;
        let mut roff = Roff::new();
        keys_section(&mut roff);
        exit_status_section(&mut roff, None);
        environment_section(&mut roff);
        files_section(&mut roff);
        see_also_section(&mut roff, None);
        roff.to_writer(&mut page)?;
        man.render_version_section(&mut page)?;
        return Ok(one_preamble(page));
    };
    let sub = root
        .find_subcommand(name)
        .filter(|_| MAN_PAGES.contains(&name))
        .cloned()
        .ok_or_else(|| std::io::Error::other(format!("no page for {name}")))?;
    let man = clap_mangen::Man::new(sub.clone()).source(source);
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    if sub.get_arguments().any(|a| a.get_id() != "help") {
        man.render_options_section(&mut page)?;
    }
    let mut roff = Roff::new();
    exit_status_section(&mut roff, Some(name));
    see_also_section(&mut roff, Some(name));
    roff.to_writer(&mut page)?;
    Ok(one_preamble(page))
}

/// Each part rendered on its own starts with the lines that define `\*(Aq`, the apostrophe; the page needs them once.
fn one_preamble(page: Vec<u8>) -> Vec<u8> {
    const PREAMBLE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";
    let text = String::from_utf8_lossy(&page);
    match text.split_once(PREAMBLE) {
        Some((before, after)) => format!("{before}{PREAMBLE}{}", after.replace(PREAMBLE, "")).into_bytes(),
        None => page,
    }
}

/// The dashboard's keys, from the key table dispatch, the footer, `?` and the README use.
fn keys_section(roff: &mut Roff) {
    roff.control("SH", ["KEYS"]);
    roff.text([roman(
        "The dashboard's keys, and where each works in brackets (? shows the same table inside it; the footer shows the \
         keys that work where you are):",
    )]);
    for (keys, action, scopes) in crate::tui::keymap::table_rows() {
        roff.control("TP", []);
        let mut names = Vec::new();
        for (i, key) in keys.into_iter().enumerate() {
            if i > 0 {
                names.push(roman(", "));
            }
            names.push(bold(key));
        }
        roff.text(names);
        roff.text([roman(format!("{action} [{}]", scopes.join(", ")))]);
    }
}

/// The exit statuses, from the table in `exit_table.rs`; on a subcommand's page only its own family.
fn exit_status_section(roff: &mut Roff, command: Option<&str>) {
    roff.control("SH", ["EXIT STATUS"]);
    let families = match command {
        Some(_) => super::exit_table::family_of(command).into_iter().collect(),
        None => super::exit_table::families(),
    };
    for (i, family) in families.into_iter().enumerate() {
        if i > 0 {
            roff.control("PP", []);
        }
        roff.text([roman(format!("{} ({}):", family.commands.join(", "), family.name))]);
        for (code, meaning) in family.rows {
            roff.control("TP", []);
            roff.text([bold(code.to_string())]);
            roff.text([roman(meaning)]);
        }
    }
}

/// One `.TP` entry: a bold name, then what it is.
fn entry(roff: &mut Roff, name: &str, what: &str) {
    roff.control("TP", []);
    roff.text([bold(name)]);
    roff.text([roman(what)]);
}

/// The variables pgtls reads: libpq's, from the connection crate's own tables, then pgtls's own.
fn environment_section(roff: &mut Roff) {
    roff.control("SH", ["ENVIRONMENT"]);
    roff.text([roman(
        "pgtls connects as libpq 18 does, and reads the variables libpq reads: each stands for its connection keyword \
         when neither the connection string nor a service gives it (see psql(1) and the libpq documentation).",
    )]);
    for spec in crate::conn::conninfo::OPTIONS {
        if let Some(var) = spec.envvar {
            let what = if spec.secret {
                format!("the {} keyword (never shown)", spec.keyword)
            } else {
                format!("the {} keyword", spec.keyword)
            };
            entry(roff, var, &what);
        }
    }
    for (var, how) in crate::conn::rules::SESSION_VARIABLES {
        entry(roff, var, &format!("{how}, as libpq does"));
    }
    entry(roff, "PGSERVICEFILE", "the service file, instead of ~/.pg_service.conf");
    entry(roff, "PGSYSCONFDIR", "the directory of the system-wide pg_service.conf");
    entry(
        roff,
        "PGREQUIRESSL",
        "1: sslmode=require when no sslmode is given (deprecated in libpq, warned about)",
    );
    roff.control("PP", []);
    roff.text([roman("pgtls's own:")]);
    entry(
        roff,
        "PGTLS_PG_BINDIR",
        "pgtls demo: the directory of PostgreSQL's initdb and postgres (as --pg-bindir)",
    );
    entry(
        roff,
        "PGTLS_CACHE_DIR",
        "where fetched PostgreSQL builds are kept (see FILES)",
    );
    entry(
        roff,
        "PGTLS_OFFLINE",
        "1: never download PostgreSQL (as pgtls demo --offline)",
    );
    entry(
        roff,
        "PGTLS_PGBOUNCER",
        "pgtls demo: the pgbouncer binary to put in front of the demo server (else PATH, then /usr/sbin/pgbouncer)",
    );
    entry(
        roff,
        "PGTLS_LAB_USER",
        "pgtls demo as root: the account the demo server runs as (else postgres, then nobody)",
    );
    roff.control("PP", []);
    roff.text([roman("And:")]);
    entry(
        roff,
        "NO_COLOR",
        "set and not empty: the dashboard draws without colour",
    );
    entry(
        roff,
        "XDG_CONFIG_HOME, HOME",
        "where the configuration file is looked for (see FILES)",
    );
    entry(
        roff,
        "XDG_CACHE_HOME",
        "where fetched PostgreSQL builds are kept (see FILES)",
    );
    entry(
        roff,
        "SSL_CERT_FILE, SSL_CERT_DIR",
        "OpenSSL's system trust store: sslrootcert=system, and the download of a PostgreSQL build",
    );
    entry(
        roff,
        "HTTPS_PROXY, NO_PROXY",
        "the proxy for the download of a PostgreSQL build",
    );
}

/// The files pgtls reads and writes.
fn files_section(roff: &mut Roff) {
    roff.control("SH", ["FILES"]);
    entry(
        roff,
        "$XDG_CONFIG_HOME/pgtls/config.toml, ~/.config/pgtls/config.toml",
        "the configuration file, unless --config names another; pgtls config --example prints every key with its \
         default",
    );
    entry(
        roff,
        "~/.pgpass",
        "passwords, as libpq reads them (PGPASSFILE or passfile= names another); ignored, with libpq's warning, when \
         others may read it",
    );
    entry(
        roff,
        "~/.pg_service.conf, PGSYSCONFDIR/pg_service.conf",
        "connection services (service=NAME), as libpq reads them; PGSERVICEFILE names another",
    );
    entry(
        roff,
        "~/.postgresql/root.crt",
        "the root certificates that verify the server when sslrootcert is not given (sslmode=require then verifies \
         the chain, as libpq)",
    );
    entry(
        roff,
        "~/.postgresql/postgresql.crt, ~/.postgresql/postgresql.key",
        "the client certificate and key when sslcert and sslkey are not given",
    );
    entry(
        roff,
        "PATH, PATH.lock, PATH.tmp",
        "the client ledger of --ledger PATH (JSON lines, mode 0600), the lock its one writer holds, and the \
         temporary file of its compaction",
    );
    entry(
        roff,
        "DIR/NAME-HASH.ledger",
        "pgtls serve --state-dir DIR: each target's ledger, unless its [[target]] names one",
    );
    entry(
        roff,
        "$PGTLS_CACHE_DIR, /var/cache/pgtls (as root), $XDG_CACHE_HOME/pgtls, ~/.cache/pgtls",
        "pgtls's cache: PostgreSQL builds fetched for the demo and the tests, in postgresql/PLATFORM-VERSION/ \
         (about 60 MB each); remove it to free the space, it is fetched again when needed",
    );
}

fn see_also_section(roff: &mut Roff, command: Option<&str>) {
    roff.control("SH", ["SEE ALSO"]);
    let mut pages: Vec<String> = Vec::new();
    if command.is_some() {
        pages.push("pgtls(1)".to_string());
    }
    pages.extend(
        MAN_PAGES
            .iter()
            .filter(|p| Some(**p) != command)
            .map(|p| format!("pgtls-{p}(1)")),
    );
    pages.push("psql(1)".to_string());
    roff.text([roman(pages.join(", "))]);
    roff.control("PP", []);
    roff.text([roman(
        "The README and docs/ of the source distribution: the guide to raising ssl_min_protocol_version, PgBouncer, \
         pgtls serve and Prometheus, the JSON and CSV fields.",
    )]);
}

pub fn completions(shell: clap_complete::Shell) -> Result<ExitCode, Failure> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "pgtls", &mut out);
    write_out(&out)
}

pub fn config_example() -> Result<ExitCode, Failure> {
    write_out(crate::config::example().as_bytes())
}

fn write_out(bytes: &[u8]) -> Result<ExitCode, Failure> {
    let mut stdout = std::io::stdout().lock();
    super::written(stdout.write_all(bytes).and_then(|()| stdout.flush()))
        .map_err(|e| Failure::error(format!("cannot write to stdout: {e}")))?;
    Ok(ExitCode::SUCCESS)
}
