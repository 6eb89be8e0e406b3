//! Which driver a rendered device configuration names for each kind, and with what settings.
//!
//! LAVA device configurations name no drivers: power is `commands.power_on` & co., the console
//! is `commands.connect` (or `commands.connections.<name>.connect`). Those select the `command`
//! drivers, so every LAVA device dictionary works unchanged. A Basalt configuration may instead
//! carry a `power:` or `connection:` mapping whose `driver` key names any loaded driver; the
//! rest of the mapping is that driver's configuration.

use serde_json::{Map, Value};

/// A driver choice: its name and its configuration as JSON text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverChoice {
    /// The driver's name.
    pub driver: String,
    /// The driver's configuration (JSON).
    pub config: String,
    /// Where in the device configuration the choice came from, for messages.
    pub source: &'static str,
}

/// Why a device configuration names no usable driver.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectionError {
    /// Nothing in the configuration selects a driver of this kind.
    #[error("the device configuration has no {what}; {hint}")]
    Missing {
        /// What is missing.
        what: &'static str,
        /// How to fix it.
        hint: &'static str,
    },
    /// A `power:`/`connection:` mapping without a usable `driver` key.
    #[error("{section}.driver must be a driver name (a string), found {found}")]
    BadDriverKey {
        /// The section.
        section: &'static str,
        /// What was there instead.
        found: String,
    },
}

fn explicit(device: &Value, section: &'static str) -> Result<Option<DriverChoice>, SelectionError> {
    let Some(mapping) = device.get(section).and_then(Value::as_object) else {
        return Ok(None);
    };
    let driver = match mapping.get("driver") {
        Some(Value::String(name)) => name.clone(),
        other => {
            return Err(SelectionError::BadDriverKey {
                section,
                found: other.map_or("nothing".to_owned(), Value::to_string),
            })
        }
    };
    let config: Map<String, Value> = mapping
        .iter()
        .filter(|(k, _)| k.as_str() != "driver")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(Some(DriverChoice {
        driver,
        config: Value::Object(config).to_string(),
        source: section,
    }))
}

/// The power driver of a device.
pub fn power_driver(device: &Value) -> Result<DriverChoice, SelectionError> {
    if let Some(choice) = explicit(device, "power")? {
        return Ok(choice);
    }
    let commands = device.get("commands").and_then(Value::as_object);
    let has_power = commands.is_some_and(|c| {
        ["power_on", "power_off", "hard_reset"]
            .iter()
            .any(|k| c.contains_key(*k))
    });
    match commands {
        Some(commands) if has_power => Ok(DriverChoice {
            driver: "command".into(),
            config: Value::Object(commands.clone()).to_string(),
            source: "commands",
        }),
        _ => Err(SelectionError::Missing {
            what: "power commands (commands.power_on/power_off/hard_reset) and no power: section",
            hint: "set power_on_command, power_off_command and hard_reset_command in the device \
                   dictionary, or add a power: mapping naming a power driver",
        }),
    }
}

/// The console connection of a device: an explicit `connection:` mapping, else
/// `commands.connect`, else the `commands.connections` entry tagged `primary` (or the first).
pub fn connection_driver(device: &Value) -> Result<DriverChoice, SelectionError> {
    if let Some(choice) = explicit(device, "connection")? {
        return Ok(choice);
    }
    let commands = device.get("commands");
    let connect = commands
        .and_then(|c| c.get("connect"))
        .and_then(Value::as_str)
        .or_else(|| primary_connection(commands?.get("connections")?.as_object()?));
    match connect {
        Some(command) => Ok(DriverChoice {
            driver: "command".into(),
            config: serde_json::json!({ "command": command }).to_string(),
            source: "commands",
        }),
        None => Err(SelectionError::Missing {
            what: "console connection (commands.connect) and no connection: section",
            hint: "set connection_command in the device dictionary (e.g. 'telnet localhost \
                   7001' for ser2net), or add a connection: mapping naming a connection driver",
        }),
    }
}

fn primary_connection(connections: &Map<String, Value>) -> Option<&str> {
    let is_primary = |entry: &Value| {
        entry
            .get("tags")
            .and_then(Value::as_array)
            .is_some_and(|tags| tags.iter().any(|t| t == "primary"))
    };
    connections
        .values()
        .find(|entry| is_primary(entry))
        .or_else(|| connections.values().next())
        .and_then(|entry| entry.get("connect"))
        .and_then(Value::as_str)
}

/// Whether the device is hard-reset by the dispatcher (LAVA's `commands.hard_reset`, or a
/// `power:` mapping naming a power driver): where it is, fastboot deploys and boots reset
/// the board into fastboot mode instead of asking fastboot to reboot it.
pub fn has_hard_reset(device: &Value) -> bool {
    device.pointer("/commands/hard_reset").is_some() || device.get("power").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lava_power_commands_select_the_command_driver() {
        let device = json!({"commands": {"power_on": "pdu on 1", "connect": "telnet x 1"}});
        let choice = power_driver(&device).unwrap();
        assert_eq!(choice.driver, "command");
        let config: Value = serde_json::from_str(&choice.config).unwrap();
        assert_eq!(config["power_on"], "pdu on 1");
    }

    #[test]
    fn an_explicit_power_section_names_its_driver() {
        let device = json!({
            "commands": {"power_on": "x"},
            "power": {"driver": "pdudaemon", "hostname": "pdu1", "port": 4}
        });
        let choice = power_driver(&device).unwrap();
        assert_eq!(choice.driver, "pdudaemon");
        assert_eq!(
            serde_json::from_str::<Value>(&choice.config).unwrap(),
            json!({"hostname": "pdu1", "port": 4})
        );
        let bad = json!({"power": {"driver": 3}});
        assert!(matches!(
            power_driver(&bad),
            Err(SelectionError::BadDriverKey { .. })
        ));
    }

    #[test]
    fn connections_prefer_connect_then_the_primary_tag() {
        let device = json!({"commands": {"connections": {
            "uart1": {"connect": "telnet a 2", "tags": []},
            "uart0": {"connect": "telnet a 1", "tags": ["primary"]}
        }}});
        let choice = connection_driver(&device).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&choice.config).unwrap(),
            json!({"command": "telnet a 1"})
        );
        assert!(connection_driver(&json!({"commands": {}})).is_err());
    }
}
