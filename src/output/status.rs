//! The verdict of a monitoring plugin (`check`, `probe`, `bundle`): its word and its exit status, read by Nagios,
//! Icinga and friends.

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
