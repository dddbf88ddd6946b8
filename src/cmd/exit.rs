//! Every exit status pgtls uses, in one place, so commands cannot drift apart; [`TABLE`] is what the README and the
//! man page print.
//!
//! Two families: the monitoring-plugin statuses of `check`, `probe` and `bundle` (0 OK, 1 WARNING, 2 CRITICAL,
//! 3 UNKNOWN, read by Nagios, Icinga and friends), and the plain statuses of the other commands. A plugin that cannot
//! even parse its flags has not looked at anything, so its usage errors are UNKNOWN, never a verdict about the server.
//! The plain commands keep psql's 2 for a server that cannot be reached (scripts already test for it), so a usage
//! error takes sysexits' EX_USAGE, 64, rather than clap's 2, and the two can never be confused.

/// The verdict of a monitoring plugin, defined beside the plugins' report.
pub use crate::output::status::Status;

/// Plain commands (dashboard, snapshot, serve, ledger, demo, config, man, completions): it worked.
pub const SUCCESS: u8 = 0;
/// Plain commands: something failed while running (a file that could not be written, a lab that did not start).
pub const ERROR: u8 = 1;
/// Plain commands: the server could not be reached or seen, as psql's 2 (TLS set-up included: an unreadable
/// certificate file named in the connection string).
pub const CONNECT_FAILED: u8 = 2;
/// Plain commands: the command line or the configuration is wrong (an unknown flag, a bad value, a missing or
/// unreadable file named by a flag, a configuration or targets file with an error): nothing was tried.
pub const USAGE: u8 = 64;

/// The subcommands that speak the monitoring-plugin contract.
pub const PLUGIN_COMMANDS: [&str; 3] = ["check", "probe", "bundle"];

/// One exit status as documented: its code, the commands it applies to, what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitRow {
    pub code: u8,
    pub commands: &'static str,
    pub meaning: &'static str,
}

/// The contract, as the README and `pgtls man` print it.
pub const TABLE: &[ExitRow] = &[
    ExitRow {
        code: SUCCESS,
        commands: "plain",
        meaning: "success",
    },
    ExitRow {
        code: ERROR,
        commands: "plain",
        meaning: "an error while running (writing a file or the output, starting the demo's server)",
    },
    ExitRow {
        code: CONNECT_FAILED,
        commands: "plain",
        meaning: "cannot connect to the server or see it (as psql), TLS set-up included",
    },
    ExitRow {
        code: USAGE,
        commands: "plain",
        meaning: "usage: a bad flag or value, a missing file named by a flag, an error in the configuration or targets file",
    },
    ExitRow {
        code: 0,
        commands: "plugins",
        meaning: "OK",
    },
    ExitRow {
        code: 1,
        commands: "plugins",
        meaning: "WARNING",
    },
    ExitRow {
        code: 2,
        commands: "plugins",
        meaning: "CRITICAL",
    },
    ExitRow {
        code: 3,
        commands: "plugins",
        meaning: "UNKNOWN: cannot connect or cannot see, and every usage error",
    },
];

/// [`TABLE`] as the Markdown table the README shows (generated, and tested to match).
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| status | plain commands: dashboard, `snapshot`, `serve`, `ledger`, `demo`, `config`, `man`, `completions` | monitoring plugins: `check`, `probe`, `bundle` |\n|---|---|---|\n",
    );
    let mut codes: Vec<u8> = TABLE.iter().map(|r| r.code).collect();
    codes.sort_unstable();
    codes.dedup();
    for code in codes {
        let cell = |family: &str| {
            TABLE
                .iter()
                .find(|r| r.code == code && r.commands == family)
                .map_or("—", |r| r.meaning)
        };
        out.push_str(&format!("| {code} | {} | {} |\n", cell("plain"), cell("plugins")));
    }
    out
}

/// The status for a command line clap refused. `args` is the whole command line, program name first;
/// the subcommand is the first argument, since top-level flags conflict with subcommands.
pub fn for_usage_error(args: &[std::ffi::OsString], kind: clap::error::ErrorKind) -> u8 {
    use clap::error::ErrorKind;
    if matches!(kind, ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        return SUCCESS;
    }
    let plugin = args
        .get(1)
        .and_then(|a| a.to_str())
        .is_some_and(|a| PLUGIN_COMMANDS.contains(&a));
    if plugin { Status::Unknown.code() } else { USAGE }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn args(list: &[&str]) -> Vec<std::ffi::OsString> {
        list.iter().map(Into::into).collect()
    }

    #[test]
    fn plugin_usage_errors_are_unknown_and_others_keep_clap_status() {
        assert_eq!(
            for_usage_error(&args(&["pgtls", "check", "--bogus"]), ErrorKind::UnknownArgument),
            3
        );
        assert_eq!(
            for_usage_error(&args(&["pgtls", "probe", "-x"]), ErrorKind::UnknownArgument),
            3
        );
        assert_eq!(
            for_usage_error(&args(&["pgtls", "snapshot", "-x"]), ErrorKind::UnknownArgument),
            USAGE
        );
        assert_eq!(
            for_usage_error(&args(&["pgtls", "--bogus"]), ErrorKind::UnknownArgument),
            USAGE
        );
        assert_eq!(
            for_usage_error(&args(&["pgtls", "bundle", "--bogus"]), ErrorKind::UnknownArgument),
            3
        );
        assert_eq!(
            for_usage_error(&args(&["pgtls", "check", "--help"]), ErrorKind::DisplayHelp),
            0
        );
        assert_eq!(Status::Unknown.word(), "UNKNOWN");
    }

    #[test]
    fn the_table_states_each_status_once_and_plugins_match_their_verdicts() {
        for family in ["plain", "plugins"] {
            let codes: Vec<u8> = TABLE.iter().filter(|r| r.commands == family).map(|r| r.code).collect();
            let mut unique = codes.clone();
            unique.dedup();
            assert_eq!(codes, unique, "{family}");
        }
        for status in [Status::Ok, Status::Warning, Status::Critical, Status::Unknown] {
            assert!(
                TABLE.iter().any(|r| r.commands == "plugins"
                    && r.code == status.code()
                    && r.meaning.starts_with(status.word())),
                "{status:?}"
            );
        }
    }
}
