//! `scheduler.devices.*` and `scheduler.device_types.*`.

use super::{display, Fault, MethodResult, Params};
use crate::master::service::{Caller, HealthSchedule, NewDevice, Service};
use crate::store::{Device, DeviceHealth};
use crate::xmlrpc::Value;

fn current_job(device: &Device) -> Value {
    device.current_job.map_or(Value::Nil, Value::from)
}

/// `list(show_all=False, offline_info=False)`: retired devices only with `show_all`.
pub fn list(service: &Service, _: &Caller, params: &Params) -> MethodResult {
    params.at_most(2)?;
    let show_all = params.bool_or(0, "show_all", false)?;
    params.bool_or(1, "offline_info", false)?;
    let mut devices = service.devices()?;
    devices.sort_by(|a, b| a.hostname.cmp(&b.hostname));
    Ok(Value::Array(
        devices
            .iter()
            .filter(|d| show_all || d.health != DeviceHealth::Retired)
            .map(|d| {
                Value::structure([
                    ("hostname", Value::from(d.hostname.as_str())),
                    ("type", Value::from(d.device_type.as_str())),
                    ("health", Value::String(display(d.health.as_str()))),
                    ("state", Value::String(display(d.state.as_str()))),
                    ("current_job", current_job(d)),
                    ("pipeline", Value::Bool(true)),
                ])
            })
            .collect(),
    ))
}

pub fn show(service: &Service, _: &Caller, params: &Params) -> MethodResult {
    params.at_most(1)?;
    let (device, _) = service.device(&params.string(0, "hostname")?)?;
    Ok(Value::structure([
        ("hostname", Value::from(device.hostname.as_str())),
        ("device_type", Value::from(device.device_type.as_str())),
        ("health", Value::String(display(device.health.as_str()))),
        ("state", Value::String(display(device.state.as_str()))),
        (
            "health_job",
            Value::Bool(service.has_health_check(&device.device_type)),
        ),
        ("description", Value::from(device.description.as_str())),
        ("pipeline", Value::Bool(true)),
        (
            "has_device_dict",
            Value::Bool(!device.dictionary.is_empty()),
        ),
        ("worker", Value::opt_string(device.worker.as_deref())),
        ("current_job", current_job(&device)),
        (
            "tags",
            Value::Array(
                device
                    .tags
                    .iter()
                    .map(|t| Value::from(t.as_str()))
                    .collect(),
            ),
        ),
        ("permissions", Value::Array(Vec::new())),
    ]))
}

/// `add(hostname, type_name, worker_hostname, user_name=None, group_name=None, public=True,
/// health=None, description=None)`.
pub fn add(service: &Service, caller: &Caller, params: &Params) -> MethodResult {
    params.at_most(8)?;
    let new = NewDevice {
        hostname: params.string(0, "hostname")?,
        device_type: params.string(1, "type_name")?,
        worker: params.string(2, "worker_hostname")?,
        description: params.opt_string(7, "description")?.unwrap_or_default(),
        ..NewDevice::default()
    };
    params.opt_string(3, "user_name")?;
    params.opt_string(4, "group_name")?;
    params.bool_or(5, "public", true)?;
    let health = params.opt_string(6, "health")?;
    if let Some(text) = &health {
        if DeviceHealth::parse(text).is_none() {
            return Err(Fault::new(
                400,
                format!("{text:?} is not a device health: GOOD, UNKNOWN, MAINTENANCE, BAD, LOOPING or RETIRED"),
            ));
        }
    }
    service.add_device(caller, &new)?;
    if let Some(health) = health {
        service.set_device_health(caller, &new.hostname, &health, "set when added")?;
    }
    Ok(Value::Nil)
}

/// `update(hostname, worker_hostname=None, user_name=None, group_name=None, public=True,
/// health=None, description=None, device_type=None, reason=None)`.
pub fn update(service: &Service, caller: &Caller, params: &Params) -> MethodResult {
    params.at_most(9)?;
    let hostname = params.string(0, "hostname")?;
    let worker = params.opt_string(1, "worker_hostname")?;
    params.opt_string(2, "user_name")?;
    params.opt_string(3, "group_name")?;
    params.bool_or(4, "public", true)?;
    let health = params.opt_string(5, "health")?;
    let description = params.opt_string(6, "description")?;
    let device_type = params.opt_string(7, "device_type")?;
    let reason = params.opt_string(8, "reason")?.unwrap_or_default();
    if let Some(device_type) = device_type {
        let (device, _) = service.device(&hostname)?;
        if device.device_type != device_type {
            return Err(Fault::new(
                400,
                format!(
                    "changing the type of {hostname} ({} -> {device_type}) is not supported: \
                     add a new device instead",
                    device.device_type
                ),
            ));
        }
    }
    if worker.is_some() || description.is_some() {
        service.update_device(caller, &hostname, worker.as_deref(), description.as_deref())?;
    }
    if let Some(health) = health {
        service.set_device_health(caller, &hostname, &health, &reason)?;
    }
    Ok(Value::Nil)
}

