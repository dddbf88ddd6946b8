//! The poolers of a continuous poller (dashboard, `serve`), polled on a task of their own: a round is asked for
//! with each poll of the server and never waited for. A console that does not answer holds up only its own
//! round, bounded by the poll timeout; each server poll joins the latest answers there are.

use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::Poolers;
use crate::model::{Pooler, Snapshot};

pub struct PoolerFeed {
    /// Capacity one: a round asked for while one is pending is the same round.
    requests: mpsc::Sender<Duration>,
    latest: watch::Receiver<Vec<Pooler>>,
    task: JoinHandle<()>,
}

impl Drop for PoolerFeed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PoolerFeed {
    pub fn start(mut poolers: Poolers) -> PoolerFeed {
        let (publish, latest) = watch::channel(poolers.waiting());
        let (requests, mut asked) = mpsc::channel::<Duration>(1);
        let task = tokio::spawn(async move {
            while let Some(limit) = asked.recv().await {
                let answered = poolers.poll(limit).await;
                if publish.send(answered).is_err() {
                    return;
                }
            }
        });
        PoolerFeed { requests, latest, task }
    }

    /// Start a round, each console bounded by `limit`, unless one is under way or already asked for.
    pub fn request(&self, limit: Duration) {
        let _ = self.requests.try_send(limit);
    }

    /// The latest answers in the snapshot, joined to its sessions.
    pub fn attach(&self, snapshot: &mut Snapshot) {
        let poolers = self.latest.borrow().clone();
        if poolers.is_empty() {
            return;
        }
        crate::analysis::pooler::join(&mut snapshot.sessions, &poolers);
        snapshot.poolers = poolers;
    }
}
