//! The SQL pgtls runs, gated by `server_version_num` so one code path serves PostgreSQL 13 to 18.

/// Run once per connection: version, privileges, sslinfo's schema, who we are.
///
/// PostgreSQL 15 changed the visibility check to has_privs_of_role (USAGE); 13 and 14 check
/// membership (MEMBER), so the mode depends on the version.
pub const PREFLIGHT: &str = "\
SELECT current_setting('server_version_num')::int4 AS version_num,
       current_setting('server_version') AS version,
       COALESCE((SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user), false) AS superuser,
       pg_catalog.pg_has_role('pg_read_all_stats', m.mode) AS read_all_stats,
       pg_catalog.pg_has_role('pg_read_all_settings', m.mode) AS read_all_settings,
       (SELECT pg_catalog.quote_ident(n.nspname)
          FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
         WHERE e.extname = 'sslinfo') AS sslinfo_schema,
       current_user::text AS monitor_user,
       current_database()::text AS monitor_database,
       pg_catalog.pg_backend_pid() AS monitor_pid
  FROM (SELECT CASE WHEN current_setting('server_version_num')::int >= 150000
                    THEN 'USAGE' ELSE 'MEMBER' END AS mode) m";

/// What the poll needs to know about the server to build its statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollShape {
    pub version_num: u32,
    /// Schema-qualified, already quoted; `None` when sslinfo is not installed in this database.
    pub sslinfo_schema: Option<String>,
}

/// Column positions shared by the statement and the row decoder. Keep in step with [`poll_statement`].
pub mod col {
    pub const KIND: usize = 0;
    pub const PID: usize = 1;
    pub const LEADER_PID: usize = 2;
    pub const DATNAME: usize = 3;
    pub const USENAME: usize = 4;
    pub const APPLICATION_NAME: usize = 5;
    pub const CLIENT_ADDR: usize = 6;
    pub const CLIENT_HOSTNAME: usize = 7;
    pub const CLIENT_PORT: usize = 8;
    pub const BACKEND_TYPE: usize = 9;
    pub const STATE: usize = 10;
    pub const BACKEND_START: usize = 11;
    pub const XACT_START: usize = 12;
    pub const QUERY_START: usize = 13;
    pub const STATE_CHANGE: usize = 14;
    pub const WAIT_EVENT_TYPE: usize = 15;
    pub const WAIT_EVENT: usize = 16;
    pub const QUERY: usize = 17;
    pub const QUERY_ID: usize = 18;
    pub const SSL: usize = 19;
    pub const TLS_VERSION: usize = 20;
    pub const CIPHER: usize = 21;
    pub const BITS: usize = 22;
    pub const CLIENT_DN: usize = 23;
    pub const CLIENT_SERIAL: usize = 24;
    pub const ISSUER_DN: usize = 25;
    pub const GSS_AUTHENTICATED: usize = 26;
    pub const GSS_PRINCIPAL: usize = 27;
    pub const GSS_ENCRYPTED: usize = 28;
    pub const GSS_DELEGATED: usize = 29;
    // Only on the single meta row (kind = 0).
    pub const SERVER_NOW: usize = 30;
    pub const SETTING_NAMES: usize = 31;
    pub const SETTING_VALUES: usize = 32;
    pub const REQUIRE_SECURE_TRANSPORT: usize = 33;
    pub const SSL_IS_USED: usize = 34;
    pub const CONF_LOAD_TIME: usize = 35;
}

/// One statement, one round trip: a meta row (kind 0: server clock, TLS settings, the monitor's
/// sslinfo answer) followed by one row per session (kind 1). pg_settings is a function that builds every
/// setting each time it is read, so the TLS settings come from a single scan of it.
///
/// Sessions come from **one** call of `pg_stat_get_activity(NULL)`, the function behind `pg_stat_activity`,
/// `pg_stat_ssl` and `pg_stat_gssapi` alike: joining the three views would run it three times, each copying every
/// backend's entry out of shared memory, which made pgtls cost the server more per poll than a hand-written
/// `pg_stat_ssl JOIN pg_stat_activity` (measured with scripts/perf-compare.sh). User names come from
/// `pg_get_userbyid` (the view joins pg_authid, which only superusers may read), database names from pg_database.
/// Sessions the monitor may not inspect keep their row with NULL details (the function's own rule, as in the
/// views); of those we keep the ones with a database and a role (client backends), not background processes. Idle
/// sessions are kept on purpose: idle pooled connections are where TLS 1.2 holdouts live.
pub fn poll_statement(shape: &PollShape) -> String {
    let v = shape.version_num;
    let leader_pid = if v >= 130_000 { "a.leader_pid" } else { "NULL::int4" };
    let query_id = if v >= 140_000 { "a.query_id" } else { "NULL::int8" };
    let delegated = if v >= 160_000 { "a.gss_delegation" } else { "NULL::bool" };
    let ssl_is_used = match &shape.sslinfo_schema {
        Some(schema) => format!("{schema}.ssl_is_used()"),
        None => "NULL::bool".to_string(),
    };
    format!(
        "\
SELECT 0::int2 AS kind, NULL::int4, NULL::int4, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text,
       NULL::int4, NULL::text, NULL::text, NULL::timestamptz, NULL::timestamptz, NULL::timestamptz,
       NULL::timestamptz, NULL::text, NULL::text, NULL::text, NULL::int8, NULL::bool, NULL::text, NULL::text,
       NULL::int4, NULL::text, NULL::text, NULL::text, NULL::bool, NULL::text, NULL::bool, NULL::bool,
       now() AS server_now, st.names AS setting_names, st.setting_values,
       current_setting('require_secure_transport', true) AS require_secure_transport,
       {ssl_is_used} AS ssl_is_used,
       pg_catalog.pg_conf_load_time() AS conf_load_time
  FROM (SELECT COALESCE(array_agg(name::text ORDER BY name), '{{}}') AS names,
               COALESCE(array_agg(setting ORDER BY name), '{{}}') AS setting_values
          FROM pg_catalog.pg_settings WHERE name LIKE 'ssl%' OR name = 'log_connections') st
UNION ALL
SELECT 1::int2, a.pid, {leader_pid}, d.datname::text,
       CASE WHEN a.usesysid IS NOT NULL THEN pg_catalog.pg_get_userbyid(a.usesysid)::text END, a.application_name,
       host(a.client_addr), a.client_hostname, a.client_port, a.backend_type, a.state,
       a.backend_start, a.xact_start, a.query_start, a.state_change, a.wait_event_type, a.wait_event,
       a.query, {query_id},
       CASE WHEN a.client_port IS NOT NULL THEN a.ssl END, a.sslversion, a.sslcipher, a.sslbits, a.ssl_client_dn,
       a.ssl_client_serial::text, a.ssl_issuer_dn,
       CASE WHEN a.client_port IS NOT NULL THEN a.gss_auth END, a.gss_princ, a.gss_enc, {delegated},
       NULL::timestamptz, NULL::text[], NULL::text[], NULL::text, NULL::bool, NULL::timestamptz
  FROM pg_catalog.pg_stat_get_activity(NULL) a
  LEFT JOIN pg_catalog.pg_database d ON d.oid = a.datid
 WHERE a.client_port IS NOT NULL
    OR (a.backend_type IS NULL AND a.datid IS NOT NULL AND a.usesysid IS NOT NULL)"
    )
}

