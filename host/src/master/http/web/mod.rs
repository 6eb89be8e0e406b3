//! The web pages: the lab (devices, workers, the queue), job lists, and a job page whose log
//! grows live while the job runs. Server-rendered HTML plus one small script, served from
//! the binary: nothing to build, nothing to install.
//!
//! Pages read through the [`Service`] like the APIs do; the job page's script polls the REST
//! API (`/api/v1/jobs/{id}/logs?offset=`), so the browser sees exactly what `basalt jobs logs
//! --follow` sees.

mod html;

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use html::{badge, esc, facts, link, page, table, time, url_part};

use super::status;
use crate::master::lava_api::METHODS;
use crate::master::service::{JobFilter, Service, ServiceError};
use crate::store::{HistoryEntry, Job, JobState};

const STYLE: &str = include_str!("assets/basalt.css");
const JOB_SCRIPT: &str = include_str!("assets/job.js");
/// The REST API's description, served so clients and tools can fetch it from the master.
const OPENAPI: &str = include_str!("../../../../../docs/openapi.yaml");

/// The pages' routes.
/// Who reads the pages: they take no credentials, so they show what anyone may see (public
/// jobs, no dictionaries, secrets masked).
const ANONYMOUS: crate::master::service::Caller = crate::master::service::Caller::Anonymous;

pub fn routes() -> Router<Arc<Service>> {
    Router::new()
        .route("/", get(lab))
        .route("/jobs", get(jobs))
        .route("/jobs/{id}", get(job))
        // LAVA's address of a job page (e-mails and CI systems link to it).
        .route("/scheduler/job/{id}", get(lava_job_link))
        .route("/devices/{name}", get(device))
        .route("/workers/{name}", get(worker))
        .route("/api", get(api_help))
        .route("/metrics", get(metrics))
        .route("/static/basalt.css", get(|| asset("text/css", STYLE)))
        .route(
            "/static/job.js",
            get(|| asset("text/javascript", JOB_SCRIPT)),
        )
        .route(
            "/api/v1/openapi.yaml",
            get(|| asset("application/yaml", OPENAPI)),
        )
}

async fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// A failed page: the error's status and its message, in the page frame.
struct PageError(ServiceError);

impl From<ServiceError> for PageError {
    fn from(error: ServiceError) -> Self {
        Self(error)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let body = format!("<p class=\"error\">{}</p>", esc(&self.0.message));
        (status(self.0.kind), Html(page("Error", &body, None))).into_response()
    }
}

type PageResult = Result<Html<String>, PageError>;
type Shared = State<Arc<Service>>;

fn job_link(id: u64) -> String {
    link(&format!("/jobs/{id}"), &id.to_string())
}

fn device_link(name: &str) -> String {
    link(&format!("/devices/{}", url_part(name)), name)
}

fn worker_link(name: &str) -> String {
    link(&format!("/workers/{}", url_part(name)), name)
}

fn job_rows(jobs: &[Job]) -> Vec<Vec<String>> {
    jobs.iter()
        .map(|j| {
            vec![
                job_link(j.id),
                if j.health_check {
                    format!(
                        "{} <span class=\"badge check\">health check</span>",
                        esc(&j.name)
                    )
                } else {
                    esc(&j.name)
                },
                esc(&j.device_type),
                j.actual_device
                    .as_deref()
                    .map(device_link)
                    .unwrap_or_default(),
                badge(j.state.as_str()),
                badge(j.health.as_str()),
                esc(&j.submitter),
                time(Some(j.submit_time)),
            ]
        })
        .collect()
}

const JOB_HEADER: &[&str] = &[
    "ID",
    "Name",
    "Type",
    "Device",
    "State",
    "Health",
    "Submitter",
    "Submitted",
];

async fn lab(State(service): Shared) -> PageResult {
    let devices = service.devices()?;
    let device_rows: Vec<Vec<String>> = devices
        .iter()
        .map(|d| {
            vec![
                device_link(&d.hostname),
                esc(&d.device_type),
                d.worker.as_deref().map(worker_link).unwrap_or_default(),
                badge(d.state.as_str()),
                badge(d.health.as_str()),
                d.current_job.map(job_link).unwrap_or_default(),
                badge(&d.power_state),
            ]
        })
        .collect();
    let worker_rows: Vec<Vec<String>> = service
        .workers()?
        .iter()
        .map(|w| {
            vec![
                worker_link(&w.hostname),
                badge(w.state.as_str()),
                badge(w.health.as_str()),
                time(w.last_seen),
                esc(w.version.as_deref().unwrap_or("")),
            ]
        })
        .collect();
    let mut queue = Vec::new();
    for state in [
        JobState::Running,
        JobState::Canceling,
        JobState::Scheduled,
        JobState::Submitted,
    ] {
        queue.extend(service.jobs_for(
            &ANONYMOUS,
            &JobFilter {
                state: Some(state),
                limit: 200,
                ..JobFilter::default()
            },
        )?);
    }
    let body = format!(
        "<section><h2>Devices</h2>{}</section>
<section><h2>Workers</h2>{}</section>
<section><h2>Queue</h2>{}</section>",
        table(
            "devices",
            &["Hostname", "Type", "Worker", "State", "Health", "Job", "Power"],
            &device_rows,
            "No devices yet: add one with `basalt devices add`.",
        ),
        table(
            "workers",
            &["Hostname", "State", "Health", "Last seen (UTC)", "Version"],
            &worker_rows,
            "No workers yet: start a slave, or add one with `basalt workers add`.",
        ),
        table(
            "queue",
            JOB_HEADER,
            &job_rows(&queue),
            "Nothing queued or running."
        ),
    );
    Ok(Html(page("Lab", &body, Some(10))))
}

