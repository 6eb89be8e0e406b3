//! The master's HTTP API (`/api/v1/...`, JSON), which the `basalt` admin commands use.
//!
//! Reads are open; every change needs the admin token (`Authorization: Bearer TOKEN`).
//! Handlers work on their own database connection and poke the control loop through the
//! [`Waker`] when the scheduler should look again. Errors are JSON `{"error": "..."}` with
//! a status that says whose fault it was (400 the request, 401 the token, 404 a name,
//! 409 a state, 500 the master).

use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::submit::{submit, SubmitError};
use crate::store::{DeviceHealth, JobState, Store, StoreError, WorkerHealth};
use crate::template::{extends_target, TemplateEngine};
use crate::transport::Waker;

/// What the handlers share.
pub struct Api {
    /// The handlers' database connection.
    pub store: Mutex<Store>,
    /// Wakes the control loop.
    pub waker: Waker,
    /// Renders dictionaries to check them when they are added.
    pub engine: TemplateEngine,
    /// The admin token.
    pub token: String,
    /// Where job logs are.
    pub jobs_dir: std::path::PathBuf,
}

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        let status = match &error {
            StoreError::NotFound { .. } => StatusCode::NOT_FOUND,
            StoreError::Exists { .. } | StoreError::Conflict(_) => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;
type Shared = State<Arc<Api>>;

impl Api {
    fn store(&self) -> ApiResult<std::sync::MutexGuard<'_, Store>> {
        self.store
            .lock()
            .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "store lock poisoned"))
    }

    fn authorize(&self, headers: &HeaderMap) -> ApiResult<()> {
        let given = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("Token "))
            })
            .unwrap_or("");
        if given.is_empty() {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "this needs the admin token: pass --token or set BASALT_TOKEN \
                 (the master wrote it to DATA_DIR/admin-token)",
            ));
        }
        if !constant_time_eq(given.as_bytes(), self.token.as_bytes()) {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "the token is not valid",
            ));
        }
        Ok(())
    }

    /// Checks that a template for `device_type` is on the search path.
    fn template_exists(&self, device_type: &str) -> ApiResult<()> {
        let name = format!("{device_type}.jinja2");
        let found = self
            .engine
            .search_path()
            .resolve(&name)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        if found.is_none() {
            let first = self
                .engine
                .search_path()
                .dirs()
                .first()
                .map(|d| d.display().to_string())
                .unwrap_or_else(|| "a device-type directory".into());
            return Err(ApiError::bad_request(format!(
                "device type {device_type} has no template: drop {name} into {first}"
            )));
        }
        Ok(())
    }

    /// Checks that a dictionary extends its type's template and renders.
    fn check_dictionary(&self, hostname: &str, device_type: &str, text: &str) -> ApiResult<()> {
        match extends_target(text) {
            Some(target) if target == format!("{device_type}.jinja2") => {}
            Some(target) => {
                return Err(ApiError::bad_request(format!(
                    "the dictionary of {hostname} extends {target}, but the device is a \
                     {device_type}: make it extend '{device_type}.jinja2'"
                )))
            }
            None => {
                return Err(ApiError::bad_request(format!(
                    "the dictionary of {hostname} extends no template: start it with \
                     {{% extends '{device_type}.jinja2' %}}"
                )))
            }
        }
        self.template_exists(device_type)?;
        self.engine
            .render_source(&format!("{hostname}.jinja2"), text, &json!({}))
            .map_err(|e| {
                ApiError::bad_request(format!("the dictionary of {hostname} does not render: {e}"))
            })?;
        Ok(())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Serves the API on `listener` until the runtime stops.
pub async fn serve(listener: tokio::net::TcpListener, api: Arc<Api>) -> std::io::Result<()> {
    axum::serve(listener, router(api)).await
}

/// The API's routes.
pub fn router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/api/v1/version", get(version))
        .route("/api/v1/workers", get(list_workers).post(add_worker))
        .route("/api/v1/workers/{name}", get(show_worker))
        .route("/api/v1/workers/{name}/health", post(set_worker_health))
        .route(
            "/api/v1/device-types",
            get(list_device_types).post(add_device_type),
        )
        .route("/api/v1/devices", get(list_devices).post(add_device))
        .route("/api/v1/devices/{name}", get(show_device))
        .route(
            "/api/v1/devices/{name}/dictionary",
            get(get_dictionary).put(set_dictionary),
        )
        .route("/api/v1/devices/{name}/health", post(set_device_health))
        .route("/api/v1/jobs", get(list_jobs).post(submit_job))
        .route("/api/v1/jobs/{id}", get(show_job))
        .route("/api/v1/jobs/{id}/cancel", post(cancel_job))
        .route("/api/v1/jobs/{id}/logs", get(job_logs))
        .route("/api/v1/jobs/{id}/results", get(job_results))
        .with_state(api)
}

