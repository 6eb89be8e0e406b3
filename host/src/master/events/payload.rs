//! One event as LAVA's signal handlers build it: the topic suffix, the username frame and the
//! JSON payload, with LAVA's display names (`Running`, `Good`, …) and key order.

use crate::store::display_name as display;
use serde_json::{json, Map, Value};

use crate::store::{Change, Store, StoreError, Visibility};

/// What an event is about, for the WebSocket's per-client visibility check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A job: its id, and who may see it (so each WebSocket client's filter needs no
    /// database read).
    Job {
        /// Its id.
        id: u64,
        /// Its visibility.
        visibility: Visibility,
        /// Its submitter.
        submitter: String,
    },
    /// A device (its hostname).
    Device(String),
    /// A worker (its hostname).
    Worker(String),
}

/// One event before it is framed.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `.testjob`, `.device` or `.worker`.
    pub suffix: &'static str,
    /// The submitter for jobs, `lavaserver` otherwise (as LAVA).
    pub username: String,
    /// The payload.
    pub data: Value,
    /// What it is about.
    pub subject: Subject,
}

/// The events a run of history rows makes: one per object per transaction's worth of
/// consecutive rows (a job's state and health change together, as one LAVA `save()`; a
/// field that changes again starts the next event, so Submitted then Scheduled are two),
/// with the state and health the rows give and everything else from the object as it is
/// now.
pub fn events_for(store: &Store, changes: &[Change]) -> Result<Vec<Event>, StoreError> {
    let mut events = Vec::new();
    let mut start = 0;
    while start < changes.len() {
        let first = &changes[start];
        let mut fields: Vec<&str> = Vec::new();
        let end = changes[start..]
            .iter()
            .position(|c| {
                let other = c.kind != first.kind || c.object != first.object;
                let again = fields.contains(&c.field.as_str());
                fields.push(&c.field);
                other || again
            })
            .map_or(changes.len(), |n| start + n);
        let group = &changes[start..end];
        let field = |name: &str| {
            group
                .iter()
                .rev()
                .find(|c| c.field == name)
                .map(|c| c.new.clone())
        };
        let event = match first.kind.as_str() {
            "job" => job_event(store, &first.object, field("state"), field("health"))?,
            "device" => device_event(store, &first.object, field("state"), field("health"))?,
            "worker" => worker_event(store, &first.object, field("state"), field("health"))?,
            _ => None,
        };
        events.extend(event);
        start = end;
    }
    Ok(events)
}

/// An aware UTC time as Python's `isoformat()` writes it: microseconds, dropped when zero.
pub fn isoformat(at: std::time::SystemTime) -> String {
    let text = humantime::format_rfc3339_micros(at).to_string();
    let text = text.trim_end_matches('Z');
    let text = text.strip_suffix(".000000").unwrap_or(text);
    format!("{text}+00:00")
}

fn isoformat_ms(ms: i64) -> Option<String> {
    let ms = u64::try_from(ms).ok()?;
    Some(isoformat(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
    ))
}

fn job_event(
    store: &Store,
    object: &str,
    state: Option<String>,
    health: Option<String>,
) -> Result<Option<Event>, StoreError> {
    let Some(job) = object.parse().ok().map(|id| store.job(id)).transpose()? else {
        return Ok(None);
    };
    let Some(job) = job else {
        return Ok(None);
    };
    let state = state.unwrap_or_else(|| job.state.as_str().to_owned());
    let health = health.unwrap_or_else(|| job.health.as_str().to_owned());
    let mut data = Map::new();
    data.insert("health".into(), json!(display(&health)));
    data.insert("state".into(), json!(display(&state)));
    data.insert("job".into(), json!(job.id));
    data.insert("description".into(), json!(job.name));
    data.insert("priority".into(), json!(job.priority));
    data.insert("submit_time".into(), json!(isoformat_ms(job.submit_time)));
    data.insert("submitter".into(), json!(job.submitter));
    data.insert("health_check".into(), json!(job.health_check));
    if let Some(device) = &job.actual_device {
        data.insert("device".into(), json!(device));
    }
    if let Some(worker) = &job.worker {
        data.insert("worker".into(), json!(worker));
    }
    data.insert("device_type".into(), json!(job.device_type));
    if let Some(at) = job.start_time.and_then(isoformat_ms) {
        data.insert("start_time".into(), json!(at));
    }
    if let Some(at) = job.end_time.and_then(isoformat_ms) {
        data.insert("end_time".into(), json!(at));
    }
    Ok(Some(Event {
        suffix: ".testjob",
        username: job.submitter.clone(),
        data: Value::Object(data),
        subject: Subject::Job {
            id: job.id,
            visibility: job.visibility.clone(),
            submitter: job.submitter.clone(),
        },
    }))
}

