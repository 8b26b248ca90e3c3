//! The configuration an edge holds while it follows a control plane: every resource of the
//! control plane's snapshot (active or not), at one version of one epoch, with the index that
//! keeps each hostname on one resource. A whole snapshot replaces it; a delta patches a copy,
//! and the copy is used only if every changed resource validates and no hostname ends up on two
//! resources (every change or none, as with whole snapshots).
//!
//! Resources are shared (`Arc`) with the routing table built from it, so holding both costs one
//! copy of each resource; the maps are persistent (`imbl`), so a delta of one resource costs
//! O(log resources), not a copy of 100,000 entries.

use std::sync::Arc;

use serde::Serialize;
use tollgate_model::{FieldError, Resource, Snapshot, ValidResource};

/// Why a snapshot was not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyError(pub String);

impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ApplyError {}

fn field_errors(errs: &[FieldError]) -> ApplyError {
    let list: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    ApplyError(list.join("; "))
}

/// Every resource of a control plane's configuration at one version.
#[derive(Debug, Clone, Default)]
pub struct HeldConfig {
    /// The control plane's version of it.
    pub version: u64,
    /// The control plane's epoch (0: from a control plane that sends no deltas).
    pub epoch: u64,
    resources: imbl::OrdMap<u64, Arc<ValidResource>>,
    /// Lower-cased hostname -> resource id, over every resource, active or not (the control
    /// plane reserves the hostnames of inactive resources too).
    hosts: imbl::HashMap<String, u64>,
}

/// How a configuration differs from the one it was reached from.
#[derive(Debug)]
pub enum Change {
    /// Replaced whole.
    Whole,
    /// Patched: these resources were replaced or added, these ids deleted.
    Delta {
        /// The new versions of changed resources.
        changed: Vec<Arc<ValidResource>>,
        /// Deleted ids.
        removed: Vec<u64>,
    },
}