/// TLS settings pgtls reports, with the versions that have them and whether ordinary roles may read them.
pub struct KnownSetting {
    pub name: &'static str,
    pub since: u32,
    /// Exclusive upper bound; `u32::MAX` when still present.
    pub until: u32,
    /// GUC_SUPERUSER_ONLY: silently missing from pg_settings without pg_read_all_settings.
    pub protected: bool,
}

const fn setting(name: &'static str, since: u32, until: u32, protected: bool) -> KnownSetting {
    KnownSetting {
        name,
        since,
        until,
        protected,
    }
}

pub const KNOWN_SETTINGS: &[KnownSetting] = &[
    // Not TLS, but without it refusals and short sessions never reach the log.
    setting("log_connections", 0, u32::MAX, false),
    setting("ssl", 0, u32::MAX, false),
    setting("ssl_ca_file", 0, u32::MAX, false),
    setting("ssl_cert_file", 0, u32::MAX, false),
    setting("ssl_ciphers", 0, u32::MAX, true),
    setting("ssl_crl_dir", 140_000, u32::MAX, false),
    setting("ssl_crl_file", 0, u32::MAX, false),
    setting("ssl_dh_params_file", 0, u32::MAX, true),
    // PostgreSQL 18 renamed it to ssl_groups; the old name stays only as an alias.
    setting("ssl_ecdh_curve", 0, 180_000, true),
    setting("ssl_groups", 180_000, u32::MAX, true),
    setting("ssl_key_file", 0, u32::MAX, false),
    setting("ssl_library", 0, u32::MAX, false),
    setting("ssl_max_protocol_version", 0, u32::MAX, true),
    setting("ssl_min_protocol_version", 0, u32::MAX, true),
    setting("ssl_passphrase_command_supports_reload", 0, u32::MAX, false),
    setting("ssl_prefer_server_ciphers", 0, u32::MAX, false),
    setting("ssl_tls13_ciphers", 180_000, u32::MAX, true),
];

/// Azure Database for PostgreSQL only; read with current_setting(name, true) so vanilla servers answer NULL.
pub const REQUIRE_SECURE_TRANSPORT: &str = "require_secure_transport";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_gates_optional_columns() {
        let old = poll_statement(&PollShape {
            version_num: 130_010,
            sslinfo_schema: None,
        });
        assert!(old.contains("a.leader_pid"));
        assert!(old.contains("a.query, NULL::int8,"), "query_id must be NULL before 14");
        assert!(!old.contains("gss_delegation"));
        assert!(!old.contains("compression"));
        let new = poll_statement(&PollShape {
            version_num: 180_001,
            sslinfo_schema: Some("public".into()),
        });
        assert!(new.contains("a.query_id"));
        assert!(new.contains("a.gss_delegation"));
        assert_eq!(
            new.matches("pg_stat_get_activity").count(),
            1,
            "one read of the backends' entries"
        );
        assert!(new.contains("public.ssl_is_used()"));
    }

    #[test]
    fn statement_has_as_many_meta_as_session_columns() {
        let sql = poll_statement(&PollShape {
            version_num: 150_000,
            sslinfo_schema: None,
        });
        let (meta, sessions) = sql.split_once("UNION ALL").unwrap();
        let count = |part: &str| {
            let select = part.split(" FROM pg_catalog.pg_stat_get_activity").next().unwrap();
            // Commas at nesting depth 0 separate columns.
            let mut depth = 0;
            select.chars().fold(1, |n, c| match c {
                '(' => {
                    depth += 1;
                    n
                }
                ')' => {
                    depth -= 1;
                    n
                }
                ',' if depth == 0 => n + 1,
                _ => n,
            })
        };
        assert_eq!(count(meta), count(sessions));
        assert_eq!(count(meta), col::CONF_LOAD_TIME + 1);
    }
}
