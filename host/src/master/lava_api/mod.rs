//! LAVA's XML-RPC API (`/RPC2`) over [`Service`]: the method names, argument lists, return
//! shapes and fault codes of LAVA's `scheduler.*`, `system.*` and `results.*`, so lavacli and
//! existing lab scripts work unchanged.
//!
//! Each method is a plain function from the caller and its [`Params`] to a [`Value`]; the
//! table in [`METHODS`] is also what `system.listMethods` answers. Faults use LAVA's codes:
//! the service's HTTP-like numbers (400, 401, 403, 404, 409), -32601 for an unknown method
//! and -32602 for arguments of the wrong number or type.

mod devices;
mod jobs;
mod params;
mod system;
mod tokens;
mod workers;

use super::service::{Caller, Service, ServiceError};
use crate::store::display_name as display;
use crate::xmlrpc::Value;
pub use params::Params;

/// An XML-RPC fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// LAVA's code.
    pub code: i32,
    /// For the user.
    pub message: String,
}

impl Fault {
    /// A fault with `code`.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// Arguments of the wrong number or type (the XML-RPC convention's code).
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(-32602, message)
    }
}

impl From<ServiceError> for Fault {
    fn from(error: ServiceError) -> Self {
        Self::new(i32::from(error.kind.code()), error.message)
    }
}

/// What a method returns.
pub type MethodResult = Result<Value, Fault>;

/// A method's implementation.
type Method = fn(&Service, &Caller, &Params) -> MethodResult;

