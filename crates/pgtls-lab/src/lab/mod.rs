//! A throwaway TLS-enabled PostgreSQL with client sessions of chosen kinds.
//!
//! `pgtls demo` and the integration tests share it. Everything lives in one temp dir that is
//! removed on drop; the server is stopped on drop and also dies with the thread that started it.

pub mod bindir;
pub mod certs;
pub mod demo;
pub mod pgbouncer;
pub mod server;
pub mod sessions;

use std::path::{Path, PathBuf};

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use color_eyre::eyre::{Result, WrapErr, bail};
use tokio_postgres::{Client, NoTls};

use pgtls_core::own::OwnPids;

use self::bindir::ServerBinaries;
use self::certs::{CertSpec, Issued};
use self::server::{Postmaster, RunAs};
pub use self::sessions::{LabSession, SessionKind};

/// The superuser the lab creates; reachable over the Unix socket without a password.
pub const SUPERUSER: &str = "postgres";
/// The role whose client certificate the lab issues; pg_hba lets it in with `cert` only.
pub const CERT_USER: &str = "pgtls_cert";
/// A role that pg_hba.conf admits only over TLS (`hostnossl ... reject`), as an enforced-TLS client would be.
pub const TLS_ONLY_USER: &str = "pgtls_tlsonly";
/// Password of every role the lab creates (a throwaway server on loopback).
pub const LAB_PASSWORD: &str = "lab-secret";

#[derive(Debug, Clone)]
pub struct LabOptions {
    /// Directory with initdb and postgres; found automatically when `None`.
    pub bindir: Option<PathBuf>,
    /// Never download a server build when none is installed (`--offline`; `PGTLS_OFFLINE=1` also turns it on).
    pub offline: bool,
    pub max_connections: u32,
    /// Extra postgresql.conf lines, e.g. `("ssl_min_protocol_version", "TLSv1.3")`.
    pub settings: Vec<(String, String)>,
    /// The port to try first; when `None` or taken, a free one.
    pub port: Option<u16>,
}

impl Default for LabOptions {
    fn default() -> Self {
        LabOptions {
            bindir: None,
            offline: false,
            max_connections: 100,
            settings: Vec::new(),
            port: None,
        }
    }
}

