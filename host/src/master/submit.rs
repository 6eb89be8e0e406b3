//! Turning a submitted job definition into a queued job: validated as LAVA's submission
//! schema does, then checked against what this master has (the device type must exist and
//! have a device that can take jobs).

use serde_json::Value;

use crate::job::{parse_job, JobDefinition, JobError};
use crate::store::{DeviceHealth, NewJob, Store, StoreError, Visibility};

/// Why a submission was refused.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// Not a valid job.
    #[error("invalid job definition: {0}")]
    Invalid(#[from] JobError),
    /// A valid job this master cannot run.
    #[error("{0}")]
    Unrunnable(String),
    /// The database refused.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// LAVA's named priorities.
fn priority(value: Option<&Value>) -> u8 {
    match value {
        Some(Value::String(name)) => match name.as_str() {
            "high" => 100,
            "low" => 0,
            _ => 50,
        },
        Some(Value::Number(n)) => n.as_u64().unwrap_or(50).min(100) as u8,
        _ => 50,
    }
}

/// Who health checks are submitted as (LAVA's name for it).
pub const HEALTH_CHECK_SUBMITTER: &str = "lava-health";

/// Queues `text` as the health check of `device` (of `device_type`): pinned to it, ahead of
/// every other job. The definition must be valid and ask for the device's type.
pub fn submit_health_check(
    store: &Store,
    text: &str,
    device: &str,
    device_type: &str,
) -> Result<u64, SubmitError> {
    let parsed = parse_job(text)?;
    let definition = JobDefinition::from_value(parsed.value);
    if definition.device_type.as_deref() != Some(device_type) {
        return Err(SubmitError::Unrunnable(format!(
            "the health check of {device_type} asks for device type {}: it must say \
             device_type: {device_type}",
            definition.device_type.as_deref().unwrap_or("(none)")
        )));
    }
    let raw = &definition.raw;
    let job = NewJob {
        name: definition.name.clone(),
        visibility: Visibility::of_job(raw),
        definition: text.to_owned(),
        device_type: device_type.to_owned(),
        requested_device: Some(device.to_owned()),
        tags: Vec::new(),
        context: raw
            .get("context")
            .cloned()
            .unwrap_or(Value::Object(Default::default())),
        priority: 100,
        submitter: HEALTH_CHECK_SUBMITTER.to_owned(),
        health_check: true,
    };
    Ok(store.submit(&job)?)
}

/// Validates `text` and queues it; returns the job id.
pub fn submit(
    store: &Store,
    text: &str,
    submitter: &str,
    pinned_device: Option<&str>,
) -> Result<u64, SubmitError> {
    let parsed = parse_job(text)?;
    let definition = JobDefinition::from_value(parsed.value);
    let Some(device_type) = definition.device_type.clone() else {
        return Err(SubmitError::Unrunnable(
            "the job has no device_type: say which kind of device it needs".into(),
        ));
    };
    if store.device_type(&device_type)?.is_none() {
        return Err(SubmitError::Unrunnable(format!(
            "device type {device_type} is not known to this master: add it with \
             `basalt device-types add {device_type}`"
        )));
    }
    let devices: Vec<_> = store
        .devices()?
        .into_iter()
        .filter(|d| d.device_type == device_type && d.health != DeviceHealth::Retired)
        .collect();
    if devices.is_empty() {
        return Err(SubmitError::Unrunnable(format!(
            "no device of type {device_type} can take jobs: add one with \
             `basalt devices add NAME --type {device_type} --worker W --dict FILE`"
        )));
    }
    if let Some(pinned) = pinned_device {
        if !devices.iter().any(|d| d.hostname == pinned) {
            return Err(SubmitError::Unrunnable(format!(
                "device {pinned} is not a usable {device_type}"
            )));
        }
    }
    let raw = &definition.raw;
    let job = NewJob {
        name: definition.name.clone(),
        visibility: Visibility::of_job(raw),
        definition: text.to_owned(),
        device_type,
        requested_device: pinned_device.map(str::to_owned),
        tags: crate::data::string_list(raw.get("tags")),
        context: raw
            .get("context")
            .cloned()
            .unwrap_or(Value::Object(Default::default())),
        priority: priority(raw.get("priority")),
        submitter: submitter.to_owned(),
        health_check: false,
    };
    Ok(store.submit(&job)?)
}
