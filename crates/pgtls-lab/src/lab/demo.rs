//! The demo's cast: a realistic mix of clients on the lab server, and a little activity so states change.

use std::sync::Arc;
use std::time::Duration;

use color_eyre::eyre::Result;
use tokio::task::{JoinHandle, JoinSet};

use super::{LAB_PASSWORD, Lab, LabHandle, LabSession, SUPERUSER, SessionKind};
use pgtls_conn::conninfo::quote_value;

/// The demo's monitoring role: a member of pg_monitor, as production monitoring should be, and allowed to read
/// pg_hba.conf, so the What-if screen can name the `host` lines a `prefer` client would fall back through; and a
/// member of pg_signal_backend, so `K` and `C` work on the demo's clients (never on its superuser sessions).
pub const MONITOR_ROLE: &str = "pgtls_monitor";

/// Create the monitor role with what docs/privileges.md ("What the monitor role needs") grants it.
pub async fn grant_monitor(lab: &LabHandle) -> Result<()> {
    lab.ensure_role(MONITOR_ROLE).await?;
    lab.admin()
        .await?
        .batch_execute(&format!(
            "GRANT pg_monitor TO {MONITOR_ROLE};
             GRANT pg_signal_backend TO {MONITOR_ROLE};
             GRANT SELECT ON pg_catalog.pg_hba_file_rules TO {MONITOR_ROLE};
             GRANT EXECUTE ON FUNCTION pg_catalog.pg_hba_file_rules() TO {MONITOR_ROLE};"
        ))
        .await?;
    Ok(())
}

/// The monitor's connection string: verify-full against the lab's own CA, as a careful DBA would connect.
pub fn monitor_conninfo(lab: &LabHandle) -> String {
    tls_conninfo(lab, MONITOR_ROLE) + " application_name=pgtls"
}

/// TCP to the lab as `user`, verified against the lab's CA (host name and chain), with the lab password.
fn tls_conninfo(lab: &LabHandle, user: &str) -> String {
    format!(
        "host=localhost hostaddr={} port={} user={user} password={} dbname=postgres sslmode=verify-full \
         sslrootcert={}",
        lab.host,
        lab.port,
        quote_value(LAB_PASSWORD),
        quote_value(&lab.certs.ca_cert.display().to_string()),
    )
}

/// Where the demo server is and how to join it with psql, printed when the demo starts and ends.
#[derive(Debug, Clone)]
pub struct JoinInfo {
    pub port: u16,
    pub socket_dir: std::path::PathBuf,
    /// psql over TCP with TLS, verified (sslmode=verify-full, sslrootcert=the lab's CA), as the superuser.
    pub psql_tls: String,
    /// psql over the Unix socket (trust), as the superuser.
    pub psql_socket: String,
}

impl JoinInfo {
    pub fn new(lab: &LabHandle) -> JoinInfo {
        let socket = lab.socket_dir.display().to_string();
        JoinInfo {
            port: lab.port,
            socket_dir: lab.socket_dir.clone(),
            psql_tls: format!("psql {}", shell_quote(&tls_conninfo(lab, SUPERUSER))),
            psql_socket: format!(
                "psql -h {} -p {} -U {SUPERUSER} postgres",
                shell_quote(&socket),
                lab.port
            ),
        }
    }

    /// The lines for the terminal, one fact each.
    pub fn lines(&self) -> Vec<String> {
        vec![
            format!(
                "demo server on 127.0.0.1 port {}, socket directory {}",
                self.port,
                self.socket_dir.display()
            ),
            format!("join it over TLS (verified): {}", self.psql_tls),
            format!("or over its socket: {}", self.psql_socket),
        ]
    }
}

