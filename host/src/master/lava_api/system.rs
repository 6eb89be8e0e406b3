//! `system.*`: version, identity and introspection.

use super::{call, Fault, MethodResult, Params, METHODS};
use crate::master::service::{Caller, Service};
use crate::xmlrpc::Value;

/// The LAVA release whose API this one matches; lavacli reads `YYYY.MM` from the version to
/// choose which calls to make and which command groups to show. 2025.05 is the newest whose
/// gated calls Basalt implements (lavacli 3.1 gates `tokens` on 2025.05; the next gates,
/// 2025.10's `device-types devices` and 2025.12's `--reason` arguments, are not built).
/// Basalt's own version follows after `+`.
pub const LAVA_API_RELEASE: &str = "2025.05";

pub fn version(_: &Service, _: &Caller, params: &Params) -> MethodResult {
    params.at_most(0)?;
    Ok(Value::String(format!(
        "{LAVA_API_RELEASE}+basalt.{}",
        env!("CARGO_PKG_VERSION")
    )))
}

pub fn api_version(_: &Service, _: &Caller, params: &Params) -> MethodResult {
    params.at_most(0)?;
    Ok(Value::Int(2))
}

pub fn whoami(_: &Service, caller: &Caller, params: &Params) -> MethodResult {
    params.at_most(0)?;
    Ok(Value::opt_string(caller.name()))
}

pub fn list_methods(_: &Service, _: &Caller, params: &Params) -> MethodResult {
    params.at_most(0)?;
    Ok(Value::Array(
        METHODS
            .iter()
            .map(|(name, _, _)| Value::from(*name))
            .collect(),
    ))
}

pub fn method_help(_: &Service, _: &Caller, params: &Params) -> MethodResult {
    params.at_most(1)?;
    let name = params.string(0, "method_name")?;
    METHODS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, _, help)| Value::from(*help))
        .ok_or_else(|| Fault::new(-32601, format!("method {name} is not supported")))
}

pub fn method_signature(_: &Service, _: &Caller, params: &Params) -> MethodResult {
    params.at_most(1)?;
    params.string(0, "method_name")?;
    Ok(Value::from("undef"))
}

pub fn capabilities(_: &Service, _: &Caller, params: &Params) -> MethodResult {
    params.at_most(0)?;
    let spec = |url: &str, version: i64| {
        Value::structure([
            ("specUrl", Value::from(url)),
            ("specVersion", Value::Int(version)),
        ])
    };
    Ok(Value::structure([
        ("xmlrpc", spec("http://www.xmlrpc.com/spec", 1)),
        (
            "faults_interop",
            spec(
                "http://xmlrpc-epi.sourceforge.net/specs/rfc.fault_codes.php",
                20010516,
            ),
        ),
        (
            "introspect",
            spec("http://xmlrpc-c.sourceforge.net/introspection.html", 1),
        ),
    ]))
}

/// Runs each call; a failing call gives its fault struct in place of `[result]`.
pub fn multicall(service: &Service, caller: &Caller, params: &Params) -> MethodResult {
    params.at_most(1)?;
    let Some(Value::Array(calls)) = params.values().first() else {
        return Err(Fault::invalid_params(
            "system.multicall takes one array of {methodName, params} structs",
        ));
    };
    let mut results = Vec::with_capacity(calls.len());
    for one in calls {
        let name = one.member("methodName").and_then(Value::as_text);
        let args = match one.member("params") {
            Some(Value::Array(args)) => args.clone(),
            None => Vec::new(),
            Some(_) => {
                results.push(fault_struct(&Fault::invalid_params(
                    "params must be an array",
                )));
                continue;
            }
        };
        let outcome = match name {
            Some("system.multicall") => Err(Fault::new(400, "system.multicall cannot nest")),
            Some(name) => call(service, caller, name, args),
            None => Err(Fault::invalid_params("a call without methodName")),
        };
        results.push(match outcome {
            Ok(value) => Value::Array(vec![value]),
            Err(fault) => fault_struct(&fault),
        });
    }
    Ok(Value::Array(results))
}

fn fault_struct(fault: &Fault) -> Value {
    Value::structure([
        ("faultCode", Value::Int(fault.code.into())),
        ("faultString", Value::String(fault.message.clone())),
    ])
}
