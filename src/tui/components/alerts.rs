//! Alerts: rules evaluated over the latest snapshot, the link's health, the probe and the server log, kept in a
//! log that knows when each began. Asks for the bell when a new critical alert begins. `a` shows them all, full
//! screen, when the pane has no room for every one.

use chrono::{DateTime, Utc};

use super::Scroll;
use crate::analysis::alerts::config::AlertsConfig;
use crate::analysis::alerts::{Alert, AlertLog, LinkHealth, Severity, evaluate_with};
use crate::logsource::SuspectLine;
use crate::model::Snapshot;
use crate::probe::ProbeReport;

#[derive(Debug, Clone, Default)]
pub struct Alerts {
    pub log: AlertLog,
    pub config: AlertsConfig,
    /// Connection lines refused as forged in the server log: how many, and the latest.
    pub forged_log_lines: Option<(u64, SuspectLine)>,
    /// Every alert full screen (`a`), and how far it is scrolled; `None` while the pane shows them.
    pub full: Option<Scroll>,
}

/// What the alert rules look at.
pub struct Inputs<'a> {
    pub snapshot: Option<&'a Snapshot>,
    pub link: LinkHealth,
    pub probe: Option<&'a ProbeReport>,
    /// Each target's standing from the latest history: once one is in force, its refused, downgraded and lingering
    /// clients are alerts too.
    pub after: &'a [crate::analysis::after::Standing],
    /// Each pooler's client side under each target: clients its own log showed refused are alerts too.
    pub pooler_after: &'a [crate::analysis::after::PoolerAfter],
    pub now: DateTime<Utc>,
}

impl Alerts {
    /// `a`: open every alert full screen from its top, or close it.
    pub fn toggle_full(&mut self) {
        self.full = match self.full {
            Some(_) => None,
            None => Some(Scroll::default()),
        };
    }

    /// Evaluate every rule; true when a critical alert began and the configuration wants the bell.
    pub fn update(&mut self, inputs: Inputs) -> bool {
        let mut current = evaluate_with(inputs.snapshot, &inputs.link, &self.config);
        if let Some(report) = inputs.probe {
            current.extend(probe_alerts(report));
        }
        for report in inputs.after.iter().filter_map(crate::analysis::after::Standing::report) {
            current.extend(
                crate::analysis::after::alerts(report)
                    .into_iter()
                    .filter_map(|mut a| crate::analysis::alerts::configure(&mut a, &self.config).then_some(a)),
            );
        }
        current.extend(
            crate::analysis::after::pooler_alerts(inputs.pooler_after)
                .into_iter()
                .filter_map(|mut a| crate::analysis::alerts::configure(&mut a, &self.config).then_some(a)),
        );
        if let Some((total, latest)) = &self.forged_log_lines {
            current.extend(crate::analysis::alerts::forged_log_lines(*total, latest, &self.config));
        }
        let began = self.log.update(current, inputs.now);
        let critical_began = self
            .log
            .active()
            .any(|e| e.alert.severity == Severity::Critical && began.contains(&e.alert.key));
        critical_began && self.config.bell
    }
}

/// Probe findings as alerts, so certificate and protocol problems sit with the others.
pub fn probe_alerts(report: &ProbeReport) -> Vec<Alert> {
    report
        .findings
        .iter()
        .enumerate()
        .map(|(i, f)| Alert {
            key: format!("probe_{i}_{}", f.message.chars().take(24).collect::<String>()),
            severity: f.severity,
            title: f.message.split(':').next().unwrap_or(&f.message).to_string(),
            detail: f.message.clone(),
            count: 1,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    #[test]
    fn the_bell_rings_once_when_a_critical_alert_begins_and_only_if_asked() {
        let snap = fixtures::snapshot();
        let inputs = |snapshot| Inputs {
            after: &[],
            pooler_after: &[],
            snapshot,
            link: LinkHealth::Up,
            probe: None,
            now: fixtures::now(),
        };
        let mut quiet = Alerts::default();
        quiet.config.bell = false;
        assert!(!quiet.update(inputs(Some(&snap))));
        let mut loud = Alerts::default();
        loud.config.bell = true;
        let rang = loud.update(inputs(Some(&snap)));
        let critical = loud.log.active().any(|e| e.alert.severity == Severity::Critical);
        assert_eq!(rang, critical, "the fixture's critical alerts ring the bell");
        assert!(!loud.update(inputs(Some(&snap))), "not again while they hold");
    }

    #[test]
    fn the_full_screen_opens_at_the_top_and_closes() {
        let mut a = Alerts::default();
        a.toggle_full();
        let scroll = a.full.as_mut().expect("open");
        scroll.set_max(5);
        scroll.by(3);
        a.toggle_full();
        assert!(a.full.is_none());
        a.toggle_full();
        assert_eq!(a.full.map(|s| s.offset()), Some(0));
    }
}
