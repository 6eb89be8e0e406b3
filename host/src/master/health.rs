//! Health checks, as LAVA runs them: each device type may have a health-check job,
//! `DATA_DIR/health-checks/<type>.yaml`. A device whose health is Unknown (new, or put back
//! into service by an admin) or Looping gets its type's health check, pinned to it and ahead
//! of every other job, and takes no other job until it has passed; the check's outcome sets
//! the device's health (see `Store::finish`): Complete → Good, failure → Bad, where it stays,
//! taking no jobs, until an admin acts. Types without a health check keep LAVA's rule that
//! Unknown devices take jobs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use tracing::{info, warn};

use super::submit::submit_health_check;
use crate::scheduler::{DeviceHealth as SchedulerHealth, Snapshot};
use crate::store::{DeviceHealth, DeviceState, Store, StoreError};

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

    /// Queues a health check for every idle device that needs one and has none queued or
    /// running. A definition that cannot be read or is not a valid job for the type makes the
    /// device Bad, with the reason in its history, rather than letting it run unchecked.
    pub fn queue_missing(&self, store: &Store) -> Result<(), StoreError> {
        let active: BTreeSet<String> = store.active_health_checks()?.into_iter().collect();
        for device in store.devices()? {
            let needs = matches!(device.health, DeviceHealth::Unknown | DeviceHealth::Looping);
            if !needs
                || device.state != DeviceState::Idle
                || device.dictionary.trim().is_empty()
                || active.contains(&device.hostname)
                || !self.exists(&device.device_type)
            {
                continue;
            }
            let path = self.path(&device.device_type);
            let queued = std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|text| {
                    submit_health_check(store, &text, &device.hostname, &device.device_type)
                        .map_err(|e| e.to_string())
                });
            match queued {
                Ok(id) => info!("health check job {id} queued for {}", device.hostname),
                Err(e) => {
                    let reason = format!("health check {} is unusable: {e}", path.display());
                    warn!("{}: {reason}", device.hostname);
                    store.set_device_health(&device.hostname, DeviceHealth::Bad, &reason)?;
                }
            }
        }
        Ok(())
    }

    /// Marks the snapshot's devices that must pass a health check before other jobs.
    pub fn mark(&self, snapshot: &mut Snapshot) {
        for device in &mut snapshot.devices {
            device.needs_health_check = matches!(
                device.health,
                SchedulerHealth::Unknown | SchedulerHealth::Looping
            ) && self.exists(&device.device_type);
        }
    }
}