async fn version() -> Json<Value> {
    Json(json!({ "name": "basalt", "version": env!("CARGO_PKG_VERSION") }))
}

async fn list_workers(State(api): Shared) -> ApiResult<Json<Value>> {
    Ok(Json(json!(api.store()?.workers()?)))
}

#[derive(Deserialize)]
struct NewWorker {
    hostname: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    job_limit: u32,
}

fn check_name(kind: &str, name: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !ok {
        return Err(ApiError::bad_request(format!(
            "{kind} name {name:?} is not valid: use letters, digits, '-', '_' and '.'"
        )));
    }
    Ok(())
}

async fn add_worker(
    State(api): Shared,
    headers: HeaderMap,
    Json(new): Json<NewWorker>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    api.authorize(&headers)?;
    check_name("worker", &new.hostname)?;
    let store = api.store()?;
    store.add_worker(&new.hostname, &new.description, new.job_limit)?;
    Ok((
        StatusCode::CREATED,
        Json(json!(store.worker(&new.hostname)?)),
    ))
}

async fn show_worker(State(api): Shared, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let store = api.store()?;
    let worker = store.worker(&name)?.ok_or(StoreError::NotFound {
        kind: "worker",
        name: name.clone(),
    })?;
    let devices: Vec<_> = store
        .devices()?
        .into_iter()
        .filter(|d| d.worker.as_deref() == Some(name.as_str()))
        .map(|d| d.hostname)
        .collect();
    let mut value = json!(worker);
    value["devices"] = json!(devices);
    value["history"] = json!(store.history("worker", &name)?);
    Ok(Json(value))
}

#[derive(Deserialize)]
struct HealthChange {
    health: String,
    #[serde(default)]
    reason: String,
}

async fn set_worker_health(
    State(api): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
    Json(change): Json<HealthChange>,
) -> ApiResult<Json<Value>> {
    api.authorize(&headers)?;
    let health = WorkerHealth::parse(&change.health).ok_or_else(|| {
        ApiError::bad_request(format!(
            "{:?} is not a worker health: use active, maintenance or retired",
            change.health
        ))
    })?;
    let store = api.store()?;
    store.set_worker_health(&name, health, &change.reason)?;
    api.waker.wake();
    Ok(Json(json!(store.worker(&name)?)))
}

async fn list_device_types(State(api): Shared) -> ApiResult<Json<Value>> {
    let store = api.store()?;
    let devices = store.devices()?;
    let types: Vec<Value> = store
        .device_types()?
        .into_iter()
        .map(|t| {
            let count = devices.iter().filter(|d| d.device_type == t.name).count();
            let template = api
                .engine
                .search_path()
                .resolve(&format!("{}.jinja2", t.name))
                .ok()
                .flatten()
                .map(|f| f.path.display().to_string());
            json!({ "name": t.name, "description": t.description, "devices": count, "template": template })
        })
        .collect();
    Ok(Json(json!(types)))
}