/// A word for sh: as it is when it is plainly safe, else in single quotes.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | ':' | '=' | ',' | '@' | '+'));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// (kind, user, application_name, how many)
pub const CAST: &[(SessionKind, &str, &str, usize)] = &[
    (SessionKind::Tls13, "orders", "orders-api", 3),
    (SessionKind::Tls13, "web", "storefront", 2),
    (SessionKind::Tls13, "dba", "pgadmin", 1),
    (SessionKind::ClientCert, "pgtls_cert", "cert-agent", 1),
    (SessionKind::Tls12, "billing", "billing-batch", 2),
    (SessionKind::Tls12, "reports", "legacy-reports", 1),
    (SessionKind::Tls12, "crm", "crm-jdbc", 1),
    // sslmode=prefer, libpq's default: once the minimum is raised, its next connection goes without TLS.
    (SessionKind::Tls12Prefer, "invoicing", "invoice-sync", 1),
    (SessionKind::PlainTcp, "etl", "nightly-etl", 1),
    (SessionKind::PlainTcp, "grafana", "grafana", 1),
    (SessionKind::UnixSocket, "postgres", "psql", 1),
    (SessionKind::UnixSocket, "backup", "pg_dump", 1),
];

/// The open sessions and the task that keeps them busy; dropping it closes them all.
pub struct DemoClients {
    pub sessions: Vec<Arc<LabSession>>,
    activity: JoinHandle<()>,
}

impl Drop for DemoClients {
    fn drop(&mut self) {
        self.activity.abort();
    }
}

pub async fn start(lab: &Lab) -> Result<DemoClients> {
    let mut sessions = Vec::new();
    for (kind, user, app, count) in CAST {
        for _ in 0..*count {
            sessions.push(Arc::new(lab.open(*kind, user, app).await?));
        }
    }
    let activity = tokio::spawn(activity(sessions.clone(), lab.clone_for_clients()));
    Ok(DemoClients { sessions, activity })
}

/// The change the demo shows: `ALTER SYSTEM SET ssl_min_protocol_version = 'TLSv1.3'` and a reload, through the
/// lab's admin connection. The TLS 1.2 sessions open stay (lingering), new TLS 1.2 handshakes are refused, and the
/// sslmode=prefer client comes back without TLS.
pub async fn raise_minimum(lab: &LabHandle) -> Result<()> {
    set_minimum(&lab.admin().await?).await
}

/// [`raise_minimum`] after `after`; the task's result says whether it happened. The admin connection is opened
/// now, not then: a connection opened while the dashboard reads the log would show up in it as a client, while
/// one open from before is known as the lab's own by pid.
pub async fn raise_after(lab: &LabHandle, after: Duration) -> Result<JoinHandle<Result<()>>> {
    let admin = lab.admin().await?;
    Ok(tokio::spawn(async move {
        tokio::time::sleep(after).await;
        set_minimum(&admin).await
    }))
}

async fn set_minimum(admin: &super::AdminClient) -> Result<()> {
    // Two statements: ALTER SYSTEM refuses to run in the implicit transaction of a multi-statement query.
    admin
        .batch_execute("ALTER SYSTEM SET ssl_min_protocol_version = 'TLSv1.3'")
        .await?;
    admin.batch_execute("SELECT pg_catalog.pg_reload_conf()").await?;
    Ok(())
}

