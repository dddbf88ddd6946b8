//! Every exit status pgtls uses, in one place, so commands cannot drift apart.
//!
//! Two families: the monitoring-plugin statuses of `check` and `probe` (0 OK, 1 WARNING, 2 CRITICAL,
//! 3 UNKNOWN, read by Nagios, Icinga and friends), and the plain statuses of the other commands
//! (0 success, 1 error, 2 cannot connect). A plugin that cannot even parse its flags has not looked
//! at anything, so its usage errors are UNKNOWN, never a verdict about the server.

use std::process::ExitCode;

use serde::Serialize;

/// The verdict of a monitoring plugin (`check`, `probe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Ok,
    Warning,
    Critical,
    Unknown,
}

impl Status {
    pub fn code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Critical => 2,
            Status::Unknown => 3,
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warning => "WARNING",
            Status::Critical => "CRITICAL",
            Status::Unknown => "UNKNOWN",
        }
    }

    pub fn exit(self) -> ExitCode {
        ExitCode::from(self.code())
    }
}

/// Plain commands (dashboard, snapshot, ledger, demo): it worked.
pub const SUCCESS: u8 = 0;
/// Plain commands: a usage, configuration or I/O error.
pub const ERROR: u8 = 1;
/// Plain commands: the server could not be reached or seen (as `snapshot` promises scripts).
pub const CONNECT_FAILED: u8 = 2;
/// Plain commands: a command-line usage error, as clap and most Unix tools report it.
pub const USAGE: u8 = 2;

/// The subcommands that speak the monitoring-plugin contract.
pub const PLUGIN_COMMANDS: [&str; 2] = ["check", "probe"];

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
            2
        );
        assert_eq!(
            for_usage_error(&args(&["pgtls", "--bogus"]), ErrorKind::UnknownArgument),
            2
        );
        assert_eq!(
            for_usage_error(&args(&["pgtls", "check", "--help"]), ErrorKind::DisplayHelp),
            0
        );
        assert_eq!(Status::Unknown.word(), "UNKNOWN");
    }
}
