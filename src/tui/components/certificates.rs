//! The Certificates screen: the probe's state and the report's scroll position.

use super::Scroll;
use crate::probe::{ProbeError, ProbeReport};

/// The certificate probe, run on demand.
#[derive(Debug, Clone, PartialEq)]
pub enum ProbeView {
    NotRun,
    Running,
    Done(Box<ProbeReport>),
    Failed(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Certificates {
    pub probe: ProbeView,
    pub scroll: Scroll,
}

impl Default for Certificates {
    fn default() -> Self {
        Certificates {
            probe: ProbeView::NotRun,
            scroll: Scroll::default(),
        }
    }
}

impl Certificates {
    /// `P`, or the screen opening for the first time (`only_first`): true when a probe should start.
    /// A probe already running is never doubled.
    pub fn request(&mut self, only_first: bool) -> bool {
        let start = match self.probe {
            ProbeView::Running => false,
            ProbeView::NotRun => true,
            ProbeView::Done(_) | ProbeView::Failed(_) => !only_first,
        };
        if start {
            self.probe = ProbeView::Running;
        }
        start
    }

    pub fn finished(&mut self, result: Result<Box<ProbeReport>, std::sync::Arc<ProbeError>>) {
        self.probe = match result {
            Ok(report) => ProbeView::Done(report),
            Err(e) => ProbeView::Failed(e.to_string()),
        };
        self.scroll = Scroll::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_probe_is_not_started_again() {
        let mut c = Certificates::default();
        assert!(c.request(true), "first visit probes");
        assert!(!c.request(false), "P while running does nothing");
        c.finished(Err(std::sync::Arc::new(ProbeError::NoTcpHost)));
        assert!(!c.request(true), "a later visit does not probe again");
        assert!(c.request(false), "P does");
        assert_eq!(c.probe, ProbeView::Running);
    }
}
