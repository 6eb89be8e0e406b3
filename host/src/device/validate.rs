//! Checking a rendered device configuration, reporting every problem by path.

use std::fmt;

use serde_json::{Map, Value};

use crate::data::kind;

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The configuration cannot be used.
    Error,
    /// It can be used, but something is probably not what the admin meant.
    Warning,
}

/// One thing wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Error or warning.
    pub severity: Severity,
    /// Where, as a dotted path (`commands.connections.uart0.connect`).
    pub path: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{level}: {}: {}", self.path, self.message)
    }
}

/// The commands that are a string or a list of strings.
const COMMAND_KEYS: &[&str] = &[
    "hard_reset",
    "power_on",
    "power_off",
    "soft_reboot",
    "pre_power_command",
    "pre_os_command",
    "recovery_mode",
    "recovery_exit",
];

/// The units of a LAVA timeout.
const TIMEOUT_UNITS: &[&str] = &["days", "hours", "minutes", "seconds"];

struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn error(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            severity: Severity::Error,
            path: path.to_owned(),
            message: message.into(),
        });
    }

    fn warning(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            severity: Severity::Warning,
            path: path.to_owned(),
            message: message.into(),
        });
    }

    /// The mapping at `key`, reporting when it is missing (if required) or not a mapping.
    fn mapping<'a>(
        &mut self,
        parent: &'a Map<String, Value>,
        path: &str,
        key: &str,
        required: bool,
    ) -> Option<&'a Map<String, Value>> {
        let here = join(path, key);
        match parent.get(key) {
            Some(Value::Object(map)) => Some(map),
            Some(Value::Null) | None if !required => None,
            None | Some(Value::Null) => {
                self.error(&here, "missing; the device-type template must render it");
                None
            }
            Some(other) => {
                self.error(&here, format!("must be a mapping, found {}", kind(other)));
                None
            }
        }
    }

    fn string(&mut self, parent: &Map<String, Value>, path: &str, key: &str) {
        if let Some(value) = parent.get(key) {
            if !value.is_string() {
                self.error(
                    &join(path, key),
                    format!("must be a string, found {}", kind(value)),
                );
            }
        }
    }

    fn command(&mut self, path: &str, value: &Value) {
        match value {
            Value::String(s) if s.trim().is_empty() => self.error(path, "is an empty command"),
            Value::String(_) => {}
            Value::Array(items) if items.iter().all(Value::is_string) && !items.is_empty() => {}
            Value::Array(_) => self.error(path, "must be a list of command strings"),
            other => self.error(
                path,
                format!(
                    "must be a command string or a list of them, found {}",
                    kind(other)
                ),
            ),
        }
    }

    fn timeout(&mut self, path: &str, value: &Value) {
        let Value::Object(units) = value else {
            self.error(
                path,
                format!(
                    "must be a timeout like {{minutes: 5}}, found {}",
                    kind(value)
                ),
            );
            return;
        };
        if units.is_empty() {
            self.error(path, "is empty; give days, hours, minutes or seconds");
        }
        for (unit, amount) in units {
            if !TIMEOUT_UNITS.contains(&unit.as_str()) {
                self.error(
                    &join(path, unit),
                    format!("unknown unit '{unit}'; use days, hours, minutes or seconds"),
                );
            } else if !amount.is_u64() {
                self.error(
                    &join(path, unit),
                    format!("must be a whole number, found {}", kind(amount)),
                );
            }
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Checks a rendered configuration; an empty result means it is usable.
pub fn validate(config: &Value) -> Vec<Problem> {
    let mut check = Checker {
        problems: Vec::new(),
    };
    let Value::Object(root) = config else {
        check.error(
            "(top)",
            format!(
                "the configuration must be a mapping, found {}; does the dictionary extend a \
                 device-type template?",
                kind(config)
            ),
        );
        return check.problems;
    };
    check.string(root, "", "hostname");
    check.string(root, "", "devicetype");
    check.mapping(root, "", "constants", true);

    if let Some(actions) = check.mapping(root, "", "actions", true) {
        for section in ["deploy", "boot"] {
            if let Some(part) = check.mapping(actions, "actions", section, true) {
                let path = format!("actions.{section}");
                match check.mapping(part, &path, "methods", true) {
                    Some(methods) if methods.is_empty() => check.error(
                        &join(&path, "methods"),
                        format!("lists no {section} methods; the device could not run any job"),
                    ),
                    _ => {}
                }
            }
        }
    }

    if let Some(timeouts) = check.mapping(root, "", "timeouts", true) {
        for group in ["actions", "connections"] {
            if let Some(entries) = check.mapping(timeouts, "timeouts", group, false) {
                for (name, value) in entries {
                    check.timeout(&format!("timeouts.{group}.{name}"), value);
                }
            }
        }
    }

    if let Some(commands) = check.mapping(root, "", "commands", false) {
        check_commands(&mut check, commands);
    }

    match root.get("parameters") {
        None | Some(Value::Null) | Some(Value::Object(_)) => {}
        Some(other) => check.error(
            "parameters",
            format!("must be a mapping, found {}", kind(other)),
        ),
    }
    if let Some(delays) = check.mapping(root, "", "character_delays", false) {
        for (name, value) in delays {
            if !value.is_u64() {
                check.error(
                    &format!("character_delays.{name}"),
                    format!(
                        "must be milliseconds (a whole number), found {}",
                        kind(value)
                    ),
                );
            }
        }
    }
    for key in ["device_info", "static_info"] {
        match root.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) if items.iter().all(Value::is_object) => {}
            Some(other) => check.error(
                key,
                format!("must be a list of mappings, found {}", kind(other)),
            ),
        }
    }
    for section in ["power", "connection"] {
        if let Some(mapping) = check.mapping(root, "", section, false) {
            match mapping.get("driver") {
                Some(Value::String(_)) => {}
                other => check.error(
                    &join(section, "driver"),
                    format!(
                        "must name a {section} driver (see `basalt plugins list`), found {}",
                        other.map_or("nothing".into(), kind)
                    ),
                ),
            }
        }
    }
    check.problems
}

