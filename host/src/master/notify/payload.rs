//! What a callback carries, as LAVA's `TestJob.create_job_data` builds it: the job's fields
//! with LAVA's names, integer codes and Python spellings (`str(datetime)`, `"None"`), then
//! the whole log (`logs`, `all`) and each suite's test cases as PyYAML text (`results`,
//! `all`); and the two encodings (`json`, LAVA's `urlencoded` as Python's requests writes a
//! dict). Also LAVA's `{FIELD}` substitution in callback URLs.

use crate::store::display_name as display;
use serde_json::{json, Map, Value};

use crate::store::{Job, JobHealth, JobState, TestResult};

/// LAVA's integer for a state (Submitted 0 … Finished 5; Basalt has no Scheduling, 1).
pub fn state_code(state: JobState) -> u8 {
    match state {
        JobState::Submitted => 0,
        JobState::Scheduled => 2,
        JobState::Running => 3,
        JobState::Canceling => 4,
        JobState::Finished => 5,
    }
}

/// LAVA's integer for a health (Unknown 0 … Canceled 3).
pub fn health_code(health: JobHealth) -> u8 {
    match health {
        JobHealth::Unknown => 0,
        JobHealth::Complete => 1,
        JobHealth::Incomplete => 2,
        JobHealth::Canceled => 3,
    }
}

/// LAVA's `get_legacy_status()` and its display name: the pre-2018 single status callbacks
/// still carry.
pub fn legacy_status(state: JobState, health: JobHealth) -> (u8, &'static str) {
    match (state, health) {
        (JobState::Submitted | JobState::Scheduled, _) => (0, "Submitted"),
        (JobState::Running, _) => (1, "Running"),
        (JobState::Canceling, _) => (5, "Canceling"),
        (JobState::Finished, JobHealth::Complete) => (2, "Complete"),
        (JobState::Finished, JobHealth::Unknown | JobHealth::Incomplete) => (3, "Incomplete"),
        (JobState::Finished, JobHealth::Canceled) => (4, "Canceled"),
    }
}

/// Python's `str()` of an aware UTC datetime: `2024-01-02 03:04:05.678000+00:00`, the
/// fraction left out when it is zero; `"None"` for none.
pub fn python_time(ms: Option<i64>) -> String {
    let Some(ms) = ms.and_then(|ms| u64::try_from(ms).ok()) else {
        return "None".into();
    };
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    // `str()` is `isoformat()` with a space between date and time.
    crate::master::events::isoformat(at).replacen('T', " ", 1)
}

/// Python's `str()` of a YAML value, for `metadata` (whose values LAVA stringifies).
fn python_str(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => python_repr(other),
    }
}

fn python_repr(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(python_repr).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("'{k}': {}", python_repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// What the job's data includes beyond its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dataset {
    /// `log`: the whole job log.
    pub log: bool,
    /// `results`: each suite's test cases.
    pub results: bool,
}

impl Dataset {
    /// LAVA's `dataset:` names (`minimal` by default).
    pub fn named(name: &str) -> Self {
        Self {
            log: matches!(name, "logs" | "all"),
            results: matches!(name, "results" | "all"),
        }
    }
}

/// The job as callbacks send it, in LAVA's key order (`submitter_email` empty when the
/// submitter has none, as in LAVA).
pub fn job_data(
    job: &Job,
    definition: &Value,
    submitter_email: &str,
    log: Option<&str>,
    results: Option<&[TestResult]>,
) -> Value {
    let (status, status_name) = legacy_status(job.state, job.health);
    let mut data = Map::new();
    data.insert("id".into(), json!(job.id));
    data.insert("status".into(), json!(status));
    data.insert("status_string".into(), json!(status_name.to_lowercase()));
    data.insert("state".into(), json!(state_code(job.state)));
    data.insert("state_string".into(), json!(display(job.state.as_str())));
    data.insert("health".into(), json!(health_code(job.health)));
    data.insert("health_string".into(), json!(display(job.health.as_str())));
    data.insert(
        "submit_time".into(),
        json!(python_time(Some(job.submit_time))),
    );
    data.insert("start_time".into(), json!(python_time(job.start_time)));
    data.insert("end_time".into(), json!(python_time(job.end_time)));
    data.insert("submitter_username".into(), json!(job.submitter));
    data.insert("submitter_email".into(), json!(submitter_email));
    data.insert(
        "failure_comment".into(),
        match job.failure_comment.as_str() {
            "" => Value::Null,
            comment => json!(comment),
        },
    );
    data.insert("priority".into(), json!(job.priority));
    data.insert("description".into(), json!(job.name));
    data.insert("actual_device_id".into(), json!(job.actual_device));
    data.insert("definition".into(), json!(job.definition));
    let metadata: Vec<Value> = definition
        .get("metadata")
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .map(|(k, v)| json!({ k.clone(): python_str(v) }))
                .collect()
        })
        .unwrap_or_default();
    data.insert("metadata".into(), Value::Array(metadata));
    data.insert("health_check".into(), json!(job.health_check));
    if let Some(log) = log {
        data.insert("log".into(), json!(log));
    }
    if let Some(results) = results {
        data.insert("results".into(), Value::Object(suites(job, results)));
    }
    Value::Object(data)
}