/// Paths of the lab's certificates (all PEM; keys are unencrypted PKCS#8).
#[derive(Debug, Clone)]
pub struct LabCerts {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

/// How to reach the lab server: cheap to clone, so client tasks can open sessions while the
/// [`Lab`] itself (which owns the server) stays in one place.
#[derive(Debug, Clone)]
pub struct LabHandle {
    pub port: u16,
    pub host: String,
    pub socket_dir: PathBuf,
    pub certs: LabCerts,
    /// The superuser sessions open for setting the lab up, by pid: the demo's dashboard shows them as its own.
    own: OwnPids,
    /// Roles known to exist, so opening a client does not open an admin session each time (the demo's cron job
    /// would otherwise bring one every few seconds).
    roles: Arc<Mutex<HashSet<String>>>,
}

pub struct Lab {
    // Field order matters on drop: stop the server before the directory goes.
    postmaster: Option<Postmaster>,
    handle: LabHandle,
    pub binaries: ServerBinaries,
    pub major_version: u32,
    pub data_dir: PathBuf,
    pub log_file: PathBuf,
    /// Whether `CREATE EXTENSION sslinfo` succeeded (contrib may be missing).
    pub sslinfo: bool,
    run_as: Option<RunAs>,
    dir: tempfile::TempDir,
}

impl Lab {
    /// initdb, certificates, configuration, start, sslinfo. Takes a few seconds.
    pub async fn start(options: LabOptions) -> Result<Lab> {
        // Finding may mean downloading a server build: off the async threads, so signals are still heard.
        let (explicit, offline) = (options.bindir.clone(), options.offline);
        let binaries = tokio::task::spawn_blocking(move || bindir::find(explicit.as_deref(), offline))
            .await
            .wrap_err("finding the server binaries")??;
        let run_as = server::run_as_account()?;
        if let Some(run_as) = &run_as
            && let Some(blocked) =
                crate::provision::cache::blocked_ancestor(&binaries.dir, run_as.uid.as_raw(), run_as.gid.as_raw())
        {
            bail!(
                "{} ({}) is not reachable by the '{}' account the server runs as: {blocked} blocks it",
                binaries.dir.display(),
                binaries.found_by,
                run_as.name
            );
        }
        let major_version = binaries.major_version()?;
        let dir = tempfile::Builder::new()
            .prefix("pgtls-lab-")
            .tempdir()
            .wrap_err("creating the lab directory")?;
        let root = dir.path().to_path_buf();
        let socket_dir = root.join("sock");
        let cert_dir = root.join("certs");
        std::fs::create_dir_all(&socket_dir)?;
        std::fs::create_dir_all(&cert_dir)?;
        let certs = write_certs(&cert_dir)?;
        let password_file = root.join("pwfile");
        certs::write_private(&password_file, LAB_PASSWORD.as_bytes())?;

        let data_dir = root.join("data");
        if let Some(run_as) = &run_as {
            server::chown_tree(&root, run_as)?;
        }
        let mut initdb = server::server_command(&binaries.tool("initdb"), run_as.as_ref());
        initdb
            .arg("-D")
            .arg(&data_dir)
            .args(["-U", SUPERUSER, "-E", "UTF8", "--locale=C", "--no-sync"])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", password_file.display()));
        server::run_tool(initdb, "initdb")?;

        write_config(&data_dir, &socket_dir, &certs, &options)?;
        write_hba(&data_dir)?;
        if let Some(run_as) = &run_as {
            server::chown_tree(&root, run_as)?;
        }

        let log_file = root.join("server.log");
        let (port, postmaster) = server::start_on_free_port(options.port, server::PORT_ATTEMPTS, |port| {
            std::future::ready(Postmaster::start(
                &binaries.tool("postgres"),
                &data_dir,
                port,
                &log_file,
                run_as.as_ref(),
            ))
        })
        .await?;
        let mut lab = Lab {
            postmaster: Some(postmaster),
            handle: LabHandle {
                port,
                host: "127.0.0.1".to_string(),
                socket_dir,
                certs,
                own: OwnPids::default(),
                roles: Arc::default(),
            },
            binaries,
            major_version,
            data_dir,
            log_file,
            sslinfo: false,
            run_as,
            dir,
        };
        let admin = lab.admin().await?;
        lab.sslinfo = admin
            .batch_execute("CREATE EXTENSION IF NOT EXISTS sslinfo SCHEMA public")
            .await
            .is_ok();
        Ok(lab)
    }

    pub fn start_server(&mut self) -> Result<()> {
        if self.postmaster.is_none() {
            // The same port again: clients know the server by it.
            let pm = Postmaster::start(
                &self.binaries.tool("postgres"),
                &self.data_dir,
                self.handle.port,
                &self.log_file,
                self.run_as.as_ref(),
            )?;
            self.postmaster = Some(pm);
        }
        Ok(())
    }

    /// Fast shutdown: every client is disconnected.
    pub fn stop_server(&mut self) -> Result<()> {
        if let Some(mut pm) = self.postmaster.take() {
            pm.stop()?;
        }
        Ok(())
    }

    pub fn restart_server(&mut self) -> Result<()> {
        self.stop_server()?;
        self.start_server()
    }

    pub fn is_running(&self) -> bool {
        self.postmaster.is_some()
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn clone_for_clients(&self) -> LabHandle {
        self.handle.clone()
    }

    /// The lab's CA with its key, to issue more certificates (a replacement server certificate, CRLs).
    pub fn ca(&self) -> Result<Issued> {
        let key = openssl::pkey::PKey::private_key_from_pem(&std::fs::read(self.root().join("certs/ca.key"))?)?;
        let cert = openssl::x509::X509::from_pem(&std::fs::read(&self.certs.ca_cert)?)?;
        Ok(Issued { cert, key })
    }

    /// Serve `server` from now on: write it over the server's certificate and key and reload the server.
    pub async fn use_server_certificate(&self, server: &Issued) -> Result<()> {
        self.use_server_chain(server, &[]).await
    }
}

impl Lab {
    /// Serve `leaf` with `intermediates` after it (the chain a server presents), and reload.
    pub async fn use_server_chain(&self, leaf: &Issued, intermediates: &[openssl::x509::X509]) -> Result<()> {
        self.install_server_chain(leaf, intermediates)?;
        self.reload().await
    }