/// `get_dictionary(hostname, render=False, context=None)`: the Jinja2 text, or with `render`
/// the device configuration it renders to, given a job context as YAML.
pub fn get_dictionary(service: &Service, caller: &Caller, params: &Params) -> MethodResult {
    params.at_most(3)?;
    let hostname = params.string(0, "hostname")?;
    let render = params.bool_or(1, "render", false)?;
    let context = params.opt_string(2, "context")?;
    let text = if render {
        let context = match context.as_deref().map(str::trim) {
            None | Some("") => serde_json::json!({}),
            Some(text) => serde_yaml::from_str::<serde_json::Value>(text)
                .map_err(|e| Fault::new(400, format!("the context is not YAML: {e}")))?,
        };
        service.rendered_dictionary(caller, &hostname, &context)?
    } else {
        service.dictionary(caller, &hostname)?
    };
    Ok(Value::Base64(text.into_bytes()))
}

pub fn set_dictionary(service: &Service, caller: &Caller, params: &Params) -> MethodResult {
    params.at_most(2)?;
    let hostname = params.string(0, "hostname")?;
    let text = params.string(1, "dictionary")?;
    service.set_dictionary(caller, &hostname, &text)?;
    Ok(Value::Bool(true))
}

/// `list(show_all=False)`: registered types; with `show_all` also templates not yet added
/// (`installed: false`).
pub fn list_types(service: &Service, _: &Caller, params: &Params) -> MethodResult {
    params.at_most(1)?;
    let show_all = params.bool_or(0, "show_all", false)?;
    let types = service.device_types()?;
    let mut out: Vec<Value> = types
        .iter()
        .map(|t| {
            Value::structure([
                ("name", Value::from(t.name.as_str())),
                ("devices", Value::from(t.devices as u64)),
                ("installed", Value::Bool(true)),
                ("template", Value::Bool(t.template.is_some())),
            ])
        })
        .collect();
    if show_all {
        for name in service.template_names() {
            if !types.iter().any(|t| t.name == name) {
                out.push(Value::structure([
                    ("name", Value::from(name)),
                    ("devices", Value::Int(0)),
                    ("installed", Value::Bool(false)),
                    ("template", Value::Bool(true)),
                ]));
            }
        }
    }
    Ok(Value::Array(out))
}

pub fn show_type(service: &Service, _: &Caller, params: &Params) -> MethodResult {
    params.at_most(1)?;
    let name = params.string(0, "name")?;
    let summary = service.device_type(&name)?;
    let devices: Vec<Value> = service
        .devices()?
        .into_iter()
        .filter(|d| d.device_type == name)
        .map(|d| Value::String(d.hostname))
        .collect();
    Ok(Value::structure([
        ("name", Value::from(name.as_str())),
        ("description", Value::String(summary.description)),
        ("display", Value::Bool(true)),
        (
            "health_disabled",
            Value::Bool(summary.health_disabled || !summary.health_check),
        ),
        (
            "health_denominator",
            Value::from(summary.health_denominator.as_str()),
        ),
        (
            "health_frequency",
            Value::from(u64::from(summary.health_frequency)),
        ),
        ("aliases", Value::Array(Vec::new())),
        ("devices", Value::Array(devices)),
        ("default_template", Value::Bool(summary.template.is_some())),
        ("permissions", Value::Array(Vec::new())),
    ]))
}

