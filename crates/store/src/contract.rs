//! One set of behaviours, run against both backends: SQLite in a temporary file and PostgreSQL
//! on the real server in a database made for the test.

use tollgate_model::{PurgeRequest, Resource, ValidResource};

use crate::{PgStore, Role, Selection, SqliteStore, Store, StoreError};
use tollgate_testkit::TempDir;

fn resource(cname: &str, key: &str) -> ValidResource {
    let json = format!(
        r#"{{"id": 0, "cname": "{cname}", "origin": "127.0.0.1:8081",
            "options": {{"secure_key": {{"enabled": true, "key": "{key}", "type": 0}}}}}}"#
    );
    serde_json::from_str::<Resource>(&json)
        .unwrap()
        .validate()
        .unwrap()
}

fn with_id(mut r: ValidResource, id: u64) -> ValidResource {
    r.id = id;
    r.resource.id = id;
    r
}

fn crud_and_versions(s: &dyn Store) {
    assert_eq!(s.version().unwrap(), 0);
    let a = s
        .create(&resource("a.example.com", "secret_one"), "alice")
        .unwrap();
    let b = s
        .create(&resource("b.example.com", "secret_two"), "alice")
        .unwrap();
    assert_ne!(a.id, b.id);
    assert_eq!(s.get(a.id).unwrap(), a);
    assert_eq!(s.list().unwrap(), vec![a.clone(), b.clone()]);
    assert_eq!(s.version().unwrap(), 2);

    let mut changed = resource("a.example.com", "secret_new");
    changed.resource.origin = Some("127.0.0.1:9".into());
    let updated = s.update(&with_id(changed, a.id), "bob").unwrap();
    assert_eq!(updated.origin.as_deref(), Some("127.0.0.1:9"));
    assert_eq!(s.version().unwrap(), 3);

    let v = s
        .purge(
            a.id,
            &PurgeRequest {
                urls: Some(vec!["/x".into()]),
                paths: None,
            },
            "bob",
        )
        .unwrap();
    assert_eq!(v, 4);
    let snap = s.snapshot(3, None).unwrap();
    assert_eq!(
        (snap.version, snap.resources.len(), snap.purges.len()),
        (4, 2, 1)
    );
    assert_eq!(snap.purges[0].resource, a.id);
    assert!(s.snapshot(4, None).unwrap().purges.is_empty());
    assert!(
        s.snapshot(0, None).unwrap().purges.is_empty(),
        "a new edge has nothing to purge"
    );

    // A prefetch reaches edges behind it, not a new edge, and is in the audit log.
    let want = tollgate_model::PrefetchRequest {
        paths: vec!["/big.mp4".into(), "/b?x=1".into()],
    };
    assert_eq!(s.prefetch(a.id, &want, "bob").unwrap(), 5);
    let snap = s.snapshot(4, None).unwrap();
    assert_eq!(snap.prefetches.len(), 1);
    assert_eq!(
        (snap.prefetches[0].resource, snap.prefetches[0].version),
        (a.id, 5)
    );
    assert_eq!(snap.prefetches[0].what, want);
    assert!(snap.purges.is_empty(), "a prefetch is no purge");
    assert!(s.snapshot(5, None).unwrap().prefetches.is_empty());
    assert!(s.snapshot(0, None).unwrap().prefetches.is_empty());
    assert!(matches!(
        s.prefetch(999, &want, "bob"),
        Err(StoreError::NotFound)
    ));
    s.record("edge:e1", "resource.prefetch_failed", a.id, "{}")
        .unwrap();
    let actions: Vec<String> = s
        .audit(10, None)
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert!(
        actions.contains(&"resource.prefetch".to_owned())
            && actions.contains(&"resource.prefetch_failed".to_owned()),
        "{actions:?}"
    );

    s.delete(b.id, "bob").unwrap();
    assert!(matches!(s.get(b.id), Err(StoreError::NotFound)));
    assert!(matches!(s.delete(b.id, "bob"), Err(StoreError::NotFound)));
    // The deleted resource's hostname is free again.
    s.create(&resource("b.example.com", "secret_two"), "bob")
        .unwrap();

    let audit = s.audit(10, None).unwrap();
    // One resource's entries only, newest first.
    let of_a = s.audit(10, Some(a.id)).unwrap();
    assert!(
        !of_a.is_empty() && of_a.iter().all(|e| e.resource == Some(a.id)),
        "{of_a:?}"
    );
    assert!(of_a.windows(2).all(|w| w[0].id > w[1].id), "{of_a:?}");
    assert!(audit.iter().any(|e| e.resource != Some(a.id)), "{audit:?}");
    assert!(s.audit(10, Some(999_999)).unwrap().is_empty());
    let text = format!("{audit:?}");
    assert!(
        !text.contains("secret_"),
        "audit must not hold keys: {text}"
    );
    assert_eq!(audit[0].action, "resource.create");
    let update = audit
        .iter()
        .find(|e| e.action == "resource.update")
        .unwrap();
    assert_eq!(update.actor, "bob");
    // A new origin without a group is a new group of that one source.
    assert_eq!(update.detail, "options.secure_key.key,originGroup");
}

