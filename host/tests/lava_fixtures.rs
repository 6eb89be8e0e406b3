//! LAVA compatibility: every device dictionary of LAVA's test suite, rendered with LAVA's own
//! device-type templates, must give the configuration LAVA's Jinja2 gives (compared as data).
//!
//! The fixtures live in `../shared/lava` beside the repository. Without them the test skips
//! with a message, except under `CI=true`, where a missing fixture directory is a failure.

use std::path::PathBuf;

mod common;

use basalt::device::{validate, DeviceConfig, Severity};
use basalt::template::{extends_target, SearchPath, TemplateEngine};
use serde_json::{json, Value};

/// Numbers compare by value (PyYAML's 0.0 and ours may differ in representation only).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// The first path where two configurations differ, for the failure message.
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for key in x.keys().chain(y.keys()) {
                match (x.get(key), y.get(key)) {
                    (Some(p), Some(q)) => {
                        if let Some(d) = first_difference(p, q, &format!("{path}.{key}")) {
                            return Some(d);
                        }
                    }
                    (p, q) => return Some(format!("{path}.{key}: ours {p:?}, LAVA's {q:?}")),
                }
            }
            None
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| first_difference(p, q, &format!("{path}[{i}]"))),
        _ if same(a, b) => None,
        _ => Some(format!("{path}: ours {a}, LAVA's {b}")),
    }
}

/// The context LAVA's server gives a device dictionary with an empty job context.
pub fn device_context(name: &str, source: &str) -> Value {
    let device_type = extends_target(source)
        .unwrap_or_default()
        .trim_end_matches(".jinja2")
        .to_owned();
    json!({"scheduled_device_name": name, "scheduled_device_type": device_type})
}

#[test]
fn all_lava_test_devices_render_as_lava_renders_them() {
    let Some(lava) = common::lava_fixtures() else {
        return;
    };
    let engine = TemplateEngine::new(SearchPath::new(vec![
        lava.join("devices"),
        lava.join("device-types"),
    ]));
    let mut dictionaries: Vec<PathBuf> = std::fs::read_dir(lava.join("devices"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jinja2"))
        .collect();
    dictionaries.sort();
    assert_eq!(
        dictionaries.len(),
        69,
        "the fixture set has 69 dictionaries"
    );
    let mut failures = Vec::new();
    for path in &dictionaries {
        let name = path.file_stem().unwrap().to_str().unwrap();
        let file = path.file_name().unwrap().to_str().unwrap();
        let source = std::fs::read_to_string(path).unwrap();
        let expected: Value = serde_json::from_str(
            &std::fs::read_to_string(lava.join("expected").join(format!("{name}.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(expected["status"], "ok");
        match engine.render(file, &device_context(name, &source)) {
            Ok(rendered) => {
                let errors: Vec<String> = validate(&rendered.config)
                    .into_iter()
                    .filter(|p| p.severity == Severity::Error)
                    .map(|p| p.to_string())
                    .collect();
                if !errors.is_empty() {
                    failures.push(format!("{name}: validator refused: {errors:?}"));
                }
                if let Err(e) = DeviceConfig::from_value(&rendered.config) {
                    failures.push(format!("{name}: typed model refused: {e}"));
                }
                if let Some(difference) =
                    first_difference(&rendered.config, &expected["config"], name)
                {
                    failures.push(difference);
                }
            }
            Err(error) => failures.push(format!("{name}: {error}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} devices differ from LAVA:\n{}",
        failures.len(),
        dictionaries.len(),
        failures.join("\n")
    );
}