fn device_event(
    store: &Store,
    hostname: &str,
    state: Option<String>,
    health: Option<String>,
) -> Result<Option<Event>, StoreError> {
    let Some(device) = store.device(hostname)? else {
        return Ok(None);
    };
    let state = state.unwrap_or_else(|| device.state.as_str().to_owned());
    let health = health.unwrap_or_else(|| device.health.as_str().to_owned());
    let mut data = Map::new();
    data.insert("health".into(), json!(display(&health)));
    data.insert("state".into(), json!(display(&state)));
    data.insert("device".into(), json!(device.hostname));
    data.insert("device_type".into(), json!(device.device_type));
    data.insert("worker".into(), json!(device.worker));
    if let Some(job) = device.current_job {
        data.insert("job".into(), json!(job));
    }
    Ok(Some(Event {
        suffix: ".device",
        username: "lavaserver".into(),
        data: Value::Object(data),
        subject: Subject::Device(device.hostname),
    }))
}

fn worker_event(
    store: &Store,
    hostname: &str,
    state: Option<String>,
    health: Option<String>,
) -> Result<Option<Event>, StoreError> {
    let Some(worker) = store.worker(hostname)? else {
        return Ok(None);
    };
    let state = state.unwrap_or_else(|| worker.state.as_str().to_owned());
    let health = health.unwrap_or_else(|| worker.health.as_str().to_owned());
    let mut data = Map::new();
    data.insert("hostname".into(), json!(worker.hostname));
    data.insert("health".into(), json!(display(&health)));
    data.insert("state".into(), json!(display(&state)));
    Ok(Some(Event {
        suffix: ".worker",
        username: "lavaserver".into(),
        data: Value::Object(data),
        subject: Subject::Worker(worker.hostname),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_as_pythons_isoformat() {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_715_946_596_336_847);
        assert_eq!(isoformat(at), "2024-05-17T11:49:56.336847+00:00");
        let whole = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_715_946_596);
        assert_eq!(isoformat(whole), "2024-05-17T11:49:56+00:00");
    }

    #[test]
    fn display_names_are_capitalised() {
        assert_eq!(display("running"), "Running");
        assert_eq!(display(""), "");
    }
}

/// JSON as Python's `json.dumps` writes it by default (`", "` and `": "` between items,
/// non-ASCII escaped): the payload frame LAVA's clients have always received.
pub fn dumps(value: &Value) -> String {
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    // Serialising a Value into memory cannot fail.
    let _ = serde::Serialize::serialize(value, &mut serializer);
    String::from_utf8(out).unwrap_or_default()
}

struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
    ) -> std::io::Result<()> {
        writer.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        for c in fragment.chars() {
            if c.is_ascii() {
                writer.write_all(&[c as u8])?;
            } else {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(writer, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod dumps_tests {
    use super::*;

    #[test]
    fn dumps_writes_what_python_writes() {
        let value = json!({"state": "Running", "job": 12, "list": [1, 2], "name": "é€😀"});
        assert_eq!(
            dumps(&value),
            r#"{"state": "Running", "job": 12, "list": [1, 2], "name": "\u00e9\u20ac\ud83d\ude00"}"#
        );
    }
}

#[cfg(test)]
mod grouping_tests {
    use super::*;
    use crate::store::{testing, NewJob, Visibility};

    #[test]
    fn each_change_of_a_field_is_its_own_event_in_lavas_shape() {
        let (_dir, store) = testing::store();
        testing::lab(&store);
        let id = store
            .submit(&NewJob {
                visibility: Visibility::Personal,
                submitter: "alice".into(),
                ..testing::new_job()
            })
            .unwrap();
        store.assign(id, "qemu-01").unwrap();
        let changes = store.changes_after(0, 100).unwrap();
        let events = events_for(&store, &changes).unwrap();
        let jobs: Vec<&Value> = events
            .iter()
            .filter(|e| e.suffix == ".testjob")
            .map(|e| &e.data["state"])
            .collect();
        assert_eq!(jobs, [&json!("Submitted"), &json!("Scheduled")]);
        let job = events.iter().find(|e| e.suffix == ".testjob").unwrap();
        assert_eq!(job.username, "alice");
        assert_eq!(job.data["job"], json!(id));
        assert!(matches!(
            &job.subject,
            Subject::Job { visibility: Visibility::Personal, submitter, .. } if submitter == "alice"
        ));
        let device = events.iter().find(|e| e.suffix == ".device").unwrap();
        assert_eq!(
            (
                &device.data["device"],
                &device.data["state"],
                &device.data["worker"]
            ),
            (&json!("qemu-01"), &json!("Reserved"), &json!("w1"))
        );
        assert_eq!(device.username, "lavaserver");
    }
}
