//! A fleet split across two `pgtls serve` processes, as docs/performance.md tells: disjoint targets files, one
//! state directory each, and one Prometheus scraping both with the page's own configuration (promtool checks it).
//! Together they report every target once, each from the process whose file names it, with its true sessions.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail by panicking")]

use std::process::{Command, Stdio};
use std::time::Duration;

use pgtls::lab::{Lab, LabOptions, SUPERUSER, SessionKind};

use crate::common;
use crate::serve::{MONITOR_APP, Serve, http_get};

/// The Prometheus configuration in docs/performance.md's split section: its first `yaml` block after the heading.
fn documented_config() -> String {
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/performance.md")).expect("page");
    let section = page
        .split_once("## Splitting a fleet across processes")
        .expect("docs/performance.md has the split section")
        .1;
    let block = section.split_once("```yaml\n").expect("a yaml block").1;
    block.split_once("```").expect("the block ends").0.to_string()
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Instant query: every result as (its labels, its value).
fn query(port: u16, q: &str) -> Vec<(serde_json::Value, f64)> {
    let path = format!("/api/v1/query?query={}", url_encode(q));
    let Some((200, body)) = http_get(port, &path, None) else {
        return Vec::new();
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) else {
        return Vec::new();
    };
    v["data"]["result"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(|r| Some((r["metric"].clone(), r["value"][1].as_str()?.parse().ok()?)))
                .collect()
        })
        .unwrap_or_default()
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serve_processes_with_disjoint_targets_cover_the_fleet_under_one_prometheus() {
    let lab = Lab::start(LabOptions::default()).await.expect("lab");
    // Two TLS 1.2 sessions and one plain: exact in every target's counts, whatever monitors (TLS 1.3) come and go.
    let mut open = Vec::new();
    for kind in [SessionKind::Tls12, SessionKind::Tls12, SessionKind::PlainTcp] {
        open.push(lab.open(kind, SUPERUSER, "split").await.expect("session"));
    }
    let home = tempfile::tempdir().expect("home");
    let entry = |name: &str| {
        format!(
            "[[target]]\nname = \"{name}\"\nconninfo = \"{} application_name={MONITOR_APP}\"\n\n",
            lab.conninfo(SUPERUSER)
        )
    };
    let files = [("a", ["orders-1", "orders-2"]), ("b", ["billing-1", "billing-2"])];
    let mut serves = Vec::new();
    for (part, names) in &files {
        let targets = home.path().join(format!("fleet-{part}.toml"));
        std::fs::write(&targets, names.iter().map(|n| entry(n)).collect::<String>()).expect("targets");
        let state = home.path().join(format!("state-{part}"));
        std::fs::create_dir_all(&state).expect("state dir");
        serves.push(Serve::start(
            &[
                "--targets",
                &targets.display().to_string(),
                "--state-dir",
                &state.display().to_string(),
                "--interval",
                "1",
            ],
            home.path(),
        ));
    }

    // The page's configuration, pointed at these two processes and scraping every second.
    let documented = documented_config();
    assert!(
        documented.contains("127.0.0.1:19187") && documented.contains("127.0.0.1:19188"),
        "{documented}"
    );
    let config_text = documented
        .replace("127.0.0.1:19187", &format!("127.0.0.1:{}", serves[0].port))
        .replace("127.0.0.1:19188", &format!("127.0.0.1:{}", serves[1].port))
        .replace("scrape_interval: 30s", "scrape_interval: 1s");
    let config = home.path().join("prometheus.yml");
    std::fs::write(&config, &config_text).expect("config");
    let promtool = which("promtool", "prometheus");
    let checked = Command::new(promtool)
        .args(["check", "config"])
        .arg(&config)
        .output()
        .expect("promtool runs");
    assert!(
        checked.status.success(),
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    let prom_port = pgtls::lab::server::free_port().expect("port");
    let _prom = KillOnDrop(
        Command::new(which("prometheus", "prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", home.path().join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts"),
    );

    // Every target up exactly once, from the process whose file names it, with the lab's two TLS 1.2 sessions.
    let want: Vec<(String, String)> = files
        .iter()
        .enumerate()
        .flat_map(|(i, (_, names))| {
            let instance = format!("127.0.0.1:{}", serves[i].port);
            names.iter().map(move |n| (n.to_string(), instance.clone()))
        })
        .collect();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    common::wait_until(
        "Prometheus sees every target once",
        Duration::from_secs(90),
        async || {
            let mut up: Vec<(String, String)> = query(prom_port, "pgtls_up == 1")
                .into_iter()
                .filter_map(|(m, _)| Some((m["target"].as_str()?.to_string(), m["instance"].as_str()?.to_string())))
                .collect();
            up.sort();
            let tls12: Vec<(String, f64)> = query(
                prom_port,
                r#"sum by (target) (pgtls_sessions{transport="tls",version="TLSv1.2"})"#,
            )
            .into_iter()
            .filter_map(|(m, v)| Some((m["target"].as_str()?.to_string(), v)))
            .collect();
            let all_two = tls12.len() == 4 && tls12.iter().all(|(_, v)| *v == 2.0);
            let targets = query(prom_port, "count(count by (target) (pgtls_up))");
            if up == want_sorted && all_two && targets.first().map(|t| t.1) == Some(4.0) {
                Ok(())
            } else {
                Err((up, tls12, targets))
            }
        },
    )
    .await;
    drop(open);
}

fn which(name: &str, package: &str) -> std::path::PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} not found: install the `{package}` package (apt-get install {package})"))
}
