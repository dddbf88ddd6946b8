//! The drill-down of one session; keeps the last values when the session ends.

use chrono::{DateTime, Utc};

use super::Scroll;
use crate::model::{Session, Snapshot};

#[derive(Debug, Clone, PartialEq)]
pub struct Detail {
    pub pid: i32,
    pub session: Session,
    /// Server time of the first snapshot without this session.
    pub ended_at: Option<DateTime<Utc>>,
    pub scroll: Scroll,
}

impl Detail {
    pub fn open(session: &Session) -> Detail {
        Detail {
            pid: session.pid,
            session: session.clone(),
            ended_at: None,
            scroll: Scroll::default(),
        }
    }

    /// A new snapshot: the session's new values, or the time it was first missing.
    pub fn refresh(&mut self, snap: &Snapshot) {
        match snap.sessions.iter().find(|s| s.pid == self.pid) {
            Some(s) => {
                self.session = s.clone();
                self.ended_at = None;
            }
            None => {
                self.ended_at.get_or_insert(snap.taken_at);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    #[test]
    fn an_ended_session_keeps_its_first_missing_time() {
        let snap = fixtures::snapshot();
        let mut d = Detail::open(&snap.sessions[0]);
        let mut later = snap.clone();
        later.sessions.retain(|s| s.pid != d.pid);
        d.refresh(&later);
        let ended = later.taken_at;
        later.taken_at += chrono::Duration::seconds(5);
        d.refresh(&later);
        assert_eq!(d.ended_at, Some(ended));
        d.refresh(&snap);
        assert_eq!(d.ended_at, None, "back (a reused pid shows the new session)");
    }
}
