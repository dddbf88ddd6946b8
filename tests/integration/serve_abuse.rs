//! `pgtls serve` keeps answering under abuse (issue 25): idle connections from another address cannot starve
//! scrapes over HTTP or HTTPS, logins cost the same bcrypt for known and unknown users, a flood of wrong passwords
//! leaves the polls on their interval, and `--client-series` is refused where its labels would be public.
//!
//! Loopback only: the abusive clients bind 127.0.0.2 (a loopback address on Linux) before they connect, and
//! the scrapes come from 127.0.0.1, so the per-address cap is exercised for real.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail by panicking")]

use crate::common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pgtls::lab::certs::{CertSpec, Issued, issue};
use pgtls::lab::{Lab, LabOptions, SUPERUSER};
use tokio::io::AsyncReadExt;

/// Where the abuse comes from: another loopback address than the scraper's.
const ABUSER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// The issue's figure: 100 idle connections, more than `serve` holds at once.
const IDLE: usize = 100;
/// The issue's bound on a scrape under abuse (it is the requirement itself; a scrape takes milliseconds).
const SCRAPE_WITHIN: Duration = Duration::from_secs(1);
/// A target that never answers: the endpoints must work regardless.
const DEAD_TARGET: &str = "host=127.0.0.1 port=1 connect_timeout=1";

