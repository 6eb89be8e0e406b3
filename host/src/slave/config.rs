//! The slave's settings: a TOML file (`--config`), then command-line overrides, then
//! defaults (LAVA's ports, the host name as the worker name).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Everything `basalt slave` can be told.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlaveConfig {
    /// The master's host name or address.
    pub master: String,
    /// The master's control port.
    pub control_port: u16,
    /// The master's log port (used only towards a LAVA master).
    pub log_port: u16,
    /// This worker's name (its identity on the control socket); default: the host name.
    pub name: Option<String>,
    /// Where jobs' files, logs and records live; survives restarts.
    pub state_dir: PathBuf,
    /// Keep each job's directory (files, log, stderr) under `<state>/finished/` after the
    /// master acknowledged it, instead of removing it.
    pub keep_finished: bool,
    /// What job processes are given.
    pub run: RunSettings,
    /// Protocol timing.
    pub timing: SlaveTiming,
    /// Encrypt the link with CURVE (LAVA's `--encrypt`).
    pub encrypt: bool,
    /// The master's public certificate, `NAME.key` (LAVA's `--master-cert`).
    pub master_cert: PathBuf,
    /// This slave's secret certificate, `NAME.key_secret` (LAVA's `--slave-cert`); the
    /// master must hold its public half as `WORKER.key`.
    pub slave_cert: PathBuf,
}

/// Settings passed on to every `basalt run`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunSettings {
    /// The address boards reach this worker at (`{SERVER_IP}`); the dispatcher
    /// configuration's `dispatcher_ip` wins.
    pub server_ip: Option<String>,
    /// This worker's TFTP root.
    pub tftp_root: Option<PathBuf>,
    /// This worker's NFS export root.
    pub nfs_root: Option<PathBuf>,
    /// Plugin directories.
    pub plugin_dirs: Vec<PathBuf>,
    /// Directories whose files jobs may read (`file://` URLs, local git repositories);
    /// the worker's `dispatcher.yaml` may add more (`local_file_dirs: [...]`).
    pub local_file_dirs: Vec<PathBuf>,
}

/// How often things are repeated.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlaveTiming {
    /// HELLO_RETRY period until HELLO_OK (LAVA: 5 s).
    pub hello_retry_secs: f64,
    /// END re-send period until END_OK (LAVA: 5 s).
    pub end_resend_secs: f64,
    /// Unacknowledged log bytes are re-sent after this long.
    pub logs_retry_secs: f64,
    /// After CANCEL, how long the job has to stop after SIGTERM before SIGKILL.
    pub cancel_grace_secs: f64,
}

impl Default for SlaveTiming {
    fn default() -> Self {
        Self {
            hello_retry_secs: 5.0,
            end_resend_secs: 5.0,
            logs_retry_secs: 2.0,
            cancel_grace_secs: 120.0,
        }
    }
}

fn secs(value: f64) -> Duration {
    Duration::from_secs_f64(value.max(0.01))
}

impl SlaveTiming {
    /// HELLO_RETRY period.
    pub fn hello_retry(&self) -> Duration {
        secs(self.hello_retry_secs)
    }
    /// END re-send period.
    pub fn end_resend(&self) -> Duration {
        secs(self.end_resend_secs)
    }
    /// Log re-send period.
    pub fn logs_retry(&self) -> Duration {
        secs(self.logs_retry_secs)
    }
    /// SIGTERM-to-SIGKILL grace.
    pub fn cancel_grace(&self) -> Duration {
        secs(self.cancel_grace_secs)
    }
}

impl Default for SlaveConfig {
    fn default() -> Self {
        Self {
            master: "localhost".into(),
            control_port: 5556,
            log_port: 5555,
            name: None,
            state_dir: PathBuf::from("/var/lib/basalt/slave"),
            keep_finished: false,
            run: RunSettings::default(),
            timing: SlaveTiming::default(),
            encrypt: false,
            master_cert: PathBuf::from("/etc/basalt/certificates.d/master.key"),
            slave_cert: PathBuf::from("/etc/basalt/certificates.d/slave.key_secret"),
        }
    }
}

impl SlaveConfig {
    /// Makes every path absolute against the current directory, once, at start-up: job
    /// processes run in their own directories, where a relative path means something else.
    pub fn resolve_paths(&mut self) -> std::io::Result<()> {
        let absolute = |path: &mut PathBuf| -> std::io::Result<()> {
            *path = std::path::absolute(&*path)?;
            Ok(())
        };
        absolute(&mut self.state_dir)?;
        absolute(&mut self.master_cert)?;
        absolute(&mut self.slave_cert)?;
        for path in self
            .run
            .tftp_root
            .iter_mut()
            .chain(self.run.nfs_root.iter_mut())
            .chain(self.run.plugin_dirs.iter_mut())
            .chain(self.run.local_file_dirs.iter_mut())
        {
            absolute(path)?;
        }
        Ok(())
    }

    /// The worker name: configured, or this host's name.
    pub fn worker_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            nix::unistd::gethostname()
                .ok()
                .and_then(|n| n.into_string().ok())
                .unwrap_or_else(|| "localhost".into())
        })
    }

    /// The CURVE keys to connect with, read and checked now; None in the clear.
    pub fn curve(
        &self,
    ) -> Result<Option<crate::transport::ClientCurve>, crate::transport::CurveError> {
        use crate::transport::{Certificate, ClientCurve, CurveError};
        if !self.encrypt {
            return Ok(None);
        }
        if !crate::transport::curve::available() {
            return Err(CurveError::Unavailable);
        }
        let master = Certificate::read(&self.master_cert)?.public;
        let own = Certificate::read_secret(&self.slave_cert)?;
        Ok(Some(ClientCurve { master, own }))
    }

    /// `tcp://MASTER:PORT`.
    pub fn endpoint(&self, port: u16) -> String {
        format!("tcp://{}:{port}", self.master)
    }
}
