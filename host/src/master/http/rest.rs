//! The REST API under `/api/v1/` (JSON), which the `basalt` admin commands use; described in
//! `docs/openapi.yaml`. Errors are `{"error": "..."}` with a status that says whose fault it
//! was (400 the request, 401 the credentials, 403 the rights, 404 a name, 409 a state).

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{caller, status};
use crate::master::service::WorkerFile;
use crate::master::service::{Caller, HealthSchedule, JobFilter, NewDevice, Service, ServiceError};
use crate::store::{JobHealth, JobState};

/// An error response.
struct ApiError(ServiceError);

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        Self(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            status(self.0.kind),
            Json(json!({ "error": self.0.message })),
        )
            .into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;
type Shared = State<Arc<Service>>;

/// The caller of a request, from its credentials.
struct Auth(Caller);

impl FromRequestParts<Arc<Service>> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        service: &Arc<Service>,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(caller(service, &parts.headers)?))
    }
}

fn bad_request(message: String) -> ApiError {
    ApiError(ServiceError::bad_request(message))
}

/// The API's routes.
pub fn routes() -> Router<Arc<Service>> {
    Router::new()
        .route("/api/v1/version", get(version))
        .route("/api/v1/whoami", get(whoami))
        .route("/api/v1/users", get(list_users).post(add_user))
        .route("/api/v1/users/{name}", delete(delete_user))
        .route("/api/v1/users/{name}/groups", put(set_user_groups))
        .route("/api/v1/users/{name}/email", put(set_user_email))
        .route(
            "/api/v1/users/{name}/tokens",
            get(list_tokens).post(add_token),
        )
        .route("/api/v1/workers", get(list_workers).post(add_worker))
        .route(
            "/api/v1/workers/{name}",
            get(show_worker).patch(update_worker),
        )
        .route("/api/v1/workers/{name}/health", post(set_worker_health))
        .route(
            "/api/v1/workers/{name}/files/{file}",
            get(get_worker_file).put(set_worker_file),
        )
        .route(
            "/api/v1/device-types",
            get(list_device_types).post(add_device_type),
        )
        .route(
            "/api/v1/device-types/{name}",
            get(show_device_type).patch(update_device_type),
        )
        .route(
            "/api/v1/device-types/{name}/template",
            get(get_template).put(set_template),
        )
        .route(
            "/api/v1/device-types/{name}/health-check",
            get(get_health_check).put(set_health_check),
        )
        .route("/api/v1/devices", get(list_devices).post(add_device))
        .route(
            "/api/v1/devices/{name}",
            get(show_device).patch(update_device).delete(delete_device),
        )
        .route(
            "/api/v1/devices/{name}/dictionary",
            get(get_dictionary).put(set_dictionary),
        )
        .route("/api/v1/devices/{name}/health", post(set_device_health))
        .route(
            "/api/v1/devices/{name}/tags/{tag}",
            put(add_device_tag).delete(remove_device_tag),
        )
        .route("/api/v1/jobs", get(list_jobs).post(submit_job))
        .route("/api/v1/jobs/validate", post(validate_job))
        .route("/api/v1/jobs/{id}", get(show_job))
        .route("/api/v1/jobs/{id}/definition", get(job_definition))
        .route("/api/v1/jobs/{id}/cancel", post(cancel_job))
        .route("/api/v1/jobs/{id}/resubmit", post(resubmit_job))
        .route("/api/v1/jobs/{id}/logs", get(job_logs))
        .route("/api/v1/jobs/{id}/results", get(job_results))
        .route("/api/v1/jobs/{id}/notifications", get(job_notifications))
}

async fn version() -> Json<Value> {
    Json(json!({ "name": "basalt", "version": env!("CARGO_PKG_VERSION") }))
}

async fn whoami(Auth(caller): Auth) -> Json<Value> {
    match caller {
        Caller::Anonymous => Json(json!({ "user": null, "superuser": false })),
        Caller::User(user) => Json(json!({ "user": user.name, "superuser": user.superuser })),
    }
}

async fn list_users(State(service): Shared, Auth(caller): Auth) -> ApiResult<Json<Value>> {
    Ok(Json(json!(service.users(&caller)?)))
}

#[derive(Deserialize)]
struct NewUser {
    name: String,
    #[serde(default)]
    superuser: bool,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    email: String,
}

async fn add_user(
    State(service): Shared,
    Auth(caller): Auth,
    Json(new): Json<NewUser>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut user = service.add_user(&caller, &new.name, new.superuser)?;
    if !new.groups.is_empty() {
        user = service.set_user_groups(&caller, &new.name, &new.groups)?;
    }
    if !new.email.is_empty() {
        user = service.set_user_email(&caller, &new.name, &new.email)?;
    }
    Ok((StatusCode::CREATED, Json(json!(user))))
}

