//! A PgBouncer in front of the lab server, for the demo and the tests: the distribution's binary, run as the
//! server's unprivileged account (PgBouncer refuses to run as root), on a free port, with its own certificate
//! from the lab CA, TLS required on its server leg and `client_tls_sslmode` as asked on its client leg.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use color_eyre::eyre::{Result, WrapErr, bail, eyre};
use nix::sys::signal::Signal;

use super::certs::{self, CertSpec};
use super::server::{self, RunAs};
use super::{LAB_PASSWORD, Lab, LabHandle, LabSession, SessionKind};

/// Environment variable naming the pgbouncer binary, when it is not on PATH or in /usr/sbin.
pub const BINARY_ENV: &str = "PGTLS_PGBOUNCER";

/// The pgbouncer binary: `$PGTLS_PGBOUNCER`, then PATH, then Debian's /usr/sbin/pgbouncer.
pub fn find_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(BINARY_ENV) {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join("pgbouncer"))
        .find(|p| p.is_file())
}

/// How the pooler is set up.
#[derive(Debug, Clone)]
pub struct PoolerOptions {
    /// `session` or `transaction`.
    pub pool_mode: String,
    /// `allow`, `prefer`, `require`, ...
    pub client_tls_sslmode: String,
    /// `secure` (TLS 1.2 and 1.3) unless set, e.g. `tlsv1.3`.
    pub client_tls_protocols: Option<String>,
    /// Roles that may log in through the pooler (their password goes in its auth_file, for its server leg).
    pub users: Vec<String>,
    /// Roles that may use the admin console (`admin_users`).
    pub admin_users: Vec<String>,
    /// Roles that may read the admin console (`stats_users`).
    pub stats_users: Vec<String>,
    /// The port to try first; a free one when unset, and another free one whenever it turns out to be taken.
    pub port: Option<u16>,
}

impl Default for PoolerOptions {
    fn default() -> Self {
        PoolerOptions {
            pool_mode: "session".to_string(),
            client_tls_sslmode: "allow".to_string(),
            client_tls_protocols: None,
            users: Vec::new(),
            admin_users: Vec::new(),
            stats_users: Vec::new(),
            port: None,
        }
    }
}

/// A running PgBouncer; stopped on drop, and it dies with the thread that started it.
pub struct LabPooler {
    child: Child,
    pub host: String,
    pub port: u16,
    pub log_file: PathBuf,
    pub config_file: PathBuf,
    lab: LabHandle,
}

impl LabPooler {
    /// Write the configuration into the lab's directory and start the pooler; ready when it says it listens. A port
    /// that [`server::free_port`] found free can be taken before PgBouncer binds it: then it starts again on another.
    pub async fn start(lab: &Lab, options: &PoolerOptions) -> Result<LabPooler> {
        let binary = find_binary()
            .ok_or_else(|| eyre!("pgbouncer not found (install the pgbouncer package, or set {BINARY_ENV})"))?;
        let run_as = server::run_as_account()?;
        for user in options
            .users
            .iter()
            .chain(&options.admin_users)
            .chain(&options.stats_users)
        {
            lab.ensure_role(user).await?;
        }
        let run_as = run_as.as_ref();
        let (_, pooler) = server::start_on_free_port(options.port, server::PORT_ATTEMPTS, |port| {
            Self::start_on(lab, options, &binary, run_as, port)
        })
        .await?;
        Ok(pooler)
    }

    async fn start_on(
        lab: &Lab,
        options: &PoolerOptions,
        binary: &Path,
        run_as: Option<&RunAs>,
        port: u16,
    ) -> Result<LabPooler> {
        let dir = lab.root().join(format!("pgbouncer-{port}"));
        std::fs::create_dir_all(&dir).wrap_err_with(|| format!("creating {}", dir.display()))?;
        let cert = dir.join("pooler.crt");
        let key = dir.join("pooler.key");
        certs::issue(
            &CertSpec::server("localhost", &["localhost"], &["127.0.0.1", "::1"]),
            Some(&lab.ca()?),
        )?
        .write_pem(&cert, &key)?;
        let auth_file = dir.join("users.txt");
        let mut users: Vec<&String> = options
            .users
            .iter()
            .chain(&options.admin_users)
            .chain(&options.stats_users)
            .collect();
        users.sort();
        users.dedup();
        let auth: String = users
            .iter()
            .map(|u| format!("{} {}\n", quote_auth(u), quote_auth(LAB_PASSWORD)))
            .collect();
        certs::write_private(&auth_file, auth.as_bytes())?;
        let config_file = dir.join("pgbouncer.ini");
        let mut ini = format!(
            "[databases]\npostgres = host={} port={} dbname=postgres\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\n\
             listen_port = {port}\nunix_socket_dir =\nauth_type = trust\nauth_file = {}\npool_mode = {}\n\
             admin_users = {}\nstats_users = {}\nclient_tls_sslmode = {}\nclient_tls_cert_file = {}\n\
             client_tls_key_file = {}\nclient_tls_ca_file = {}\nserver_tls_sslmode = require\n\
             server_tls_ca_file = {}\nignore_startup_parameters = extra_float_digits\n",
            lab.host,
            lab.port,
            auth_file.display(),
            options.pool_mode,
            options.admin_users.join(","),
            options.stats_users.join(","),
            options.client_tls_sslmode,
            cert.display(),
            key.display(),
            lab.certs.ca_cert.display(),
            lab.certs.ca_cert.display(),
        );
        if let Some(protocols) = &options.client_tls_protocols {
            ini.push_str(&format!("client_tls_protocols = {protocols}\n"));
        }
        std::fs::write(&config_file, ini).wrap_err("writing pgbouncer.ini")?;
        if let Some(run_as) = run_as {
            server::chown_tree(&dir, run_as)?;
        }
        let log_file = dir.join("pgbouncer.log");
        let child = spawn(binary, &config_file, &log_file, run_as)?;
        let mut pooler = LabPooler {
            child,
            host: lab.host.clone(),
            port,
            log_file,
            config_file,
            lab: lab.clone_for_clients(),
        };
        pooler.wait_ready().await?;
        Ok(pooler)
    }