/// The saved form: a whole snapshot without purges, written from borrowed resources.
#[derive(Serialize)]
struct SavedForm<'a> {
    version: u64,
    #[serde(skip_serializing_if = "is_zero")]
    epoch: u64,
    resources: Vec<&'a Resource>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl HeldConfig {
    /// A whole snapshot, validated: every resource, and no hostname on two of them.
    pub(crate) fn whole(snap: Snapshot) -> Result<HeldConfig, ApplyError> {
        if snap.delta_from.is_some() || !snap.deleted.is_empty() {
            return Err(ApplyError(
                "a delta where a whole snapshot was expected".into(),
            ));
        }
        let valid = tollgate_model::validate_all(snap.resources).map_err(|e| field_errors(&e))?;
        let mut held = HeldConfig {
            version: snap.version,
            epoch: snap.epoch,
            ..HeldConfig::default()
        };
        for v in valid {
            for h in v.hostnames() {
                held.hosts.insert(h.clone(), v.id);
            }
            held.resources.insert(v.id, Arc::new(v));
        }
        Ok(held)
    }

    /// The configuration `snap` leads to from this one: `snap` itself when it is whole, this one
    /// patched when it is a delta from this version and epoch; and how it differs.
    pub(crate) fn next(&self, snap: Snapshot) -> Result<(HeldConfig, Change), ApplyError> {
        match snap.delta_from {
            None => Ok((HeldConfig::whole(snap)?, Change::Whole)),
            // The control plane vouches that the state held is of its history (the epoch may
            // be a newer one: it restarted since).
            Some(from) if from == self.version && self.epoch != 0 => self.patched(snap),
            Some(from) => Err(ApplyError(format!(
                "a delta from version {from} of epoch {} does not apply to version {} of epoch {}",
                snap.epoch, self.version, self.epoch
            ))),
        }
    }

    fn patched(&self, snap: Snapshot) -> Result<(HeldConfig, Change), ApplyError> {
        // Validated alone first, which also finds a hostname given to two changed resources.
        let changed = tollgate_model::validate_all(snap.resources).map_err(|e| field_errors(&e))?;
        let mut next = self.clone();
        next.version = snap.version;
        next.epoch = snap.epoch;
        for id in snap.deleted.iter().chain(changed.iter().map(|v| &v.id)) {
            if let Some(old) = next.resources.remove(id) {
                for h in old.hostnames() {
                    if next.hosts.get(h) == Some(id) {
                        next.hosts.remove(h);
                    }
                }
            }
        }
        let mut errors = Vec::new();
        let changed: Vec<Arc<ValidResource>> = changed.into_iter().map(Arc::new).collect();
        for v in &changed {
            for h in v.hostnames() {
                if let Some(other) = next.hosts.insert(h.clone(), v.id) {
                    errors.push(format!(
                        "(id {}).cname: hostname {h} is already used by resource {other}",
                        v.id
                    ));
                }
            }
            next.resources.insert(v.id, Arc::clone(v));
        }
        if errors.is_empty() {
            let removed = snap.deleted;
            Ok((next, Change::Delta { changed, removed }))
        } else {
            Err(ApplyError(errors.join("; ")))
        }
    }

    pub(crate) fn resource(&self, id: u64) -> Option<&Arc<ValidResource>> {
        self.resources.get(&id)
    }

    /// Every resource, by id.
    pub(crate) fn resources(&self) -> impl Iterator<Item = &Arc<ValidResource>> + '_ {
        self.resources.values()
    }

    /// How many resources there are.
    pub fn len(&self) -> usize {
        self.resources.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }

    /// The saved form (a whole snapshot's JSON, without purges), which [`HeldConfig::whole`]
    /// reads back.
    pub(crate) fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(&SavedForm {
            version: self.version,
            epoch: self.epoch,
            resources: self.resources.values().map(|v| &v.resource).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(id: u64, cname: &str) -> Resource {
        let mut r: Resource = serde_json::from_str(&format!(
            r#"{{"id": {id}, "cname": "{cname}", "origin": "127.0.0.1:9"}}"#
        ))
        .unwrap();
        r.id = id;
        r
    }

    fn whole(version: u64, epoch: u64, resources: Vec<Resource>) -> Snapshot {
        Snapshot {
            version,
            epoch,
            resources,
            ..Snapshot::default()
        }
    }

    fn delta(from: u64, version: u64, resources: Vec<Resource>, deleted: Vec<u64>) -> Snapshot {
        Snapshot {
            version,
            epoch: 7,
            delta_from: Some(from),
            resources,
            deleted,
            ..Snapshot::default()
        }
    }

    fn owner(h: &HeldConfig, host: &str) -> Option<u64> {
        h.hosts.get(host).copied()
    }

    #[test]
    fn a_delta_patches_and_the_result_equals_the_whole_snapshot() {
        let base = HeldConfig::whole(whole(
            3,
            7,
            vec![
                res(1, "a.example.com"),
                res(2, "b.example.com"),
                res(3, "c.example.com"),
            ],
        ))
        .unwrap();
        // 1 changes hostname to b's, 2 is deleted, 4 is new.
        let (next, _) = base
            .next(delta(
                3,
                6,
                vec![res(1, "b.example.com"), res(4, "d.example.com")],
                vec![2],
            ))
            .unwrap();
        let expected = HeldConfig::whole(whole(
            6,
            7,
            vec![
                res(1, "b.example.com"),
                res(3, "c.example.com"),
                res(4, "d.example.com"),
            ],
        ))
        .unwrap();
        assert_eq!(next.to_json().unwrap(), expected.to_json().unwrap());
        assert_eq!(next.hosts, expected.hosts);
        assert_eq!(owner(&next, "a.example.com"), None);
        // The original is untouched.
        assert_eq!(
            (base.version, base.len(), owner(&base, "b.example.com")),
            (3, 3, Some(2))
        );
    }

    #[test]
    fn a_delta_that_would_give_a_hostname_to_two_resources_is_refused_whole() {
        let base = HeldConfig::whole(whole(
            3,
            7,
            vec![res(1, "a.example.com"), res(2, "b.example.com")],
        ))
        .unwrap();
        let err = base
            .next(delta(
                3,
                4,
                vec![res(3, "new.example.com"), res(4, "a.example.com")],
                vec![],
            ))
            .unwrap_err();
        assert!(
            err.0
                .contains("a.example.com is already used by resource 1"),
            "{err}"
        );
        // Swapping two hostnames in one delta is fine.
        let (swapped, _) = base
            .next(delta(
                3,
                4,
                vec![res(1, "b.example.com"), res(2, "a.example.com")],
                vec![],
            ))
            .unwrap();
        assert_eq!(owner(&swapped, "a.example.com"), Some(2));
        // An invalid resource refuses the delta.
        let mut bad = res(2, "b.example.com");
        bad.origin = None;
        assert!(base.next(delta(3, 4, vec![bad], vec![])).is_err());
    }

    #[test]
    fn a_delta_from_another_version_or_to_a_legacy_config_is_refused() {
        let base = HeldConfig::whole(whole(3, 7, vec![res(1, "a.example.com")])).unwrap();
        assert!(base.next(delta(2, 4, vec![], vec![])).is_err());
        // A newer epoch is the control plane's word that this state is of its history.
        let mut newer_epoch = delta(3, 4, vec![], vec![]);
        newer_epoch.epoch = 8;
        assert_eq!(base.next(newer_epoch).unwrap().0.epoch, 8);
        let legacy = HeldConfig::whole(whole(3, 0, vec![])).unwrap();
        let mut no_epoch = delta(3, 4, vec![], vec![]);
        no_epoch.epoch = 0;
        assert!(legacy.next(no_epoch).is_err());
        // Deleting what is not there is harmless (it was created and deleted meanwhile).
        assert_eq!(base.next(delta(3, 4, vec![], vec![99])).unwrap().0.len(), 1);
    }

    #[test]
    fn the_saved_form_reads_back_as_a_whole_snapshot() {
        let held = HeldConfig::whole(whole(9, 7, vec![res(1, "a.example.com")])).unwrap();
        let snap: Snapshot = serde_json::from_slice(&held.to_json().unwrap()).unwrap();
        assert_eq!((snap.version, snap.epoch, snap.delta_from), (9, 7, None));
        assert_eq!(
            HeldConfig::whole(snap).unwrap().to_json().unwrap(),
            held.to_json().unwrap()
        );
    }
}
