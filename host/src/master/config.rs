//! The master's settings: a TOML file (`--config`), then command-line overrides, then
//! defaults that match LAVA's (ports 5556 control, 5555 logs) plus 8000 for HTTP.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Everything `basalt master` can be told.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MasterConfig {
    /// Where the database, job logs, admin token and per-worker files live.
    pub data_dir: PathBuf,
    /// The address the three sockets listen on.
    pub listen: String,
    /// The control socket's port (LAVA: 5556).
    pub control_port: u16,
    /// The log socket's port (LAVA: 5555).
    pub log_port: u16,
    /// The HTTP API's port.
    pub http_port: u16,
    /// Device-type template directories searched before the shipped ones.
    pub device_types: Vec<PathBuf>,
    /// Protocol timing.
    pub timing: Timing,
    /// Encrypt and authenticate both ZMQ sockets with CURVE (LAVA's `--encrypt`).
    pub encrypt: bool,
    /// The master's secret certificate, `NAME.key_secret` (LAVA's `--master-cert`).
    pub master_cert: PathBuf,
    /// The directory of the allowed slaves' public certificates, one `WORKER.key` per slave
    /// (LAVA's `--slaves-certs`).
    pub slaves_certs: PathBuf,
    /// Whether a slave's HELLO may create a worker the master does not know. Encrypted, only
    /// slaves on the allow-list ever get that far.
    pub register_workers: bool,
    /// Workers that a HELLO created and that never got a device are forgotten after being
    /// offline this long.
    pub forget_unused_workers_after_secs: u64,
    /// The most log one job may store, in MiB (0: no limit). A job whose log passes it is
    /// canceled and ends Incomplete, saying so; what came before is kept.
    pub job_log_limit_mib: u64,
    /// LAVA's event stream: the ZMQ PUB socket's port (LAVA's 5500; 0: one the kernel picks,
    /// see the ready file). The WebSocket at `/ws/` on the HTTP port carries the same events.
    pub event_port: u16,
    /// Whether the ZMQ PUB socket is bound at all.
    pub event_socket: bool,
    /// LAVA's `EVENT_TOPIC`: the prefix of every topic (`org.lavasoftware.testjob`, …).
    pub event_topic: String,
    /// How `notify:` callbacks and e-mails are sent.
    pub notifications: NotificationSettings,
    /// Whether a missing or empty database may be created in a data directory that already
    /// holds a master's data (`--init`; never from a configuration file).
    #[serde(skip)]
    pub init: bool,
    /// A file to write, once every socket is bound, with the master's process id and the
    /// ports it listens on (`--ready-file`): how a supervisor or a test knows this master,
    /// not something else on the port, is ready, and which ports port 0 gave it.
    #[serde(skip)]
    pub ready_file: Option<PathBuf>,
}

/// How the master sends what jobs' `notify:` asks for. LAVA tries a callback once; a CI
/// system waits for it, so here a failed one is tried again, each wait twice the last, until
/// it is delivered or `give_up_after_secs` have passed since the job's change.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationSettings {
    /// Seconds one callback request may take, connecting included (LAVA's CALLBACK_TIMEOUT).
    pub timeout_secs: u64,
    /// The first wait before a failed notification is tried again.
    pub retry_first_secs: u64,
    /// The longest wait between two attempts.
    pub retry_max_secs: u64,
    /// How long after the change a notification is still tried.
    pub give_up_after_secs: u64,
    /// The SMTP server e-mail notifications go through (`host:port`); none: e-mails fail
    /// with an error saying so.
    pub smtp_server: Option<String>,
    /// The sender of e-mail notifications (LAVA's SERVER_EMAIL).
    pub email_from: String,
    /// The address the job pages are linked under in e-mails (`http://lava.example.com`).
    pub url_prefix: String,
    /// Hosts callbacks may go to, as shell patterns (`*.ci.example.com`; LAVA's
    /// CALLBACK_ALLOWED_HOSTS). Empty: any host except the master's own machine and
    /// link-local addresses (where pdudaemon, ser2net and metadata services answer plain
    /// GETs); a listed host is allowed whatever it resolves to. A lab whose master can reach
    /// services that job submitters should not should list its CI systems here.
    pub callback_allowed_hosts: Vec<String>,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        Self {
            timeout_secs: 5,
            retry_first_secs: 10,
            retry_max_secs: 600,
            give_up_after_secs: 24 * 3600,
            smtp_server: None,
            email_from: "root@localhost".into(),
            url_prefix: String::new(),
            callback_allowed_hosts: Vec::new(),
        }
    }
}

