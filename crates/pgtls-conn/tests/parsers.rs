//! Property tests of the parsers that read what users and files give: never a panic, one-line errors that never
//! echo a password, and round trips where a printer exists. `PROPTEST_CASES=100000` for a long run.

use std::path::Path;

use pgtls_conn::conninfo::{parse, quote_value};
use pgtls_conn::{params, pgpass, service};
use proptest::prelude::*;

/// Text that looks like connection strings: keywords, quotes, escapes, separators, URIs, controls.
fn conninfo_like() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        Just("host".to_string()),
        Just("password".to_string()),
        Just("sslmode".to_string()),
        Just("postgresql://".to_string()),
        Just("=".to_string()),
        Just("'".to_string()),
        Just("\\\\".to_string()),
        Just(" ".to_string()),
        Just("@".to_string()),
        Just(":".to_string()),
        Just("/".to_string()),
        Just("?".to_string()),
        Just("&".to_string()),
        Just("%".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just(",".to_string()),
        "[a-z0-9%._-]{0,6}",
        any::<char>().prop_map(|c| c.to_string()),
    ];
    prop::collection::vec(atom, 0..24).prop_map(|parts| parts.concat())
}

proptest! {
    #[test]
    fn conninfo_parse_never_panics_and_errors_stay_on_one_line(input in conninfo_like()) {
        if let Err(e) = parse(&input) {
            let shown = e.to_string();
            prop_assert!(!shown.contains('\n') && !shown.contains('\r'), "{shown:?}");
        }
    }

    #[test]
    fn passwords_are_never_echoed_in_parse_errors(secret in "[A-Za-z0-9]{12}", tail in conninfo_like()) {
        let input = format!("password={secret} {tail}");
        if let Err(e) = parse(&input) {
            prop_assert!(!e.to_string().contains(&secret), "{e}");
        }
    }

    #[test]
    fn quoted_values_read_back_unchanged(value in any::<String>().prop_filter("no NUL", |v| !v.contains('\0'))) {
        let input = format!("application_name={}", quote_value(&value));
        let pairs = parse(&input).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(pairs, vec![("application_name".to_string(), value)]);
    }

    #[test]
    fn resolve_never_panics(input in conninfo_like()) {
        let env = params::Environment::new(Default::default(), None, "tester");
        let _ = params::resolve(Some(&input), &env);
    }

    #[test]
    fn pgpass_lines_never_panic(line in any::<String>(), host in "[a-z.]{0,8}", port in any::<u16>()) {
        let _ = pgpass::parse_line(&line);
        let _ = pgpass::find_password(&line, &host, port, "db", "user");
    }

    #[test]
    fn service_files_never_panic(content in any::<String>(), name in "[a-z]{0,5}") {
        if let Err(e) = service::find_service(&content, &name, Path::new("/etc/pg_service.conf")) {
            prop_assert!(!e.to_string().contains('\n'));
        }
    }
}
