//! Workers, device types and devices.

use std::path::Path;

use serde::Serialize;
use serde_json::json;

use super::{check_name, Caller, ServiceError, ServiceResult};
use crate::store::{
    Device, DeviceHealth, DeviceType, HealthDenominator, HistoryEntry, StoreError, Worker,
    WorkerHealth,
};
use crate::template::extends_target;

/// A device type as lists show it.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceTypeSummary {
    /// Its name.
    pub name: String,
    /// What the admin said about it.
    pub description: String,
    /// How many devices of it are not retired.
    pub devices: usize,
    /// The template file that defines it, if one is on the search path.
    pub template: Option<String>,
    /// Whether it has a health check (`DATA_DIR/health-checks/<name>.yaml`).
    pub health_check: bool,
    /// A Good device's health check is due again after this many hours or jobs.
    pub health_frequency: u32,
    /// `hours` or `jobs`.
    pub health_denominator: HealthDenominator,
    /// Health checks are off for this type.
    pub health_disabled: bool,
}

/// Changes to a device type's health-check schedule; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct HealthSchedule {
    /// Hours or jobs between health checks (at least 1).
    pub frequency: Option<u32>,
    /// `hours` or `jobs`.
    pub denominator: Option<String>,
    /// Turn health checks off (true) or on (false).
    pub disabled: Option<bool>,
}

impl HealthSchedule {
    /// Checks the values; returns the denominator, parsed.
    pub fn checked(&self) -> ServiceResult<Option<HealthDenominator>> {
        if self.frequency == Some(0) {
            return Err(ServiceError::bad_request(
                "health_frequency must be at least 1 (turn health checks off with health_disabled)",
            ));
        }
        self.denominator
            .as_deref()
            .map(|text| {
                HealthDenominator::parse(text).ok_or_else(|| {
                    ServiceError::bad_request(format!(
                        "{text:?} is not a health denominator: use hours or jobs"
                    ))
                })
            })
            .transpose()
    }
}

/// Which of a worker's own files exist (LAVA shows the others as "default").
#[derive(Debug, Clone, Copy, Serialize)]
pub struct WorkerFiles {
    /// A `dispatcher.yaml` of its own.
    pub config: bool,
    /// An `env.yaml` (its own or the master-wide one).
    pub env: bool,
    /// An `env.dut.yaml` (its own or the master-wide one).
    pub env_dut: bool,
}

/// One of a worker's dispatcher files, kept under `DATA_DIR/dispatcher.d/<worker>/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerFile {
    /// `dispatcher.yaml`: the worker's dispatcher settings (`dispatcher_ip`, ...).
    Config,
    /// `env.yaml`: the environment of its job processes.
    Env,
    /// `env.dut.yaml`: the environment of its boards' test shells.
    EnvDut,
}

impl WorkerFile {
    /// The file's name.
    pub fn file_name(self) -> &'static str {
        match self {
            Self::Config => "dispatcher.yaml",
            Self::Env => "env.yaml",
            Self::EnvDut => "env.dut.yaml",
        }
    }

    /// From an API name: `config`, `env`, `env-dut` (or `env_dut`).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "config" | "dispatcher" => Some(Self::Config),
            "env" => Some(Self::Env),
            "env-dut" | "env_dut" => Some(Self::EnvDut),
            _ => None,
        }
    }
}

/// What adding a device takes.
#[derive(Debug, Clone, Default)]
pub struct NewDevice {
    /// Its name.
    pub hostname: String,
    /// Its type, which must be known.
    pub device_type: String,
    /// The worker it hangs off, which must be known.
    pub worker: String,
    /// Its dictionary; empty until set (the device gets no jobs without one).
    pub dictionary: String,
    /// Tags jobs can ask for.
    pub tags: Vec<String>,
    /// Free text.
    pub description: String,
}

impl super::Service {
    /// All workers.
    pub fn workers(&self) -> ServiceResult<Vec<Worker>> {
        Ok(self.store()?.workers()?)
    }