/// How often things are repeated and how long silence is tolerated.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timing {
    /// The ping interval told to slaves in PONG (LAVA: 20 s; at least 5 for LAVA slaves).
    pub ping_interval_secs: u64,
    /// Silence after which a worker is offline (LAVA: 60 s).
    pub offline_after_secs: u64,
    /// How often START and CANCEL are re-sent until answered (LAVA: 20 s).
    pub resend_secs: f64,
    /// How long past its own `timeouts.job` a running job may go unreported before the
    /// master ends it (its slave lost it, or is gone for good) and frees its device.
    pub overdue_grace_secs: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            ping_interval_secs: 20,
            offline_after_secs: 60,
            resend_secs: 5.0,
            overdue_grace_secs: 300,
        }
    }
}

impl Timing {
    /// [`Self::offline_after_secs`] as a duration.
    pub fn offline_after(&self) -> Duration {
        Duration::from_secs(self.offline_after_secs)
    }

    /// [`Self::resend_secs`] as a duration (at least 10 ms).
    pub fn resend(&self) -> Duration {
        Duration::from_secs_f64(self.resend_secs.max(0.01))
    }
}

impl Default for MasterConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("/var/lib/basalt/master"),
            listen: "0.0.0.0".into(),
            control_port: 5556,
            log_port: 5555,
            http_port: 8000,
            device_types: Vec::new(),
            timing: Timing::default(),
            encrypt: false,
            master_cert: PathBuf::from("/etc/basalt/certificates.d/master.key_secret"),
            slaves_certs: PathBuf::from("/etc/basalt/certificates.d"),
            register_workers: true,
            forget_unused_workers_after_secs: 24 * 3600,
            job_log_limit_mib: 256,
            event_port: 5500,
            event_socket: true,
            event_topic: "org.lavasoftware".into(),
            notifications: NotificationSettings::default(),
            init: false,
            ready_file: None,
        }
    }
}

/// A configuration file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not readable.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid TOML, or keys that do not exist.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What and where.
        source: toml::de::Error,
    },
}

/// Reads a TOML configuration file of type `T`.
pub fn read_toml<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        source,
    })
}

impl MasterConfig {
    /// Makes every path absolute against the current directory, once, at start-up, so that
    /// what the master logs and hands out names the same files wherever it is read.
    pub fn resolve_paths(&mut self) -> std::io::Result<()> {
        self.data_dir = std::path::absolute(&self.data_dir)?;
        self.master_cert = std::path::absolute(&self.master_cert)?;
        self.slaves_certs = std::path::absolute(&self.slaves_certs)?;
        if let Some(file) = &mut self.ready_file {
            *file = std::path::absolute(&*file)?;
        }
        for dir in &mut self.device_types {
            *dir = std::path::absolute(&*dir)?;
        }
        Ok(())
    }

    /// The database file.
    pub fn database(&self) -> PathBuf {
        self.data_dir.join("basalt.db")
    }

    /// The file holding the admin token.
    pub fn token_file(&self) -> PathBuf {
        self.data_dir.join("admin-token")
    }

    /// Where job logs and outputs go.
    pub fn jobs_dir(&self) -> PathBuf {
        self.data_dir.join("jobs")
    }

    /// `tcp://LISTEN:PORT` for ZMQ; port 0 becomes ZMQ's `*`, a port the kernel picks.
    pub fn endpoint(&self, port: u16) -> String {
        let host = if self.listen == "0.0.0.0" {
            "*"
        } else {
            &self.listen
        };
        match port {
            0 => format!("tcp://{host}:*"),
            port => format!("tcp://{host}:{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_override_defaults_and_unknown_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.toml");
        std::fs::write(
            &path,
            "http_port = 8080\n[timing]\nping_interval_secs = 5\n",
        )
        .unwrap();
        let config: MasterConfig = read_toml(&path).unwrap();
        assert_eq!((config.http_port, config.control_port), (8080, 5556));
        assert_eq!(config.timing.ping_interval_secs, 5);
        std::fs::write(&path, "htp_port = 8080\n").unwrap();
        let error = read_toml::<MasterConfig>(&path).unwrap_err().to_string();
        assert!(
            error.contains("htp_port") && error.contains("master.toml"),
            "{error}"
        );
    }
}

#[cfg(test)]
mod contrib_tests {
    use super::*;

    #[test]
    fn the_shipped_example_configurations_parse() {
        let contrib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib");
        let master: MasterConfig = read_toml(&contrib.join("master.toml")).unwrap();
        assert_eq!(master.control_port, 5556);
        let slave: crate::slave::SlaveConfig = read_toml(&contrib.join("slave.toml")).unwrap();
        assert_eq!(slave.timing.cancel_grace_secs, 120.0);
        let unit = std::fs::read_to_string(contrib.join("basalt-slave.service")).unwrap();
        assert!(unit.contains("KillMode=process"));
    }
}
