//! `scheduler.remote_artifact_tokens.*`: each user's remote artifact tokens (what lavacli
//! `tokens add|list|show|delete` calls), the caller's own only.

use super::{MethodResult, Params};
use crate::master::service::{Caller, Service};
use crate::xmlrpc::Value;

/// `list()`: `[{name, token}]`, by name.
pub fn list(service: &Service, caller: &Caller, params: &Params) -> MethodResult {
    params.at_most(0)?;
    Ok(Value::Array(
        service
            .remote_tokens(caller)?
            .into_iter()
            .map(|(name, token)| {
                Value::structure([
                    ("name", Value::String(name)),
                    ("token", Value::String(token)),
                ])
            })
            .collect(),
    ))
}

/// `show(name)`: the token's value.
pub fn show(service: &Service, caller: &Caller, params: &Params) -> MethodResult {
    params.at_most(1)?;
    let name = params.string(0, "name")?;
    Ok(Value::String(service.remote_token(caller, &name)?))
}

/// `add(name, token)`.
pub fn add(service: &Service, caller: &Caller, params: &Params) -> MethodResult {
    params.at_most(2)?;
    let name = params.string(0, "name")?;
    let token = params.string(1, "token")?;
    service.add_remote_token(caller, &name, &token)?;
    Ok(Value::Nil)
}

/// `delete(name)`.
pub fn delete(service: &Service, caller: &Caller, params: &Params) -> MethodResult {
    params.at_most(1)?;
    let name = params.string(0, "name")?;
    service.delete_remote_token(caller, &name)?;
    Ok(Value::Nil)
}
