//! The connection layer on OpenSSL, against the lab: what the parity table cannot show (it compares outcomes
//! only): the words of each refusal, what the report says was negotiated and applied, the SNI on the wire,
//! TLS 1.3 as a bound, and the cap on what a hostile server may announce.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail by panicking")]

use crate::common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use pgtls::conn::{Cause, Verification, connect};
use pgtls::lab::{CERT_USER, LAB_PASSWORD, SUPERUSER};

fn psql_stderr(conninfo: &str, home: &Path) -> (bool, String) {
    let out = Command::new(common::require_tool("psql", "postgresql-client"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("PGCONNECT_TIMEOUT", "5")
        .args([conninfo, "-X", "-A", "-t", "-c", "select 1"])
        .output()
        .expect("psql runs");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn snapshot_stderr(conninfo: &str, home: &Path) -> (bool, String) {
    let out = common::pgtls(&["snapshot", conninfo, "--format", "json"], home);
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test]
async fn refusals_name_their_cause() {
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let d = home.path();
    let ca = lab.certs.ca_cert.display().to_string();
    let base = format!(
        "host=localhost hostaddr=127.0.0.1 port={} dbname=postgres user={SUPERUSER} password={LAB_PASSWORD}",
        lab.port
    );

    // A CRL from the lab CA revoking the server's certificate: refused, and the certificate named.
    let crl = d.join("revoked.crl");
    common::crl::write_crl(
        &lab.certs.ca_cert,
        &lab.root().join("certs/ca.key"),
        &[&lab.certs.server_cert],
        &crl,
    );
    let (ok, err) = snapshot_stderr(
        &format!("{base} sslmode=verify-full sslrootcert={ca} sslcrl={}", crl.display()),
        d,
    );
    assert!(!ok);
    assert!(
        err.contains("has been revoked") && err.contains("CN=localhost"),
        "{err}"
    );
    assert!(err.contains(&crl.display().to_string()), "names the CRL: {err}");

    // requirepeer over the socket: the server's account passes, another is named.
    let socket = format!(
        "host={} port={} dbname=postgres user={SUPERUSER}",
        lab.socket_dir.display(),
        lab.port
    );
    let (ok, err) = snapshot_stderr(&format!("{socket} requirepeer=root"), d);
    assert!(!ok);
    assert!(
        err.contains("requirepeer specifies \"root\", but actual peer user name is \"postgres\""),
        "{err}"
    );

    // Channel binding without TLS, and with an authentication that cannot bind.
    let (ok, err) = snapshot_stderr(&format!("{base} sslmode=disable channel_binding=require"), d);
    assert!(
        !ok && err.contains("channel binding required, but SSL not in use"),
        "{err}"
    );
    lab.ensure_role(CERT_USER).await.unwrap();
    let cert_user = format!(
        "host=localhost hostaddr=127.0.0.1 port={} dbname=postgres user={CERT_USER} sslmode=require sslcert={} sslkey={}",
        lab.port,
        lab.certs.client_cert.display(),
        lab.certs.client_key.display()
    );
    let (ok, err) = snapshot_stderr(&format!("{cert_user} channel_binding=require"), d);
    assert!(
        !ok && err.contains("server authenticated client without channel binding"),
        "{err}"
    );

    // require_auth and sslcertmode, in libpq 18's words.
    let (ok, err) = snapshot_stderr(&format!("{base} sslmode=require require_auth=password"), d);
    assert!(
        !ok && err
            .contains("authentication method requirement \"password\" failed: server requested SASL authentication"),
        "{err}"
    );
    let (ok, err) = snapshot_stderr(&format!("{base} sslmode=require sslcertmode=require"), d);
    assert!(
        !ok && err.contains("server accepted connection without a valid SSL certificate"),
        "{err}"
    );
    let (ok, err) = snapshot_stderr(&format!("{cert_user} sslcertmode=require"), d);
    assert!(ok, "a certificate was requested and sent: {err}");

    // Keywords pgtls cannot honour are refused by name, before anything is sent.
    let (ok, err) = snapshot_stderr(&format!("{base} gssencmode=require"), d);
    assert!(
        !ok && err.contains("gssencmode=require: pgtls has no GSSAPI support"),
        "{err}"
    );

    // target_session_attrs: the primary is not a standby; the wording is libpq's.
    let (ok, err) = snapshot_stderr(&format!("{base} target_session_attrs=standby"), d);
    assert!(!ok && err.contains("server is not in hot standby mode"), "{err}");

    // A bad setting in options fails as the server says.
    let (ok, err) = snapshot_stderr(&format!("{base} options='-c work_mem=bogus'"), d);
    assert!(!ok && err.contains("work_mem"), "{err}");
    for (_, err) in [
        snapshot_stderr(&format!("{base} gssencmode=require"), d),
        snapshot_stderr(&format!("{socket} requirepeer=root"), d),
    ] {
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
}

#[tokio::test]
async fn verify_full_on_an_address_the_certificate_does_not_name_says_so_as_psql_does() {
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    // Reissue the lab's server certificate with a DNS name only, as many real certificates are.
    let server = pgtls::lab::certs::issue(
        &pgtls::lab::certs::CertSpec::server("localhost", &["localhost"], &[]),
        Some(&lab.ca().unwrap()),
    )
    .unwrap();
    lab.use_server_certificate(&server).await.unwrap();

    let conninfo = format!(
        "host=127.0.0.1 port={} dbname=postgres user={SUPERUSER} password={LAB_PASSWORD} sslmode=verify-full sslrootcert={}",
        lab.port,
        lab.certs.ca_cert.display()
    );
    // libpq examines the DNS name, then (the host being an address with no address in the certificate) the CN.
    let expected = "server certificate for \"localhost\" (and 1 other name) does not match host name \"127.0.0.1\"";
    let (ok, pgtls_err) = snapshot_stderr(&conninfo, home.path());
    assert!(!ok && pgtls_err.contains(expected), "pgtls: {pgtls_err}");
    let (ok, psql_err) = psql_stderr(&conninfo, home.path());
    assert!(!ok && psql_err.contains(expected), "psql: {psql_err}");
    // verify-ca does not look at the name.
    let (ok, err) = snapshot_stderr(&conninfo.replace("verify-full", "verify-ca"), home.path());
    assert!(ok, "{err}");
}

#[tokio::test]
async fn the_report_says_what_was_negotiated_verified_and_applied() {
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let keylog = home.path().join("keys.log");
    let conninfo = format!(
        "host=localhost hostaddr=127.0.0.1 port={} dbname=postgres user={SUPERUSER} password={LAB_PASSWORD} \
         sslmode=verify-full sslrootcert={} keepalives_idle=7 keepalives_interval=3 keepalives_count=4 \
         tcp_user_timeout=9000 sslkeylogfile={}",
        lab.port,
        lab.certs.ca_cert.display(),
        keylog.display()
    );
    let connection = connect(&common::params(&conninfo, home.path())).await.unwrap();
    let task = tokio::spawn(connection.task);
    let report = connection.report;
    let tls = report.tls.as_ref().expect("TLS");
    assert_eq!(tls.version, "TLSv1.3");
    assert_eq!(tls.verification, Verification::ChainAndHost);
    assert!(tls.server_chain[0].contains("CN=localhost"), "{:?}", tls.server_chain);
    assert_eq!(report.auth_methods, vec!["scram-sha-256"]);
    assert!(report.channel_bound, "SCRAM-SHA-256-PLUS over TLS");
    let socket = report.socket.expect("TCP");
    assert!(socket.keepalive);
    assert_eq!(
        (
            socket.keepalive_idle,
            socket.keepalive_interval,
            socket.keepalive_count,
            socket.tcp_user_timeout
        ),
        (Some(7), Some(3), Some(4), Some(9000))
    );
    let own: String = connection
        .client
        .query_one("SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(own, tls.version, "the server agrees on the version");
    let log = std::fs::read_to_string(&keylog).unwrap();
    assert!(log.lines().any(|l| l.starts_with("CLIENT_TRAFFIC_SECRET_0 ")), "{log}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&keylog).unwrap().permissions().mode() & 0o777, 0o600);
    drop(connection.client);
    let _ = task.await;

    // keepalives=0: no SO_KEEPALIVE, and the other numbers are not applied.
    let connection = connect(&common::params(
        &format!(
            "host=127.0.0.1 port={} dbname=postgres user={SUPERUSER} password={LAB_PASSWORD} keepalives=0 keepalives_idle=7",
            lab.port
        ),
        home.path(),
    ))
    .await
    .unwrap();
    assert!(!connection.report.socket.unwrap().keepalive);

    // A value the kernel refuses fails as libpq's setsockopt does.
    let err = connect(&common::params(
        &format!("host=127.0.0.1 port={} user={SUPERUSER} keepalives_idle=-5", lab.port),
        home.path(),
    ))
    .await
    .err()
    .expect("TCP_KEEPIDLE 0 is refused by Linux");
    assert!(err.to_string().contains("setsockopt(TCP_KEEPIDLE) failed"), "{err}");
}

#[tokio::test]
async fn tls_1_3_can_be_the_floor_and_the_ceiling() {
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    lab.set_config("ssl_min_protocol_version", "TLSv1.3").await.unwrap();
    let base = format!(
        "host=localhost port={} dbname=postgres user={SUPERUSER} password={LAB_PASSWORD} sslmode=require",
        lab.port
    );
    let both = connect(&common::params(
        &format!("{base} ssl_min_protocol_version=TLSv1.3 ssl_max_protocol_version=TLSv1.3"),
        home.path(),
    ))
    .await
    .unwrap();
    assert_eq!(both.report.tls.unwrap().version, "TLSv1.3");
    let err = connect(&common::params(
        &format!("{base} ssl_max_protocol_version=TLSv1.2"),
        home.path(),
    ))
    .await
    .err()
    .expect("a TLS 1.2 client is refused by a TLS 1.3 server");
    assert!(matches!(err.cause(), Some(Cause::Tls(_))), "{err:?}");
    assert!(err.to_string().contains("SSL error"), "{err}");
}

/// A TLS peer that answers the SSLRequest, completes a handshake and records the SNI it was sent.
fn sni_recorder() -> (u16, Arc<Mutex<Vec<Option<String>>>>) {
    use openssl::ssl::{SslAcceptor, SslMethod};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let cert = pgtls::lab::certs::issue(
        &pgtls::lab::certs::CertSpec::server("localhost", &["localhost"], &[]),
        None,
    )
    .unwrap();
    let record = seen.clone();
    std::thread::spawn(move || {
        let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
        acceptor.set_certificate(&cert.cert).unwrap();
        acceptor.set_private_key(&cert.key).unwrap();
        let acceptor = acceptor.build();
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut request = [0u8; 8];
            if stream.read_exact(&mut request).is_err() {
                continue;
            }
            let _ = stream.write_all(b"S");
            if let Ok(tls) = acceptor.accept(stream) {
                let name = tls
                    .ssl()
                    .servername(openssl::ssl::NameType::HOST_NAME)
                    .map(str::to_string);
                record.lock().unwrap().push(name);
            }
        }
    });
    (port, seen)
}

#[test]
fn sni_is_sent_as_libpq_sends_it() {
    let home = tempfile::tempdir().unwrap();
    let (port, seen) = sni_recorder();
    for (conninfo, expected) in [
        (
            format!("host=localhost port={port} user=x sslmode=require"),
            Some("localhost"),
        ),
        (
            format!("host=localhost port={port} user=x sslmode=require sslsni=0"),
            None,
        ),
        (format!("host=127.0.0.1 port={port} user=x sslmode=require"), None),
    ] {
        for (who, run) in [
            ("psql", psql_stderr as fn(&str, &Path) -> (bool, String)),
            ("pgtls", snapshot_stderr),
        ] {
            seen.lock().unwrap().clear();
            let (ok, _) = run(&conninfo, home.path());
            assert!(!ok, "the recorder is not a server");
            let names = seen.lock().unwrap().clone();
            assert_eq!(
                names.first().cloned().flatten().as_deref(),
                expected,
                "{who} with {conninfo}: {names:?}"
            );
        }
    }
}

/// A server (or a man in the middle under sslmode=prefer) announcing a 2 GB message costs nothing.
#[test]
fn an_announced_two_gigabyte_message_is_refused_without_allocating_it() {
    let home = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut startup = [0u8; 512];
            let _ = stream.read(&mut startup);
            // An authentication request whose length claims 2 GB, then nothing.
            let _ = stream.write_all(&[b'R', 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
            std::thread::sleep(std::time::Duration::from_secs(2));
        }
    });
    let out = common::pgtls(
        &[
            "snapshot",
            &format!("host=127.0.0.1 port={port} user=x sslmode=disable connect_timeout=10"),
        ],
        home.path(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("the server sent a message of 2147483647 bytes (type 'R'), over pgtls's limit of 30000 bytes"),
        "{err}"
    );
}