/// Suite name → YAML text of its test cases (LAVA's `export_testcase`), suites in the order
/// their first case was logged.
fn suites(job: &Job, results: &[TestResult]) -> Map<String, Value> {
    let mut by_suite: Vec<(String, Vec<Value>)> = Vec::new();
    for (index, r) in results.iter().enumerate() {
        let case = json!({
            "name": r.name,
            "job": job.id.to_string(),
            "suite": r.suite,
            "result": r.result,
            "measurement": r.measurement.clone().unwrap_or_else(|| "None".into()),
            "unit": r.units.clone().unwrap_or_default(),
            "level": r.data.get("level").cloned().unwrap_or(json!("")),
            "url": format!("/results/testcase/{}", index + 1),
            "id": (index + 1).to_string(),
            "logged": python_time(job.end_time.or(job.start_time)),
            "log_start_line": (r.log_line + 1).to_string(),
            "log_end_line": "",
            "metadata": r.data,
        });
        match by_suite.iter_mut().find(|(suite, _)| *suite == r.suite) {
            Some((_, cases)) => cases.push(case),
            None => by_suite.push((r.suite.clone(), vec![case])),
        }
    }
    by_suite
        .into_iter()
        .map(|(suite, cases)| {
            let text = serde_yaml::to_string(&cases).unwrap_or_else(|_| "[]\n".into());
            (suite, Value::String(text))
        })
        .collect()
}

/// The body as Python's requests writes `data=dict` (`application/x-www-form-urlencoded`):
/// `None` values left out, booleans `True`/`False`, and a list or mapping sent as one field
/// per element — for mappings their keys, so `metadata` and `results` arrive as names only,
/// exactly as LAVA sends them (use `content-type: json` for the whole data).
pub fn urlencoded(data: &Value) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    let Some(map) = data.as_object() else {
        return String::new();
    };
    for (key, value) in map {
        match value {
            Value::Null => {}
            Value::Bool(b) => {
                form.append_pair(key, if *b { "True" } else { "False" });
            }
            Value::Number(n) => {
                form.append_pair(key, &n.to_string());
            }
            Value::String(s) => {
                form.append_pair(key, s);
            }
            Value::Array(items) => {
                for item in items {
                    match item {
                        Value::Object(inner) => {
                            for k in inner.keys() {
                                form.append_pair(key, k);
                            }
                        }
                        other => {
                            form.append_pair(key, &python_str(other));
                        }
                    }
                }
            }
            Value::Object(inner) => {
                for k in inner.keys() {
                    form.append_pair(key, k);
                }
            }
        }
    }
    form.finish()
}

/// LAVA's `substitute_callback_url_variables`: each `{NAME}` (upper case) becomes the job's
/// field of that name (`{ID}`, `{STATUS}` the legacy code, `{STATUS_STRING}`, `{SUBMITTER}`,
/// `{ACTUAL_DEVICE}`, …); an unknown name is left as it is, as in LAVA.
pub fn substitute_url(url: &str, job: &Job) -> String {
    static PLACEHOLDER: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"\{\s*[A-Z_-]*\s*\}").expect("valid regex"));
    let (status, status_name) = legacy_status(job.state, job.health);
    PLACEHOLDER
        .replace_all(url, |captures: &regex::Captures<'_>| {
            let whole = &captures[0];
            let name = whole
                .trim_matches(|c| c == '{' || c == '}')
                .trim()
                .to_lowercase();
            match name.as_str() {
                "status" => status.to_string(),
                "status_string" => status_name.to_lowercase(),
                "id" | "pk" => job.id.to_string(),
                "state" => state_code(job.state).to_string(),
                "health" => health_code(job.health).to_string(),
                "submitter" => job.submitter.clone(),
                "actual_device" | "actual_device_id" => {
                    job.actual_device.clone().unwrap_or_else(|| "None".into())
                }
                "description" => job.name.clone(),
                "priority" => job.priority.to_string(),
                "health_check" => if job.health_check { "True" } else { "False" }.into(),
                "submit_time" => python_time(Some(job.submit_time)),
                "start_time" => python_time(job.start_time),
                "end_time" => python_time(job.end_time),
                _ => whole.to_owned(),
            }
        })
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_status_follows_lava() {
        assert_eq!(
            legacy_status(JobState::Scheduled, JobHealth::Unknown),
            (0, "Submitted")
        );
        assert_eq!(
            legacy_status(JobState::Finished, JobHealth::Complete),
            (2, "Complete")
        );
        assert_eq!(
            legacy_status(JobState::Finished, JobHealth::Canceled),
            (4, "Canceled")
        );
        assert_eq!(
            legacy_status(JobState::Canceling, JobHealth::Unknown),
            (5, "Canceling")
        );
    }

    #[test]
    fn times_are_pythons_str_of_a_datetime() {
        assert_eq!(python_time(None), "None");
        assert_eq!(
            python_time(Some(1_704_164_645_678)),
            "2024-01-02 03:04:05.678000+00:00"
        );
        assert_eq!(
            python_time(Some(1_704_164_645_000)),
            "2024-01-02 03:04:05+00:00"
        );
    }

    #[test]
    fn urlencoding_is_what_requests_sends_for_a_dict() {
        let data = json!({
            "id": 12, "failure_comment": null, "health_check": false,
            "description": "a b&c", "metadata": [{"k": "v"}, {"k2": "v2"}],
            "results": {"lava": "- x\n", "0_smoke": "[]\n"},
        });
        assert_eq!(
            urlencoded(&data),
            "id=12&health_check=False&description=a+b%26c&metadata=k&metadata=k2\
             &results=lava&results=0_smoke"
        );
    }

    #[test]
    fn metadata_values_are_pythons_str() {
        assert_eq!(python_str(&json!("x")), "x");
        assert_eq!(python_str(&json!(true)), "True");
        assert_eq!(
            python_str(&json!({"a": 1, "b": [1, "x"]})),
            "{'a': 1, 'b': [1, 'x']}"
        );
    }
}
