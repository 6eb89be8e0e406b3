//! Health checks (issue 7): a device of a type with a health check runs it before any other
//! job; passing makes it Good, failing makes it Bad, and a Bad device takes no jobs until an
//! admin acts. Also the power state read back at the end of each job.

use std::time::Duration;

use basalt_e2e::cluster::{wait_for, Cluster};
use serde_json::Value;

const LONG: Duration = Duration::from_secs(120);

fn device(cluster: &Cluster) -> Value {
    cluster
        .cli(&["devices", "show", "sim-01", "--format", "json"])
        .success()
        .json()
}

fn jobs(cluster: &Cluster) -> Vec<Value> {
    cluster
        .cli(&["jobs", "list", "--format", "json"])
        .success()
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn wait_health(cluster: &Cluster, health: &str) -> Value {
    wait_for(&format!("sim-01 to be {health}"), LONG, || {
        let device = device(cluster);
        (device["health"] == health).then_some(device)
    })
}

#[test]
fn health_checks_gate_devices_and_a_bad_device_waits_for_an_admin() {
    let mut cluster = Cluster::new();
    let _master = cluster.start_master();
    let checks = cluster.data_dir().join("health-checks");
    std::fs::create_dir_all(&checks).unwrap();
    let passing = std::fs::read_to_string(cluster.job("health", &["true"])).unwrap();
    std::fs::write(checks.join("beaglebone-black.yaml"), &passing).unwrap();
    cluster.register_board();
    let _slave = cluster.start_slave();

    // A new device is Unknown: its health check runs first and makes it Good.
    let device_now = wait_health(&cluster, "good");
    let all = jobs(&cluster);
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["health_check"], true);
    assert_eq!(all[0]["submitter"], "lava-health");
    assert_eq!(all[0]["health"], "complete");
    assert_eq!(all[0]["requested_device"], "sim-01");
    // The command power driver cannot read the outlet back: unknown, but checked.
    assert_eq!(device_now["power_state"], "unknown", "{device_now}");
    assert!(device_now["power_checked"].is_i64(), "{device_now}");

    // The check now fails (the board never shows the prompt it waits for).
    let failing = passing
        .replace("root@simboard:~# ", "a prompt that never comes# ")
        .replace("timeout: {seconds: 60}", "timeout: {seconds: 8}");
    assert_ne!(failing, passing);
    std::fs::write(checks.join("beaglebone-black.yaml"), failing).unwrap();
    cluster.cli(&["devices", "activate", "sim-01"]).success();
    let bad = wait_health(&cluster, "bad");
    let reason = bad["history"]
        .as_array()
        .and_then(|h| h.last())
        .map(|h| h["reason"].to_string())
        .unwrap_or_default();
    assert!(reason.contains("health check job"), "{bad}");

    // A Bad device takes no job...
    let id = cluster.submit(&cluster.job("waits", &["true"]));
    std::thread::sleep(Duration::from_secs(4));
    let record = cluster.try_job(id).expect("the master answers");
    assert_eq!(record["state"], "submitted", "{record}");

    // ...until an admin puts it back (here trusting it without a health check).
    cluster
        .cli(&["devices", "activate", "sim-01", "--skip-health-check"])
        .success();
    let record = cluster.wait_state(id, "finished", LONG);
    assert_eq!(record["health"], "complete", "{record}");
    assert_eq!(device(&cluster)["health"], "good");
}