fn refused_changes_leave_nothing(s: &dyn Store) {
    let a = s
        .create(&resource("a.example.com", "secret_one"), "t")
        .unwrap();
    let version = s.version().unwrap();
    let err = s
        .create(&resource("A.example.com", "secret_two"), "t")
        .unwrap_err();
    match err {
        StoreError::Conflict { field, message } => {
            assert_eq!(field, "cname");
            assert!(message.contains(&format!("resource {}", a.id)), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let b = s
        .create(&resource("b.example.com", "secret_two"), "t")
        .unwrap();
    let version = version + 1;
    // Moving b onto a's hostname is refused and b keeps its own.
    let moved = with_id(resource("a.example.com", "secret_two"), b.id);
    assert!(matches!(
        s.update(&moved, "t"),
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(s.get(b.id).unwrap().cname, "b.example.com");
    assert_eq!(s.list().unwrap().len(), 2);
    assert_eq!(s.version().unwrap(), version);
    assert!(matches!(
        s.update(&with_id(resource("c.example.com", "secret_two"), 999), "t"),
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.purge(
            999,
            &PurgeRequest {
                urls: None,
                paths: Some(vec![])
            },
            "t"
        ),
        Err(StoreError::NotFound)
    ));
    assert_eq!(s.version().unwrap(), version);
}

fn tokens(s: &dyn Store) {
    assert_eq!(s.token_count().unwrap(), 0);
    let id = s.add_token("first", Role::Api, "hash-1", "setup").unwrap();
    s.add_token("edge-1", Role::Edge, "hash-2", "first")
        .unwrap();
    assert_eq!(s.token_count().unwrap(), 2);
    let t = s.find_token("hash-1").unwrap().unwrap();
    assert_eq!((t.id, t.name.as_str(), t.role), (id, "first", Role::Api));
    assert_eq!(s.find_token("hash-2").unwrap().unwrap().role, Role::Edge);
    assert!(s.find_token("nope").unwrap().is_none());
    assert!(s.add_token("dup", Role::Api, "hash-1", "first").is_err());

    let names: Vec<String> = s
        .list_tokens()
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["first", "edge-1"]);
    assert!(
        matches!(
            s.delete_token(id, "first"),
            Err(StoreError::Conflict { .. })
        ),
        "the last API token stays"
    );
    let edge = s.find_token("hash-2").unwrap().unwrap().id;
    s.delete_token(edge, "first").unwrap();
    assert!(
        s.find_token("hash-2").unwrap().is_none(),
        "a revoked token is unknown"
    );
    assert!(matches!(
        s.delete_token(edge, "first"),
        Err(StoreError::NotFound)
    ));
    s.add_token("second", Role::Api, "hash-3", "first").unwrap();
    s.delete_token(id, "second").unwrap();
    assert!(s.find_token("hash-1").unwrap().is_none());
    assert!(s
        .audit(10, None)
        .unwrap()
        .iter()
        .any(|e| e.action == "token.delete" && e.detail == "edge-1 (edge)"));
}

fn selections(s: &dyn Store) {
    let ids: Vec<u64> = (0..5)
        .map(|i| {
            s.create(&resource(&format!("s{i}.example.com"), "secret_one"), "t")
                .unwrap()
                .id
        })
        .collect();
    let page = |offset, limit| {
        let got = s.select(&Selection::Page { offset, limit }).unwrap();
        let ids: Vec<u64> = got.resources.iter().map(|(r, _)| r.id).collect();
        (ids, got.total)
    };
    assert_eq!(page(0, None), (ids.clone(), 5));
    assert_eq!(page(1, Some(2)), (ids[1..3].to_vec(), 5));
    assert_eq!(page(4, Some(u64::MAX)), (ids[4..].to_vec(), 5));
    assert_eq!(page(u64::MAX, None), (vec![], 5));
    let by_host = s
        .select(&Selection::Hostname("s3.example.com".into()))
        .unwrap();
    assert_eq!(by_host.resources.len(), 1);
    let (r, version) = &by_host.resources[0];
    assert_eq!(
        (r.id, *version),
        (ids[3], 4),
        "the version of its last change"
    );
    assert_eq!(
        r.origin.as_deref(),
        Some("127.0.0.1:8081"),
        "its group resolved"
    );
    let by_id = s.select(&Selection::Id(ids[3])).unwrap();
    assert_eq!(by_id.resources, by_host.resources);
    assert!(s.select(&Selection::Id(999)).unwrap().resources.is_empty());
    assert!(s
        .select(&Selection::Hostname("none.example.com".into()))
        .unwrap()
        .resources
        .is_empty());
}

fn origin_groups(s: &dyn Store) {
    let group: tollgate_model::OriginGroup = serde_json::from_str(
        r#"{"name": "g", "sources": [{"source": "a.example"}, {"source": "b.example", "backup": true}]}"#,
    )
    .unwrap();
    let g = s.create_group(&group, "alice").unwrap();
    assert!(!g.in_use);
    assert_eq!(
        s.version().unwrap(),
        0,
        "a group alone changes nothing edges hold"
    );
    let json = format!(
        r#"{{"id": 0, "cname": "g.example.com", "originGroup": {}, "originGroup_detail": {}}}"#,
        g.group.id,
        serde_json::to_string(&g.group).unwrap()
    );
    let valid = serde_json::from_str::<Resource>(&json)
        .unwrap()
        .validate()
        .unwrap();
    let r = s.create(&valid, "alice").unwrap();
    assert_eq!(r.origin.as_deref(), Some("a.example"));
    assert_eq!(r.origin_group_detail.as_ref(), Some(&g.group));
    assert!(s.get_group(g.group.id).unwrap().in_use);

    // A change of the group is a change of the resources using it, for edges.
    s.begin_epoch(77).unwrap();
    let v = s.version().unwrap();
    let mut changed = g.group.clone();
    changed.sources.remove(0);
    changed.sources[0].backup = false;
    s.update_group(&changed, "bob").unwrap();
    let delta = s.snapshot(v, Some(77)).unwrap();
    assert_eq!(delta.delta_from, Some(v));
    assert_eq!(delta.resources.len(), 1);
    assert_eq!(delta.resources[0].origin.as_deref(), Some("b.example"));
    assert_eq!(s.get(r.id).unwrap().origin.as_deref(), Some("b.example"));

    // A group in use stays; a missing one is not referred to.
    assert!(matches!(
        s.delete_group(g.group.id, "bob"),
        Err(StoreError::Conflict { .. })
    ));
    let mut missing = valid.clone();
    missing.resource.origin_group = Some(999);
    missing.resource.cname = "m.example.com".into();
    assert!(matches!(
        s.create(&missing, "bob"),
        Err(StoreError::Conflict { field, .. }) if field == "originGroup"
    ));
    s.delete(r.id, "bob").unwrap();
    s.delete_group(g.group.id, "bob").unwrap();
    assert!(matches!(
        s.get_group(g.group.id),
        Err(StoreError::NoOriginGroup)
    ));
    assert!(s.list_groups().unwrap().is_empty());
}

fn sqlite() -> (TempDir, SqliteStore) {
    let dir = TempDir::new("store");
    let s = SqliteStore::open(&dir.0.join("t.db")).unwrap();
    (dir, s)
}

#[test]
fn sqlite_contract() {
    for case in [
        crud_and_versions,
        refused_changes_leave_nothing,
        tokens,
        origin_groups,
        selections,
    ] {
        let (_dir, s) = sqlite();
        case(&s);
    }
}

#[test]
fn sqlite_survives_reopen() {
    let (dir, s) = sqlite();
    let a = s
        .create(&resource("a.example.com", "secret_one"), "t")
        .unwrap();
    drop(s);
    let again = SqliteStore::open(&dir.0.join("t.db")).unwrap();
    assert_eq!(again.get(a.id).unwrap(), a);
    assert_eq!(again.version().unwrap(), 1);
}

#[test]
fn postgres_contract() {
    for case in [
        crud_and_versions,
        refused_changes_leave_nothing,
        tokens,
        origin_groups,
        selections,
    ] {
        let db = tollgate_testkit::pg::TempDb::create("store");
        let s = PgStore::open(&db.url).unwrap();
        case(&s);
    }
}

#[test]
fn postgres_two_nodes_race_for_a_hostname() {
    let db = tollgate_testkit::pg::TempDb::create("race");
    let nodes: Vec<PgStore> = (0..2).map(|_| PgStore::open(&db.url).unwrap()).collect();
    let results: Vec<_> = std::thread::scope(|sc| {
        let handles: Vec<_> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                sc.spawn(move || {
                    (0..20)
                        .map(|j| {
                            n.create(
                                &resource(&format!("h{j}.example.com"), "secret_one"),
                                &format!("node{i}"),
                            )
                            .is_ok()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (j, (a, b)) in results[0].iter().zip(&results[1]).enumerate() {
        assert_eq!(
            u8::from(*a) + u8::from(*b),
            1,
            "exactly one node gets h{j}.example.com"
        );
    }
    assert_eq!(nodes[0].list().unwrap().len(), 20);
    assert_eq!(nodes[1].version().unwrap(), 20);
}

#[test]
fn postgres_announces_commits_to_other_nodes() {
    use std::time::{Duration, Instant};
    let db = tollgate_testkit::pg::TempDb::create("notify");
    let (a, b) = (
        PgStore::open(&db.url).unwrap(),
        PgStore::open(&db.url).unwrap(),
    );
    // The first call connects the listener; nothing has happened yet.
    assert!(!b.wait_for_change(Duration::from_millis(100)));
    std::thread::scope(|sc| {
        let waiter = sc.spawn(|| {
            let t = Instant::now();
            (b.wait_for_change(Duration::from_secs(10)), t.elapsed())
        });
        std::thread::sleep(Duration::from_millis(100));
        a.create(&resource("n.example.com", "secret_one"), "a")
            .unwrap();
        let (woken, took) = waiter.join().unwrap();
        assert!(
            woken && took < Duration::from_secs(5),
            "woken by the commit: {woken} after {took:?}"
        );
    });
    // A refused change announces nothing: the notification belongs to the rolled-back
    // transaction.
    assert!(a
        .create(&resource("n.example.com", "secret_one"), "a")
        .is_err());
    assert!(!b.wait_for_change(Duration::from_millis(300)));
}

/// With a retention of 0 s: after a second, the next purge drops the older records.
fn an_edge_behind_the_retention_is_told_to_purge_everything(s: &dyn Store) {
    let a = s
        .create(&resource("a.example.com", "secret_one"), "t")
        .unwrap();
    let b = s
        .create(&resource("b.example.com", "secret_two"), "t")
        .unwrap();
    let urls = |u: &str| PurgeRequest {
        urls: Some(vec![u.to_owned()]),
        paths: None,
    };
    assert_eq!(s.purge(a.id, &urls("/x"), "t").unwrap(), 3);
    // Within the retention: the purge itself.
    let snap = s.snapshot(2, None).unwrap();
    assert_eq!(snap.purges.len(), 1);
    assert_eq!(snap.purges[0].what, urls("/x"));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(s.purge(b.id, &urls("/y"), "t").unwrap(), 4);
    // The record of version 3 is gone: an edge at version 2 may have missed it.
    let snap = s.snapshot(2, None).unwrap();
    let mut everything: Vec<_> = snap
        .purges
        .iter()
        .map(|p| (p.resource, p.what.is_everything(), p.version))
        .collect();
    everything.sort();
    assert_eq!(everything, [(a.id, true, 4), (b.id, true, 4)], "{snap:?}");
    // An edge that saw version 3 missed nothing that was dropped.
    let snap = s.snapshot(3, None).unwrap();
    assert_eq!(snap.purges.len(), 1);
    assert_eq!(
        (snap.purges[0].resource, &snap.purges[0].what),
        (b.id, &urls("/y"))
    );
    // A fresh edge (0) gets the resources and no purges, as before.
    assert!(s.snapshot(0, None).unwrap().purges.is_empty());
}

#[test]
fn sqlite_everything_purges_after_the_retention() {
    let (_dir, s) = sqlite();
    s.set_purge_retention(0);
    an_edge_behind_the_retention_is_told_to_purge_everything(&s);
}

#[test]
fn postgres_everything_purges_after_the_retention() {
    let db = tollgate_testkit::pg::TempDb::create("retention");
    let s = PgStore::open(&db.url).unwrap();
    s.set_purge_retention(0);
    an_edge_behind_the_retention_is_told_to_purge_everything(&s);
}

fn deltas(s: &dyn Store) {
    const E: u64 = 77;
    s.begin_epoch(E).unwrap();
    let a = s
        .create(&resource("a.example.com", "secret_one"), "t")
        .unwrap();
    let b = s
        .create(&resource("b.example.com", "secret_two"), "t")
        .unwrap();
    let ids = |snap: &tollgate_model::Snapshot| -> Vec<u64> {
        snap.resources.iter().map(|r| r.id).collect()
    };
    // A new edge, or one that trusts nothing it holds (epoch 0): everything.
    for (since, epoch) in [(0, Some(E)), (2, Some(0)), (0, Some(0))] {
        let snap = s.snapshot(since, epoch).unwrap();
        assert_eq!(
            (snap.delta_from, ids(&snap), snap.epoch),
            (None, vec![a.id, b.id], E)
        );
    }
    // Up to date: an empty delta.
    let snap = s.snapshot(2, Some(E)).unwrap();
    assert_eq!(
        (snap.delta_from, ids(&snap), snap.version),
        (Some(2), vec![], 2)
    );

    let mut changed = resource("a.example.com", "secret_one");
    changed.resource.origin = Some("127.0.0.1:9".into());
    s.update(&with_id(changed, a.id), "t").unwrap();
    s.delete(b.id, "t").unwrap();
    let c = s
        .create(&resource("b.example.com", "secret_three"), "t")
        .unwrap();
    let snap = s.snapshot(2, Some(E)).unwrap();
    assert_eq!(
        (
            snap.version,
            snap.delta_from,
            ids(&snap),
            snap.deleted.clone()
        ),
        (5, Some(2), vec![a.id, c.id], vec![b.id]),
        "{snap:?}"
    );
    assert_eq!(snap.resources[0].origin.as_deref(), Some("127.0.0.1:9"));
    // From version 4: only what came after.
    let snap = s.snapshot(4, Some(E)).unwrap();
    assert_eq!((ids(&snap), snap.deleted), (vec![c.id], vec![]));
    // Another epoch, an edge ahead of the database, and an edge taking whole snapshots only:
    // everything (the last without an epoch, as older edges expect).
    for (since, epoch, answer_epoch) in [(2, Some(E + 1), E), (9, Some(E), E), (2, None, 0)] {
        let snap = s.snapshot(since, epoch).unwrap();
        assert_eq!(
            (snap.delta_from, ids(&snap), snap.deleted.len(), snap.epoch),
            (None, vec![a.id, c.id], 0, answer_epoch),
            "since {since}, epoch {epoch:?}"
        );
    }
    assert!(s.can_patch(2, E).unwrap());
    assert!(!s.can_patch(2, E + 1).unwrap());
    assert!(!s.can_patch(9, E).unwrap());
    // A control plane started again at version 5: an edge of the epoch before, at 5 or below,
    // holds a state of this history and is patched, with the new epoch in the answer.
    s.begin_epoch(E + 5).unwrap();
    let snap = s.snapshot(5, Some(E)).unwrap();
    assert_eq!((snap.delta_from, snap.epoch), (Some(5), E + 5));
    assert!(s.can_patch(4, E).unwrap());
    let d = s
        .create(&resource("d.example.com", "secret_four"), "t")
        .unwrap();
    assert_eq!(ids(&s.snapshot(4, Some(E)).unwrap()), vec![c.id, d.id]);
    // An edge claiming a version of the old epoch that this database never had under it (as
    // after restoring a backup taken at version 5): everything.
    assert!(!s.can_patch(6, E).unwrap());
    assert_eq!(s.snapshot(6, Some(E)).unwrap().delta_from, None);
    assert!(s.can_patch(6, E + 5).unwrap());
    s.begin_epoch(E + 9).unwrap();
    assert!(s.can_patch(6, E + 5).unwrap());
    assert!(s.can_patch(5, E).unwrap());
    assert!(!s.can_patch(6, E).unwrap());
}

fn deltas_after_the_retention(s: &dyn Store) {
    const E: u64 = 5;
    s.begin_epoch(E).unwrap();
    let a = s
        .create(&resource("a.example.com", "secret_one"), "t")
        .unwrap();
    let b = s
        .create(&resource("b.example.com", "secret_two"), "t")
        .unwrap();
    s.create(&resource("c.example.com", "secret_two"), "t")
        .unwrap();
    s.delete(a.id, "t").unwrap();
    assert_eq!(s.snapshot(3, Some(E)).unwrap().deleted, vec![a.id]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    s.delete(b.id, "t").unwrap();
    // The tombstone of version 4 is gone: an edge at 3 may have missed it, and gets everything.
    let snap = s.snapshot(3, Some(E)).unwrap();
    assert_eq!(
        (snap.delta_from, snap.resources.len()),
        (None, 1),
        "{snap:?}"
    );
    // An edge that saw version 4 missed nothing that was dropped.
    let snap = s.snapshot(4, Some(E)).unwrap();
    assert_eq!((snap.delta_from, snap.deleted), (Some(4), vec![b.id]));
}

#[test]
fn sqlite_deltas() {
    let (_dir, s) = sqlite();
    deltas(&s);
    let (_dir, s) = sqlite();
    s.set_purge_retention(0);
    deltas_after_the_retention(&s);
}

#[test]
fn postgres_deltas() {
    let db = tollgate_testkit::pg::TempDb::create("deltas");
    let s = PgStore::open(&db.url).unwrap();
    deltas(&s);
    let db = tollgate_testkit::pg::TempDb::create("deltas_retention");
    let s = PgStore::open(&db.url).unwrap();
    s.set_purge_retention(0);
    deltas_after_the_retention(&s);
}

/// An edge whose state is not of this database's history (ahead of a restored backup, or from
/// another database) holds a cache of that other history: the purges this history made after
/// the edge's version number are not the ones it missed. It is sent every resource and told to
/// purge everything, as an edge from before the purge retention is.
fn an_edge_of_another_history_is_told_to_purge_everything(s: &dyn Store) {
    const E: u64 = 41;
    s.begin_epoch(E).unwrap();
    let a = s
        .create(&resource("a.example.com", "secret_one"), "t")
        .unwrap();
    let b = s
        .create(&resource("b.example.com", "secret_two"), "t")
        .unwrap();
    // A backup taken at version 2 is restored under edges that saw later versions of epoch E,
    // and the control plane restarted on it, as the documentation asks.
    s.begin_epoch(E + 1).unwrap();
    let urls = PurgeRequest {
        urls: Some(vec!["/x".into()]),
        paths: None,
    };
    assert_eq!(s.purge(a.id, &urls, "t").unwrap(), 3);
    let mut changed = resource("a.example.com", "secret_one");
    changed.resource.origin = Some("127.0.0.1:9".into());
    s.update(&with_id(changed, a.id), "t").unwrap();
    let everything = |snap: &tollgate_model::Snapshot| {
        let mut v: Vec<_> = snap
            .purges
            .iter()
            .map(|p| (p.resource, p.what.paths.as_deref() == Some(&[]), p.version))
            .collect();
        v.sort();
        v
    };
    // Version 3 of the edge's history is not this one's: its cache may hold what this history
    // purged at 3.
    for (since, epoch) in [(3, E), (3, E + 7), (9, E)] {
        let snap = s.snapshot(since, Some(epoch)).unwrap();
        assert_eq!(snap.delta_from, None, "since {since}, epoch {epoch}");
        assert_eq!(
            everything(&snap),
            [(a.id, true, 4), (b.id, true, 4)],
            "since {since}, epoch {epoch}: {snap:?}"
        );
    }
    // An edge at 2 of epoch E holds a state of this history: a delta, with the purge of 3.
    let snap = s.snapshot(2, Some(E)).unwrap();
    assert_eq!(
        (snap.delta_from, snap.purges.len()),
        (Some(2), 1),
        "{snap:?}"
    );
    assert_eq!(snap.purges[0].what, urls);
}

#[test]
fn sqlite_an_edge_of_another_history_is_told_to_purge_everything() {
    let (_dir, s) = sqlite();
    an_edge_of_another_history_is_told_to_purge_everything(&s);
}

#[test]
fn postgres_an_edge_of_another_history_is_told_to_purge_everything() {
    let db = tollgate_testkit::pg::TempDb::create("other_history");
    let s = PgStore::open(&db.url).unwrap();
    an_edge_of_another_history_is_told_to_purge_everything(&s);
}

/// A control node of the version before deltas, still running on the same database during a
/// rolling upgrade (or run again after a rollback), deletes as it always did: it raises the
/// version and deletes the row, and writes no tombstone. Edges patched from before that
/// version must still learn of the deletion (else they serve a deleted resource until their
/// next whole snapshot).
fn a_deletion_by_a_node_without_tombstones_reaches_patched_edges(
    s: &dyn Store,
    old_node_delete: &dyn Fn(u64),
) {
    const E: u64 = 55;
    s.begin_epoch(E).unwrap();
    let a = s
        .create(&resource("a.example.com", "secret_one"), "t")
        .unwrap();
    s.create(&resource("b.example.com", "secret_two"), "t")
        .unwrap();
    old_node_delete(a.id);
    assert_eq!(s.version().unwrap(), 3);
    let snap = s.snapshot(2, Some(E)).unwrap();
    assert!(
        snap.delta_from.is_none() || snap.deleted == [a.id],
        "an edge at version 2 keeps resource {} the database deleted: {snap:?}",
        a.id
    );
    // And the new node's own deletions still leave one tombstone each.
    let c = s
        .create(&resource("c.example.com", "secret_three"), "t")
        .unwrap();
    s.delete(c.id, "t").unwrap();
    assert_eq!(s.snapshot(4, Some(E)).unwrap().deleted, [c.id]);
}

#[test]
fn sqlite_a_deletion_by_a_node_without_tombstones_reaches_patched_edges() {
    let (dir, s) = sqlite();
    let path = dir.0.join("t.db");
    a_deletion_by_a_node_without_tombstones_reaches_patched_edges(&s, &|id| {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(&format!(
            "BEGIN IMMEDIATE; UPDATE config_version SET version = version + 1;
             DELETE FROM resources WHERE id = {id}; COMMIT;"
        ))
        .unwrap();
    });
}

#[test]
fn postgres_a_deletion_by_a_node_without_tombstones_reaches_patched_edges() {
    let db = tollgate_testkit::pg::TempDb::create("old_node_delete");
    let s = PgStore::open(&db.url).unwrap();
    a_deletion_by_a_node_without_tombstones_reaches_patched_edges(&s, &|id| {
        let mut c = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
        c.batch_execute(&format!(
            "BEGIN; UPDATE config_version SET version = version + 1 RETURNING version;
             DELETE FROM resources WHERE id = {id}; COMMIT;"
        ))
        .unwrap();
    });
}
