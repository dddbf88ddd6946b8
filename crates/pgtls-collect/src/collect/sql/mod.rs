//! The SQL pgtls runs, gated by `server_version_num` so one code path serves PostgreSQL 13 to 18.
//!
//! Every statement is written so that nothing in it resolves through `search_path` (checked by the test-only `lint` module over this
//! module's statements and over every literal passed to a database call in the source tree), and every connection
//! to a server runs [`PIN_SEARCH_PATH`] before anything else.

#[cfg(test)]
pub mod lint;

/// The first statement on every connection pgtls opens to a PostgreSQL server, as pg_dump does since
/// CVE-2018-1058: with an empty search_path only pg_catalog (and the session's own temporary schema, which nobody
/// else can write) is searched, so no function, operator or type a database user planted can be picked up. It beats a
/// per-database or per-role `search_path` (a session SET outranks both). Statements stay schema-qualified anyway
/// (see the test-only `lint` module): a pooler in transaction mode could hand us a session where this SET did not happen.
pub const PIN_SEARCH_PATH: &str = "SELECT pg_catalog.set_config('search_path', '', false)";

/// The session's own statement_timeout and lock_timeout (lock_timeout below statement_timeout: a lock wait such as a
/// VACUUM FULL on a catalog fails with its own error). `SET name = value` takes no operator.
pub fn timeouts(statement_ms: u128) -> String {
    format!(
        "SET statement_timeout = {statement_ms}; SET lock_timeout = {}",
        (statement_ms / 2).max(1000)
    )
}

/// Run once per connection: version, privileges, sslinfo's schema (and whether calling into it is safe), who we are.
///
/// PostgreSQL 15 changed the visibility check to has_privs_of_role (USAGE); 13 and 14 check
/// membership (MEMBER), so the mode depends on the version.
///
/// sslinfo's `ssl_is_used()` is called by name in whatever schema the extension was installed in, so it runs as the
/// monitor. It is trusted only when nobody but a superuser could have put another function under that name: the
/// schema is owned by a superuser, or by pg_database_owner in a database a superuser owns (15+'s `public`), and the
/// schema holds exactly one `ssl_is_used`, owned by a superuser. (An overload added later makes the call ambiguous,
/// an error, never someone else's code; the next connection's preflight then skips sslinfo.)
pub const PREFLIGHT: &str = "\
SELECT pg_catalog.current_setting('server_version_num')::pg_catalog.int4 AS version_num,
       pg_catalog.pg_postmaster_start_time()::pg_catalog.text AS postmaster_start,
       pg_catalog.current_setting('port') AS server_port,
       pg_catalog.current_setting('server_version') AS version,
       COALESCE((SELECT r.rolsuper FROM pg_catalog.pg_roles r
                  WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER), false) AS superuser,
       pg_catalog.pg_has_role('pg_read_all_stats', m.mode) AS read_all_stats,
       pg_catalog.pg_has_role('pg_read_all_settings', m.mode) AS read_all_settings,
       x.schema AS sslinfo_schema,
       x.schema_owner AS sslinfo_schema_owner,
       COALESCE(x.owner_trusted AND x.function_trusted, false) AS sslinfo_trusted,
       CURRENT_USER::pg_catalog.text AS monitor_user,
       pg_catalog.current_database()::pg_catalog.text AS monitor_database,
       pg_catalog.pg_backend_pid() AS monitor_pid
  FROM (SELECT CASE WHEN pg_catalog.current_setting('server_version_num')::pg_catalog.int4
                         OPERATOR(pg_catalog.>=) 150000
                    THEN 'USAGE' ELSE 'MEMBER' END AS mode) m
  LEFT JOIN (
    SELECT pg_catalog.quote_ident(n.nspname) AS schema,
           o.rolname::pg_catalog.text AS schema_owner,
           (o.rolsuper
             OR (o.rolname OPERATOR(pg_catalog.=) 'pg_database_owner'
                 AND COALESCE((SELECT dr.rolsuper
                                 FROM pg_catalog.pg_database d
                                 JOIN pg_catalog.pg_roles dr ON dr.oid OPERATOR(pg_catalog.=) d.datdba
                                WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()), false)))
             AS owner_trusted,
           (SELECT pg_catalog.count(*) OPERATOR(pg_catalog.=) 1 AND pg_catalog.bool_and(pr.rolsuper)
              FROM pg_catalog.pg_proc p
              JOIN pg_catalog.pg_roles pr ON pr.oid OPERATOR(pg_catalog.=) p.proowner
             WHERE p.pronamespace OPERATOR(pg_catalog.=) n.oid
               AND p.proname OPERATOR(pg_catalog.=) 'ssl_is_used') AS function_trusted
      FROM pg_catalog.pg_extension e
      JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
      JOIN pg_catalog.pg_roles o ON o.oid OPERATOR(pg_catalog.=) n.nspowner
     WHERE e.extname OPERATOR(pg_catalog.=) 'sslinfo') x ON true";

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