async fn set_user_groups(
    State(service): Shared,
    Auth(caller): Auth,
    Path(name): Path<String>,
    Json(groups): Json<Vec<String>>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!(
        service.set_user_groups(&caller, &name, &groups)?
    )))
}

async fn set_user_email(
    State(service): Shared,
    Auth(caller): Auth,
    Path(name): Path<String>,
    Json(email): Json<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!(service.set_user_email(&caller, &name, &email)?)))
}

async fn delete_user(
    State(service): Shared,
    Auth(caller): Auth,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    service.delete_user(&caller, &name)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_tokens(
    State(service): Shared,
    Auth(caller): Auth,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!(service.tokens(&caller, &name)?)))
}

#[derive(Deserialize, Default)]
struct NewToken {
    #[serde(default)]
    description: String,
}

async fn add_token(
    State(service): Shared,
    Auth(caller): Auth,
    Path(name): Path<String>,
    body: Option<Json<NewToken>>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let new = body.map(|Json(b)| b).unwrap_or_default();
    let token = service.add_token(&caller, &name, &new.description)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "user": name, "token": token })),
    ))
}

async fn list_workers(State(service): Shared) -> ApiResult<Json<Value>> {
    Ok(Json(json!(service.workers()?)))
}

#[derive(Deserialize)]
struct NewWorker {
    hostname: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    job_limit: u32,
}

async fn add_worker(
    State(service): Shared,
    Auth(caller): Auth,
    Json(new): Json<NewWorker>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let worker = service.add_worker(&caller, &new.hostname, &new.description, new.job_limit)?;
    Ok((StatusCode::CREATED, Json(json!(worker))))
}

async fn show_worker(State(service): Shared, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let (worker, devices, history) = service.worker(&name)?;
    let mut value = json!(worker);
    value["devices"] = json!(devices);
    value["history"] = json!(history);
    value["files"] = json!(service.worker_files(&name));
    Ok(Json(value))
}

/// What `PATCH /api/v1/workers/{name}` may change.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkerChange {
    description: Option<String>,
    job_limit: Option<u32>,
}

async fn update_worker(
    State(service): Shared,
    Auth(caller): Auth,
    Path(name): Path<String>,
    Json(change): Json<WorkerChange>,
) -> ApiResult<Json<Value>> {
    let worker = service.update_worker(
        &caller,
        &name,
        change.description.as_deref(),
        change.job_limit,
    )?;
    Ok(Json(json!(worker)))
}

#[derive(Deserialize)]
struct HealthChange {
    health: String,
    #[serde(default)]
    reason: String,
}

async fn set_worker_health(
    State(service): Shared,
    Auth(caller): Auth,
    Path(name): Path<String>,
    Json(change): Json<HealthChange>,
) -> ApiResult<Json<Value>> {
    let worker = service.set_worker_health(&caller, &name, &change.health, &change.reason)?;
    Ok(Json(json!(worker)))
}

fn worker_file_kind(file: &str) -> ApiResult<WorkerFile> {
    WorkerFile::parse(file).ok_or_else(|| {
        bad_request(format!(
            "{file:?} is not a worker file: use config (dispatcher.yaml), env or env-dut"
        ))
    })
}

async fn get_worker_file(
    State(service): Shared,
    Auth(caller): Auth,
    Path((name, file)): Path<(String, String)>,
) -> ApiResult<String> {
    Ok(service.worker_file(&caller, &name, worker_file_kind(&file)?)?)
}

async fn set_worker_file(
    State(service): Shared,
    Auth(caller): Auth,
    Path((name, file)): Path<(String, String)>,
    body: String,
) -> ApiResult<Json<Value>> {
    service.set_worker_file(&caller, &name, worker_file_kind(&file)?, &body)?;
    Ok(Json(json!({ "hostname": name, "file": file })))
}

async fn list_device_types(State(service): Shared) -> ApiResult<Json<Value>> {
    Ok(Json(json!(service.device_types()?)))
}

async fn show_device_type(
    State(service): Shared,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!(service.device_type(&name)?)))
}

#[derive(Deserialize)]
struct NewDeviceType {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(flatten)]
    schedule: ScheduleBody,
}

/// A device type's health-check schedule, as request bodies give it.
#[derive(Deserialize, Default)]
struct ScheduleBody {
    health_frequency: Option<u32>,
    health_denominator: Option<String>,
    health_disabled: Option<bool>,
}

impl From<ScheduleBody> for HealthSchedule {
    fn from(body: ScheduleBody) -> Self {
        Self {
            frequency: body.health_frequency,
            denominator: body.health_denominator,
            disabled: body.health_disabled,
        }
    }
}

