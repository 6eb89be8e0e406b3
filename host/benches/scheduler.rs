//! One scheduling pass over a big lab: 10,000 queued jobs and 1,000 devices.
//!
//! Run with `cargo xtask bench scheduler`. The lab: 20 device types, 100 workers (a few
//! offline or at their job limit), devices with a mix of tags, some busy or in maintenance;
//! jobs with priorities, some wanting tags, some pinned to a device or a worker.

use std::collections::BTreeSet;
use std::time::Instant;

use basalt::scheduler::{
    schedule, DeviceHealth, DeviceState, DeviceView, QueuedJob, Snapshot, WorkerView,
};

fn lab() -> Snapshot {
    let tags = ["usb-eth", "hdmi", "sata", "wifi", "can"];
    let workers = (0..100)
        .map(|i| WorkerView {
            name: format!("worker-{i:03}"),
            usable: i % 17 != 0,
            job_limit: if i % 5 == 0 { 8 } else { 0 },
            busy: if i % 5 == 0 { 3 } else { 0 },
        })
        .collect();
    let devices = (0..1000)
        .map(|i| DeviceView {
            needs_health_check: false,
            hostname: format!("dev-{i:04}"),
            device_type: format!("type-{:02}", i % 20),
            worker: Some(format!("worker-{:03}", i % 100)),
            state: if i % 9 == 0 {
                DeviceState::Running
            } else {
                DeviceState::Idle
            },
            health: match i % 23 {
                0 => DeviceHealth::Maintenance,
                1 => DeviceHealth::Unknown,
                _ => DeviceHealth::Good,
            },
            tags: tags
                .iter()
                .enumerate()
                .filter(|(t, _)| (i + t) % 3 == 0)
                .map(|(_, tag)| (*tag).to_owned())
                .collect(),
        })
        .collect();
    let queue = (0..10_000u64)
        .map(|i| QueuedJob {
            health_check: false,
            id: i,
            device_type: format!("type-{:02}", i % 20),
            priority: [0, 50, 50, 100][(i % 4) as usize],
            submit_time: i,
            requested_device: (i % 97 == 0).then(|| format!("dev-{:04}", i % 1000)),
            requested_worker: (i % 89 == 0).then(|| format!("worker-{:03}", i % 100)),
            tags: if i % 7 == 0 {
                BTreeSet::from([tags[(i % 5) as usize].to_owned()])
            } else {
                BTreeSet::new()
            },
        })
        .collect();
    Snapshot {
        workers,
        devices,
        queue,
        seed: 42,
    }
}

fn main() {
    let snapshot = lab();
    let assigned = schedule(&snapshot).len();
    let mut rounds: Vec<f64> = (0..20)
        .map(|round| {
            let mut pass = snapshot.clone();
            pass.seed = round;
            let started = Instant::now();
            std::hint::black_box(schedule(&pass));
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    println!(
        "scheduling pass: 10000 queued jobs, 1000 devices, {assigned} assigned: median {:.2} ms, worst {:.2} ms (20 passes)",
        rounds[10],
        rounds[19]
    );
}
