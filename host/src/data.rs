//! Small helpers for data read from YAML: naming a value's kind in messages, a scalar as
//! text, and reading lists of strings.

use serde_json::Value;

/// The kind of a value, for messages ("must be a mapping, found the string \"x\"").
pub fn kind(value: &Value) -> String {
    match value {
        Value::Null => "nothing".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

/// A scalar as text: a string as it is, anything else as JSON writes it (`1`, `true`,
/// `null`); how values from YAML become environment variables, commands and results.
pub fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Whether Python would take the value as true (`if value:`): not null, false, 0, an empty
/// string, list or mapping. LAVA tests many job keys this way.
pub fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// The strings of a list (other items skipped); empty when it is not a list.
pub fn string_list(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}