#[derive(Deserialize)]
struct JobsQuery {
    state: Option<String>,
}

async fn jobs(State(service): Shared, Query(query): Query<JobsQuery>) -> PageResult {
    let state = query.state.as_deref().and_then(JobState::parse);
    let jobs = service.jobs_for(
        &ANONYMOUS,
        &JobFilter {
            state,
            limit: 200,
            ..JobFilter::default()
        },
    )?;
    let mut filters = vec![link("/jobs", "all")];
    filters.extend(
        JobState::ALL
            .iter()
            .map(|s| link(&format!("/jobs?state={s}"), s.as_str())),
    );
    let body = format!(
        "<p class=\"filters\">{}</p>{}",
        filters.join(" · "),
        table("jobs", JOB_HEADER, &job_rows(&jobs), "No jobs.")
    );
    Ok(Html(page("Jobs", &body, Some(10))))
}

async fn lava_job_link(Path(id): Path<u64>) -> axum::response::Redirect {
    axum::response::Redirect::permanent(&format!("/jobs/{id}"))
}

async fn job(State(service): Shared, Path(id): Path<u64>) -> PageResult {
    let job = service.job_for(&ANONYMOUS, id)?;
    let results = service.results(&ANONYMOUS, id)?;
    let result_rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            vec![
                esc(&r.suite),
                esc(&r.name),
                badge(&r.result),
                esc(r.measurement.as_deref().unwrap_or("")),
                esc(r.units.as_deref().unwrap_or("")),
            ]
        })
        .collect();
    let notification_rows: Vec<Vec<String>> = service
        .notifications(&ANONYMOUS, id)?
        .iter()
        .map(|n| {
            vec![
                esc(&n.kind),
                esc(&n.target),
                badge(n.state.as_str()),
                n.attempts.to_string(),
                n.last_status.map(|s| s.to_string()).unwrap_or_default(),
                time(n.last_attempt),
                esc(&n.last_error),
            ]
        })
        .collect();
    let failure = if job.failure_comment.is_empty() {
        String::new()
    } else {
        format!("<p class=\"error\">{}</p>", esc(&job.failure_comment))
    };
    let body = format!(
        "<div id=\"job\" data-id=\"{id}\" data-state=\"{state}\">
{facts}
{failure}
<section><h2>Log</h2><p id=\"log-status\" class=\"muted\">loading…</p><div id=\"log\" class=\"log\"></div></section>
<section><h2>Results</h2><div id=\"results\">{results}</div></section>
{notifications}
<section><h2>Definition</h2><pre class=\"definition\">{definition}</pre></section>
</div>
<script src=\"/static/job.js\"></script>",
        state = job.state,
        facts = facts(&[
            (
                "Name",
                if job.health_check {
                    format!("{} (health check of its device)", esc(&job.name))
                } else {
                    esc(&job.name)
                },
            ),
            ("State", format!("<span id=\"job-state\">{}</span>", badge(job.state.as_str()))),
            ("Health", format!("<span id=\"job-health\">{}</span>", badge(job.health.as_str()))),
            ("Device type", esc(&job.device_type)),
            ("Device", job.actual_device.as_deref().map(device_link).unwrap_or_else(|| "-".into())),
            ("Worker", job.worker.as_deref().map(worker_link).unwrap_or_else(|| "-".into())),
            ("Submitter", esc(&job.submitter)),
            ("Submitted", time(Some(job.submit_time))),
            ("Started", time(job.start_time)),
            ("Ended", time(job.end_time)),
        ]),
        results = table(
            "results-table",
            &["Suite", "Test case", "Result", "Measurement", "Units"],
            &result_rows,
            "No results yet.",
        ),
        notifications = if notification_rows.is_empty() {
            String::new()
        } else {
            format!(
                "<section><h2>Notifications</h2>{}</section>",
                table(
                    "notifications",
                    &["Kind", "To", "State", "Attempts", "Status", "Last attempt", "Error"],
                    &notification_rows,
                    "",
                )
            )
        },
        // The web pages are anonymous: secrets are masked.
        definition = esc(&service.definition_for(&ANONYMOUS, &job)),
    );
    Ok(Html(page(&format!("Job {id}"), &body, None)))
}