/// The most bytes of a session's query text a poll fetches: four times PostgreSQL's default
/// `track_activity_query_size`, enough to tell one application's statement from another's.
pub const QUERY_BYTES: usize = 4096;

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
/// sessions are kept on purpose: idle pooled connections are where TLS 1.2 holdouts live. `$1` lists the backends of
/// this process's other connections to the server (see [`crate::collect::own_backends`]), left out here so that N
/// targets on one server cost N polls of its real sessions, not N².
///
/// A query's text comes as at most [`QUERY_BYTES`] raw bytes (`textsend`, so no encoding is checked): a server with
/// `track_activity_query_size` raised to its 1 MB maximum would otherwise send up to a megabyte per session on
/// every poll, and a fleet would hold it per target.
pub fn poll_statement(shape: &PollShape) -> String {
    let v = shape.version_num;
    let leader_pid = if v >= 130_000 {
        "a.leader_pid"
    } else {
        "NULL::pg_catalog.int4"
    };
    let query_id = if v >= 140_000 {
        "a.query_id"
    } else {
        "NULL::pg_catalog.int8"
    };
    let delegated = if v >= 160_000 {
        "a.gss_delegation"
    } else {
        "NULL::pg_catalog.bool"
    };
    let query_bytes = QUERY_BYTES;
    let ssl_is_used = match &shape.sslinfo_schema {
        Some(schema) => format!("{schema}.ssl_is_used()"),
        None => "NULL::pg_catalog.bool".to_string(),
    };
    format!(
        "\
SELECT 0::pg_catalog.int2 AS kind, NULL::pg_catalog.int4, NULL::pg_catalog.int4, NULL::pg_catalog.text,
       NULL::pg_catalog.text, NULL::pg_catalog.text, NULL::pg_catalog.text, NULL::pg_catalog.text,
       NULL::pg_catalog.int4, NULL::pg_catalog.text, NULL::pg_catalog.text, NULL::pg_catalog.timestamptz,
       NULL::pg_catalog.timestamptz, NULL::pg_catalog.timestamptz, NULL::pg_catalog.timestamptz,
       NULL::pg_catalog.text, NULL::pg_catalog.text, NULL::pg_catalog.bytea, NULL::pg_catalog.int8,
       NULL::pg_catalog.bool, NULL::pg_catalog.text, NULL::pg_catalog.text, NULL::pg_catalog.int4,
       NULL::pg_catalog.text, NULL::pg_catalog.text, NULL::pg_catalog.text, NULL::pg_catalog.bool,
       NULL::pg_catalog.text, NULL::pg_catalog.bool, NULL::pg_catalog.bool,
       pg_catalog.now() AS server_now, st.names AS setting_names, st.setting_values,
       pg_catalog.current_setting('require_secure_transport', true) AS require_secure_transport,
       {ssl_is_used} AS ssl_is_used,
       pg_catalog.pg_conf_load_time() AS conf_load_time
  FROM (SELECT COALESCE(pg_catalog.array_agg(name::pg_catalog.text ORDER BY name), '{{}}') AS names,
               COALESCE(pg_catalog.array_agg(setting ORDER BY name), '{{}}') AS setting_values
          FROM pg_catalog.pg_settings WHERE pg_catalog.starts_with(name, 'ssl')
                OR name OPERATOR(pg_catalog.=) 'log_connections') st
UNION ALL
SELECT 1::pg_catalog.int2, a.pid, {leader_pid}, d.datname::pg_catalog.text,
       CASE WHEN a.usesysid IS NOT NULL THEN pg_catalog.pg_get_userbyid(a.usesysid)::pg_catalog.text END,
       a.application_name,
       pg_catalog.host(a.client_addr), a.client_hostname, a.client_port, a.backend_type, a.state,
       a.backend_start, a.xact_start, a.query_start, a.state_change, a.wait_event_type, a.wait_event,
       pg_catalog.substring(pg_catalog.textsend(a.query), 1, {query_bytes}), {query_id},
       CASE WHEN a.client_port IS NOT NULL THEN a.ssl END, a.sslversion, a.sslcipher, a.sslbits, a.ssl_client_dn,
       a.ssl_client_serial::pg_catalog.text, a.ssl_issuer_dn,
       CASE WHEN a.client_port IS NOT NULL THEN a.gss_auth END, a.gss_princ, a.gss_enc, {delegated},
       NULL::pg_catalog.timestamptz, NULL::pg_catalog.text[], NULL::pg_catalog.text[], NULL::pg_catalog.text,
       NULL::pg_catalog.bool, NULL::pg_catalog.timestamptz
  FROM pg_catalog.pg_stat_get_activity(NULL) a
  LEFT JOIN pg_catalog.pg_database d ON d.oid OPERATOR(pg_catalog.=) a.datid
 WHERE (a.client_port IS NOT NULL
        OR (a.backend_type IS NULL AND a.datid IS NOT NULL AND a.usesysid IS NOT NULL))
   AND a.pid OPERATOR(pg_catalog.<>) ALL ($1::pg_catalog.int4[])"
    )
}