    /// One worker, with the names of its devices and its history.
    pub fn worker(&self, name: &str) -> ServiceResult<(Worker, Vec<String>, Vec<HistoryEntry>)> {
        let store = self.store()?;
        let worker = store.worker(name)?.ok_or(StoreError::NotFound {
            kind: "worker",
            name: name.to_owned(),
        })?;
        let devices = store
            .devices()?
            .into_iter()
            .filter(|d| d.worker.as_deref() == Some(name))
            .map(|d| d.hostname)
            .collect();
        Ok((worker, devices, store.history("worker", name)?))
    }

    /// Registers a worker before its slave first connects.
    pub fn add_worker(
        &self,
        caller: &Caller,
        name: &str,
        description: &str,
        job_limit: u32,
    ) -> ServiceResult<Worker> {
        caller.require_superuser()?;
        check_name("worker", name)?;
        let store = self.store()?;
        store.add_worker(name, description, job_limit)?;
        Ok(store.worker(name)?.ok_or(StoreError::NotFound {
            kind: "worker",
            name: name.to_owned(),
        })?)
    }

    /// Which of its dispatcher files a worker has.
    pub fn worker_files(&self, name: &str) -> WorkerFiles {
        let paths = crate::master::start::WorkerFilePaths::new(&self.data_dir, name);
        let any = |candidates: &[std::path::PathBuf]| candidates.iter().any(|p| p.is_file());
        WorkerFiles {
            config: any(&paths.dispatcher),
            env: any(&paths.env),
            env_dut: any(&paths.env_dut),
        }
    }

