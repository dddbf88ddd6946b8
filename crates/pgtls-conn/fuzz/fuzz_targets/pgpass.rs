#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    for line in input.lines() {
        let _ = pgtls_conn::pgpass::parse_line(line);
    }
    let _ = pgtls_conn::pgpass::find_password(input, "localhost", 5432, "postgres", "postgres");
});