#[derive(Deserialize)]
struct NewDeviceType {
    name: String,
    #[serde(default)]
    description: String,
}

async fn add_device_type(
    State(api): Shared,
    headers: HeaderMap,
    Json(new): Json<NewDeviceType>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    api.authorize(&headers)?;
    check_name("device type", &new.name)?;
    api.template_exists(&new.name)?;
    api.store()?.add_device_type(&new.name, &new.description)?;
    Ok((StatusCode::CREATED, Json(json!({ "name": new.name }))))
}

async fn list_devices(State(api): Shared) -> ApiResult<Json<Value>> {
    let devices: Vec<Value> = api
        .store()?
        .devices()?
        .into_iter()
        .map(|d| {
            let mut v = json!(d);
            if let Some(object) = v.as_object_mut() {
                object.remove("dictionary");
            }
            v
        })
        .collect();
    Ok(Json(json!(devices)))
}

#[derive(Deserialize)]
struct NewDevice {
    hostname: String,
    device_type: String,
    worker: String,
    dictionary: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    description: String,
}

async fn add_device(
    State(api): Shared,
    headers: HeaderMap,
    Json(new): Json<NewDevice>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    api.authorize(&headers)?;
    check_name("device", &new.hostname)?;
    {
        let store = api.store()?;
        if store.device_type(&new.device_type)?.is_none() {
            return Err(ApiError::bad_request(format!(
                "device type {} is not known: add it first with `basalt device-types add {}`",
                new.device_type, new.device_type
            )));
        }
        if store.worker(&new.worker)?.is_none() {
            return Err(ApiError::bad_request(format!(
                "worker {} is not known: add it first with `basalt workers add {}`",
                new.worker, new.worker
            )));
        }
    }
    api.check_dictionary(&new.hostname, &new.device_type, &new.dictionary)?;
    let store = api.store()?;
    store.add_device(
        &new.hostname,
        &new.device_type,
        &new.worker,
        &new.dictionary,
        &new.tags,
        &new.description,
    )?;
    api.waker.wake();
    Ok((
        StatusCode::CREATED,
        Json(json!(store.device(&new.hostname)?)),
    ))
}

fn existing_device(store: &Store, name: &str) -> ApiResult<crate::store::Device> {
    Ok(store.device(name)?.ok_or(StoreError::NotFound {
        kind: "device",
        name: name.to_owned(),
    })?)
}

async fn show_device(State(api): Shared, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let store = api.store()?;
    let device = existing_device(&store, &name)?;
    let mut value = json!(device);
    value["history"] = json!(store.history("device", &name)?);
    Ok(Json(value))
}

async fn get_dictionary(State(api): Shared, Path(name): Path<String>) -> ApiResult<String> {
    Ok(existing_device(&*api.store()?, &name)?.dictionary)
}

async fn set_dictionary(
    State(api): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: String,
) -> ApiResult<Json<Value>> {
    api.authorize(&headers)?;
    let device = existing_device(&*api.store()?, &name)?;
    api.check_dictionary(&name, &device.device_type, &body)?;
    api.store()?.set_dictionary(&name, &body)?;
    Ok(Json(json!({ "hostname": name })))
}

async fn set_device_health(
    State(api): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
    Json(change): Json<HealthChange>,
) -> ApiResult<Json<Value>> {
    api.authorize(&headers)?;
    let health = DeviceHealth::parse(&change.health).ok_or_else(|| {
        ApiError::bad_request(format!(
            "{:?} is not a device health: use good, unknown, maintenance, looping, bad or retired",
            change.health
        ))
    })?;
    let store = api.store()?;
    store.set_device_health(&name, health, &change.reason)?;
    api.waker.wake();
    Ok(Json(json!(existing_device(&store, &name)?)))
}

#[derive(Deserialize)]
struct JobListQuery {
    state: Option<String>,
    limit: Option<u32>,
}

