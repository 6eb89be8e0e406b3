//! `scheduler.jobs.*`, the legacy flat job methods and `results.*`.

use super::{datetime, display, Fault, MethodResult, Params};
use crate::master::service::{Caller, JobFilter, Service};
use crate::store::{Job, JobHealth, JobState};
use crate::xmlrpc::Value;

/// LAVA's `jobs.list` caps a page at this many.
const LIST_MAX: i64 = 100;

/// LAVA's display state: a scheduled job is "Scheduled", one waiting is "Submitted".
fn state_name(state: JobState) -> String {
    display(state.as_str())
}

pub fn submit(service: &Service, caller: &Caller, params: &Params) -> MethodResult {
    params.at_most(1)?;
    let definition = params.string(0, "definition")?;
    Ok(Value::from(service.submit(caller, &definition, None)?))
}

pub fn resubmit(service: &Service, caller: &Caller, params: &Params) -> MethodResult {
    params.at_most(1)?;
    let id = params.id(0, "job_id")?;
    Ok(Value::from(service.resubmit(caller, id)?))
}

pub fn cancel(service: &Service, caller: &Caller, params: &Params) -> MethodResult {
    params.at_most(1)?;
    service.cancel(caller, params.id(0, "job_id")?)?;
    Ok(Value::Nil)
}

pub fn cancel_legacy(service: &Service, caller: &Caller, params: &Params) -> MethodResult {
    cancel(service, caller, params)?;
    Ok(Value::Bool(true))
}

fn show_value(job: &Job) -> Value {
    let failure = job.failure_comment.trim();
    Value::structure([
        ("id", Value::from(job.id)),
        ("description", Value::from(job.name.as_str())),
        ("device", Value::opt_string(job.actual_device.as_deref())),
        ("device_type", Value::from(job.device_type.as_str())),
        ("health_check", Value::Bool(job.health_check)),
        ("pipeline", Value::Bool(true)),
        ("health", Value::String(display(job.health.as_str()))),
        ("state", Value::String(state_name(job.state))),
        ("submitter", Value::from(job.submitter.as_str())),
        ("submit_time", datetime(Some(job.submit_time))),
        ("start_time", datetime(job.start_time)),
        ("end_time", datetime(job.end_time)),
        (
            "tags",
            Value::Array(job.tags.iter().map(|t| Value::from(t.as_str())).collect()),
        ),
        ("visibility", Value::from(visibility_name(&job.visibility))),
        (
            "failure_comment",
            Value::opt_string((!failure.is_empty()).then_some(failure)),
        ),
        ("error_msg", Value::opt_string(job.error_msg.as_deref())),
        ("error_type", Value::opt_string(job.error_type.as_deref())),
    ])
}

pub fn show(service: &Service, caller: &Caller, params: &Params) -> MethodResult {
    params.at_most(1)?;
    Ok(show_value(
        &service.job_for(caller, params.id(0, "job_id")?)?,
    ))
}

pub fn definition(service: &Service, caller: &Caller, params: &Params) -> MethodResult {
    params.at_most(1)?;
    let job = service.job_for(caller, params.id(0, "job_id")?)?;
    Ok(Value::String(service.definition_for(caller, &job)))
}

/// `[finished, Binary(lines start..end)]`: lavacli counts the lines it parsed and asks again
/// from there until `finished`.
pub fn logs(service: &Service, caller: &Caller, params: &Params) -> MethodResult {
    params.at_most(3)?;
    let id = params.id(0, "job_id")?;
    let start = params.opt_int(1, "start")?.unwrap_or(0).max(0) as u64;
    let end = params.opt_int(2, "end")?.map(|e| e.max(0) as u64);
    let lines = service.log_lines(caller, id, start, end)?;
    Ok(Value::Array(vec![
        Value::Bool(lines.finished),
        Value::Base64(lines.text.into_bytes()),
    ]))
}

