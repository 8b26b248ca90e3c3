//! One origin fetch per key, however many requests miss it at once (nginx's `proxy_cache_lock`):
//! the first to miss leads the fetch, the others follow it and get what it got.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::cache::Object;
use crate::key::CacheKey;
use crate::origin::OriginError;

/// What a leader hands its followers.
#[derive(Clone)]
pub(crate) enum Shared {
    /// A storable object (just fetched, or the stale copy served because the origin failed;
    /// not kept when a purge came during the fetch): followers serve it as a hit, or as stale
    /// once past its freshness.
    Stored(Arc<Object>),
    /// The origin failed and there was no stale copy.
    Failed(OriginError),
    /// Nothing to share (too large to buffer, or a response that may not be stored): each
    /// follower fetches for itself.
    FetchYourself,
}

/// In-flight origin fetches by key.
#[derive(Default)]
pub(crate) struct Flights {
    inner: Mutex<HashMap<CacheKey, watch::Receiver<Option<Shared>>>>,
}

/// The part a request takes in the fetch of its key.
pub(crate) enum Join {
    /// No fetch of the key was under way: this request makes it.
    Lead(Leader),
    /// Another request is fetching the key.
    Follow(Follower),
}

/// The request that fetches for everyone waiting on its key. Dropping it without
/// [`Leader::finish`] (the client went away) releases the followers, who then try again.
pub(crate) struct Leader {
    flights: Arc<Flights>,
    key: CacheKey,
    tx: watch::Sender<Option<Shared>>,
}

impl Leader {
    pub fn finish(self, outcome: Shared) {
        let _ = self.tx.send(Some(outcome));
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        if let Ok(mut m) = self.flights.inner.lock() {
            m.remove(&self.key);
        }
    }
}

/// A request waiting for a leader's outcome.
pub(crate) struct Follower(watch::Receiver<Option<Shared>>);

/// How a follower's wait ended.
pub(crate) enum Waited {
    Done(Shared),
    /// The leader's client went away before its fetch ended.
    LeaderGone,
    /// The leader took longer than the wait allows.
    TimedOut,
}

impl Follower {
    pub async fn wait(mut self, timeout: Duration) -> Waited {
        // The watch's guard must not live across an await: the value is cloned out.
        match tokio::time::timeout(timeout, self.0.wait_for(|v| v.is_some())).await {
            Err(_) => Waited::TimedOut,
            Ok(Err(_)) => Waited::LeaderGone,
            Ok(Ok(v)) => v.clone().map_or(Waited::LeaderGone, Waited::Done),
        }
    }
}

impl Flights {
    /// Joins the fetch of `key`, or starts it.
    pub fn join(self: &Arc<Self>, key: &CacheKey) -> Join {
        let mut m = match self.inner.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        if let Some(rx) = m.get(key) {
            return Join::Follow(Follower(rx.clone()));
        }
        let (tx, rx) = watch::channel(None);
        m.insert(key.clone(), rx);
        Join::Lead(Leader {
            flights: Arc::clone(self),
            key: key.clone(),
            tx,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CacheKey {
        CacheKey {
            resource: 1,
            path: b"/a"[..].into(),
        }
    }

    #[tokio::test]
    async fn followers_get_the_leaders_outcome_and_a_gone_leader_releases_them() {
        let flights = Arc::new(Flights::default());
        let Join::Lead(leader) = flights.join(&key()) else {
            panic!("the first request leads")
        };
        let Join::Follow(f) = flights.join(&key()) else {
            panic!("the second follows")
        };
        leader.finish(Shared::Failed(OriginError::Timeout));
        assert!(matches!(
            f.wait(Duration::from_secs(5)).await,
            Waited::Done(Shared::Failed(OriginError::Timeout))
        ));
        assert!(
            matches!(flights.join(&key()), Join::Lead(_)),
            "a finished flight ends"
        );

        let Join::Lead(leader) = flights.join(&key()) else {
            panic!()
        };
        let Join::Follow(f) = flights.join(&key()) else {
            panic!()
        };
        drop(leader);
        assert!(matches!(
            f.wait(Duration::from_secs(5)).await,
            Waited::LeaderGone
        ));
        let Join::Lead(_leader) = flights.join(&key()) else {
            panic!()
        };
        let Join::Follow(f) = flights.join(&key()) else {
            panic!()
        };
        assert!(matches!(
            f.wait(Duration::from_millis(10)).await,
            Waited::TimedOut
        ));
    }
}
