//! Sockets as libpq opens them: TCP options before connect (keepalives, TCP_USER_TIMEOUT, no Nagle),
//! Unix socket paths, and `requirepeer` from the socket's peer credentials.

use std::io;
use std::path::PathBuf;

use nix::sys::socket::{getsockopt, setsockopt, sockopt};
use tokio::net::{TcpSocket, UnixStream};

use crate::error::Cause;
use crate::params::parse_int;
use crate::rules::Rules;
use crate::text::{escaped, quoted};

/// Socket options as the kernel reports them after pgtls set them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SocketReport {
    pub keepalive: bool,
    /// Seconds; `None` where the platform has no such option.
    pub keepalive_idle: Option<u32>,
    pub keepalive_interval: Option<u32>,
    pub keepalive_count: Option<u32>,
    /// Milliseconds; 0 is the system default.
    pub tcp_user_timeout: Option<u32>,
}

/// `dir/.s.PGSQL.port`.
pub fn unix_path(dir: &str, port: u16) -> PathBuf {
    PathBuf::from(format!("{}/.s.PGSQL.{port}", dir.trim_end_matches('/')))
}

/// libpq's words for a failed connect().
pub fn connect_cause(e: &io::Error, unix_socket: bool) -> Cause {
    match e.kind() {
        io::ErrorKind::ConnectionRefused if !unix_socket => Cause::Refused,
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused if unix_socket => Cause::NoSocket,
        _ => {
            let hint = if unix_socket {
                "is the server running locally and accepting connections on that socket?"
            } else {
                "is the server running on that host and accepting TCP/IP connections?"
            };
            Cause::Io(format!("{} ({hint})", escaped(&e.to_string())))
        }
    }
}

/// An integer keyword as libpq reads it when it opens a TCP socket; negative values count as 0.
fn int_option(value: Option<&str>, keyword: &str) -> Result<Option<u32>, Cause> {
    value
        .map(|v| {
            parse_int(v, keyword)
                .map(|n| n.max(0).unsigned_abs())
                .map_err(|e| Cause::Io(e.to_string()))
        })
        .transpose()
}

fn setsockopt_failed(name: &str, e: nix::Error) -> Cause {
    Cause::Io(format!("setsockopt({name}) failed: {}", e.desc()))
}

/// libpq's order for a TCP socket: TCP_NODELAY, then keepalives (unless keepalives=0), then
/// TCP_USER_TIMEOUT; a value the kernel rejects fails this address, as in libpq.
pub fn apply_tcp_options(socket: &TcpSocket, rules: &Rules) -> Result<SocketReport, Cause> {
    socket
        .set_nodelay(true)
        .map_err(|e| Cause::Io(format!("setsockopt(TCP_NODELAY) failed: {}", escaped(&e.to_string()))))?;
    let keepalives = match rules.keepalives.as_deref() {
        None => true,
        Some(v) => {
            parse_int(v, "keepalives").map_err(|_| Cause::Io("keepalives parameter must be an integer".to_string()))?
                != 0
        }
    };
    if keepalives {
        setsockopt(socket, sockopt::KeepAlive, &true).map_err(|e| setsockopt_failed("SO_KEEPALIVE", e))?;
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
        {
            if let Some(idle) = int_option(rules.keepalives_idle.as_deref(), "keepalives_idle")? {
                setsockopt(socket, sockopt::TcpKeepIdle, &idle).map_err(|e| setsockopt_failed("TCP_KEEPIDLE", e))?;
            }
        }
        #[cfg(target_vendor = "apple")]
        {
            if let Some(idle) = int_option(rules.keepalives_idle.as_deref(), "keepalives_idle")? {
                setsockopt(socket, sockopt::TcpKeepAlive, &idle).map_err(|e| setsockopt_failed("TCP_KEEPALIVE", e))?;
            }
        }
        if let Some(interval) = int_option(rules.keepalives_interval.as_deref(), "keepalives_interval")? {
            setsockopt(socket, sockopt::TcpKeepInterval, &interval)
                .map_err(|e| setsockopt_failed("TCP_KEEPINTVL", e))?;
        }
        if let Some(count) = int_option(rules.keepalives_count.as_deref(), "keepalives_count")? {
            setsockopt(socket, sockopt::TcpKeepCount, &count).map_err(|e| setsockopt_failed("TCP_KEEPCNT", e))?;
        }
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        if let Some(ms) = int_option(rules.tcp_user_timeout.as_deref(), "tcp_user_timeout")? {
            setsockopt(socket, sockopt::TcpUserTimeout, &ms).map_err(|e| setsockopt_failed("TCP_USER_TIMEOUT", e))?;
        }
    }
    Ok(read_back(socket))
}

fn read_back(socket: &TcpSocket) -> SocketReport {
    let mut report = SocketReport {
        keepalive: getsockopt(socket, sockopt::KeepAlive).unwrap_or(false),
        keepalive_interval: getsockopt(socket, sockopt::TcpKeepInterval).ok(),
        keepalive_count: getsockopt(socket, sockopt::TcpKeepCount).ok(),
        ..SocketReport::default()
    };
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    {
        report.keepalive_idle = getsockopt(socket, sockopt::TcpKeepIdle).ok();
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        report.tcp_user_timeout = getsockopt(socket, sockopt::TcpUserTimeout).ok();
    }
    report
}

/// libpq's requirepeer: the account that owns the server process at the other end of the socket.
pub fn check_peer(stream: &UnixStream, wanted: &str) -> Result<(), Cause> {
    let cred = stream
        .peer_cred()
        .map_err(|e| Cause::Peer(format!("could not get peer credentials: {}", escaped(&e.to_string()))))?;
    let uid = cred.uid();
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .map_err(|e| Cause::Peer(format!("could not look up local user ID {uid}: {}", e.desc())))?
        .ok_or_else(|| Cause::Peer(format!("could not look up local user ID {uid}: user does not exist")))?;
    if user.name == wanted {
        Ok(())
    } else {
        Err(Cause::Peer(format!(
            "requirepeer specifies {}, but actual peer user name is {}",
            quoted(wanted),
            quoted(&user.name)
        )))
    }
}