/// `pg_cancel_backend` or `pg_terminate_backend` for one backend named by pid and start time: pids are reused, so
/// a pid alone could hit a newer session that took the number. The monitor's own backend is excluded here too.
pub fn signal(function: &str) -> String {
    format!(
        "SELECT pg_catalog.{function}(a.pid) FROM pg_catalog.pg_stat_activity a \
          WHERE a.pid OPERATOR(pg_catalog.=) $1 AND a.backend_start OPERATOR(pg_catalog.=) $2 \
            AND a.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()"
    )
}

/// pg_hba.conf as the server reads it from disk (superuser only; 16+ adds columns we do not need).
pub const HBA_RULES: &str = "SELECT line_number, type, database, user_name, address, auth_method \
                               FROM pg_catalog.pg_hba_file_rules WHERE error IS NULL ORDER BY line_number";

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

/// The platform's marks that need no privilege, once per connection: which of the provider roles `$1` exist,
/// whether `pg_catalog.aurora_version()` exists (looked up, never called: only pg_catalog counts, where no database
/// user can put a function), the settings pg_settings lists under the provider prefixes `$2` (with their values, in
/// name order), and (15+) whether the role was granted ALTER SYSTEM on ssl_min_protocol_version (before 15 only a
/// superuser may ALTER SYSTEM, and the preflight knows that already).
pub fn platform_marks(version_num: u32) -> String {
    let granted = if version_num >= 150_000 {
        "pg_catalog.has_parameter_privilege('ssl_min_protocol_version', 'ALTER SYSTEM')"
    } else {
        "false"
    };
    format!(
        "\
SELECT ARRAY(SELECT r.rolname::pg_catalog.text FROM pg_catalog.pg_roles r
              WHERE EXISTS (SELECT FROM pg_catalog.unnest($1::pg_catalog.text[]) AS wanted
                             WHERE r.rolname::pg_catalog.text OPERATOR(pg_catalog.=) wanted)
              ORDER BY 1) AS roles,
       EXISTS (SELECT FROM pg_catalog.pg_proc p
                WHERE p.proname OPERATOR(pg_catalog.=) 'aurora_version'
                  AND p.pronamespace OPERATOR(pg_catalog.=) 'pg_catalog'::pg_catalog.regnamespace) AS aurora_version,
       ARRAY(SELECT s.name FROM pg_catalog.pg_settings s
              WHERE EXISTS (SELECT FROM pg_catalog.unnest($2::pg_catalog.text[]) AS prefix
                             WHERE pg_catalog.starts_with(s.name, prefix))
              ORDER BY s.name) AS setting_names,
       ARRAY(SELECT s.setting FROM pg_catalog.pg_settings s
              WHERE EXISTS (SELECT FROM pg_catalog.unnest($2::pg_catalog.text[]) AS prefix
                             WHERE pg_catalog.starts_with(s.name, prefix))
              ORDER BY s.name) AS setting_values,
       {granted} AS alter_system_granted"
    )
}

/// One named setting, for the marks a provider's configuration sets as placeholders (absent from pg_settings):
/// NULL when the server does not know the name. A setting hidden from the role fails with insufficient_privilege,
/// which still says it exists; each name is its own statement so that one hidden setting does not hide the others.
pub const PROBE_SETTING: &str = "SELECT pg_catalog.current_setting($1::pg_catalog.text, true)";