async fn add_device_type(
    State(service): Shared,
    Auth(caller): Auth,
    Json(new): Json<NewDeviceType>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    // Checked before anything is created, so a bad schedule leaves no half-made type.
    let schedule: HealthSchedule = new.schedule.into();
    schedule.checked()?;
    service.add_device_type(&caller, &new.name, &new.description, true)?;
    let summary = service.update_device_type(&caller, &new.name, None, &schedule)?;
    Ok((StatusCode::CREATED, Json(json!(summary))))
}

#[derive(Deserialize)]
struct DeviceTypeChange {
    description: Option<String>,
    #[serde(flatten)]
    schedule: ScheduleBody,
}

async fn update_device_type(
    State(service): Shared,
    Auth(caller): Auth,
    Path(name): Path<String>,
    Json(change): Json<DeviceTypeChange>,
) -> ApiResult<Json<Value>> {
    let summary = service.update_device_type(
        &caller,
        &name,
        change.description.as_deref(),
        &change.schedule.into(),
    )?;
    Ok(Json(json!(summary)))
}

async fn get_template(State(service): Shared, Path(name): Path<String>) -> ApiResult<String> {
    Ok(service.template(&name)?)
}

async fn set_template(
    State(service): Shared,
    Auth(caller): Auth,
    Path(name): Path<String>,
    body: String,
) -> ApiResult<Json<Value>> {
    service.set_template(&caller, &name, &body)?;
    Ok(Json(json!({ "name": name })))
}

async fn get_health_check(State(service): Shared, Path(name): Path<String>) -> ApiResult<String> {
    Ok(service.health_check(&name)?)
}

async fn set_health_check(
    State(service): Shared,
    Auth(caller): Auth,
    Path(name): Path<String>,
    body: String,
) -> ApiResult<Json<Value>> {
    service.set_health_check(&caller, &name, &body)?;
    Ok(Json(json!({ "name": name })))
}

/// A device as lists show it: without its dictionary.
fn device_summary(device: &crate::store::Device) -> Value {
    let mut value = json!(device);
    if let Some(object) = value.as_object_mut() {
        object.remove("dictionary");
    }
    value
}

async fn list_devices(State(service): Shared) -> ApiResult<Json<Value>> {
    Ok(Json(json!(service
        .devices()?
        .iter()
        .map(device_summary)
        .collect::<Vec<_>>())))
}

#[derive(Deserialize)]
struct NewDeviceBody {
    hostname: String,
    device_type: String,
    worker: String,
    #[serde(default)]
    dictionary: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    description: String,
}

async fn add_device(
    State(service): Shared,
    Auth(caller): Auth,
    Json(new): Json<NewDeviceBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let device = service.add_device(
        &caller,
        &NewDevice {
            hostname: new.hostname,
            device_type: new.device_type,
            worker: new.worker,
            dictionary: new.dictionary,
            tags: new.tags,
            description: new.description,
        },
    )?;
    Ok((StatusCode::CREATED, Json(json!(device))))
}

async fn show_device(
    State(service): Shared,
    Auth(caller): Auth,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let (device, history) = service.device_for(&caller, &name)?;
    let mut value = json!(device);
    value["history"] = json!(history);
    Ok(Json(value))
}

/// What `PATCH /api/v1/devices/{name}` may change.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceChange {
    worker: Option<String>,
    description: Option<String>,
}

async fn update_device(
    State(service): Shared,
    Auth(caller): Auth,
    Path(name): Path<String>,
    Json(change): Json<DeviceChange>,
) -> ApiResult<Json<Value>> {
    let device = service.update_device(
        &caller,
        &name,
        change.worker.as_deref(),
        change.description.as_deref(),
    )?;
    Ok(Json(json!(device)))
}

/// `DELETE /api/v1/devices/{name}?reason=...`.
#[derive(Deserialize)]
struct DeleteQuery {
    #[serde(default)]
    reason: String,
}