/// Every ~0.8 s one session runs a query or sits in an open transaction for a while, and now
/// and then a short-lived TLS 1.2 "cron job" connects and leaves: the kind of client a single
/// poll misses. The jobs live in a [`JoinSet`] owned here, so aborting the activity aborts them
/// too and none outlives the demo's server.
async fn activity(sessions: Vec<Arc<LabSession>>, lab: LabHandle) {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut tick: u64 = 0;
    let mut jobs = JoinSet::new();
    loop {
        tokio::time::sleep(Duration::from_millis(800)).await;
        // Finished jobs are reaped so the set stays small; a job that failed only made the demo quieter.
        while jobs.try_join_next().is_some() {}
        tick += 1;
        // xorshift: deterministic, no extra dependency.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let session = Arc::clone(&sessions[(seed % sessions.len() as u64) as usize]);
        let busy_ms = 500 + seed % 2500;
        if seed.is_multiple_of(3) {
            jobs.spawn(async move {
                if session
                    .execute("BEGIN; SELECT pg_catalog.count(*) FROM pg_catalog.pg_class")
                    .await
                    .is_ok()
                {
                    tokio::time::sleep(Duration::from_millis(busy_ms)).await;
                    let _ = session.execute("COMMIT").await;
                }
            });
        } else {
            let seconds = busy_ms as f64 / 1000.0;
            jobs.spawn(async move {
                let _ = session
                    .execute(&format!("SELECT pg_catalog.pg_sleep({seconds:.1})"))
                    .await;
            });
        }
        // Two jobs: one that requires TLS (refused once the minimum is raised) and one on sslmode=prefer, the same
        // client as the cast's invoice-sync (it falls back to plain text then).
        let job = match tick % 12 {
            0 => Some((SessionKind::Tls12, "reports", "cron-report")),
            6 => Some((SessionKind::Tls12Prefer, "invoicing", "invoice-sync")),
            _ => None,
        };
        if let Some((kind, user, app)) = job {
            let lab = lab.clone();
            jobs.spawn(async move {
                if let Ok(job) = lab.open(kind, user, app).await {
                    let _ = job.execute("SELECT pg_catalog.pg_sleep(1)").await;
                }
            });
        }
    }
}

/// The demo's PgBouncer, when the binary is installed: in front of the demo server, TLS required on its own leg to
/// the server, `client_tls_sslmode = allow` towards its clients, and two pooled clients: one on TLS 1.3 and a
/// point-of-sale terminal in plain text, which the server alone would show as TLS 1.3.
pub struct DemoPooler {
    pub pooler: super::pgbouncer::LabPooler,
    pub sessions: Vec<LabSession>,
}

/// The pooled cast: (kind, user, application_name).
pub const POOLED_CAST: &[(SessionKind, &str, &str)] = &[
    (SessionKind::Tls13, "shop", "checkout-pooled"),
    (SessionKind::PlainTcp, "shop", "pos-terminal"),
];

impl DemoPooler {
    /// `None` when pgbouncer is not installed; an error when it is but does not start.
    pub async fn start(lab: &Lab) -> Result<Option<DemoPooler>> {
        if super::pgbouncer::find_binary().is_none() {
            return Ok(None);
        }
        let options = super::pgbouncer::PoolerOptions {
            users: POOLED_CAST.iter().map(|(_, user, _)| (*user).to_string()).collect(),
            stats_users: vec![MONITOR_ROLE.to_string()],
            ..Default::default()
        };
        let pooler = super::pgbouncer::LabPooler::start(lab, &options).await?;
        let mut sessions = Vec::new();
        for (kind, user, app) in POOLED_CAST {
            sessions.push(pooler.open(*kind, user, app).await?);
        }
        Ok(Some(DemoPooler { pooler, sessions }))
    }

    /// The monitor's connection to the pooler's admin console: verify-full against the lab CA, as to the server.
    pub fn admin_conninfo(&self, lab: &LabHandle) -> String {
        format!(
            "host=localhost hostaddr={} port={} user={MONITOR_ROLE} password={} dbname=pgbouncer \
             sslmode=verify-full sslrootcert={}",
            self.pooler.host,
            self.pooler.port,
            quote_value(LAB_PASSWORD),
            quote_value(&lab.certs.ca_cert.display().to_string()),
        )
    }

    /// How to join the pooler with psql, for the demo's start-up lines.
    pub fn join_line(&self) -> String {
        format!(
            "pgbouncer in front of it on 127.0.0.1 port {} (session pooling, clients may skip TLS): psql {}",
            self.pooler.port,
            shell_quote(&format!(
                "host=127.0.0.1 port={} user={} password={} dbname=postgres sslmode=disable",
                self.pooler.port, POOLED_CAST[1].1, LAB_PASSWORD
            ))
        )
    }
}
