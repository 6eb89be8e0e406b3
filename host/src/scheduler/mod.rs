//! The scheduler: which queued job goes to which device, decided from a snapshot.
//!
//! Pure by design: [`schedule`] takes a [`Snapshot`] of workers, devices and the queue and
//! returns [`Assignment`]s; it does no I/O and reads no clock, so the master can run it
//! whenever something changes (a submit, a device freed, a worker back) and tests and
//! benchmarks can drive it with made-up labs. The rules are LAVA's (section 4.4 of the data
//! model): a device takes at most one job per pass; it must be Idle with health Good or
//! Unknown, on a worker that is online, active and under its job limit; it takes the first
//! queued job of its type by priority (high first), then submit time, then id, whose pinned
//! device and worker (if any) are it and its worker and whose tags it all carries. A device
//! that needs a health check (Unknown or Looping, its type having one) takes only its health
//! check, and health checks go nowhere else. Devices are
//! visited in an order shuffled by the pass's seed, so load spreads across equal devices
//! while a given snapshot always gives the same answer.

use std::collections::{BTreeSet, HashMap};

/// A device's availability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceState {
    /// Free.
    Idle,
    /// Given a job that has not started yet.
    Reserved,
    /// Running a job.
    Running,
}

/// A device's health (LAVA's values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceHealth {
    /// Passed its last health check.
    Good,
    /// Not known (new, or after an infrastructure error).
    Unknown,
    /// Re-checked on every pass (soak testing); gets no ordinary jobs.
    Looping,
    /// Failed; needs an admin.
    Bad,
    /// Taken out by an admin.
    Maintenance,
    /// Gone for good.
    Retired,
}

/// A worker as the scheduler sees it.
#[derive(Debug, Clone)]
pub struct WorkerView {
    /// Its name.
    pub name: String,
    /// Online (pinging) and Active (not in maintenance or retired).
    pub usable: bool,
    /// How many jobs it may run at once (0: no limit).
    pub job_limit: u32,
    /// How many of its devices are Reserved or Running.
    pub busy: u32,
}

/// A device as the scheduler sees it.
#[derive(Debug, Clone)]
pub struct DeviceView {
    /// Its hostname.
    pub hostname: String,
    /// Its device type.
    pub device_type: String,
    /// The worker it is attached to, if any.
    pub worker: Option<String>,
    /// Free or busy.
    pub state: DeviceState,
    /// Health.
    pub health: DeviceHealth,
    /// Its tags.
    pub tags: BTreeSet<String>,
    /// Its health is Unknown or Looping and its type has a health check: it takes only a
    /// health-check job pinned to it.
    pub needs_health_check: bool,
}

/// A job waiting for a device.
#[derive(Debug, Clone)]
pub struct QueuedJob {
    /// Its id.
    pub id: u64,
    /// The device type it asks for.
    pub device_type: String,
    /// 0 (low) to 100 (high).
    pub priority: u8,
    /// When it was submitted (any monotonic unit; only the order matters).
    pub submit_time: u64,
    /// A device it must run on.
    pub requested_device: Option<String>,
    /// A worker it must run on.
    pub requested_worker: Option<String>,
    /// Tags the device must carry.
    pub tags: BTreeSet<String>,
    /// A health check (always pinned to its device).
    pub health_check: bool,
}

/// Everything a scheduling pass looks at.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Every worker.
    pub workers: Vec<WorkerView>,
    /// Every device.
    pub devices: Vec<DeviceView>,
    /// Every queued (Submitted) job.
    pub queue: Vec<QueuedJob>,
    /// Varies the device visiting order from pass to pass.
    pub seed: u64,
}

/// A decision: start this job on this device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The job.
    pub job: u64,
    /// The device.
    pub device: String,
}

/// A well-mixed hash of a hostname and the seed (FNV-1a then a finaliser), for the visiting
/// order.
fn order_key(hostname: &str, seed: u64) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for byte in hostname.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^ (hash >> 33)
}