async fn delete_device(
    State(service): Shared,
    Auth(caller): Auth,
    Path(name): Path<String>,
    Query(query): Query<DeleteQuery>,
) -> ApiResult<StatusCode> {
    service.delete_device(&caller, &name, &query.reason)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_dictionary(
    State(service): Shared,
    Auth(caller): Auth,
    Path(name): Path<String>,
) -> ApiResult<String> {
    Ok(service.dictionary(&caller, &name)?)
}

async fn set_dictionary(
    State(service): Shared,
    Auth(caller): Auth,
    Path(name): Path<String>,
    body: String,
) -> ApiResult<Json<Value>> {
    service.set_dictionary(&caller, &name, &body)?;
    Ok(Json(json!({ "hostname": name })))
}

async fn set_device_health(
    State(service): Shared,
    Auth(caller): Auth,
    Path(name): Path<String>,
    Json(change): Json<HealthChange>,
) -> ApiResult<Json<Value>> {
    let device = service.set_device_health(&caller, &name, &change.health, &change.reason)?;
    Ok(Json(json!(device)))
}

async fn add_device_tag(
    State(service): Shared,
    Auth(caller): Auth,
    Path((name, tag)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    service.add_device_tag(&caller, &name, &tag)?;
    Ok(Json(json!(service.device(&name)?.0.tags)))
}

async fn remove_device_tag(
    State(service): Shared,
    Auth(caller): Auth,
    Path((name, tag)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    service.remove_device_tag(&caller, &name, &tag)?;
    Ok(Json(json!(service.device(&name)?.0.tags)))
}

#[derive(Deserialize)]
struct JobListQuery {
    state: Option<String>,
    health: Option<String>,
    offset: Option<u32>,
    limit: Option<u32>,
}

/// A job as lists show it: without its definition.
fn job_summary(job: &crate::store::Job) -> Value {
    let mut value = json!(job);
    if let Some(object) = value.as_object_mut() {
        object.remove("definition");
    }
    value
}

async fn list_jobs(
    State(service): Shared,
    Auth(caller): Auth,
    Query(query): Query<JobListQuery>,
) -> ApiResult<Json<Value>> {
    let state = match query.state.as_deref() {
        None => None,
        Some(text) => Some(JobState::parse(text).ok_or_else(|| {
            bad_request(format!(
                "{text:?} is not a job state: use submitted, scheduled, running, canceling or finished"
            ))
        })?),
    };
    let health = match query.health.as_deref() {
        None => None,
        Some(text) => Some(JobHealth::parse(text).ok_or_else(|| {
            bad_request(format!(
                "{text:?} is not a job health: use unknown, complete, incomplete or canceled"
            ))
        })?),
    };
    let jobs = service.jobs_for(
        &caller,
        &JobFilter {
            state,
            health,
            offset: query.offset.unwrap_or(0),
            limit: query.limit.unwrap_or(100).min(1000),
        },
    )?;
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
    State(service): Shared,
    Auth(caller): Auth,
    Query(query): Query<SubmitQuery>,
    body: String,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let id = service.submit(&caller, &body, query.device.as_deref())?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))))
}

async fn validate_job(State(service): Shared, body: String) -> Json<Value> {
    match service.validate(&body) {
        Ok(()) => Json(json!({ "valid": true, "problems": [] })),
        Err(problems) => Json(json!({
            "valid": false,
            "problems": problems.iter().map(|p| json!({
                "path": p.path, "line": p.line, "column": p.column, "message": p.message,
            })).collect::<Vec<_>>(),
        })),
    }
}

async fn show_job(
    State(service): Shared,
    Auth(caller): Auth,
    Path(id): Path<u64>,
) -> ApiResult<Json<Value>> {
    let job = service.job_for(&caller, id)?;
    let mut value = json!(job);
    value["definition"] = json!(service.definition_for(&caller, &job));
    value["history"] = json!(service.job_history(&caller, id)?);
    Ok(Json(value))
}

async fn job_definition(
    State(service): Shared,
    Auth(caller): Auth,
    Path(id): Path<u64>,
) -> ApiResult<String> {
    let job = service.job_for(&caller, id)?;
    Ok(service.definition_for(&caller, &job))
}

async fn cancel_job(
    State(service): Shared,
    Auth(caller): Auth,
    Path(id): Path<u64>,
) -> ApiResult<Json<Value>> {
    let state = service.cancel(&caller, id)?;
    Ok(Json(json!({ "id": id, "state": state })))
}

async fn resubmit_job(
    State(service): Shared,
    Auth(caller): Auth,
    Path(id): Path<u64>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let new = service.resubmit(&caller, id)?;
    Ok((StatusCode::CREATED, Json(json!({ "id": new }))))
}

#[derive(Deserialize)]
struct LogQuery {
    offset: Option<u64>,
}

async fn job_logs(
    State(service): Shared,
    Auth(caller): Auth,
    Path(id): Path<u64>,
    Query(query): Query<LogQuery>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!(service.log_bytes(
        &caller,
        id,
        query.offset.unwrap_or(0)
    )?)))
}

async fn job_notifications(
    State(service): Shared,
    Auth(caller): Auth,
    Path(id): Path<u64>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!(service.notifications(&caller, id)?)))
}

async fn job_results(
    State(service): Shared,
    Auth(caller): Auth,
    Path(id): Path<u64>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!(service.results(&caller, id)?)))
}