    /// The text a worker's jobs get for `file`: its own, else the master-wide one (for the
    /// environments), else empty.
    pub fn worker_file(
        &self,
        caller: &Caller,
        name: &str,
        file: WorkerFile,
    ) -> ServiceResult<String> {
        caller.require_superuser_to_read("a worker's dispatcher files")?;
        check_name("worker", name)?;
        self.worker(name)?;
        let paths = crate::master::start::WorkerFilePaths::new(&self.data_dir, name);
        let candidates = match file {
            WorkerFile::Config => &paths.dispatcher,
            WorkerFile::Env => &paths.env,
            WorkerFile::EnvDut => &paths.env_dut,
        };
        match candidates.iter().find(|p| p.is_file()) {
            None => Ok(String::new()),
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| ServiceError::internal(format!("{}: {e}", path.display()))),
        }
    }

    /// Replaces a worker's own `file` (checked to be YAML, and for `env.dut.yaml` to be
    /// LAVA's shape); empty text removes it, so the master-wide one applies again.
    pub fn set_worker_file(
        &self,
        caller: &Caller,
        name: &str,
        file: WorkerFile,
        text: &str,
    ) -> ServiceResult<()> {
        caller.require_superuser()?;
        check_name("worker", name)?;
        self.worker(name)?;
        let path = self
            .data_dir
            .join("dispatcher.d")
            .join(name)
            .join(file.file_name());
        if text.trim().is_empty() {
            return remove_file(&path);
        }
        crate::yaml11::from_str(text).map_err(|e| {
            ServiceError::bad_request(format!("{} is not valid YAML: {e}", file.file_name()))
        })?;
        if file == WorkerFile::EnvDut {
            crate::dispatcher::DutEnvironment::parse(text)
                .map_err(|e| ServiceError::bad_request(format!("env.dut.yaml: {e}")))?;
        }
        replace_file(&path, text)
    }

    /// Changes a worker's description or job limit.
    pub fn update_worker(
        &self,
        caller: &Caller,
        name: &str,
        description: Option<&str>,
        job_limit: Option<u32>,
    ) -> ServiceResult<Worker> {
        caller.require_superuser()?;
        let store = self.store()?;
        store.update_worker(name, description, job_limit)?;
        self.reschedule();
        Ok(store.worker(name)?.ok_or(StoreError::NotFound {
            kind: "worker",
            name: name.to_owned(),
        })?)
    }

    /// Puts a worker into maintenance, back to active, or retires it.
    pub fn set_worker_health(
        &self,
        caller: &Caller,
        name: &str,
        health: &str,
        reason: &str,
    ) -> ServiceResult<Worker> {
        let user = caller.require_superuser()?;
        let health = WorkerHealth::parse(&health.to_ascii_lowercase()).ok_or_else(|| {
            ServiceError::bad_request(format!(
                "{health:?} is not a worker health: use active, maintenance or retired"
            ))
        })?;
        let store = self.store()?;
        store.set_worker_health(name, health, &with_who(reason, &user.name))?;
        self.reschedule();
        Ok(store.worker(name)?.ok_or(StoreError::NotFound {
            kind: "worker",
            name: name.to_owned(),
        })?)
    }

    /// The template file for `device_type`, if one is on the search path.
    fn template_file(&self, device_type: &str) -> ServiceResult<Option<std::path::PathBuf>> {
        Ok(self
            .engine
            .search_path()
            .resolve(&format!("{device_type}.jinja2"))
            .map_err(|e| ServiceError::bad_request(e.to_string()))?
            .map(|f| f.path))
    }

    /// Fails with what to do when `device_type` has no template, or when a template it
    /// extends (directly or through its bases) is missing: a device of that type could
    /// never be rendered.
    fn require_template(&self, device_type: &str) -> ServiceResult<()> {
        let Some(mut path) = self.template_file(device_type)? else {
            return Err(ServiceError::bad_request(format!(
                "device type {device_type} has no template: drop {device_type}.jinja2 into {} \
                 (or set it with `lavacli device-types template set`)",
                self.template_dir.display()
            )));
        };
        let mut name = format!("{device_type}.jinja2");
        // Templates extend a handful of levels deep; a longer chain is a loop.
        for _ in 0..16 {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ServiceError::internal(format!("cannot read {}: {e}", path.display()))
            })?;
            let Some(base) = crate::template::extends_target(&text) else {
                return Ok(());
            };
            let found = self
                .engine
                .search_path()
                .resolve(&base)
                .map_err(|e| ServiceError::bad_request(format!("{name}: {e}")))?;
            match found {
                Some(file) => {
                    path = file.path;
                    name = base;
                }
                None => {
                    return Err(ServiceError::bad_request(format!(
                        "device type {device_type}: {name} extends {base}, which is not on the \
                         master's template path: drop {base} into {}",
                        self.template_dir.display()
                    )))
                }
            }
        }
        Err(ServiceError::bad_request(format!(
            "device type {device_type}: its templates extend each other in a loop"
        )))
    }

    /// The names of all templates on the search path (device types one could add).
    pub fn template_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .engine
            .search_path()
            .list()
            .into_iter()
            .filter_map(|f| {
                let name = f.name.strip_suffix(".jinja2")?.to_owned();
                (!name.starts_with("base")).then_some(name)
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// All registered device types.
    pub fn device_types(&self) -> ServiceResult<Vec<DeviceTypeSummary>> {
        let store = self.store()?;
        let devices = store.devices()?;
        store
            .device_types()?
            .into_iter()
            .map(|t| self.summary(t, &devices))
            .collect()
    }

    /// One device type (its template is resolved, and its devices counted, for it alone).
    pub fn device_type(&self, name: &str) -> ServiceResult<DeviceTypeSummary> {
        let store = self.store()?;
        let found = store.device_type(name)?.ok_or(StoreError::NotFound {
            kind: "device type",
            name: name.to_owned(),
        })?;
        self.summary(found, &store.devices()?)
    }

    /// A device type as the APIs show it; `devices` are all devices, for the count.
    fn summary(&self, t: DeviceType, devices: &[Device]) -> ServiceResult<DeviceTypeSummary> {
        let count = devices
            .iter()
            .filter(|d| d.device_type == t.name && d.health != DeviceHealth::Retired)
            .count();
        Ok(DeviceTypeSummary {
            template: self
                .template_file(&t.name)?
                .map(|p| p.display().to_string()),
            health_check: self.has_health_check(&t.name),
            health_frequency: t.health_frequency,
            health_denominator: t.health_denominator,
            health_disabled: t.health_disabled,
            name: t.name,
            description: t.description,
            devices: count,
        })
    }

    /// Registers a device type. With `require_template` (Basalt's own API) its template must
    /// already be on the search path; LAVA's API allows setting the template afterwards.
    pub fn add_device_type(
        &self,
        caller: &Caller,
        name: &str,
        description: &str,
        require_template: bool,
    ) -> ServiceResult<DeviceType> {
        caller.require_superuser()?;
        check_name("device type", name)?;
        if require_template {
            self.require_template(name)?;
        }
        let store = self.store()?;
        store.add_device_type(name, description)?;
        Ok(store.device_type(name)?.ok_or(StoreError::NotFound {
            kind: "device type",
            name: name.to_owned(),
        })?)
    }

    /// Changes a device type's description and health-check schedule.
    pub fn update_device_type(
        &self,
        caller: &Caller,
        name: &str,
        description: Option<&str>,
        schedule: &HealthSchedule,
    ) -> ServiceResult<DeviceTypeSummary> {
        caller.require_superuser()?;
        let denominator = schedule.checked()?;
        self.store()?.update_device_type(
            name,
            description,
            schedule.frequency,
            denominator,
            schedule.disabled,
        )?;
        self.reschedule();
        self.device_type(name)
    }

    /// The text of a device type's template (the file the search path finds first).
    pub fn template(&self, name: &str) -> ServiceResult<String> {
        check_name("device type", name)?;
        let path = self.template_file(name)?.ok_or_else(|| {
            ServiceError::new(
                super::ErrorKind::NotFound,
                format!("device type {name} has no template"),
            )
        })?;
        std::fs::read_to_string(&path)
            .map_err(|e| ServiceError::internal(format!("{}: {e}", path.display())))
    }

    /// Writes a device type's template into the data directory's `device-types/` (where it
    /// overrides a built-in one); empty text removes that override.
    pub fn set_template(&self, caller: &Caller, name: &str, text: &str) -> ServiceResult<()> {
        caller.require_superuser()?;
        check_name("device type", name)?;
        let path = self.template_dir.join(format!("{name}.jinja2"));
        if text.is_empty() {
            return remove_file(&path);
        }
        self.engine
            .check_source(&format!("{name}.jinja2"), text)
            .map_err(|e| {
                ServiceError::bad_request(format!("the template of {name} is not valid: {e}"))
            })?;
        replace_file(&path, text)
    }

    /// Whether `device_type` has a health check (`DATA_DIR/health-checks/<type>.yaml`).
    pub fn has_health_check(&self, device_type: &str) -> bool {
        crate::store::is_valid_name(device_type)
            && crate::master::health::HealthChecks::new(&self.data_dir).exists(device_type)
    }

    /// The text of `device_type`'s health check; not found when it has none.
    pub fn health_check(&self, device_type: &str) -> ServiceResult<String> {
        check_name("device type", device_type)?;
        let path = crate::master::health::HealthChecks::new(&self.data_dir).path(device_type);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ServiceError::new(
                super::ErrorKind::NotFound,
                format!(
                    "device type {device_type} has no health check ({})",
                    path.display()
                ),
            )),
            Err(e) => Err(ServiceError::internal(format!("{}: {e}", path.display()))),
        }
    }

    /// Sets `device_type`'s health check (a job definition for that type, checked as a
    /// submission is); empty text removes it.
    pub fn set_health_check(
        &self,
        caller: &Caller,
        device_type: &str,
        text: &str,
    ) -> ServiceResult<()> {
        caller.require_superuser()?;
        check_name("device type", device_type)?;
        let path = crate::master::health::HealthChecks::new(&self.data_dir).path(device_type);
        if text.trim().is_empty() {
            return remove_file(&path);
        }
        let parsed = crate::job::parse_job(text).map_err(|e| {
            ServiceError::bad_request(format!("the health check is not a valid job: {e}"))
        })?;
        let asks = parsed.value.get("device_type").and_then(|v| v.as_str());
        if asks != Some(device_type) {
            return Err(ServiceError::bad_request(format!(
                "the health check of {device_type} must say device_type: {device_type} (it says {})",
                asks.unwrap_or("nothing")
            )));
        }
        replace_file(&path, text)?;
        self.reschedule();
        Ok(())
    }

    /// All devices.
    pub fn devices(&self) -> ServiceResult<Vec<Device>> {
        Ok(self.store()?.devices()?)
    }

    /// One device as `caller` may see it: its dictionary only for superusers.
    pub fn device_for(
        &self,
        caller: &Caller,
        name: &str,
    ) -> ServiceResult<(Device, Vec<HistoryEntry>)> {
        let (mut device, history) = self.device(name)?;
        if !caller.is_superuser() {
            device.dictionary.clear();
        }
        Ok((device, history))
    }

    /// One device and its history, whole (for the service's own use).
    pub fn device(&self, name: &str) -> ServiceResult<(Device, Vec<HistoryEntry>)> {
        let store = self.store()?;
        let device = store.device(name)?.ok_or(StoreError::NotFound {
            kind: "device",
            name: name.to_owned(),
        })?;
        Ok((device, store.history("device", name)?))
    }

    /// Checks that a dictionary extends its type's template and renders.
    fn check_dictionary(&self, hostname: &str, device_type: &str, text: &str) -> ServiceResult<()> {
        match extends_target(text) {
            Some(target) if target == format!("{device_type}.jinja2") => {}
            Some(target) => {
                return Err(ServiceError::bad_request(format!(
                    "the dictionary of {hostname} extends {target}, but the device is a \
                     {device_type}: make it extend '{device_type}.jinja2'"
                )))
            }
            None => {
                return Err(ServiceError::bad_request(format!(
                    "the dictionary of {hostname} extends no template: start it with \
                     {{% extends '{device_type}.jinja2' %}}"
                )))
            }
        }
        self.require_template(device_type)?;
        crate::device::render_device(
            &self.engine,
            &format!("{hostname}.jinja2"),
            text,
            crate::device::DeviceName {
                hostname,
                device_type,
            },
            &json!({}),
        )
        .map_err(|e| {
            ServiceError::bad_request(format!("the dictionary of {hostname} does not render: {e}"))
        })?;
        Ok(())
    }

    /// Adds a device. Its type and worker must exist; a dictionary, if given, must render.
    pub fn add_device(&self, caller: &Caller, new: &NewDevice) -> ServiceResult<Device> {
        caller.require_superuser()?;
        check_name("device", &new.hostname)?;
        {
            let store = self.store()?;
            if store.device_type(&new.device_type)?.is_none() {
                return Err(ServiceError::bad_request(format!(
                    "device type {} is not known: add it first with `basalt device-types add {}`",
                    new.device_type, new.device_type
                )));
            }
            if store.worker(&new.worker)?.is_none() {
                return Err(ServiceError::bad_request(format!(
                    "worker {} is not known: add it first with `basalt workers add {}`",
                    new.worker, new.worker
                )));
            }
        }
        if !new.dictionary.is_empty() {
            self.check_dictionary(&new.hostname, &new.device_type, &new.dictionary)?;
        }
        let store = self.store()?;
        store.add_device(
            &new.hostname,
            &new.device_type,
            &new.worker,
            &new.dictionary,
            &new.tags,
            &new.description,
        )?;
        self.reschedule();
        Ok(store.device(&new.hostname)?.ok_or(StoreError::NotFound {
            kind: "device",
            name: new.hostname.clone(),
        })?)
    }

    /// Moves a device to another worker or changes its description.
    pub fn update_device(
        &self,
        caller: &Caller,
        name: &str,
        worker: Option<&str>,
        description: Option<&str>,
    ) -> ServiceResult<Device> {
        caller.require_superuser()?;
        let store = self.store()?;
        if let Some(worker) = worker {
            if store.worker(worker)?.is_none() {
                return Err(ServiceError::bad_request(format!(
                    "worker {worker} is not known: add it first with `basalt workers add {worker}`"
                )));
            }
        }
        store.update_device(name, worker, description)?;
        self.reschedule();
        Ok(store.device(name)?.ok_or(StoreError::NotFound {
            kind: "device",
            name: name.to_owned(),
        })?)
    }

    /// Removes a device for good (retiring keeps it on record instead); refused while it
    /// holds a job or jobs wait for it by name.
    pub fn delete_device(&self, caller: &Caller, name: &str, reason: &str) -> ServiceResult<()> {
        let user = caller.require_superuser()?;
        self.store()?
            .delete_device(name, &with_who(reason, &user.name))?;
        self.reschedule();
        Ok(())
    }

    /// Gives a device a tag (jobs asking for it may then run there); already there is fine.
    pub fn add_device_tag(&self, caller: &Caller, name: &str, tag: &str) -> ServiceResult<()> {
        caller.require_superuser()?;
        check_name("tag", tag)?;
        let (device, _) = self.device(name)?;
        if !device.tags.iter().any(|t| t == tag) {
            let mut tags = device.tags;
            tags.push(tag.to_owned());
            tags.sort();
            self.store()?.set_device_tags(name, &tags)?;
            self.reschedule();
        }
        Ok(())
    }

    /// Takes a tag off a device; not having it is fine.
    pub fn remove_device_tag(&self, caller: &Caller, name: &str, tag: &str) -> ServiceResult<()> {
        caller.require_superuser()?;
        let (device, _) = self.device(name)?;
        let tags: Vec<String> = device.tags.into_iter().filter(|t| t != tag).collect();
        self.store()?.set_device_tags(name, &tags)?;
        Ok(())
    }

    /// A device's dictionary (Jinja2 text); not found when it has none.
    pub fn dictionary(&self, caller: &Caller, name: &str) -> ServiceResult<String> {
        caller.require_superuser_to_read("a device dictionary")?;
        let (device, _) = self.device(name)?;
        if device.dictionary.is_empty() {
            return Err(ServiceError::new(
                super::ErrorKind::NotFound,
                format!("device {name} has no dictionary: set one with `basalt devices dict set`"),
            ));
        }
        Ok(device.dictionary)
    }

    /// A device's dictionary rendered with `context` (the job context a job would give).
    pub fn rendered_dictionary(
        &self,
        caller: &Caller,
        name: &str,
        context: &serde_json::Value,
    ) -> ServiceResult<String> {
        let text = self.dictionary(caller, name)?;
        self.engine
            .render_source_text(&format!("{name}.jinja2"), &text, context)
            .map_err(|e| {
                ServiceError::bad_request(format!("the dictionary of {name} does not render: {e}"))
            })
    }

    /// Replaces a device's dictionary after checking that it renders; empty text removes it
    /// (the device then gets no jobs).
    pub fn set_dictionary(&self, caller: &Caller, name: &str, text: &str) -> ServiceResult<()> {
        caller.require_superuser()?;
        let (device, _) = self.device(name)?;
        if !text.is_empty() {
            self.check_dictionary(name, &device.device_type, text)?;
        }
        self.store()?.set_dictionary(name, text)?;
        self.reschedule();
        Ok(())
    }

    /// Changes a device's health (maintenance, back to good, retired).
    pub fn set_device_health(
        &self,
        caller: &Caller,
        name: &str,
        health: &str,
        reason: &str,
    ) -> ServiceResult<Device> {
        let user = caller.require_superuser()?;
        let health = DeviceHealth::parse(&health.to_ascii_lowercase()).ok_or_else(|| {
            ServiceError::bad_request(format!(
                "{health:?} is not a device health: use good, unknown, maintenance, looping, \
                 bad or retired"
            ))
        })?;
        let store = self.store()?;
        store.set_device_health(name, health, &with_who(reason, &user.name))?;
        self.reschedule();
        Ok(store.device(name)?.ok_or(StoreError::NotFound {
            kind: "device",
            name: name.to_owned(),
        })?)
    }
}

/// Removes a file an admin uploaded (absent is fine): what an empty upload means.
fn remove_file(path: &Path) -> ServiceResult<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(ServiceError::internal(format!("{}: {e}", path.display())))
        }
        _ => Ok(()),
    }
}

/// Writes an uploaded file through a hidden temporary beside it and a rename, so the
/// scheduler and the slaves never read half of one.
fn replace_file(path: &Path, text: &str) -> ServiceResult<()> {
    let io = |e: std::io::Error| ServiceError::internal(format!("{}: {e}", path.display()));
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let partial = dir.join(format!(".{name}.partial"));
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&partial, text))
        .and_then(|()| std::fs::rename(&partial, path))
        .map_err(io)
}

/// A history reason that names who made the change.
fn with_who(reason: &str, user: &str) -> String {
    match reason.trim() {
        "" => format!("by {user}"),
        reason => format!("{reason} (by {user})"),
    }
}
