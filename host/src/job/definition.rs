//! The typed job: what the pipeline builder and the runner read from a validated job.

use std::time::Duration;

use serde_json::{Map, Value};

/// A LAVA timeout (`{minutes: 5}`), as a duration.
pub fn timeout_of(value: &Value) -> Option<Duration> {
    let map = value.as_object()?;
    let mut seconds = 0u64;
    for (unit, amount) in map {
        let amount = amount.as_u64()?;
        seconds += match unit.as_str() {
            "days" => amount * 86_400,
            "hours" => amount * 3_600,
            "minutes" => amount * 60,
            "seconds" => amount,
            _ => continue,
        };
    }
    Some(Duration::from_secs(seconds))
}

/// The four kinds of job action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionKind {
    /// Put files where the board will find them.
    Deploy,
    /// Bring the board to a shell.
    Boot,
    /// Run tests on the booted board.
    Test,
    /// Run one of the device's user commands on the worker.
    Command,
}

impl ActionKind {
    /// The key of this kind in a job (`deploy`, `boot`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Deploy => "deploy",
            Self::Boot => "boot",
            Self::Test => "test",
            Self::Command => "command",
        }
    }
}

/// One top-level action of a job.
#[derive(Debug, Clone)]
pub struct JobAction {
    /// Its kind.
    pub kind: ActionKind,
    /// Its parameters (the mapping under the kind's key).
    pub params: Map<String, Value>,
    /// Its position in the job's action list (0-based), for messages.
    pub index: usize,
}

impl JobAction {
    /// The method (`to:` for deploys, `method:` for boots, the command name for commands).
    pub fn method(&self) -> Option<&str> {
        let key = match self.kind {
            ActionKind::Deploy => "to",
            ActionKind::Boot => "method",
            ActionKind::Command => "name",
            ActionKind::Test => return None,
        };
        self.params.get(key).and_then(Value::as_str)
    }

    /// The action's `namespace:`, `common` when it names none (as in LAVA).
    pub fn namespace(&self) -> &str {
        self.params
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or("common")
    }

    /// The action's own `timeout:`, if it has one.
    pub fn own_timeout(&self) -> Option<Duration> {
        self.params.get("timeout").and_then(timeout_of)
    }

    /// How many times to run it: `failure_retry` (until one run succeeds) or `repeat`
    /// (every run, whatever the one before gave), default 1.
    pub fn attempts(&self) -> u32 {
        self.params
            .get("failure_retry")
            .or_else(|| self.params.get("repeat"))
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(1)
            .max(1)
    }

    /// Whether its runs are LAVA's `repeat`: all of them, whatever each gives.
    pub fn repeats(&self) -> bool {
        self.params.contains_key("repeat")
    }
}

/// A validated job.
#[derive(Debug, Clone)]
pub struct JobDefinition {
    /// `job_name`.
    pub name: String,
    /// `device_type`, if given.
    pub device_type: Option<String>,
    /// The whole job, as data.
    pub raw: Value,
    /// The actions in order.
    pub actions: Vec<JobAction>,
}

impl JobDefinition {
    /// Builds the typed view of a job that [`parse_job`](super::parse_job) accepted.
    pub fn from_value(raw: Value) -> Self {
        let actions = raw
            .get("actions")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .enumerate()
                    .filter_map(|(index, item)| {
                        let (key, params) = item.as_object()?.iter().next()?;
                        let kind = match key.as_str() {
                            "deploy" => ActionKind::Deploy,
                            "boot" => ActionKind::Boot,
                            "test" => ActionKind::Test,
                            "command" => ActionKind::Command,
                            _ => return None,
                        };
                        Some(JobAction {
                            kind,
                            params: params.as_object().cloned().unwrap_or_default(),
                            index,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            name: raw
                .get("job_name")
                .and_then(Value::as_str)
                .unwrap_or("job")
                .to_owned(),
            device_type: raw
                .get("device_type")
                .and_then(Value::as_str)
                .map(str::to_owned),
            actions,
            raw,
        }
    }

    /// The job's `context:` mapping (for rendering the device dictionary).
    pub fn context(&self) -> Value {
        self.raw
            .get("context")
            .cloned()
            .filter(Value::is_object)
            .unwrap_or_else(|| Value::Object(Map::new()))
    }

    /// A timeout from the job's `timeouts:` section (`job`, `action`, `connection`).
    pub fn timeout(&self, key: &str) -> Option<Duration> {
        self.raw.get("timeouts")?.get(key).and_then(timeout_of)
    }

    /// A named timeout from `timeouts.actions` or `timeouts.connections`.
    pub fn named_timeout(&self, group: &str, name: &str) -> Option<Duration> {
        self.raw
            .get("timeouts")?
            .get(group)?
            .get(name)
            .and_then(timeout_of)
    }

    /// The job's secrets, for masking in logs ([`super::secrets::values`]).
    pub fn secrets(&self) -> Vec<String> {
        super::secrets::values(&self.raw)
    }
}