    /// Ready once PgBouncer itself says it listens on its port (PgBouncer 1.18: `LOG listening on
    /// 127.0.0.1:6432`) and the port answers: an answer alone could come from whoever took the port first.
    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let listening = format!("listening on 127.0.0.1:{}", self.port);
        loop {
            if let Some(status) = self.child.try_wait()? {
                let log = server::log_tail(&self.log_file);
                // `WARNING cannot listen on 127.0.0.1:PORT: bind(): Address already in use`, then `FATAL nowhere to
                // listen on` (PgBouncer 1.18).
                if log.contains("Address already in use") {
                    return Err(server::PortTaken { port: self.port, log }.into());
                }
                bail!("pgbouncer exited during start-up ({status}): {log}");
            }
            let log = std::fs::read_to_string(&self.log_file).unwrap_or_default();
            if log.lines().any(|l| l.ends_with(&listening))
                && tokio::net::TcpStream::connect((self.host.as_str(), self.port))
                    .await
                    .is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "pgbouncer did not listen within 20 s: {}",
                    server::log_tail(&self.log_file)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The admin console's connection string for `user` (no TLS: the lab's loopback).
    pub fn admin_conninfo(&self, user: &str) -> String {
        format!(
            "host={} port={} user={user} password={LAB_PASSWORD} dbname=pgbouncer sslmode=disable",
            self.host, self.port
        )
    }

    /// `host:port`, as pgtls names this pooler.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// A client session through the pooler (TLS 1.3, TLS 1.2 or plain text on its own leg).
    pub async fn open(&self, kind: SessionKind, user: &str, application_name: &str) -> Result<LabSession> {
        super::sessions::open_at(&self.lab, self.port, kind, user, application_name).await
    }

    /// Set one `[pgbouncer]` setting in the pooler's file and `RELOAD` it through the admin console as `admin`
    /// (a role in `admin_users`), as an operator raising `client_tls_protocols` or `client_tls_sslmode` would.
    /// The console connection is made before the reload, so it is not refused by what the reload turns on.
    pub async fn reload_with(&self, admin: &str, name: &str, value: &str) -> Result<()> {
        let ini = std::fs::read_to_string(&self.config_file).wrap_err("reading pgbouncer.ini")?;
        let mut lines: Vec<String> = ini
            .lines()
            .filter(|l| l.split('=').next().map(str::trim) != Some(name))
            .map(str::to_string)
            .collect();
        lines.push(format!("{name} = {value}"));
        std::fs::write(&self.config_file, lines.join("\n") + "\n").wrap_err("writing pgbouncer.ini")?;
        let (client, connection) = tokio_postgres::connect(&self.admin_conninfo(admin), tokio_postgres::NoTls)
            .await
            .wrap_err("connecting to the admin console")?;
        let connection = tokio::spawn(connection);
        client.simple_query("RELOAD").await.wrap_err("RELOAD")?;
        drop(client);
        let _ = connection.await;
        Ok(())
    }

    /// SIGTERM: immediate shutdown; SIGKILL if it hangs.
    pub fn stop(&mut self) -> Result<()> {
        server::stop_child(&mut self.child, Signal::SIGTERM, Duration::from_secs(10))
    }
}

impl Drop for LabPooler {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn spawn(binary: &Path, config: &Path, log: &Path, run_as: Option<&RunAs>) -> Result<Child> {
    let log_file = File::options()
        .create(true)
        .append(true)
        .open(log)
        .wrap_err_with(|| format!("opening {}", log.display()))?;
    if let Some(run_as) = run_as {
        nix::unistd::chown(log, Some(run_as.uid), Some(run_as.gid))?;
    }
    let mut cmd = server::server_command(binary, run_as);
    cmd.arg(config)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file);
    server::die_with_parent(&mut cmd, Signal::SIGTERM);
    cmd.spawn()
        .wrap_err_with(|| format!("cannot start {}", binary.display()))
}

/// A name or password in auth_file syntax: double quotes, a double quote doubled.
fn quote_auth(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}