/// `add(name, description, display, owners_only, health_frequency, health_denominator)`.
pub fn add_type(service: &Service, caller: &Caller, params: &Params) -> MethodResult {
    params.at_most(6)?;
    let name = params.string(0, "name")?;
    let description = params.opt_string(1, "description")?.unwrap_or_default();
    params.bool_or(2, "display", true)?;
    params.bool_or(3, "owners_only", false)?;
    let schedule = HealthSchedule {
        frequency: frequency(params, 4)?,
        denominator: params.opt_string(5, "health_denominator")?,
        disabled: None,
    };
    schedule.checked()?;
    service.add_device_type(caller, &name, &description, false)?;
    service.update_device_type(caller, &name, None, &schedule)?;
    Ok(Value::Nil)
}

fn frequency(params: &Params, index: usize) -> Result<Option<u32>, Fault> {
    params
        .opt_int(index, "health_frequency")?
        .map(|n| u32::try_from(n).map_err(|_| Fault::new(400, "health_frequency must be positive")))
        .transpose()
}

/// `update(name, description, display, owners_only, health_frequency, health_denominator,
/// health_disabled)`.
pub fn update_type(service: &Service, caller: &Caller, params: &Params) -> MethodResult {
    params.at_most(7)?;
    let name = params.string(0, "name")?;
    let description = params.opt_string(1, "description")?;
    params.bool_or(2, "display", true)?;
    params.bool_or(3, "owners_only", false)?;
    let schedule = HealthSchedule {
        frequency: frequency(params, 4)?,
        denominator: params.opt_string(5, "health_denominator")?,
        disabled: match params.values().get(6) {
            None | Some(Value::Nil) => None,
            Some(_) => Some(params.bool_or(6, "health_disabled", false)?),
        },
    };
    service.update_device_type(caller, &name, description.as_deref(), &schedule)?;
    Ok(Value::Nil)
}

pub fn get_template(service: &Service, _: &Caller, params: &Params) -> MethodResult {
    params.at_most(1)?;
    let name = params.string(0, "name")?;
    Ok(Value::Base64(service.template(&name)?.into_bytes()))
}

pub fn set_template(service: &Service, caller: &Caller, params: &Params) -> MethodResult {
    params.at_most(2)?;
    let name = params.string(0, "name")?;
    let text = params.string(1, "template")?;
    service.set_template(caller, &name, &text)?;
    Ok(Value::Nil)
}

pub fn get_health_check(service: &Service, _: &Caller, params: &Params) -> MethodResult {
    params.at_most(1)?;
    let name = params.string(0, "name")?;
    Ok(Value::Base64(service.health_check(&name)?.into_bytes()))
}

pub fn set_health_check(service: &Service, caller: &Caller, params: &Params) -> MethodResult {
    params.at_most(2)?;
    let name = params.string(0, "name")?;
    let text = params.string(1, "config")?;
    service.set_health_check(caller, &name, &text)?;
    Ok(Value::Nil)
}

/// `tags.add(hostname, tag)`.
pub fn add_tag(service: &Service, caller: &Caller, params: &Params) -> MethodResult {
    params.at_most(2)?;
    let hostname = params.string(0, "hostname")?;
    let tag = params.string(1, "name")?;
    service.add_device_tag(caller, &hostname, &tag)?;
    Ok(Value::Nil)
}

/// `tags.list(hostname)`: the tag names.
pub fn list_tags(service: &Service, _: &Caller, params: &Params) -> MethodResult {
    params.at_most(1)?;
    let (device, _) = service.device(&params.string(0, "hostname")?)?;
    Ok(Value::Array(
        device.tags.into_iter().map(Value::String).collect(),
    ))
}

/// `tags.delete(hostname, tag)`.
pub fn delete_tag(service: &Service, caller: &Caller, params: &Params) -> MethodResult {
    params.at_most(2)?;
    let hostname = params.string(0, "hostname")?;
    let tag = params.string(1, "name")?;
    service.remove_device_tag(caller, &hostname, &tag)?;
    Ok(Value::Nil)
}

/// Legacy `all_devices()`: `[[hostname, type, state, current_job|nil, true]]`.
pub fn all_legacy(service: &Service, _: &Caller, params: &Params) -> MethodResult {
    params.at_most(0)?;
    Ok(Value::Array(
        service
            .devices()?
            .iter()
            .filter(|d| d.health != DeviceHealth::Retired)
            .map(|d| {
                Value::Array(vec![
                    Value::from(d.hostname.as_str()),
                    Value::from(d.device_type.as_str()),
                    Value::String(display(d.state.as_str())),
                    current_job(d),
                    Value::Bool(true),
                ])
            })
            .collect(),
    ))
}
