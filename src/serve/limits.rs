//! Open files: `serve` holds one descriptor per target (its connection; a ledger is opened only to be written), so a
//! fleet of hundreds needs more than the soft limit many systems give a service (1,024 under systemd). Like the Go
//! runtime does for every Prometheus exporter, serve raises its soft limit to the hard one at start, and says in one
//! line when even that is too few for its targets, instead of failing target by target.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Descriptors serve uses whatever the targets: stdio, the listener and its scrapes, the runtime's own (epoll,
/// eventfds), the state directory's lock, a probe's socket and a ledger being written.
pub const FIXED: u64 = 64;

/// The soft and hard limits on open files after raising the soft one to the hard one; `None` if they cannot be read.
pub fn raise_open_files() -> Option<(u64, u64)> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return Some((hard, hard));
    }
    Some((soft, hard))
}

/// The line to say when `limit` is too few for `needed` descriptors.
pub fn shortage(needed: u64, soft: u64, hard: u64, targets: usize) -> Option<String> {
    (soft < needed).then(|| {
        format!(
            "{targets} target(s) need about {needed} open files but the limit is {soft} (hard limit {hard}): \
             targets beyond it will fail to connect; raise it (LimitNOFILE= in the systemd unit, ulimit -n)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enough_is_silent_and_too_few_is_one_line() {
        assert_eq!(shortage(564, 1024, 1024, 500), None);
        let line = shortage(1064, 1024, 1024, 1000).expect("too few");
        assert!(!line.contains('\n'));
        assert!(line.starts_with("1000 target(s) need about 1064 open files but the limit is 1024"));
    }
}
