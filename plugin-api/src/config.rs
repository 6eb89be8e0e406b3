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