/// One scheduling pass.
pub fn schedule(snapshot: &Snapshot) -> Vec<Assignment> {
    // Remaining capacity per usable worker (None: unlimited).
    let mut capacity: HashMap<&str, Option<u32>> = snapshot
        .workers
        .iter()
        .filter(|w| w.usable)
        .map(|w| {
            let left = (w.job_limit > 0).then(|| w.job_limit.saturating_sub(w.busy));
            (w.name.as_str(), left)
        })
        .collect();

    // The queue per device type, best job first.
    let mut queues: HashMap<&str, Vec<&QueuedJob>> = HashMap::new();
    for job in &snapshot.queue {
        queues
            .entry(job.device_type.as_str())
            .or_default()
            .push(job);
    }
    for jobs in queues.values_mut() {
        jobs.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then(a.submit_time.cmp(&b.submit_time))
                .then(a.id.cmp(&b.id))
        });
    }
    let mut taken: HashMap<&str, Vec<bool>> = queues
        .iter()
        .map(|(device_type, jobs)| (*device_type, vec![false; jobs.len()]))
        .collect();
    // Per type, the index before which every job is taken (so later devices skip them).
    let mut first_free: HashMap<&str, usize> = HashMap::new();

    let mut candidates: Vec<&DeviceView> = snapshot
        .devices
        .iter()
        .filter(|d| d.state == DeviceState::Idle)
        .filter(|d| match d.health {
            DeviceHealth::Good | DeviceHealth::Unknown => true,
            DeviceHealth::Looping => d.needs_health_check,
            _ => false,
        })
        .filter(|d| queues.contains_key(d.device_type.as_str()))
        .collect();
    candidates.sort_by_key(|d| order_key(&d.hostname, snapshot.seed));

    let mut assignments = Vec::new();
    for device in candidates {
        let Some(worker) = device.worker.as_deref() else {
            continue;
        };
        let Some(left) = capacity.get(worker).copied() else {
            continue; // offline, in maintenance or retired
        };
        if left == Some(0) {
            continue;
        }
        let device_type = device.device_type.as_str();
        let (Some(jobs), Some(done)) = (queues.get(device_type), taken.get_mut(device_type)) else {
            continue;
        };
        let start = first_free.get(device_type).copied().unwrap_or(0);
        let fits = |job: &QueuedJob| {
            job.requested_device
                .as_deref()
                .is_none_or(|d| d == device.hostname)
                && job.requested_worker.as_deref().is_none_or(|w| w == worker)
                && job.tags.is_subset(&device.tags)
                && job.health_check == device.needs_health_check
        };
        let Some(index) = (start..jobs.len()).find(|&i| !done[i] && fits(jobs[i])) else {
            continue;
        };
        done[index] = true;
        let mut next = start;
        while next < done.len() && done[next] {
            next += 1;
        }
        first_free.insert(device_type, next);
        if let Some(Some(left)) = capacity.get_mut(worker) {
            *left -= 1;
        }
        assignments.push(Assignment {
            job: jobs[index].id,
            device: device.hostname.clone(),
        });
    }
    assignments
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(name: &str) -> WorkerView {
        WorkerView {
            name: name.into(),
            usable: true,
            job_limit: 0,
            busy: 0,
        }
    }

    fn device(hostname: &str, device_type: &str, worker: &str, tags: &[&str]) -> DeviceView {
        DeviceView {
            hostname: hostname.into(),
            device_type: device_type.into(),
            worker: Some(worker.into()),
            state: DeviceState::Idle,
            health: DeviceHealth::Good,
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            needs_health_check: false,
        }
    }

    fn job(id: u64, device_type: &str, priority: u8, submit_time: u64) -> QueuedJob {
        QueuedJob {
            id,
            device_type: device_type.into(),
            priority,
            submit_time,
            requested_device: None,
            requested_worker: None,
            tags: BTreeSet::new(),
            health_check: false,
        }
    }

    fn jobs_for(snapshot: &Snapshot) -> Vec<u64> {
        let mut jobs: Vec<u64> = schedule(snapshot).into_iter().map(|a| a.job).collect();
        jobs.sort();
        jobs
    }

    #[test]
    fn priority_then_submit_time_then_id_decide() {
        let snapshot = Snapshot {
            workers: vec![worker("w1")],
            devices: vec![
                device("bbb-01", "bbb", "w1", &[]),
                device("bbb-02", "bbb", "w1", &[]),
            ],
            queue: vec![
                job(1, "bbb", 50, 10),
                job(2, "bbb", 100, 30),
                job(3, "bbb", 50, 5),
                job(4, "bbb", 0, 1),
            ],
            seed: 7,
        };
        assert_eq!(jobs_for(&snapshot), vec![2, 3]);
    }

    #[test]
    fn tags_and_pinned_devices_and_workers_are_respected() {
        let mut tagged = job(1, "bbb", 100, 1);
        tagged.tags = ["usb-eth".to_owned()].into_iter().collect();
        let mut pinned = job(2, "bbb", 100, 2);
        pinned.requested_device = Some("bbb-02".into());
        let mut on_w2 = job(3, "bbb", 100, 3);
        on_w2.requested_worker = Some("w2".into());
        let snapshot = Snapshot {
            workers: vec![worker("w1"), worker("w2")],
            devices: vec![
                device("bbb-01", "bbb", "w1", &["usb-eth"]),
                device("bbb-02", "bbb", "w1", &[]),
                device("bbb-03", "bbb", "w2", &[]),
            ],
            queue: vec![tagged, pinned, on_w2],
            seed: 1,
        };
        let mut got = schedule(&snapshot);
        got.sort_by_key(|a| a.job);
        assert_eq!(
            got,
            vec![
                Assignment {
                    job: 1,
                    device: "bbb-01".into()
                },
                Assignment {
                    job: 2,
                    device: "bbb-02".into()
                },
                Assignment {
                    job: 3,
                    device: "bbb-03".into()
                },
            ]
        );
    }

    #[test]
    fn unusable_devices_and_workers_get_nothing() {
        let mut offline = worker("w2");
        offline.usable = false;
        let mut limited = worker("w3");
        limited.job_limit = 1;
        limited.busy = 1;
        let mut bad = device("bbb-bad", "bbb", "w1", &[]);
        bad.health = DeviceHealth::Bad;
        let mut busy = device("bbb-busy", "bbb", "w1", &[]);
        busy.state = DeviceState::Running;
        let mut looping = device("bbb-loop", "bbb", "w1", &[]);
        looping.health = DeviceHealth::Looping;
        let mut orphan = device("bbb-orphan", "bbb", "w1", &[]);
        orphan.worker = None;
        let snapshot = Snapshot {
            workers: vec![worker("w1"), offline, limited],
            devices: vec![
                bad,
                busy,
                looping,
                orphan,
                device("bbb-offline", "bbb", "w2", &[]),
                device("bbb-limited", "bbb", "w3", &[]),
                device("qemu-01", "qemu", "w1", &[]),
            ],
            queue: vec![job(1, "bbb", 50, 1), job(2, "bbb", 50, 2)],
            seed: 3,
        };
        assert!(schedule(&snapshot).is_empty());
    }

    #[test]
    fn a_worker_job_limit_caps_one_pass() {
        let mut w = worker("w1");
        w.job_limit = 2;
        let snapshot = Snapshot {
            workers: vec![w],
            devices: (0..5)
                .map(|i| device(&format!("d{i}"), "qemu", "w1", &[]))
                .collect(),
            queue: (0..5).map(|i| job(i, "qemu", 50, i)).collect(),
            seed: 0,
        };
        assert_eq!(jobs_for(&snapshot), vec![0, 1]);
    }

    #[test]
    fn the_seed_spreads_load_but_a_snapshot_always_gives_the_same_answer() {
        let snapshot = |seed| Snapshot {
            workers: vec![worker("w1")],
            devices: (0..8)
                .map(|i| device(&format!("d{i}"), "qemu", "w1", &[]))
                .collect(),
            queue: vec![job(1, "qemu", 50, 1)],
            seed,
        };
        assert_eq!(schedule(&snapshot(5)), schedule(&snapshot(5)));
        let chosen: BTreeSet<String> = (0..32)
            .map(|seed| schedule(&snapshot(seed))[0].device.clone())
            .collect();
        assert!(chosen.len() > 1, "always the same device: {chosen:?}");
    }

    #[test]
    fn a_device_needing_a_health_check_takes_only_its_health_check() {
        let mut unknown = device("qemu-01", "qemu", "w1", &[]);
        unknown.health = DeviceHealth::Unknown;
        unknown.needs_health_check = true;
        let mut looping = device("qemu-02", "qemu", "w1", &[]);
        looping.health = DeviceHealth::Looping;
        looping.needs_health_check = true;
        let good = device("qemu-03", "qemu", "w1", &[]);
        let mut check = job(1, "qemu", 100, 1);
        check.health_check = true;
        check.requested_device = Some("qemu-02".into());
        let mut stray = job(2, "qemu", 100, 2);
        stray.health_check = true;
        stray.requested_device = Some("qemu-03".into());
        let normal = job(3, "qemu", 50, 3);
        let snapshot = Snapshot {
            workers: vec![worker("w1")],
            devices: vec![unknown, looping, good],
            queue: vec![check, stray, normal],
            seed: 7,
        };
        let mut got = schedule(&snapshot);
        got.sort_by_key(|a| a.job);
        assert_eq!(
            got,
            vec![
                Assignment {
                    job: 1,
                    device: "qemu-02".into()
                },
                Assignment {
                    job: 3,
                    device: "qemu-03".into()
                },
            ],
            "the unknown device waits for its own health check; a health check never runs on a \
             device that does not need one"
        );
    }
}
