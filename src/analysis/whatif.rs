//! "What happens to this client if ssl_min_protocol_version is raised to TLSv1.3?"

use crate::model::{ConnClass, Session};

/// One plain sentence for the drill-down view.
pub fn min_tls13_sentence(session: &Session, monitor_user: &str) -> String {
    let version = session.tls.as_ref().map_or("TLS", |t| t.version.as_str());
    match session.class {
        ConnClass::Tls13 => "Unaffected: it already negotiates TLSv1.3.".to_string(),
        ConnClass::Tls12 | ConnClass::TlsOlder => format!(
            "Would be refused: it negotiated {version}, so its handshake fails once the server requires TLSv1.3. \
             If it connects with sslmode=prefer or allow and pg_hba.conf still has `host` lines, it may instead \
             reconnect silently without encryption."
        ),
        ConnClass::PlainTcp => "Not affected by the minimum protocol, because it does not use TLS at all; it is \
             refused only when TLS is enforced (hostssl-only pg_hba.conf or require_secure_transport=on)."
            .to_string(),
        ConnClass::Gss => "Unaffected: it is encrypted with GSSAPI, not TLS.".to_string(),
        ConnClass::Local => "Unaffected: Unix-socket connections never use TLS.".to_string(),
        ConnClass::Unknown => format!(
            "Unknown: the monitor may not see how this session is connected; GRANT pg_read_all_stats TO {monitor_user};"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::session;

    #[test]
    fn holdouts_are_refused_and_others_are_not() {
        assert!(min_tls13_sentence(&session(1, ConnClass::Tls12), "mon").starts_with("Would be refused"));
        assert!(min_tls13_sentence(&session(1, ConnClass::Tls12), "mon").contains("TLSv1.2"));
        assert!(min_tls13_sentence(&session(1, ConnClass::TlsOlder), "mon").contains("TLSv1.1"));
        assert!(min_tls13_sentence(&session(1, ConnClass::Tls13), "mon").starts_with("Unaffected"));
        assert!(min_tls13_sentence(&session(1, ConnClass::Local), "mon").starts_with("Unaffected"));
        assert!(min_tls13_sentence(&session(1, ConnClass::Unknown), "mon").contains("GRANT pg_read_all_stats TO mon"));
    }
}
