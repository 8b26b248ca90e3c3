//! Which of a resource's origin sources a request tries, and in what order (nginx's upstream
//! with `backup` servers): the primaries in turn (round robin), then the backups; a source that
//! failed to connect or answer in time is left out for [`FAIL_TIMEOUT`] (nginx's `max_fails=1
//! fail_timeout=10s`) unless every source is, and with the group's `useNext` a failure it lists
//! in `proxy_next_upstream` moves the request on to the next source.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use tollgate_model::Origins;

/// How long a source that failed is passed over.
pub const FAIL_TIMEOUT: Duration = Duration::from_secs(10);

/// The state of one resource's sources on this edge: which failed lately, and whose turn it is.
pub struct Health {
    /// Per source, numbered as [`source`] numbers them (primaries then backups): until when
    /// (milliseconds after `epoch`) it is passed over; 0 when it is not.
    failed_until: Box<[AtomicU64]>,
    turn: AtomicUsize,
    epoch: Instant,
}

impl Health {
    /// All sources of `origins` usable.
    pub fn new(origins: &Origins) -> Health {
        let n = origins.primaries.len() + origins.backups.len();
        Health {
            failed_until: (0..n).map(|_| AtomicU64::new(0)).collect(),
            turn: AtomicUsize::new(0),
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The sources one request may try, as indexes into `origins` (see [`source`]), in order:
    /// those not failing, primaries first from this request's turn; every source in that order
    /// when all are failing (a request is never refused without trying one).
    pub fn order(&self, origins: &Origins) -> Vec<usize> {
        let primaries = origins.primaries.len();
        let start = if primaries > 1 {
            self.turn.fetch_add(1, Relaxed) % primaries
        } else {
            0
        };
        let all = (0..primaries)
            .map(|i| (start + i) % primaries)
            .chain(primaries..self.failed_until.len());
        let now = self.now_ms();
        let usable: Vec<usize> = all
            .clone()
            .filter(|&i| self.failed_until[i].load(Relaxed) <= now)
            .collect();
        if usable.is_empty() {
            all.collect()
        } else {
            usable
        }
    }

    /// Source `i` failed to connect or to answer in time: passed over for [`FAIL_TIMEOUT`].
    pub fn failed(&self, i: usize) {
        if let Some(f) = self.failed_until.get(i) {
            let until = self
                .now_ms()
                .saturating_add(FAIL_TIMEOUT.as_millis() as u64);
            f.store(until.max(1), Relaxed);
        }
    }

    /// Source `i` answered: usable again.
    pub fn answered(&self, i: usize) {
        if let Some(f) = self.failed_until.get(i) {
            if f.load(Relaxed) != 0 {
                f.store(0, Relaxed);
            }
        }
    }
}

/// Host and port of source `i` of `origins` (primaries, then backups).
pub fn source(origins: &Origins, i: usize) -> &(String, u16) {
    let p = origins.primaries.len();
    if i < p {
        &origins.primaries[i]
    } else {
        &origins.backups[i - p]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins(primaries: &[&str], backups: &[&str]) -> Origins {
        let list = |l: &[&str]| l.iter().map(|h| (h.to_string(), 80)).collect();
        Origins {
            primaries: list(primaries),
            backups: list(backups),
            next_upstream: Default::default(),
        }
    }

    #[test]
    fn primaries_in_turn_then_backups() {
        let o = origins(&["a", "b"], &["c"]);
        let h = Health::new(&o);
        assert_eq!(h.order(&o), [0, 1, 2]);
        assert_eq!(h.order(&o), [1, 0, 2]);
        assert_eq!(h.order(&o), [0, 1, 2]);
        assert_eq!(source(&o, 2).0, "c");
    }

    #[test]
    fn a_failed_source_is_passed_over_until_it_answers() {
        let o = origins(&["a"], &["b"]);
        let h = Health::new(&o);
        h.failed(0);
        assert_eq!(h.order(&o), [1]);
        h.failed(1);
        assert_eq!(h.order(&o), [0, 1], "all failing: every source, in order");
        h.answered(0);
        assert_eq!(h.order(&o), [0]);
        h.failed(7); // out of range: ignored
    }
}