#[cfg(test)]
mod tests {
    use super::*;

    /// Every statement this module builds, in each shape it takes.
    fn catalogue() -> Vec<String> {
        let mut all = vec![
            PIN_SEARCH_PATH.to_string(),
            timeouts(5000),
            PREFLIGHT.to_string(),
            HBA_RULES.to_string(),
            PROBE_SETTING.to_string(),
            platform_marks(140_000),
            platform_marks(150_000),
        ];
        for function in ["pg_cancel_backend", "pg_terminate_backend"] {
            all.push(signal(function));
        }
        for version_num in [130_000, 140_000, 150_000, 160_000, 170_000, 180_000] {
            for sslinfo_schema in [None, Some("\"odd schema\"".to_string())] {
                all.push(poll_statement(&PollShape {
                    version_num,
                    sslinfo_schema,
                }));
            }
        }
        all
    }

    #[test]
    fn no_statement_resolves_a_name_through_search_path() {
        for sql in catalogue() {
            assert_eq!(lint::unqualified(&sql), Vec::<String>::new(), "{sql}");
        }
    }

    /// Database calls whose statement is neither a literal nor one of this module's, with the reason each is safe.
    const NOT_LITERAL: &[(&str, &str, &str)] = &[
        // A Statement prepared from PROBE_SETTING, which the catalogue checks.
        (
            "crates/pgtls-collect/src/collect/platform.rs",
            "probe",
            "prepared from sql::PROBE_SETTING",
        ),
        // A Statement prepared from poll_statement, whose text the catalogue test checks.
        (
            "crates/pgtls-collect/src/collect/mod.rs",
            "statement",
            "prepared from sql::poll_statement",
        ),
        // target_session_attrs: one_value() receives the two literals of the same file, both checked by hand here:
        // `SHOW transaction_read_only` and `SELECT pg_catalog.pg_is_in_recovery()`.
        (
            "crates/pgtls-conn/src/session_attrs.rs",
            "sql",
            "SHOW and a qualified call, literals in the same file",
        ),
        // The lab builds DDL with the server's own format(%I, %L), itself a checked literal.
        (
            "crates/pgtls-lab/src/lab/mod.rs",
            "sql",
            "built by pg_catalog.format on the server",
        ),
        (
            "crates/pgtls-lab/src/lab/sessions.rs",
            "sql",
            "the lab's client workload, literals checked at their definition",
        ),
    ];

    /// The class, not the case: every statement any code of pgtls sends to a server, wherever it is written, passes
    /// the lint. A new call with a literal is checked automatically; a new call with a computed statement fails here
    /// until its text lives in this module (and so in the catalogue) or is listed above with its reason.
    #[test]
    fn every_database_call_in_the_source_tree_is_qualified() {
        // The workspace's root, two levels above this crate.
        let root = std::fs::canonicalize(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")).unwrap();
        let root = root.as_path();
        let mut files = Vec::new();
        let mut dirs = vec![
            root.join("src"),
            root.join("crates/pgtls-collect/src"),
            root.join("crates/pgtls-conn/src"),
            root.join("crates/pgtls-lab/src"),
        ];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    files.push(path);
                }
            }
        }
        let mut problems = Vec::new();
        let mut statements = 0;
        for path in &files {
            let relative = path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
            if relative.ends_with("collect/sql/lint.rs") {
                continue;
            }
            let source = std::fs::read_to_string(path).unwrap();
            for call in lint::calls_in(&source) {
                match call {
                    lint::Call::Literal(sql) => {
                        statements += 1;
                        for finding in lint::unqualified(&sql) {
                            problems.push(format!("{relative}: {finding} in {sql:?}"));
                        }
                    }
                    lint::Call::Computed(line) => {
                        let allowed = NOT_LITERAL
                            .iter()
                            .any(|(file, arg, _)| *file == relative && line.ends_with(&format!("({arg}")));
                        if !allowed {
                            problems.push(format!("{relative}: a statement that is not a literal: {line}"));
                        }
                    }
                }
            }
        }
        assert!(
            statements > 20,
            "the scan found only {statements} statements: is it reading the tree?"
        );
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn version_gates_optional_columns() {
        let old = poll_statement(&PollShape {
            version_num: 130_010,
            sslinfo_schema: None,
        });
        assert!(old.contains("a.leader_pid"));
        assert!(
            old.contains("pg_catalog.textsend(a.query), 1, 4096), NULL::pg_catalog.int8,"),
            "query_id must be NULL before 14"
        );
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
