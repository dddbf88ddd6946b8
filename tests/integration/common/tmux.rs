//! Drive the real binary in tmux on a private socket: type keys, read the screen, collect the exit status.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub struct Tmux {
    socket: String,
    status_file: PathBuf,
    pid_file: PathBuf,
    stty_file: PathBuf,
}

impl Tmux {
    /// Start `args` of the pgtls binary in a detached 120x36 pane, with HOME set and no PG* variables.
    pub fn start(args: &[&str], home: &Path, width: u16, height: u16) -> Tmux {
        let socket = format!(
            "pgtls-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let status_file = home.join(format!("{socket}.status"));
        let pid_file = home.join(format!("{socket}.pid"));
        let stty_file = home.join(format!("{socket}.stty"));
        let quoted: Vec<String> = args.iter().map(|a| shell_quote(a)).collect();
        // As `common::pgtls`: PGTLS_TEST_BIN runs another build, e.g. to show a test fails on an older one.
        let binary = std::env::var("PGTLS_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_pgtls").to_string());
        let unset: String = std::env::vars()
            .filter(|(k, _)| k.starts_with("PG"))
            .map(|(k, _)| format!("-u {k} "))
            .collect();
        // The inner shell records its pid and becomes pgtls, so tests can signal it. Afterwards the pane stays
        // open (until the tmux server is killed) with the terminal's modes recorded, so tests can see whether pgtls
        // restored the terminal.
        let script = format!(
            "sh -c 'echo $$ > \"$0\"; exec \"$@\"' {} env {unset}HOME={} TERM=xterm-256color {} {}; echo $? > {}; \
             stty -a > {}; sleep 600",
            shell_quote(&pid_file.display().to_string()),
            shell_quote(&home.display().to_string()),
            shell_quote(&binary),
            quoted.join(" "),
            shell_quote(&status_file.display().to_string()),
            shell_quote(&stty_file.display().to_string()),
        );
        let status = Command::new(super::require_tool("tmux", "tmux"))
            .args(["-L", &socket, "-f", "/dev/null", "new-session", "-d", "-x"])
            .arg(width.to_string())
            .arg("-y")
            .arg(height.to_string())
            .args(["sh", "-c", &script])
            .status()
            .expect("tmux runs (install tmux)");
        assert!(status.success(), "tmux new-session failed");
        Tmux {
            socket,
            status_file,
            pid_file,
            stty_file,
        }
    }

    pub fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Send tmux key names ("Enter", "Escape", "q", ...).
    pub fn keys(&self, keys: &[&str]) {
        let status = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys"])
            .args(keys)
            .status()
            .expect("tmux send-keys");
        assert!(status.success());
    }

    /// Literal text, e.g. a filter.
    pub fn type_text(&self, text: &str) {
        let status = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", "-l", text])
            .status()
            .expect("tmux send-keys -l");
        assert!(status.success());
    }

    /// Wait until the screen satisfies `pred`; panics with the last screen after `timeout`.
    pub fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.screen();
            if pred(&screen) {
                return screen;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The binary's exit status once it has ended.
    pub fn exit_status(&self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(text) = std::fs::read_to_string(&self.status_file)
                && let Ok(code) = text.trim().parse()
            {
                return Some(code);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Tmux {
    /// Send `signal` to pgtls (not to tmux, not to the shell around it), as `kill -SIG pid` would.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let pid = loop {
            if let Ok(text) = std::fs::read_to_string(&self.pid_file)
                && let Ok(pid) = text.trim().parse::<i32>()
            {
                break pid;
            }
            assert!(Instant::now() < deadline, "pgtls never started");
            std::thread::sleep(Duration::from_millis(50));
        };
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).expect("kill pgtls");
    }

    /// Whether the pane is in the alternate screen now.
    pub fn alternate_screen(&self) -> bool {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "display-message", "-p", "#{alternate_on}"])
            .output()
            .expect("tmux display-message");
        String::from_utf8_lossy(&out.stdout).trim() == "1"
    }

    /// `stty -a` as the shell saw the terminal after pgtls ended.
    pub fn modes_after_exit(&self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            match std::fs::read_to_string(&self.stty_file) {
                Ok(text) if text.contains("echo") => return text,
                _ if Instant::now() > deadline => panic!("no stty output after pgtls ended"),
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // The server is usually gone already (the session ended with pgtls); that is not worth a message.
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}