/// The abuse tests load the machine on purpose: one at a time, so each one's figures are its own.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A `pgtls serve` child, its log in a file; killed when the test ends.
struct Serve {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    fn start(args: &[&str], home: &Path) -> Serve {
        let port = pgtls::lab::server::free_port().expect("free port");
        let log = home.join("serve.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgtls"));
        for (key, _) in std::env::vars() {
            if key.starts_with("PG") {
                cmd.env_remove(key);
            }
        }
        let child = cmd
            .env("HOME", home)
            .arg("serve")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("pgtls serve starts");
        Serve { child, port, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A web config in `home`: the given users (name, password, bcrypt cost) and, with `tls`, HTTPS with a certificate
/// for 127.0.0.1 from a fresh CA, which is returned for the client to trust.
fn web_config(home: &Path, users: &[(&str, &str, u32)], tls: bool) -> (String, Option<Issued>) {
    let mut text = String::new();
    let mut ca = None;
    if tls {
        let authority = issue(&CertSpec::ca("serve abuse test CA"), None).expect("ca");
        let cert = issue(
            &CertSpec::server("localhost", &["localhost"], &["127.0.0.1"]),
            Some(&authority),
        )
        .expect("cert");
        cert.write_pem(&home.join("web.crt"), &home.join("web.key"))
            .expect("pem");
        text.push_str("tls_server_config:\n  cert_file: web.crt\n  key_file: web.key\n");
        ca = Some(authority);
    }
    if !users.is_empty() {
        text.push_str("basic_auth_users:\n");
        for (name, password, cost) in users {
            let hash = bcrypt::hash(password, *cost).expect("bcrypt");
            text.push_str(&format!("  {name}: '{hash}'\n"));
        }
    }
    let path = home.join("web.yml");
    std::fs::write(&path, text).expect("web config");
    (path.display().to_string(), ca)
}

/// How a client reaches `serve`: plain or over TLS trusting `ca`, with or without a login.
#[derive(Clone)]
struct Client {
    port: u16,
    tls: Option<openssl::ssl::SslConnector>,
    login: Option<String>,
}

impl Client {
    fn new(port: u16, ca: Option<&Issued>, login: Option<&str>) -> Client {
        let tls = ca.map(|ca| {
            let mut connector = openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls()).expect("connector");
            connector.cert_store_mut().add_cert(ca.cert.clone()).expect("ca");
            connector.build()
        });
        Client {
            port,
            tls,
            login: login.map(str::to_string),
        }
    }

    /// `GET path` from 127.0.0.1 on a new connection: status and body, or why not.
    fn get(&self, path: &str, login: Option<&str>) -> Result<(u16, String), String> {
        use base64::Engine as _;
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| format!("connect: {e}"))?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        let mut stream: Box<dyn ReadWrite> = match &self.tls {
            None => Box::new(tcp),
            Some(connector) => Box::new(
                connector
                    .connect("localhost", tcp)
                    .map_err(|e| format!("TLS handshake: {e}"))?,
            ),
        };
        let auth = login
            .or(self.login.as_deref())
            .map(|l| {
                format!(
                    "Authorization: Basic {}\r\n",
                    base64::engine::general_purpose::STANDARD.encode(l)
                )
            })
            .unwrap_or_default();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n"
        )
        .map_err(|e| format!("write: {e}"))?;
        let mut response = Vec::new();
        // A TLS peer may end without close_notify; what arrived is still the answer.
        let read = stream.read_to_end(&mut response);
        let response = String::from_utf8_lossy(&response).into_owned();
        let Some((head, body)) = response.split_once("\r\n\r\n") else {
            return Err(format!("no answer ({read:?}): {response:?}"));
        };
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("no status in {head:?}"))?;
        Ok((status, body.to_string()))
    }

    async fn get_async(&self, path: &'static str, login: Option<String>) -> Result<(u16, String), String> {
        let client = self.clone();
        tokio::task::spawn_blocking(move || client.get(path, login.as_deref()))
            .await
            .expect("client thread")
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// What the abusive connections do once connected.
#[derive(Clone, Copy, Debug)]
enum Abuse {
    /// Send nothing.
    Idle,
    /// Start a request and send a byte of it every 300 ms, never finishing it (a slow loris).
    Trickle,
}

/// `count` connections from `sources` (in turn) that never complete a request, each opened again as soon as `serve`
/// closes it, until dropped.
struct IdleFlood {
    /// Connections open now, as the clients see them.
    open: Arc<AtomicUsize>,
    /// Connections opened so far.
    opened: Arc<AtomicUsize>,
    tasks: tokio::task::JoinSet<()>,
}

impl IdleFlood {
    fn start(port: u16, sources: &[Ipv4Addr], count: usize, abuse: Abuse) -> IdleFlood {
        let open = Arc::new(AtomicUsize::new(0));
        let opened = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        let target = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        for source in sources.iter().copied().cycle().take(count) {
            let (open, opened) = (Arc::clone(&open), Arc::clone(&opened));
            tasks.spawn(async move {
                loop {
                    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
                    socket
                        .bind(SocketAddr::from((source, 0)))
                        .expect("bind a loopback address");
                    let Ok(mut stream) = socket.connect(target).await else {
                        // The listen queue is full: try again at once, as an attacker would, but yield first.
                        tokio::task::yield_now().await;
                        continue;
                    };
                    opened.fetch_add(1, Ordering::Relaxed);
                    open.fetch_add(1, Ordering::Relaxed);
                    let mut buf = [0u8; 64];
                    match abuse {
                        Abuse::Idle => while matches!(stream.read(&mut buf).await, Ok(1..)) {},
                        Abuse::Trickle => {
                            use tokio::io::AsyncWriteExt as _;
                            let (mut from, mut to) = stream.split();
                            let mut bytes = b"GET /metrics HTTP/1.1\r\nX-Slow: "
                                .iter()
                                .copied()
                                .chain(std::iter::repeat(b'a'));
                            let mut every = tokio::time::interval(Duration::from_millis(300));
                            loop {
                                tokio::select! {
                                    read = from.read(&mut buf) => if !matches!(read, Ok(1..)) { break },
                                    _ = every.tick() => {
                                        let byte = [bytes.next().unwrap_or(b'a')];
                                        if to.write_all(&byte).await.is_err() { break }
                                    }
                                }
                            }
                        }
                    }
                    open.fetch_sub(1, Ordering::Relaxed);
                }
            });
        }
        IdleFlood { open, opened, tasks }
    }
}

impl Drop for IdleFlood {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

/// Ten scrapes while [`IDLE`] idle connections from `sources` are held open and reopened as they close: each one
/// answered 200 within [`SCRAPE_WITHIN`].
async fn scrapes_survive_idle_flood(client: &Client, serve: &Serve, sources: &[Ipv4Addr], abuse: Abuse) {
    let ready = client.clone();
    common::wait_until("serve answers", Duration::from_secs(30), async || {
        ready.get_async("/metrics", None).await.and_then(|r| match r.0 {
            200 => Ok(()),
            other => Err(format!("status {other}")),
        })
    })
    .await;
    let flood = IdleFlood::start(serve.port, sources, IDLE, abuse);
    common::wait_until("all idle connections open", Duration::from_secs(30), async || {
        let open = flood.open.load(Ordering::Relaxed);
        if open >= IDLE { Ok(()) } else { Err(open) }
    })
    .await;
    let opened_before = flood.opened.load(Ordering::Relaxed);
    let mut took = Vec::new();
    for _ in 0..10 {
        let start = Instant::now();
        let answer = client.get_async("/metrics", None).await;
        let elapsed = start.elapsed();
        let held = flood.open.load(Ordering::Relaxed);
        match answer {
            Ok((200, body)) => assert!(body.contains("pgtls_up{"), "{body}"),
            other => panic!(
                "a scrape under abuse failed ({held} idle connections open): {other:?}\nserve's log:\n{}",
                serve.log()
            ),
        }
        // The requirement itself (a scrape normally takes milliseconds; 1 s is the issue's bound).
        assert!(elapsed < SCRAPE_WITHIN, "a scrape took {elapsed:?} under abuse");
        took.push(elapsed);
        // Each scrape while the flood holds its connections, not between waves.
        common::wait_until("the idle connections open again", Duration::from_secs(30), async || {
            let open = flood.open.load(Ordering::Relaxed);
            if open >= IDLE { Ok(()) } else { Err(open) }
        })
        .await;
    }
    let reopened = flood.opened.load(Ordering::Relaxed) - opened_before;
    eprintln!("{abuse:?}: scrapes took {took:?}; {reopened} connections reopened meanwhile");
    assert!(reopened > 0, "serve closed none of the idle connections");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_from_another_address_do_not_starve_http_scrapes() {
    let _one = HEAVY.lock().await;
    let home = tempfile::tempdir().expect("home");
    let serve = Serve::start(&[DEAD_TARGET], home.path());
    let client = Client::new(serve.port, None, None);
    scrapes_survive_idle_flood(&client, &serve, &[ABUSER], Abuse::Idle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_from_another_address_do_not_starve_https_scrapes_with_logins() {
    let _one = HEAVY.lock().await;
    let home = tempfile::tempdir().expect("home");
    let (web, ca) = web_config(home.path(), &[("prom", "s3cret", 4)], true);
    let serve = Serve::start(&["--web-config", &web, DEAD_TARGET], home.path());
    let client = Client::new(serve.port, ca.as_ref(), Some("prom:s3cret"));
    scrapes_survive_idle_flood(&client, &serve, &[ABUSER], Abuse::Idle).await;
}

/// Idle connections from the scraper's own address (a client gone wrong on the Prometheus host): the address's
/// cap closes its oldest idle connection for the scrape, which sends its request at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_from_the_scrapers_own_address_do_not_starve_scrapes() {
    let _one = HEAVY.lock().await;
    let home = tempfile::tempdir().expect("home");
    let serve = Serve::start(&[DEAD_TARGET], home.path());
    let client = Client::new(serve.port, None, None);
    scrapes_survive_idle_flood(&client, &serve, &[Ipv4Addr::LOCALHOST], Abuse::Idle).await;
}

/// Idle connections from ten addresses, none past its own cap but together past the total: the oldest idle one
/// anywhere is closed for the scrape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_from_many_addresses_do_not_starve_scrapes() {
    let _one = HEAVY.lock().await;
    let home = tempfile::tempdir().expect("home");
    let serve = Serve::start(&[DEAD_TARGET], home.path());
    let client = Client::new(serve.port, None, None);
    let sources: Vec<Ipv4Addr> = (2..12).map(|last| Ipv4Addr::new(127, 0, 0, last)).collect();
    scrapes_survive_idle_flood(&client, &serve, &sources, Abuse::Idle).await;
}

/// Slow connections, each sending a request a byte at a time, from another address and then from the scraper's
/// own: they are closed for the scrape (the oldest first), which sends its request at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_connections_do_not_starve_scrapes() {
    let _one = HEAVY.lock().await;
    let home = tempfile::tempdir().expect("home");
    let serve = Serve::start(&[DEAD_TARGET], home.path());
    let client = Client::new(serve.port, None, None);
    scrapes_survive_idle_flood(&client, &serve, &[ABUSER], Abuse::Trickle).await;
    scrapes_survive_idle_flood(&client, &serve, &[Ipv4Addr::LOCALHOST], Abuse::Trickle).await;
}

/// The median of how long `count` logins as `login` take to be refused.
async fn refusal_time(client: &Client, login: &str, count: usize) -> Duration {
    let mut took = Vec::new();
    for _ in 0..count {
        let start = Instant::now();
        let answer = client.get_async("/healthz", Some(login.to_string())).await;
        took.push(start.elapsed());
        assert_eq!(answer.map(|r| r.0), Ok(401), "{login}");
    }
    took.sort();
    took[count / 2]
}

/// A wrong password costs one bcrypt whether the user exists or not, so timing tells no user names apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_users_cost_the_same_bcrypt_as_known_ones() {
    let _one = HEAVY.lock().await;
    let home = tempfile::tempdir().expect("home");
    // Cost 8: about 50 ms a check in a debug build, far above the rest of a request.
    let (web, _) = web_config(home.path(), &[("prom", "s3cret", 8)], false);
    let serve = Serve::start(&["--web-config", &web, DEAD_TARGET], home.path());
    let client = Client::new(serve.port, None, None);
    common::wait_until("serve answers", Duration::from_secs(30), async || {
        client
            .get_async("/healthz", Some("prom:s3cret".into()))
            .await
            .and_then(|r| if r.0 == 200 { Ok(()) } else { Err(format!("{r:?}")) })
    })
    .await;
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    // Interleaved rounds, so a burst of load elsewhere on the machine weighs on both alike.
    for _ in 0..3 {
        known.push(refusal_time(&client, "prom:wrong", 5).await);
        unknown.push(refusal_time(&client, "mallory:wrong", 5).await);
    }
    let (known, unknown) = (
        known.iter().min().copied().unwrap(),
        unknown.iter().min().copied().unwrap(),
    );
    eprintln!("a wrong password: known user {known:?}, unknown user {unknown:?}");
    // Equal cost is the requirement; 0.6 leaves room for a loaded machine, and without the dummy hash an unknown
    // user is refused in a small fraction of a bcrypt.
    let ratio = unknown.as_secs_f64() / known.as_secs_f64();
    assert!(
        (0.6..=1.0 / 0.6).contains(&ratio),
        "known user {known:?}, unknown user {unknown:?}"
    );
}

/// `pgtls_last_poll_timestamp_seconds` of the one target, through a login `serve` has already checked.
async fn last_poll(client: &Client) -> Option<f64> {
    let (status, body) = client.get_async("/metrics", None).await.ok()?;
    (status == 200).then_some(())?;
    body.lines()
        .find_map(|l| l.strip_prefix("pgtls_last_poll_timestamp_seconds{"))
        .and_then(|rest| rest.rsplit_once("} "))
        .and_then(|(_, v)| v.trim().parse().ok())
}

/// 50 wrong logins a second for 10 s against a real lab server polled every second: the polls keep their
/// interval, and the flood gets 401s (checked) or 429s (no bcrypt slot), never the cores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_wrong_passwords_leaves_the_polls_on_their_interval() {
    let _one = HEAVY.lock().await;
    let lab = Lab::start(LabOptions::default()).await.expect("lab");
    let home = tempfile::tempdir().expect("home");
    // Cost 10, as `htpasswd -nBC 10` makes them: about 200 ms a check in a debug build, so 50 a second would
    // want ten cores.
    let (web, _) = web_config(home.path(), &[("prom", "s3cret", 10)], false);
    let conninfo = lab.conninfo(SUPERUSER);
    let serve = Serve::start(&["--web-config", &web, "--interval", "1", &conninfo], home.path());
    let client = Client::new(serve.port, None, Some("prom:s3cret"));
    common::wait_until("the target is polled", Duration::from_secs(60), async || {
        last_poll(&client).await.ok_or("no poll yet")
    })
    .await;

    // The flood: from 127.0.0.2, a new connection and a wrong password every 20 ms, each left to finish.
    let statuses: Arc<std::sync::Mutex<std::collections::BTreeMap<String, usize>>> = Arc::default();
    let port = serve.port;
    let flood = {
        let statuses = Arc::clone(&statuses);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(20));
            let mut logins = tokio::task::JoinSet::new();
            for _ in 0..500 {
                every.tick().await;
                let statuses = Arc::clone(&statuses);
                logins.spawn(async move {
                    let outcome = wrong_login(port).await;
                    *statuses.lock().unwrap().entry(outcome).or_default() += 1;
                });
            }
            logins.join_all().await;
        })
    };

    // Meanwhile: each poll's time as /metrics reports it (the scraper's login is remembered: no bcrypt).
    let start = Instant::now();
    let mut polls: Vec<f64> = Vec::new();
    while start.elapsed() < Duration::from_secs(10) {
        if let Some(at) = last_poll(&client).await
            && polls.last() != Some(&at)
        {
            polls.push(at);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    flood.await.expect("flood");
    let statuses = statuses.lock().unwrap().clone();
    let gaps: Vec<f64> = polls.windows(2).map(|w| w[1] - w[0]).collect();
    let widest = gaps.iter().copied().fold(0.0, f64::max);
    eprintln!(
        "flood answers {statuses:?}; {} polls in 10 s, gaps {gaps:?}",
        polls.len()
    );
    assert!(
        statuses.get("401").copied().unwrap_or(0) > 0,
        "no login was checked: {statuses:?}"
    );
    // The interval is the requirement: every second, so about ten polls in the window. A loaded machine may
    // delay some; a poll starved by bcrypt misses several.
    assert!(
        polls.len() >= 7,
        "{} polls in 10 s at a 1 s interval: {polls:?}",
        polls.len()
    );
    assert!(
        widest <= 2.5,
        "a gap of {widest:.1} s between polls at a 1 s interval: {gaps:?}"
    );
    drop(lab);
}

/// One wrong login from 127.0.0.2 on its own connection: the status, or what went wrong.
async fn wrong_login(port: u16) -> String {
    use tokio::io::AsyncWriteExt;
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::from((ABUSER, 0))).expect("bind 127.0.0.2");
    let Ok(mut stream) = socket.connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await else {
        return "connect failed".into();
    };
    // "prom:wrong"
    let request =
        "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Basic cHJvbTp3cm9uZw==\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).await.is_err() {
        return "write failed".into();
    }
    let mut response = Vec::new();
    match tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut response)).await {
        Ok(_) => String::from_utf8_lossy(&response)
            .split_whitespace()
            .nth(1)
            .unwrap_or("closed")
            .to_string(),
        Err(_) => "no answer in 30 s".into(),
    }
}

