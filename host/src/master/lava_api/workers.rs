//! `scheduler.workers.*`.

use super::{datetime, display, MethodResult, Params};
use crate::master::service::{Caller, Service, WorkerFile};
use crate::store::WorkerHealth;
use crate::xmlrpc::Value;

/// `list(show_all=False)`: hostnames; retired workers only with `show_all`.
pub fn list(service: &Service, _: &Caller, params: &Params) -> MethodResult {
    params.at_most(1)?;
    let show_all = params.bool_or(0, "show_all", false)?;
    Ok(Value::Array(
        service
            .workers()?
            .into_iter()
            .filter(|w| show_all || w.health != WorkerHealth::Retired)
            .map(|w| Value::String(w.hostname))
            .collect(),
    ))
}

pub fn show(service: &Service, _: &Caller, params: &Params) -> MethodResult {
    params.at_most(1)?;
    let name = params.string(0, "hostname")?;
    let (worker, devices, _) = service.worker(&name)?;
    let files = service.worker_files(&name);
    let members = vec![
        ("hostname", Value::from(worker.hostname.as_str())),
        ("description", Value::from(worker.description.as_str())),
        ("state", Value::String(display(worker.state.as_str()))),
        ("health", Value::String(display(worker.health.as_str()))),
        (
            "devices",
            Value::Array(devices.into_iter().map(Value::String).collect()),
        ),
        ("job_limit", Value::from(u64::from(worker.job_limit))),
        ("version", Value::opt_string(worker.version.as_deref())),
        ("default_config", Value::Bool(!files.config)),
        ("default_env", Value::Bool(!files.env)),
        ("default_env_dut", Value::Bool(!files.env_dut)),
        // lavacli always reads it as a dateTime; LAVA starts it at the worker's creation.
        (
            "last_ping",
            datetime(Some(worker.last_seen.unwrap_or(worker.created))),
        ),
    ];
    Ok(Value::structure(members))
}

/// `add(hostname, description=None, disabled=False)`; a disabled worker is retired.
pub fn add(service: &Service, caller: &Caller, params: &Params) -> MethodResult {
    params.at_most(3)?;
    let name = params.string(0, "hostname")?;
    let description = params.opt_string(1, "description")?.unwrap_or_default();
    let disabled = params.bool_or(2, "disabled", false)?;
    service.add_worker(caller, &name, &description, 0)?;
    if disabled {
        service.set_worker_health(caller, &name, "retired", "added disabled")?;
    }
    Ok(Value::Nil)
}

/// `update(hostname, description=None, health=None, job_limit=None)`.
pub fn update(service: &Service, caller: &Caller, params: &Params) -> MethodResult {
    params.at_most(4)?;
    let name = params.string(0, "hostname")?;
    let description = params.opt_string(1, "description")?;
    let health = params.opt_string(2, "health")?;
    let job_limit = params
        .opt_int(3, "job_limit")?
        .map(|n| u32::try_from(n.max(0)).unwrap_or(u32::MAX));
    if description.is_some() || job_limit.is_some() {
        service.update_worker(caller, &name, description.as_deref(), job_limit)?;
    }
    if let Some(health) = health {
        service.set_worker_health(caller, &name, &health, "")?;
    }
    Ok(Value::Nil)
}

fn get_file(service: &Service, caller: &Caller, params: &Params, file: WorkerFile) -> MethodResult {
    params.at_most(1)?;
    let name = params.string(0, "hostname")?;
    Ok(Value::Base64(
        service.worker_file(caller, &name, file)?.into_bytes(),
    ))
}

fn set_file(service: &Service, caller: &Caller, params: &Params, file: WorkerFile) -> MethodResult {
    params.at_most(2)?;
    let name = params.string(0, "hostname")?;
    let text = params.string(1, "contents")?;
    service.set_worker_file(caller, &name, file, &text)?;
    Ok(Value::Bool(true))
}

pub fn get_config(service: &Service, caller: &Caller, params: &Params) -> MethodResult {
    get_file(service, caller, params, WorkerFile::Config)
}

pub fn set_config(service: &Service, caller: &Caller, params: &Params) -> MethodResult {
    set_file(service, caller, params, WorkerFile::Config)
}

pub fn get_env(service: &Service, caller: &Caller, params: &Params) -> MethodResult {
    get_file(service, caller, params, WorkerFile::Env)
}

pub fn set_env(service: &Service, caller: &Caller, params: &Params) -> MethodResult {
    set_file(service, caller, params, WorkerFile::Env)
}

pub fn get_env_dut(service: &Service, caller: &Caller, params: &Params) -> MethodResult {
    get_file(service, caller, params, WorkerFile::EnvDut)
}

pub fn set_env_dut(service: &Service, caller: &Caller, params: &Params) -> MethodResult {
    set_file(service, caller, params, WorkerFile::EnvDut)
}
