//! The change a DBA considers: the setting the what-if, the after-change and the pooler verdicts are about.
//! Its own module so that `pooler` and `whatif` both name it without naming each other.

use serde::{Deserialize, Serialize};

use crate::model::ConnClass;

/// What the DBA considers changing.
/// (`pgtls check --target` names them through the CLI's own enum: this crate knows no clap.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// ssl_min_protocol_version = TLSv1.3
    MinTls13,
    /// TLS for every TCP client: hostssl-only pg_hba.conf, or require_secure_transport = on.
    TlsRequired,
}

impl Change {
    pub fn label(self) -> &'static str {
        match self {
            Change::MinTls13 => "ssl_min_protocol_version = TLSv1.3",
            Change::TlsRequired => "TLS required for every TCP client",
        }
    }

    /// Sessions of these classes would be refused.
    pub fn refuses(self, class: ConnClass) -> bool {
        match self {
            Change::MinTls13 => class.below_tls13(),
            // hostssl admits TLS only: GSS-encrypted TCP is refused as well.
            Change::TlsRequired => matches!(class, ConnClass::PlainTcp | ConnClass::Gss),
        }
    }
}
