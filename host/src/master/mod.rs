//! `basalt master`: the database, the scheduler, the control and log sockets and the HTTP
//! API, in one process.
//!
//! Threads: the control loop ([`control`]) owns the ZMQ sockets and is the only writer of job
//! states driven by slaves; the HTTP API ([`http`]) runs on a small tokio runtime with its
//! own database connection and wakes the control loop when the scheduler should look again.
//! Nothing the master knows lives only in memory: a `kill -9` at any moment loses no job,
//! no log line and no result (see [`joblogs`]).

pub mod config;
mod control;
pub mod data_dir;
pub mod events;
pub mod health;
pub mod http;
pub mod joblogs;
pub mod lava_api;
pub mod notify;
pub mod ready;
pub mod service;
mod start;
pub mod submit;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Context;
use tracing::info;

pub use config::{MasterConfig, Timing};

use crate::store::Store;
use crate::template::{SearchPath, TemplateEngine};
use crate::transport::{AllowList, Certificate, MasterCurve, MasterSockets};

/// Reads the admin token, creating it (readable by the owner only) on first start.
pub fn admin_token(path: &Path) -> anyhow::Result<String> {
    if let Ok(token) = std::fs::read_to_string(path) {
        let token = token.trim().to_owned();
        if !token.is_empty() {
            return Ok(token);
        }
    }
    let token = service::random_token().context("cannot read /dev/urandom for the admin token")?;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    use std::io::Write;
    writeln!(file, "{token}").with_context(|| format!("cannot write {}", path.display()))?;
    Ok(token)
}

/// The device-type search path of a master: its data directory's `device-types/` (where
/// admins drop templates), then `extra` (configured and built-in directories).
pub fn template_dirs(config: &MasterConfig, extra: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs = vec![config.data_dir.join("device-types")];
    dirs.extend(config.device_types.iter().cloned());
    dirs.extend(extra.iter().cloned());
    dirs
}

/// Raises the open-file limit to its hard maximum: every connected slave holds a socket, and
/// the usual soft limit (1024) would cap a lab at about a thousand workers.
pub fn raise_open_file_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                hard
            } else {
                soft
            }
        }
        Ok((soft, _)) => soft,
        Err(_) => 0,
    }
}

/// The master's CURVE settings, read and checked at start-up: an encrypted master without a
/// usable certificate or allow-list does not start (never a silent plaintext link).
fn master_curve(config: &MasterConfig) -> anyhow::Result<Option<MasterCurve>> {
    if !config.encrypt {
        return Ok(None);
    }
    if !crate::transport::curve::available() {
        return Err(crate::transport::CurveError::Unavailable.into());
    }
    let certificate = Certificate::read_secret(&config.master_cert)
        .context("--encrypt needs the master's secret certificate (--master-cert)")?;
    let allow = AllowList::open(&config.slaves_certs)
        .context("--encrypt needs the directory of slave certificates (--slaves-certs)")?;
    Ok(Some(MasterCurve {
        certificate,
        allow: Arc::new(allow),
    }))
}

/// The master renders dictionaries in a child whose memory is bounded (a template can build
/// values without bound); without its own program path it renders in-process, saying so.
fn isolate(engine: TemplateEngine) -> TemplateEngine {
    match crate::template::this_program() {
        Some(isolation) => engine.isolated(isolation),
        None => {
            tracing::warn!("cannot find the master's own program; templates render in-process");
            engine
        }
    }
}