    /// Write `leaf` (and `intermediates`) over the server's certificate files without reloading: what an
    /// operator does before `pg_reload_conf()`, so the server still presents the old certificate.
    pub fn install_server_chain(&self, leaf: &Issued, intermediates: &[openssl::x509::X509]) -> Result<()> {
        leaf.write_pem(&self.certs.server_cert, &self.certs.server_key)?;
        let mut pem = leaf.cert.to_pem()?;
        for c in intermediates {
            pem.extend(c.to_pem()?);
        }
        std::fs::write(&self.certs.server_cert, pem).wrap_err("writing the server certificate chain")?;
        if let Some(run_as) = &self.run_as {
            server::chown_tree(&self.certs.server_cert, run_as)?;
            server::chown_tree(&self.certs.server_key, run_as)?;
        }
        Ok(())
    }
}

impl std::ops::Deref for Lab {
    type Target = LabHandle;

    fn deref(&self) -> &LabHandle {
        &self.handle
    }
}

impl LabHandle {
    /// A keyword/value connection string for `user` over TCP (no sslmode: callers add it).
    pub fn conninfo(&self, user: &str) -> String {
        format!(
            "host={} port={} user={user} password={LAB_PASSWORD} dbname=postgres",
            self.host, self.port
        )
    }

    /// The lab's set-up sessions (see [`LabHandle::admin`]), for a collector to mark as its own.
    pub fn own_pids(&self) -> OwnPids {
        self.own.clone()
    }

    /// Superuser connection over the Unix socket (trust), for setting the lab up; registered as the lab's own
    /// by pid while it is open.
    pub async fn admin(&self) -> Result<AdminClient> {
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(&self.socket_dir)
            .port(self.port)
            .user(SUPERUSER)
            .dbname("postgres")
            .application_name("pgtls-lab-admin")
            // As every connection of pgtls's: no name resolves through a search path a database user could set.
            .options("-c search_path=");
        let (client, connection) = config
            .connect(NoTls)
            .await
            .wrap_err("connecting to the lab server as its superuser")?;
        tokio::spawn(connection);
        let pid: i32 = client
            .query_one("SELECT pg_catalog.pg_backend_pid()", &[])
            .await?
            .get(0);
        self.own.opened(pid);
        Ok(AdminClient {
            client,
            pid,
            own: self.own.clone(),
        })
    }

    /// Create a login role with the lab password unless it exists.
    pub async fn ensure_role(&self, name: &str) -> Result<()> {
        let known =
            |roles: &Mutex<HashSet<String>>| roles.lock().unwrap_or_else(PoisonError::into_inner).contains(name);
        if known(&self.roles) {
            return Ok(());
        }
        let admin = self.admin().await?;
        let exists = admin
            .query_opt(
                "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) $1",
                &[&name],
            )
            .await?
            .is_some();
        if !exists {
            let sql: String = admin
                .query_one(
                    "SELECT pg_catalog.format('CREATE ROLE %I LOGIN PASSWORD %L', $1::pg_catalog.text, $2::pg_catalog.text)",
                    &[&name, &LAB_PASSWORD],
                )
                .await?
                .get(0);
            if let Err(e) = admin.batch_execute(&sql).await {
                // Parallel callers may race to create the same role.
                if e.code() != Some(&tokio_postgres::error::SqlState::DUPLICATE_OBJECT) {
                    return Err(e.into());
                }
            }
        }
        self.roles
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_string());
        Ok(())
    }

    /// `ALTER SYSTEM SET name = value` and reload; the next poll sees it.
    pub async fn set_config(&self, name: &str, value: &str) -> Result<()> {
        let admin = self.admin().await?;
        let sql: String = admin
            .query_one(
                "SELECT pg_catalog.format('ALTER SYSTEM SET %I = %L', $1::pg_catalog.text, $2::pg_catalog.text)",
                &[&name, &value],
            )
            .await?
            .get(0);
        admin.batch_execute(&sql).await?;
        drop(admin);
        self.reload().await
    }