/// `--client-series` puts user, database and application names in labels: on a listener that is not loopback,
/// without logins, `serve` refuses to start, in one line, as its other usage errors do.
#[test]
fn client_series_on_a_public_listener_without_logins_is_refused_at_start() {
    let home = tempfile::tempdir().expect("home");
    // The targets file does not exist: a serve that lacked the refusal would fail on it before listening, so
    // this test never opens a socket on a non-loopback address, whatever the code under test does.
    let args = [
        "serve",
        "--listen",
        "0.0.0.0:19999",
        "--client-series",
        "10",
        "--targets",
        "/nonexistent/targets.toml",
    ];
    let out = common::pgtls(&args, home.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "a usage error: {err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("--client-series") && err.contains("basic_auth_users") && err.contains("loopback"),
        "{err}"
    );
    // The same listener with logins required is not refused for it (the missing targets file is the error).
    let (web, _) = web_config(home.path(), &[("prom", "s3cret", 4)], false);
    let mut with_logins = args.to_vec();
    with_logins.extend(["--web-config", &web]);
    let out = common::pgtls(&with_logins, home.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("--client-series") && err.contains("/nonexistent/targets.toml"),
        "{err}"
    );
    // And the exit code is the one `serve`'s other usage errors use.
    let other = common::pgtls(&["serve", "--targets", "/nonexistent/targets.toml"], home.path());
    assert_eq!(other.status.code(), Some(64));
}
