//! The `[alerts]` table of the configuration: what each rule may be told (severity, threshold, off) and whom
//! session rules leave out. Owned by the rules, so that `analysis` needs nothing from `crate::config`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Severity;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    pub bell: bool,
    pub expiry_warn_days: i64,
    /// Overrides by rule key (the keys alerts carry: plaintext_sessions, tls12_sessions, ...).
    pub rules: BTreeMap<String, RuleConfig>,
    pub mute: Mute,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            bell: false,
            expiry_warn_days: 30,
            rules: BTreeMap::new(),
            mute: Mute::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleSeverity {
    Critical,
    Warning,
    Info,
    Off,
}

impl RuleSeverity {
    pub fn severity(self) -> Option<Severity> {
        match self {
            RuleSeverity::Critical => Some(Severity::Critical),
            RuleSeverity::Warning => Some(Severity::Warning),
            RuleSeverity::Info => Some(Severity::Info),
            RuleSeverity::Off => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub severity: Option<RuleSeverity>,
    /// The rule fires when its count is above this.
    #[serde(default)]
    pub threshold: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mute {
    pub applications: Vec<String>,
    pub users: Vec<String>,
}