    /// `pg_reload_conf()`, returning once the postmaster has finished reloading: the settings, pg_hba.conf and the
    /// TLS context. The signal is handled asynchronously, so a fixed sleep would race on a busy machine; instead
    /// wait until a new backend (forked after the whole reload, since the postmaster handles one thing at a time)
    /// reports a newer `pg_conf_load_time()`.
    pub async fn reload(&self) -> Result<()> {
        const DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);
        let admin = self.admin().await?;
        let before: chrono::DateTime<chrono::Utc> = admin
            .query_one("SELECT pg_catalog.pg_conf_load_time()", &[])
            .await?
            .get(0);
        admin.batch_execute("SELECT pg_catalog.pg_reload_conf()").await?;
        drop(admin);
        let started = std::time::Instant::now();
        loop {
            let loaded: chrono::DateTime<chrono::Utc> = self
                .admin()
                .await?
                .query_one("SELECT pg_catalog.pg_conf_load_time()", &[])
                .await?
                .get(0);
            if loaded > before {
                return Ok(());
            }
            if started.elapsed() > DEADLINE {
                bail!("the lab server did not finish reloading its configuration within {DEADLINE:?}");
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Open a client session of the given kind as `user` with `application_name`; it stays open until dropped.
    pub async fn open(&self, kind: SessionKind, user: &str, application_name: &str) -> Result<LabSession> {
        sessions::open(self, kind, user, application_name).await
    }
}

/// A superuser session of the lab; the lab counts it as its own until it is dropped.
pub struct AdminClient {
    client: Client,
    pid: i32,
    own: OwnPids,
}

impl std::ops::Deref for AdminClient {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Drop for AdminClient {
    fn drop(&mut self) {
        self.own.closed(self.pid);
    }
}

fn write_certs(dir: &Path) -> Result<LabCerts> {
    let ca = certs::issue(&CertSpec::ca("pgtls lab root CA"), None)?;
    let server = certs::issue(
        &CertSpec::server("localhost", &["localhost"], &["127.0.0.1", "::1"]),
        Some(&ca),
    )?;
    let client = certs::issue(&CertSpec::client(CERT_USER), Some(&ca))?;
    let paths = LabCerts {
        ca_cert: dir.join("ca.crt"),
        server_cert: dir.join("server.crt"),
        server_key: dir.join("server.key"),
        client_cert: dir.join("client.crt"),
        client_key: dir.join("client.key"),
    };
    std::fs::write(&paths.ca_cert, ca.cert.to_pem()?)?;
    certs::write_private(&dir.join("ca.key"), &ca.key.private_key_to_pem_pkcs8()?)?;
    server.write_pem(&paths.server_cert, &paths.server_key)?;
    client.write_pem(&paths.client_cert, &paths.client_key)?;
    Ok(paths)
}

/// Everything but the port, which the server is given on its command line so a start-up can move to another.
fn write_config(data_dir: &Path, socket_dir: &Path, certs: &LabCerts, options: &LabOptions) -> Result<()> {
    let quote = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', "''"));
    let mut conf = format!(
        "\n# pgtls lab\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = {}\n\
         max_connections = {}\nssl = on\nssl_cert_file = {}\nssl_key_file = {}\nssl_ca_file = {}\n\
         log_connections = on\nlog_line_prefix = '%m [%p] '\npassword_encryption = 'scram-sha-256'\n\
         fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nshared_buffers = '32MB'\n",
        quote(socket_dir),
        options.max_connections,
        quote(&certs.server_cert),
        quote(&certs.server_key),
        quote(&certs.ca_cert),
    );
    for (name, value) in &options.settings {
        conf.push_str(&format!("{name} = '{}'\n", value.replace('\'', "''")));
    }
    let path = data_dir.join("postgresql.conf");
    let mut text = std::fs::read_to_string(&path).wrap_err("reading postgresql.conf")?;
    text.push_str(&conf);
    std::fs::write(&path, text).wrap_err("writing postgresql.conf")
}

/// `cert` for the certificate user first, then TLS and non-TLS password rules, so every kind of client gets in.
fn write_hba(data_dir: &Path) -> Result<()> {
    let hba = format!(
        "# pgtls lab\n\
         local   all  all                       trust\n\
         hostssl all  {CERT_USER}  127.0.0.1/32  cert\n\
         hostnossl all {TLS_ONLY_USER} 127.0.0.1/32 reject\n\
         hostssl all  all         127.0.0.1/32  scram-sha-256\n\
         host    all  all         127.0.0.1/32  scram-sha-256\n"
    );
    std::fs::write(data_dir.join("pg_hba.conf"), hba).wrap_err("writing pg_hba.conf")
}

/// Make `certs` usable for tests that need other certificates (wrong CA, bundles).
pub fn issue_ca(common_name: &str) -> Result<Issued> {
    certs::issue(&CertSpec::ca(common_name), None)
}