fn check_commands(check: &mut Checker, commands: &Map<String, Value>) {
    check.string(commands, "commands", "connect");
    for key in COMMAND_KEYS {
        if let Some(value) = commands.get(*key) {
            check.command(&format!("commands.{key}"), value);
        }
    }
    if let Some(connections) = check.mapping(commands, "commands", "connections", false) {
        for (name, entry) in connections {
            let path = format!("commands.connections.{name}");
            let Value::Object(entry) = entry else {
                check.error(&path, format!("must be a mapping, found {}", kind(entry)));
                continue;
            };
            match entry.get("connect") {
                Some(Value::String(_)) => {}
                other => check.error(
                    &join(&path, "connect"),
                    format!(
                        "must be the console command; set connection_commands['{name}'] in the \
                         device dictionary (found {})",
                        other.map_or("nothing".into(), kind)
                    ),
                ),
            }
            match entry.get("tags") {
                None | Some(Value::Null) => {}
                Some(Value::Array(tags)) if tags.iter().all(Value::is_string) => {}
                Some(other) => check.error(
                    &join(&path, "tags"),
                    format!("must be a list of strings, found {}", kind(other)),
                ),
            }
        }
    }
    if let Some(users) = check.mapping(commands, "commands", "users", false) {
        for (name, entry) in users {
            let path = format!("commands.users.{name}");
            match entry.get("do") {
                Some(value) => check.command(&join(&path, "do"), value),
                None => check.error(&join(&path, "do"), "missing the command to run"),
            }
            if let Some(undo) = entry.get("undo") {
                check.command(&join(&path, "undo"), undo);
            }
        }
    }
    if let Some(value) = commands.get("must_use_connection") {
        if !value.is_boolean() {
            check.error(
                "commands.must_use_connection",
                format!("must be true or false, found {}", kind(value)),
            );
        }
    }
    let has = |key: &str| commands.contains_key(key);
    if has("power_on") != has("power_off") {
        check.warning(
            "commands",
            "has only one of power_on and power_off; set both power_on_command and \
             power_off_command in the device dictionary",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minimal() -> Value {
        json!({
            "constants": {},
            "actions": {"deploy": {"methods": {"tftp": null}}, "boot": {"methods": {"minimal": null}}},
            "timeouts": {"actions": {"pdu-reboot": {"seconds": 30}}},
        })
    }

    fn paths(config: &Value) -> Vec<String> {
        validate(config).into_iter().map(|p| p.path).collect()
    }

    #[test]
    fn a_minimal_configuration_is_valid() {
        assert!(
            validate(&minimal()).is_empty(),
            "{:?}",
            validate(&minimal())
        );
    }

    #[test]
    fn every_problem_is_reported_by_path() {
        let mut config = minimal();
        config["actions"]["boot"]["methods"] = json!({});
        config["timeouts"]["actions"]["pdu-reboot"] = json!({"secs": 30});
        config["timeouts"]["connections"] = json!({"uboot": 10});
        config["commands"] = json!({
            "power_on": ["ok", 3],
            "connections": {"uart0": {"tags": "primary"}},
            "users": {"x": {}},
        });
        config["character_delays"] = json!({"boot": "fast"});
        config["power"] = json!({"hostname": "pdu"});
        assert_eq!(
            paths(&config),
            vec![
                "actions.boot.methods",
                "timeouts.actions.pdu-reboot.secs",
                "timeouts.connections.uboot",
                "commands.power_on",
                "commands.connections.uart0.connect",
                "commands.connections.uart0.tags",
                "commands.users.x.do",
                "commands",
                "character_delays.boot",
                "power.driver",
            ]
        );
        let problems = validate(&config);
        assert!(problems[4].message.contains("connection_commands['uart0']"));
        assert_eq!(problems[7].severity, Severity::Warning);
    }

    #[test]
    fn missing_sections_are_errors() {
        assert_eq!(
            paths(&json!({"hostname": 3})),
            vec!["hostname", "constants", "actions", "timeouts"]
        );
        assert_eq!(paths(&json!("text")), vec!["(top)"]);
    }
}
