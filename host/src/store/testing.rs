//! Fixtures for the tests of the store and of what reads it (events, notifications): a store
//! in a real SQLite file, a small lab in it, a job to submit.

use super::{NewJob, Store, Visibility};

/// A store in a fresh SQLite file (the directory lives as long as the store is used).
pub fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("basalt.db")).unwrap();
    (dir, store)
}

/// Device type `qemu`, worker `w1` and its device `qemu-01`.
pub fn lab(store: &Store) {
    store.add_device_type("qemu", "").unwrap();
    store.add_worker("w1", "", 0).unwrap();
    store
        .add_device(
            "qemu-01",
            "qemu",
            "w1",
            "{% extends 'qemu.jinja2' %}",
            &[],
            "",
        )
        .unwrap();
}

/// A public job `smoke` for `qemu` by `admin`; tests change what they need with `..new_job()`.
pub fn new_job() -> NewJob {
    NewJob {
        name: "smoke".into(),
        visibility: Visibility::Public,
        definition: "job_name: smoke\n".into(),
        device_type: "qemu".into(),
        requested_device: None,
        tags: vec![],
        context: serde_json::json!({}),
        priority: 50,
        submitter: "admin".into(),
        health_check: false,
    }
}