fn parse_state(text: &str) -> Result<JobState, Fault> {
    JobState::parse(text).ok_or_else(|| {
        Fault::new(
            400,
            format!(
                "{text:?} is not a job state: SUBMITTED, SCHEDULED, RUNNING, CANCELING or FINISHED"
            ),
        )
    })
}

fn parse_health(text: &str) -> Result<JobHealth, Fault> {
    JobHealth::parse(text).ok_or_else(|| {
        Fault::new(
            400,
            format!("{text:?} is not a job health: UNKNOWN, COMPLETE, INCOMPLETE or CANCELED"),
        )
    })
}

/// `list(state=None, health=None, start=0, limit=25, since=0, verbose=False)`.
pub fn list(service: &Service, caller: &Caller, params: &Params) -> MethodResult {
    params.at_most(7)?;
    let state = params
        .opt_string(0, "state")?
        .map(|s| parse_state(&s))
        .transpose()?;
    let health = params
        .opt_string(1, "health")?
        .map(|h| parse_health(&h))
        .transpose()?;
    let start = params.opt_int(2, "start")?.unwrap_or(0).max(0);
    let limit = params.opt_int(3, "limit")?.unwrap_or(25).clamp(0, LIST_MAX);
    let since_minutes = params.opt_int(4, "since")?.unwrap_or(0).max(0);
    let verbose = params.bool_or(5, "verbose", false)?;
    let cutoff = (since_minutes > 0)
        .then(|| crate::store::now_ms().saturating_sub(since_minutes.saturating_mul(60_000)));
    // With `since`, the window applies before the page: read enough to page through it.
    let filter = match cutoff {
        None => JobFilter {
            state,
            health,
            offset: u32::try_from(start).unwrap_or(u32::MAX),
            limit: limit as u32,
        },
        Some(_) => JobFilter {
            state,
            health,
            offset: 0,
            limit: 100_000,
        },
    };
    let skip = if cutoff.is_some() { start as usize } else { 0 };
    let jobs = service.jobs_for(caller, &filter)?;
    Ok(Value::Array(
        jobs.iter()
            .filter(|job| match cutoff {
                Some(cutoff) => job.end_time.is_some_and(|end| end >= cutoff),
                None => true,
            })
            .skip(skip)
            .take(limit as usize)
            .map(|job| {
                let mut members = vec![
                    ("id", Value::from(job.id)),
                    ("description", Value::from(job.name.as_str())),
                    ("device_type", Value::from(job.device_type.as_str())),
                    ("health", Value::String(display(job.health.as_str()))),
                    ("state", Value::String(state_name(job.state))),
                    ("submitter", Value::from(job.submitter.as_str())),
                ];
                if verbose {
                    members.extend([
                        (
                            "actual_device",
                            Value::opt_string(job.actual_device.as_deref()),
                        ),
                        // Strings here, as LAVA sends them: lavacli dumps lists as JSON.
                        ("start_time", time_text(job.start_time)),
                        ("end_time", time_text(job.end_time)),
                        ("error_msg", Value::opt_string(job.error_msg.as_deref())),
                        ("error_type", Value::opt_string(job.error_type.as_deref())),
                    ]);
                }
                Value::structure(members)
            })
            .collect(),
    ))
}

/// A time as text (`2026-11-25 10:00:00+00:00`, Python's `str(datetime)`), or nil.
fn time_text(ms: Option<i64>) -> Value {
    Value::opt_string(crate::store::utc_seconds(ms).map(|t| format!("{t}+00:00")))
}

/// `{}` when valid, `{path, msg}` for the first problem otherwise.
pub fn validate(service: &Service, _: &Caller, params: &Params) -> MethodResult {
    params.at_most(2)?;
    let definition = params.string(0, "definition")?;
    params.bool_or(1, "strict", false)?;
    Ok(match service.validate(&definition) {
        Ok(()) => Value::Struct(Vec::new()),
        Err(problems) => {
            let first = problems.first();
            let path = first.map(|p| p.path.clone()).unwrap_or_default();
            let message = problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            Value::structure([
                ("path", Value::String(path)),
                ("msg", Value::String(message)),
            ])
        }
    })
}