/// Every method this API answers, with a one-line help for `system.methodHelp`.
pub const METHODS: &[(&str, Method, &str)] = &[
    (
        "system.version",
        system::version,
        "The server's version (LAVA's YYYY.MM scheme).",
    ),
    (
        "system.api_version",
        system::api_version,
        "The API version (2).",
    ),
    (
        "system.whoami",
        system::whoami,
        "The authenticated user's name, or nil.",
    ),
    (
        "system.listMethods",
        system::list_methods,
        "The names of all methods.",
    ),
    (
        "system.methodHelp",
        system::method_help,
        "Help for one method.",
    ),
    (
        "system.methodSignature",
        system::method_signature,
        "Signatures are not described: 'undef'.",
    ),
    (
        "system.multicall",
        system::multicall,
        "Several calls in one request.",
    ),
    (
        "system.getCapabilities",
        system::capabilities,
        "The XML-RPC extensions spoken.",
    ),
    (
        "scheduler.devices.list",
        devices::list,
        "Devices: [{hostname, type, health, state, current_job, pipeline}].",
    ),
    ("scheduler.devices.show", devices::show, "One device."),
    (
        "scheduler.devices.add",
        devices::add,
        "Add a device: hostname, type_name, worker_hostname, ...",
    ),
    (
        "scheduler.devices.update",
        devices::update,
        "Change a device's worker, health or description.",
    ),
    (
        "scheduler.devices.get_dictionary",
        devices::get_dictionary,
        "A device's dictionary, raw or rendered.",
    ),
    (
        "scheduler.devices.set_dictionary",
        devices::set_dictionary,
        "Replace a device's dictionary.",
    ),
    (
        "scheduler.devices.tags.add",
        devices::add_tag,
        "Give a device a tag.",
    ),
    (
        "scheduler.devices.tags.list",
        devices::list_tags,
        "A device's tags.",
    ),
    (
        "scheduler.devices.tags.delete",
        devices::delete_tag,
        "Take a tag off a device.",
    ),
    (
        "scheduler.device_types.list",
        devices::list_types,
        "Device types.",
    ),
    (
        "scheduler.device_types.show",
        devices::show_type,
        "One device type.",
    ),
    (
        "scheduler.device_types.add",
        devices::add_type,
        "Add a device type.",
    ),
    (
        "scheduler.device_types.update",
        devices::update_type,
        "Change a device type's description and health-check schedule.",
    ),
    (
        "scheduler.device_types.get_template",
        devices::get_template,
        "A device type's template.",
    ),
    (
        "scheduler.device_types.set_template",
        devices::set_template,
        "Replace a device type's template.",
    ),
    (
        "scheduler.device_types.get_health_check",
        devices::get_health_check,
        "A device type's health-check job.",
    ),
    (
        "scheduler.device_types.set_health_check",
        devices::set_health_check,
        "Replace a device type's health check (empty removes it).",
    ),
    (
        "scheduler.jobs.submit",
        jobs::submit,
        "Submit a job definition; returns its id.",
    ),
    ("scheduler.jobs.show", jobs::show, "One job."),
    (
        "scheduler.jobs.definition",
        jobs::definition,
        "A job's definition as submitted.",
    ),
    (
        "scheduler.jobs.logs",
        jobs::logs,
        "[finished, log lines start..end].",
    ),
    ("scheduler.jobs.cancel", jobs::cancel, "Cancel a job."),
    ("scheduler.jobs.list", jobs::list, "Jobs, newest first."),
    (
        "scheduler.jobs.validate",
        jobs::validate,
        "Check a definition: {} or {path, msg}.",
    ),
    (
        "scheduler.jobs.resubmit",
        jobs::resubmit,
        "Submit a job's definition again.",
    ),
    (
        "scheduler.jobs.queue",
        jobs::queue,
        "Jobs waiting for a device, oldest first.",
    ),
    (
        "scheduler.job_output",
        jobs::output_legacy,
        "Legacy: a job's log from a byte offset.",
    ),
    (
        "scheduler.all_devices",
        devices::all_legacy,
        "Legacy: [[hostname, type, state, current job, true]].",
    ),
    (
        "scheduler.submit_job",
        jobs::submit,
        "Legacy name of scheduler.jobs.submit.",
    ),
    (
        "scheduler.cancel_job",
        jobs::cancel_legacy,
        "Legacy name of scheduler.jobs.cancel.",
    ),
    (
        "scheduler.resubmit_job",
        jobs::resubmit,
        "Legacy name of scheduler.jobs.resubmit.",
    ),
    (
        "scheduler.job_state",
        jobs::state_legacy,
        "Legacy: {job_state}.",
    ),
    (
        "scheduler.job_health",
        jobs::health_legacy,
        "Legacy: {job_health}.",
    ),
    ("scheduler.workers.list", workers::list, "Worker hostnames."),
    ("scheduler.workers.show", workers::show, "One worker."),
    ("scheduler.workers.add", workers::add, "Add a worker."),
    (
        "scheduler.workers.update",
        workers::update,
        "Change a worker's description or health.",
    ),
    (
        "scheduler.workers.get_config",
        workers::get_config,
        "A worker's dispatcher.yaml.",
    ),
    (
        "scheduler.workers.set_config",
        workers::set_config,
        "Replace a worker's dispatcher.yaml (empty removes it).",
    ),
    (
        "scheduler.workers.get_env",
        workers::get_env,
        "A worker's env.yaml.",
    ),
    (
        "scheduler.workers.set_env",
        workers::set_env,
        "Replace a worker's env.yaml.",
    ),
    (
        "scheduler.workers.get_env_dut",
        workers::get_env_dut,
        "A worker's env.dut.yaml.",
    ),
    (
        "scheduler.workers.set_env_dut",
        workers::set_env_dut,
        "Replace a worker's env.dut.yaml.",
    ),
    (
        "scheduler.remote_artifact_tokens.list",
        tokens::list,
        "Your remote artifact tokens (name and value).",
    ),
    (
        "scheduler.remote_artifact_tokens.show",
        tokens::show,
        "The value of one of your remote artifact tokens.",
    ),
    (
        "scheduler.remote_artifact_tokens.add",
        tokens::add,
        "Add a remote artifact token (what a notify callback's token: names).",
    ),
    (
        "scheduler.remote_artifact_tokens.delete",
        tokens::delete,
        "Delete one of your remote artifact tokens.",
    ),
    (
        "results.get_testjob_results_yaml",
        jobs::results_yaml,
        "A job's results as YAML.",
    ),
];

/// Runs method `name` with `params` for `caller`.
pub fn call(service: &Service, caller: &Caller, name: &str, params: Vec<Value>) -> MethodResult {
    match METHODS.iter().find(|(n, _, _)| *n == name) {
        Some((_, method, _)) => method(service, caller, &Params::new(name, params)),
        None => Err(Fault::new(
            -32601,
            format!("method {name} is not supported: system.listMethods lists those that are"),
        )),
    }
}

/// A store time (ms since the epoch) as XML-RPC's `dateTime.iso8601`, in UTC.
fn datetime(ms: Option<i64>) -> Value {
    // 2026-11-25 10:00:00 -> 20261125T10:00:00
    match crate::store::utc_seconds(ms) {
        Some(text) => {
            let (date, time) = text.split_once(' ').unwrap_or((&text, ""));
            Value::DateTime(format!("{}T{time}", date.replace('-', "")))
        }
        None => Value::Nil,
    }
}

#[cfg(test)]
mod tests;
