#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    let _ = pgtls_conn::conninfo::parse(input);
    let env = pgtls_conn::params::Environment::new(Default::default(), None, "fuzz");
    let _ = pgtls_conn::params::resolve(Some(input), &env);
});
