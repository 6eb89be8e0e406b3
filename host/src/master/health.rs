//! Health checks, as LAVA runs them: each device type may have a health-check job,
//! `DATA_DIR/health-checks/<type>.yaml`. A device gets its type's health check, pinned to it
//! and ahead of every other job, when its health is Unknown (new, or put back into service by
//! an admin) or Looping, and when a Good device is due again (every `health_frequency` hours
//! or jobs of its type, 24 hours by default); it takes no other job until the check is done.
//! The check's outcome sets the device's health (see `Store::finish`): Complete → Good,
//! failure → Bad, where it stays, taking no jobs, until an admin acts. Types without a health
//! check, or with health checks disabled, keep LAVA's rule that Unknown devices take jobs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use tracing::{info, warn};

use super::submit::submit_health_check;
use crate::scheduler::Snapshot;
use crate::store::{now_ms, DeviceHealth, DeviceState, DeviceType, Store, StoreError};

/// Where a master's health-check definitions are.
#[derive(Debug, Clone)]
pub struct HealthChecks {
    dir: PathBuf,
}

impl HealthChecks {
    /// The health checks of the master whose data directory is `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join("health-checks"),
        }
    }

    /// The file holding `device_type`'s health check.
    pub fn path(&self, device_type: &str) -> PathBuf {
        self.dir.join(format!("{device_type}.yaml"))
    }

    /// Whether `device_type` has a health check.
    pub fn exists(&self, device_type: &str) -> bool {
        self.path(device_type).is_file()
    }

    /// The device types whose health checks run: a definition exists and they are not
    /// disabled.
    fn enabled(&self, store: &Store) -> Result<BTreeMap<String, DeviceType>, StoreError> {
        Ok(store
            .device_types()?
            .into_iter()
            .filter(|t| !t.health_disabled && self.exists(&t.name))
            .map(|t| (t.name.clone(), t))
            .collect())
    }

    /// Queues a health check for every idle device that needs one and has none queued or
    /// running: Unknown and Looping ones always, Good ones that are due only with
    /// `review_due` (that costs a few queries per device, so the master does it once a
    /// minute, not on every scheduling pass). A definition that cannot be read or is not a
    /// valid job for the type makes the device Bad, with the reason in its history, rather
    /// than letting it run unchecked. Returns the device types whose checks run, for
    /// [`HealthChecks::mark`] in the same pass.
    pub fn queue_missing(
        &self,
        store: &Store,
        review_due: bool,
    ) -> Result<BTreeSet<String>, StoreError> {
        let enabled = self.enabled(store)?;
        if enabled.is_empty() {
            return Ok(BTreeSet::new());
        }
        let active: BTreeSet<String> = store.active_health_checks()?.into_iter().collect();
        let now = now_ms();
        for device in store.devices()? {
            let Some(schedule) = enabled.get(&device.device_type) else {
                continue;
            };
            if device.state != DeviceState::Idle
                || device.dictionary.trim().is_empty()
                || active.contains(&device.hostname)
            {
                continue;
            }
            let why = match device.health {
                DeviceHealth::Unknown | DeviceHealth::Looping => "its health is not known",
                DeviceHealth::Good
                    if review_due && store.health_check_due(&device.hostname, schedule, now)? =>
                {
                    "it is due"
                }
                _ => continue,
            };
            let path = self.path(&device.device_type);
            let queued = std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|text| {
                    submit_health_check(store, &text, &device.hostname, &device.device_type)
                        .map_err(|e| e.to_string())
                });
            match queued {
                Ok(id) => info!(
                    "health check job {id} queued for {} ({why})",
                    device.hostname
                ),
                Err(e) => {
                    let reason = format!("health check {} is unusable: {e}", path.display());
                    warn!("{}: {reason}", device.hostname);
                    store.set_device_health(&device.hostname, DeviceHealth::Bad, &reason)?;
                }
            }
        }
        Ok(enabled.into_keys().collect())
    }

    /// Marks the snapshot's devices that must pass a health check before other jobs: those
    /// with one queued for them, and Unknown or Looping ones of the `enabled` types (what
    /// [`HealthChecks::queue_missing`] returned).
    pub fn mark(
        &self,
        store: &Store,
        snapshot: &mut Snapshot,
        enabled: &BTreeSet<String>,
    ) -> Result<(), StoreError> {
        use crate::scheduler::DeviceHealth as Health;
        let pending: BTreeSet<String> = store.active_health_checks()?.into_iter().collect();
        for device in &mut snapshot.devices {
            device.needs_health_check = pending.contains(&device.hostname)
                || (matches!(device.health, Health::Unknown | Health::Looping)
                    && enabled.contains(&device.device_type));
        }
        Ok(())
    }
}
