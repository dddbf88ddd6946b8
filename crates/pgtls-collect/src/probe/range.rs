//! The TLS versions the server is configured to accept, read over SQL before a probe, so that the probe offers no
//! version whose refusal it already knows (each would be a failed handshake in the server's log).

use std::time::Duration;

use tokio_postgres::Client;

use super::scan::VersionRange;

/// The configured range, or `None` when it cannot be read (no answer within `limit`, hidden from pgtls's role,
/// a server without the settings): then the probe offers every version, as before.
pub async fn read(client: &Client, limit: Duration) -> Option<VersionRange> {
    // `current_setting(..., true)` is NULL for a setting the server does not have (before 12).
    let query = client.query_one(
        "SELECT pg_catalog.current_setting('ssl_min_protocol_version', true), \
         pg_catalog.current_setting('ssl_max_protocol_version', true)",
        &[],
    );
    let row = tokio::time::timeout(limit, query).await.ok()?.ok()?;
    let min: Option<String> = row.try_get(0).ok()?;
    let max: Option<String> = row.try_get(1).ok()?;
    VersionRange::from_settings(min.as_deref(), max.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::scan::TlsVersion;

    #[test]
    fn settings_make_a_range() {
        let r = VersionRange::from_settings(Some("TLSv1.2"), Some("")).unwrap();
        assert_eq!((r.min, r.max), (TlsVersion::Tls12, None));
        assert!(!r.contains(TlsVersion::Tls11) && r.contains(TlsVersion::Tls13));
        let r = VersionRange::from_settings(Some("TLSv1.3"), None).unwrap();
        assert!(!r.contains(TlsVersion::Tls12));
        let r = VersionRange::from_settings(Some("TLSv1"), Some("TLSv1.2")).unwrap();
        assert!(r.contains(TlsVersion::Tls10) && !r.contains(TlsVersion::Tls13));
        assert_eq!(VersionRange::from_settings(None, None), None, "hidden or before 12");
        assert_eq!(
            VersionRange::from_settings(Some("SSLv3"), None),
            None,
            "unknown: offer every version"
        );
    }
}