/// Starts the event stream; a PUB port that cannot be bound is a warning, not a master that
/// does not start (the WebSocket still carries the events). Returns the bound port and the
/// thread.
fn start_events(
    config: &MasterConfig,
    sender: tokio::sync::broadcast::Sender<Arc<events::Published>>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<(Option<u16>, std::thread::JoinHandle<()>)> {
    let settings = events::EventSettings {
        endpoint: config
            .event_socket
            .then(|| config.endpoint(config.event_port)),
        topic: config.event_topic.clone(),
        poll: std::time::Duration::from_millis(250),
    };
    match events::spawn(
        settings.clone(),
        config.database(),
        sender.clone(),
        stop.clone(),
    ) {
        Ok(started) => Ok(started),
        Err(e) if settings.endpoint.is_some() => {
            tracing::warn!(
                "{e:#}; events go to WebSocket clients of /ws/ only (set event_port, or \
                 event_socket = false, in the master's configuration)"
            );
            let settings = events::EventSettings {
                endpoint: None,
                ..settings
            };
            events::spawn(settings, config.database(), sender, stop)
        }
        Err(e) => Err(e),
    }
}

/// Runs the master until SIGTERM or SIGINT.
pub fn run(config: MasterConfig, template_dirs: Vec<PathBuf>) -> anyhow::Result<()> {
    // Everything the master writes (database, token, job logs with their definitions) is
    // its own; it serves what others may see over HTTP.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let files = raise_open_file_limit();
    tracing::debug!("open-file limit {files}");
    data_dir::check_database(&config)?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    // The database first: a master killed right after this starts again without --init.
    let store = Store::open(&config.database())
        .and_then(|store| store.check_integrity().map(|()| store))
        .with_context(|| format!("cannot open the database {}", config.database().display()))?;
    store
        .keep_job_ids_above(data_dir::highest_logged_job(&config.jobs_dir()))
        .context("cannot set the next job id past the job logs already there")?;
    for dir in [config.jobs_dir(), template_dirs[0].clone()] {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    for file in [config.database(), config.token_file()] {
        crate::private_file::restrict(&file)
            .with_context(|| format!("cannot make {} private (0600)", file.display()))?;
    }
    let token = admin_token(&config.token_file())?;
    store.mark_all_workers_offline()?;
    let curve = master_curve(&config)?;
    let sockets = MasterSockets::bind_with(
        &config.endpoint(config.control_port),
        &config.endpoint(config.log_port),
        curve.as_ref(),
    )?;
    let (control_port, log_port) = sockets.ports()?;
    match &curve {
        Some(curve) => info!(
            "the link is encrypted (CURVE, master key {}); {} slave certificate(s) in {}",
            curve.certificate.public_z85(),
            curve.allow.len(),
            config.slaves_certs.display()
        ),
        None => tracing::warn!(
            "the master-slave link is NOT encrypted: anyone who reaches ports {} and {} can pose as a worker{}; use --encrypt with certificates (basalt certs generate)",
            control_port,
            log_port,
            if config.register_workers {
                " or register new ones"
            } else {
                ""
            }
        ),
    }
    let http_address = format!("{}:{}", config.listen, config.http_port);
    let listener = std::net::TcpListener::bind(&http_address)
        .with_context(|| format!("cannot listen for HTTP on {http_address}"))?;
    listener.set_nonblocking(true)?;
    let stop = Arc::new(AtomicBool::new(false));
    let (event_sender, _) = tokio::sync::broadcast::channel(events::CHANNEL_CAPACITY);
    let (event_port, event_thread) = start_events(&config, event_sender.clone(), stop.clone())?;
    let notify_thread = notify::spawn(
        config.notifications.clone(),
        config.database(),
        config.jobs_dir(),
        stop.clone(),
    )?;
    let listening = ready::Listening {
        pid: std::process::id(),
        control_port,
        log_port,
        http_port: listener.local_addr()?.port(),
        event_port,
    };
    let waker = sockets.waker()?;
    let log_faults = Arc::new(joblogs::LogFaults::default());
    let service = Arc::new(
        service::Service::new(
            Store::open(&config.database())?,
            move || waker.wake(),
            isolate(TemplateEngine::new(SearchPath::new(template_dirs.clone()))),
            config.data_dir.clone(),
            config.jobs_dir(),
        )
        .with_log_faults(log_faults.clone())
        .with_events(event_sender),
    );
    service
        .ensure_admin(&token)
        .context("cannot register the admin token")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("basalt-http")
        .build()
        .context("cannot start the HTTP runtime")?;
    runtime.spawn(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(e) => {
                tracing::error!("HTTP listener: {e}");
                return;
            }
        };
        if let Err(e) = http::serve(listener, service).await {
            tracing::error!("HTTP server stopped: {e}");
        }
    });

    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())?;
    }
    info!(
        "master listening: control {}, logs {}, HTTP {}:{}, data in {}",
        config.endpoint(listening.control_port),
        config.endpoint(listening.log_port),
        config.listen,
        listening.http_port,
        config.data_dir.display()
    );
    if let Some(file) = &config.ready_file {
        listening
            .write(file)
            .with_context(|| format!("cannot write the ready file {}", file.display()))?;
    }
    let engine = isolate(TemplateEngine::new(SearchPath::new(template_dirs)));
    let allow = curve.map(|c| c.allow);
    let database = config.database();
    let mut control = control::ControlLoop::new(config, store, sockets, engine, allow, log_faults);
    let ended = control.run(&stop);
    info!("master stopping");
    // The control loop ends on `stop` or on a failed database; either way the others end too.
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for thread in [event_thread, notify_thread] {
        let _ = thread.join();
    }
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    ended.with_context(|| format!("the database {} failed", database.display()))
}
