#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    let _ = pgtls_conn::service::find_service(input, "svc", std::path::Path::new("pg_service.conf"));
});
