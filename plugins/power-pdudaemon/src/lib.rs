//! Power driver `pdudaemon`: asks a pdudaemon HTTP listener to switch an outlet.
//!
//! pdudaemon queues requests per PDU and answers `GET /power/control/{on,off,reboot}?
//! hostname=<pdu>&port=<outlet>` at once; it cannot report outlet state, so `state` says
//! `unknown`. Requests that fail to connect or get a 5xx answer are retried (pdudaemon
//! restarts and busy PDUs are common in labs), a 4xx answer is a configuration error.
//!
//! Device configuration:
//!
//! ```yaml
//! power:
//!   driver: pdudaemon
//!   url: http://localhost:16421   # the listener (default)
//!   hostname: pdu-rack1           # the PDU as named in pdudaemon's configuration
//!   port: 4                       # the outlet
//!   delay: 5                      # optional: seconds between off and on for reboot
//!   retries: 5                    # optional: extra attempts after a failed request
//!   retry_delay: 2                # optional: seconds between attempts
//! ```
#![deny(missing_docs)]

use std::thread;
use std::time::{Duration, Instant};

use basalt_plugin_api::{export_plugin, parse_config, Log, PluginError, PowerDriver};

/// The listener pdudaemon's packaging configures.
const DEFAULT_URL: &str = "http://localhost:16421";

/// An outlet number or name, as written in device dictionaries.
#[derive(serde::Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum Outlet {
    /// A number (`port: 4`).
    Number(u64),
    /// A name (`port: "A4"`).
    Name(String),
}

impl std::fmt::Display for Outlet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Number(n) => write!(f, "{n}"),
            Self::Name(s) => f.write_str(s),
        }
    }
}

/// The driver's configuration.
#[derive(serde::Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct PdudaemonConfig {
    /// Base URL of the pdudaemon listener.
    #[serde(default = "default_url")]
    pub url: String,
    /// The PDU's name in pdudaemon's configuration.
    pub hostname: String,
    /// The outlet.
    pub port: Outlet,
    /// Seconds pdudaemon waits between off and on for `reboot`.
    #[serde(default)]
    pub delay: Option<u64>,
    /// Extra attempts after a failed request.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Seconds between attempts.
    #[serde(default = "default_retry_delay")]
    pub retry_delay: f64,
}

fn default_url() -> String {
    DEFAULT_URL.to_owned()
}

fn default_retries() -> u32 {
    5
}

fn default_retry_delay() -> f64 {
    2.0
}

/// The driver.
pub struct Pdudaemon {
    config: PdudaemonConfig,
    retry_delay: Duration,
    log: Log,
}

/// Builds the driver from its `power:` mapping (JSON text).
pub fn new_pdudaemon(config: &str, log: Log) -> Result<Pdudaemon, PluginError> {
    let config: PdudaemonConfig = parse_config("power pdudaemon", config)?;
    if !(config.url.starts_with("http://") || config.url.starts_with("https://")) {
        return Err(PluginError::invalid_config(format!(
            "power pdudaemon: url {:?} must start with http://",
            config.url
        )));
    }
    let retry_delay = Duration::try_from_secs_f64(config.retry_delay).map_err(|_| {
        PluginError::invalid_config(format!(
            "power pdudaemon: retry_delay {} is not a number of seconds",
            config.retry_delay
        ))
    })?;
    Ok(Pdudaemon {
        config,
        retry_delay,
        log,
    })
}

/// How one request attempt ended.
enum Attempt {
    Done,
    /// Worth another try (no connection, 5xx).
    Retry(String),
    /// Not worth another try (4xx: pdudaemon does not know the PDU or the request).
    Fatal(String),
}

impl Pdudaemon {
    fn request(&self, command: &str, timeout: Duration) -> Result<(), PluginError> {
        let deadline = Instant::now() + timeout;
        let url = format!(
            "{}/power/control/{command}",
            self.config.url.trim_end_matches('/')
        );
        let what = format!(
            "pdudaemon at {} ({command} {} port {})",
            self.config.url, self.config.hostname, self.config.port
        );
        self.log.info(&format!("power pdudaemon: {what}"));
        let mut last_failure = String::new();
        for attempt in 0..=self.config.retries {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(PluginError::timeout(format!(
                    "{what}: no success within {timeout:?} ({attempt} attempts; last: {last_failure})"
                )));
            }
            match self.attempt(&url, command, remaining) {
                Attempt::Done => return Ok(()),
                Attempt::Fatal(reason) => {
                    return Err(PluginError::invalid_config(format!("{what}: {reason}")))
                }
                Attempt::Retry(reason) => {
                    self.log.warning(&format!(
                        "power pdudaemon: attempt {} of {} failed: {reason}",
                        attempt + 1,
                        self.config.retries + 1
                    ));
                    last_failure = reason;
                }
            }
            if attempt < self.config.retries {
                let pause = self
                    .retry_delay
                    .min(deadline.saturating_duration_since(Instant::now()));
                thread::sleep(pause);
            }
        }
        Err(PluginError::infrastructure(format!(
            "{what}: failed after {} attempts; last: {last_failure}",
            self.config.retries + 1
        )))
    }

    fn attempt(&self, url: &str, command: &str, timeout: Duration) -> Attempt {
        let agent = ureq::AgentBuilder::new().timeout(timeout).build();
        let mut request = agent
            .get(url)
            .query("hostname", &self.config.hostname)
            .query("port", &self.config.port.to_string());
        if let (Some(delay), "reboot") = (self.config.delay, command) {
            request = request.query("delay", &delay.to_string());
        }
        match request.call() {
            Ok(_) => Attempt::Done,
            Err(ureq::Error::Status(code, response)) => {
                let body = response.into_string().unwrap_or_default();
                let reason = format!("HTTP {code}: {}", body.trim());
                if (400..500).contains(&code) {
                    Attempt::Fatal(reason)
                } else {
                    Attempt::Retry(reason)
                }
            }
            Err(ureq::Error::Transport(transport)) => Attempt::Retry(transport.to_string()),
        }
    }
}

impl PowerDriver for Pdudaemon {
    fn on(&self, timeout: Duration) -> Result<(), PluginError> {
        self.request("on", timeout)
    }

    fn off(&self, timeout: Duration) -> Result<(), PluginError> {
        self.request("off", timeout)
    }

    fn reboot(&self, timeout: Duration) -> Result<(), PluginError> {
        self.request("reboot", timeout)
    }
}

export_plugin! {
    name: "power-pdudaemon",
    drivers: [
        power "pdudaemon": "Switches outlets through a pdudaemon HTTP listener" => new_pdudaemon,
    ],
}