/// A device's or worker's state and health changes, newest first.
fn history_table(history: &[HistoryEntry]) -> String {
    let rows: Vec<Vec<String>> = history
        .iter()
        .rev()
        .map(|h| {
            vec![
                time(Some(h.at)),
                esc(&h.field),
                badge(&h.old),
                badge(&h.new),
                esc(&h.reason),
            ]
        })
        .collect();
    table(
        "history",
        &["When (UTC)", "What", "From", "To", "Why"],
        &rows,
        "No changes yet.",
    )
}

async fn device(State(service): Shared, Path(name): Path<String>) -> PageResult {
    let (device, history) = service.device(&name)?;
    let body =
        format!(
        "{}<section><h2>History</h2>{}</section><section><h2>Dictionary</h2><p>{}</p></section>",
        facts(&[
            ("Type", esc(&device.device_type)),
            ("Worker", device.worker.as_deref().map(worker_link).unwrap_or_else(|| "-".into())),
            ("State", badge(device.state.as_str())),
            ("Health", badge(device.health.as_str())),
            ("Current job", device.current_job.map(job_link).unwrap_or_else(|| "-".into())),
            (
                "Power (read back)",
                format!("{} at {}", badge(&device.power_state), time(device.power_checked)),
            ),
            ("Tags", esc(&device.tags.join(", "))),
            ("Description", esc(&device.description)),
        ]),
        history_table(&history),
        // The pages are anonymous, and a dictionary holds its PDU's and console server's
        // credentials.
        if device.dictionary.is_empty() {
            "None: the device takes no jobs until it has one."
        } else {
            "Set; superusers read it with <code>basalt devices dict get</code>."
        },
    );
    Ok(Html(page(&device.hostname, &body, Some(10))))
}

async fn worker(State(service): Shared, Path(name): Path<String>) -> PageResult {
    let (worker, devices, history) = service.worker(&name)?;
    let devices: Vec<String> = devices.iter().map(|d| device_link(d)).collect();
    let body = format!(
        "{}<section><h2>History</h2>{}</section>",
        facts(&[
            ("State", badge(worker.state.as_str())),
            ("Health", badge(worker.health.as_str())),
            ("Last seen", time(worker.last_seen)),
            ("Version", esc(worker.version.as_deref().unwrap_or("-"))),
            (
                "Job limit",
                if worker.job_limit == 0 {
                    "none".into()
                } else {
                    worker.job_limit.to_string()
                }
            ),
            ("Devices", devices.join(", ")),
            ("Description", esc(&worker.description)),
        ]),
        history_table(&history),
    );
    Ok(Html(page(&worker.hostname, &body, Some(10))))
}

/// Prometheus's scrape endpoint.
async fn metrics(State(service): Shared) -> Result<Response, PageError> {
    let text = service.metrics()?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

async fn api_help() -> Html<String> {
    let methods: String = METHODS
        .iter()
        .map(|(name, _, help)| {
            format!(
                "<tr><td><code>{}</code></td><td>{}</td></tr>",
                esc(name),
                esc(help)
            )
        })
        .collect();
    let body = format!(
        "<section><h2>REST</h2><p>JSON under <code>/api/v1/</code>, described by \
<a href=\"/api/v1/openapi.yaml\">openapi.yaml</a>. Send <code>Authorization: Bearer TOKEN</code> \
to change things; tokens come from <code>basalt user token NAME</code>.</p></section>
<section><h2>XML-RPC</h2><p>LAVA's API at <code>/RPC2</code>, for lavacli: \
<code>lavacli identities add --uri http://HOST:PORT/RPC2 --username NAME --token TOKEN ID</code>.</p>
<table id=\"methods\"><thead><tr><th>Method</th><th>What</th></tr></thead><tbody>{methods}</tbody></table></section>"
    );
    Html(page("API", &body, None))
}

/// Unknown pages get the frame too, so a mistyped link still leads somewhere; unknown API
/// paths get the API's JSON error.
pub async fn not_found(uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/api/") {
        let message = format!("{} is not an API path: see /api", uri.path());
        return (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({ "error": message })),
        )
            .into_response();
    }
    (
        StatusCode::NOT_FOUND,
        Html(page("Not found", "<p>There is no such page.</p>", None)),
    )
        .into_response()
}