fn job_summary(job: &crate::store::Job) -> Value {
    let mut value = json!(job);
    if let Some(object) = value.as_object_mut() {
        object.remove("definition");
    }
    value
}

async fn list_jobs(
    State(api): Shared,
    Query(query): Query<JobListQuery>,
) -> ApiResult<Json<Value>> {
    let state = match query.state.as_deref() {
        None => None,
        Some(text) => Some(JobState::parse(text).ok_or_else(|| {
            ApiError::bad_request(format!(
                "{text:?} is not a job state: use submitted, scheduled, running, canceling or finished"
            ))
        })?),
    };
    let jobs = api.store()?.jobs(state, query.limit.unwrap_or(100))?;
    Ok(Json(json!(jobs
        .iter()
        .map(job_summary)
        .collect::<Vec<_>>())))
}

#[derive(Deserialize)]
struct SubmitQuery {
    device: Option<String>,
}

async fn submit_job(
    State(api): Shared,
    headers: HeaderMap,
    Query(query): Query<SubmitQuery>,
    body: String,
) -> ApiResult<(StatusCode, Json<Value>)> {
    api.authorize(&headers)?;
    let id = {
        let store = api.store()?;
        submit(&store, &body, "admin", query.device.as_deref()).map_err(|e| match e {
            SubmitError::Store(e) => ApiError::from(e),
            other => ApiError::bad_request(other.to_string()),
        })?
    };
    api.waker.wake();
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))))
}

fn existing_job(store: &Store, id: u64) -> ApiResult<crate::store::Job> {
    Ok(store.job(id)?.ok_or(StoreError::NotFound {
        kind: "job",
        name: id.to_string(),
    })?)
}

async fn show_job(State(api): Shared, Path(id): Path<u64>) -> ApiResult<Json<Value>> {
    let store = api.store()?;
    let job = existing_job(&store, id)?;
    let mut value = json!(job);
    value["history"] = json!(store.history("job", &id.to_string())?);
    Ok(Json(value))
}

async fn cancel_job(
    State(api): Shared,
    headers: HeaderMap,
    Path(id): Path<u64>,
) -> ApiResult<Json<Value>> {
    api.authorize(&headers)?;
    let state = api.store()?.request_cancel(id)?;
    api.waker.wake();
    Ok(Json(json!({ "id": id, "state": state })))
}

#[derive(Deserialize)]
struct LogQuery {
    offset: Option<u64>,
}

/// The largest piece of a log one request returns.
const LOG_CHUNK: u64 = 4 * 1024 * 1024;

async fn job_logs(
    State(api): Shared,
    Path(id): Path<u64>,
    Query(query): Query<LogQuery>,
) -> ApiResult<Json<Value>> {
    let job = existing_job(&*api.store()?, id)?;
    // Only what the database says is committed: bytes past it may be cut off after a crash.
    let end = job.log_bytes;
    let start = query.offset.unwrap_or(0).min(end);
    let stop = end.min(start + LOG_CHUNK);
    let text = if stop > start {
        use std::io::{Read, Seek, SeekFrom};
        let path = api.jobs_dir.join(id.to_string()).join("output.yaml");
        let mut file = std::fs::File::open(&path).map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{}: {e}", path.display()),
            )
        })?;
        let mut buffer = vec![0; (stop - start) as usize];
        file.seek(SeekFrom::Start(start))
            .and_then(|_| file.read_exact(&mut buffer))
            .map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("{}: {e}", path.display()),
                )
            })?;
        String::from_utf8_lossy(&buffer).into_owned()
    } else {
        String::new()
    };
    Ok(Json(json!({
        "start": start,
        "end": stop,
        "size": end,
        "text": text,
        "state": job.state,
        "health": job.health,
    })))
}

async fn job_results(State(api): Shared, Path(id): Path<u64>) -> ApiResult<Json<Value>> {
    Ok(Json(json!(api.store()?.results(id)?)))
}
