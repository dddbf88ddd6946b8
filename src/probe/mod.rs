//! Looking at the server's side of TLS with the openssl crate (native-tls exposes neither the chain nor the version).

pub mod starttls;
