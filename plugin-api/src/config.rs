//! Reading a driver's configuration.
//!
//! The host passes each driver the relevant part of the rendered device configuration as JSON
//! text, so adding a configuration field never changes the ABI. Drivers deserialise it with
//! serde into their own struct and validate it in their constructor.

use serde::de::DeserializeOwned;

use crate::PluginError;

/// Parses a driver's JSON configuration into `T`, reporting problems as `INVALID_CONFIG`
/// errors that say which driver and which field.
pub fn parse_config<T: DeserializeOwned>(driver: &str, json: &str) -> Result<T, PluginError> {
    serde_json::from_str(json)
        .map_err(|e| PluginError::invalid_config(format!("{driver}: bad configuration: {e}")))
}

/// A configuration value that is one string or a list of strings (prompts, messages,
/// menu items), as a list; anything else is an empty list.
pub fn string_list(value: Option<&serde_json::Value>) -> Vec<String> {
    use serde_json::Value;
    match value {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    }
}

/// A value that device-type templates render either as one string or as a list of strings
/// (LAVA's `power_on`, `hard_reset`, ... are both, depending on the template).
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// A single command.
    One(String),
    /// Several commands, run in order.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The commands in order.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s.clone()],
            Self::Many(v) => v.clone(),
        }
    }
}