pub fn state_legacy(service: &Service, caller: &Caller, params: &Params) -> MethodResult {
    params.at_most(1)?;
    let job = service.job_for(caller, params.id(0, "job_id")?)?;
    Ok(Value::structure([(
        "job_state",
        Value::String(state_name(job.state)),
    )]))
}

pub fn health_legacy(service: &Service, caller: &Caller, params: &Params) -> MethodResult {
    params.at_most(1)?;
    let job = service.job_for(caller, params.id(0, "job_id")?)?;
    Ok(Value::structure([(
        "job_health",
        Value::String(display(job.health.as_str())),
    )]))
}

/// The job's results as a YAML list, in log order, with LAVA's keys.
pub fn results_yaml(service: &Service, caller: &Caller, params: &Params) -> MethodResult {
    params.at_most(1)?;
    let id = params.id(0, "job_id")?;
    let results = service.results(caller, id)?;
    let entries: Vec<serde_json::Value> = results
        .iter()
        .enumerate()
        .map(|(index, r)| {
            serde_json::json!({
                "id": index + 1,
                "job": id.to_string(),
                "suite": r.suite,
                "name": r.name,
                "result": r.result,
                "measurement": r.measurement,
                "unit": r.units.clone().unwrap_or_default(),
                "level": r.data.get("level").cloned().unwrap_or(serde_json::Value::Null),
                "log_start_line": r.log_line + 1,
                "metadata": r.data,
            })
        })
        .collect();
    serde_yaml::to_string(&entries)
        .map(Value::String)
        .map_err(|e| Fault::new(500, format!("cannot write the results as YAML: {e}")))
}

/// `queue(device_types=None, start=0, limit=25)`: jobs waiting for a device, oldest first.
pub fn queue(service: &Service, caller: &Caller, params: &Params) -> MethodResult {
    params.at_most(3)?;
    let types: Option<Vec<String>> = match params.values().first() {
        None | Some(Value::Nil) => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .filter_map(|v| v.as_text().map(str::to_owned))
                .collect(),
        ),
        Some(other) => {
            return Err(Fault::invalid_params(format!(
                "scheduler.jobs.queue: device_types must be a list, not {}",
                other.kind()
            )))
        }
    };
    let start = params.opt_int(1, "start")?.unwrap_or(0).max(0) as usize;
    let limit = params.opt_int(2, "limit")?.unwrap_or(25).clamp(0, LIST_MAX) as usize;
    let mut waiting = service.jobs_for(
        caller,
        &JobFilter {
            state: Some(JobState::Submitted),
            limit: 100_000,
            ..JobFilter::default()
        },
    )?;
    waiting.reverse();
    Ok(Value::Array(
        waiting
            .iter()
            .filter(|j| types.as_ref().is_none_or(|t| t.contains(&j.device_type)))
            .skip(start)
            .take(limit)
            .map(|j| {
                Value::structure([
                    ("id", Value::from(j.id)),
                    ("description", Value::from(j.name.as_str())),
                    ("requested_device_type", Value::from(j.device_type.as_str())),
                    ("submitter", Value::from(j.submitter.as_str())),
                ])
            })
            .collect(),
    ))
}

/// Legacy `job_output(job_id, offset=0)`: the log from byte `offset`, as base64.
pub fn output_legacy(service: &Service, caller: &Caller, params: &Params) -> MethodResult {
    params.at_most(2)?;
    let id = params.id(0, "job_id")?;
    let offset = params.opt_int(1, "offset")?.unwrap_or(0).max(0) as u64;
    Ok(Value::Base64(
        service.log_bytes(caller, id, offset)?.text.into_bytes(),
    ))
}

/// How LAVA's API names a visibility.
fn visibility_name(visibility: &crate::store::Visibility) -> &'static str {
    match visibility {
        crate::store::Visibility::Public => "Public",
        crate::store::Visibility::Personal => "Personal",
        crate::store::Visibility::Group(_) => "Group",
    }
}
