//! Validating a job definition, as LAVA's submission schema does.

use std::fmt;

use serde_json::{Map, Value};

use crate::data::kind;

use crate::yaml11::{self, Positions};

/// The most callbacks, and the most recipients, one job's `notify:` may list: each is an
/// HTTP request or a mail the master makes, retried for hours; real jobs list one or two.
const MAX_NOTIFY_TARGETS: usize = 32;

/// Deploy methods LAVA knows (`deploy: to:`).
pub const DEPLOY_METHODS: &[&str] = &[
    "avh",
    "docker",
    "download",
    "downloads",
    "fastboot",
    "flasher",
    "fvp",
    "iso-installer",
    "mps",
    "musca",
    "nbd",
    "nfs",
    "overlay",
    "qdl",
    "recovery",
    "sata",
    "sd",
    "usb",
    "ssh",
    "tftp",
    "tmpfs",
    "u-boot-ums",
    "usbg-ms",
    "uuu",
    "vemsd",
];

/// Boot methods LAVA knows (`boot: method:`).
pub const BOOT_METHODS: &[&str] = &[
    "avh",
    "barebox",
    "bootloader",
    "cmsis-dap",
    "depthcharge",
    "dfu",
    "docker",
    "fastboot",
    "fvp",
    "gdb",
    "grub",
    "grub-efi",
    "ipxe",
    "jlink",
    "kexec",
    "minimal",
    "monitor",
    "musca",
    "new_connection",
    "nodebooter",
    "openocd",
    "pyocd",
    "qdl",
    "qemu",
    "qemu-iso",
    "qemu-nfs",
    "recovery",
    "schroot",
    "ssh",
    "u-boot",
    "uefi",
    "uefi-menu",
    "uuu",
];

/// One thing wrong with a job, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobProblem {
    /// Dotted path in the job (`actions[2].boot.method`).
    pub path: String,
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    /// 1-based column in the file, when known.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for JobProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => {
                write!(
                    f,
                    "line {line}, column {column}: {}: {}",
                    self.path, self.message
                )
            }
            _ => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

/// Why a job definition was refused.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Not YAML at all.
    #[error("not valid YAML: {0}")]
    Yaml(#[from] yaml11::YamlError),
    /// A LAVA V1 JSON job.
    #[error(
        "this is a JSON job definition; only LAVA pipeline (V2) jobs written in YAML are \
         accepted — convert it to a pipeline job (job_name, device_type, timeouts, visibility, \
         actions)"
    )]
    LegacyJson,
    /// Larger than any job needs.
    #[error("the job definition is {0} bytes; at most {MAX_JOB_BYTES} are accepted")]
    TooLarge(usize),
    /// YAML, but not a valid job.
    #[error("{} problem(s):\n{}", .0.len(), .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<JobProblem>),
}

/// A job that passed validation: its data, and where each part of it was in the file.
#[derive(Debug, Clone)]
pub struct ParsedJob {
    /// The job as data.
    pub value: Value,
    /// Where each node started in the text.
    pub positions: Positions,
}

/// The largest job definition accepted: LAVA's largest jobs (many inline test definitions)
/// are a few hundred kilobytes.
pub const MAX_JOB_BYTES: usize = 4 << 20;

/// Reads and validates a job definition.
pub fn parse_job(text: &str) -> Result<ParsedJob, JobError> {
    if text.len() > MAX_JOB_BYTES {
        return Err(JobError::TooLarge(text.len()));
    }
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') && serde_json::from_str::<Value>(text).is_ok() {
        return Err(JobError::LegacyJson);
    }
    let (value, positions) = yaml11::from_str_with_positions(text)?;
    let problems = Checker::run(&value, &positions);
    if problems.is_empty() {
        Ok(ParsedJob { value, positions })
    } else {
        Err(JobError::Invalid(problems))
    }
}

struct Checker<'a> {
    positions: &'a Positions,
    problems: Vec<JobProblem>,
}

/// A location in the job: the pointer for positions and the dotted path for messages.
#[derive(Clone)]
struct At {
    pointer: String,
    path: String,
}

impl At {
    fn root() -> Self {
        Self {
            pointer: String::new(),
            path: String::new(),
        }
    }

    fn key(&self, key: &str) -> Self {
        Self {
            pointer: format!(
                "{}/{}",
                self.pointer,
                key.replace('~', "~0").replace('/', "~1")
            ),
            path: if self.path.is_empty() {
                key.to_owned()
            } else {
                format!("{}.{key}", self.path)
            },
        }
    }

    fn index(&self, index: usize) -> Self {
        Self {
            pointer: format!("{}/{index}", self.pointer),
            path: format!("{}[{index}]", self.path),
        }
    }
}

impl Checker<'_> {
    fn run(value: &Value, positions: &Positions) -> Vec<JobProblem> {
        let mut checker = Checker {
            positions,
            problems: Vec::new(),
        };
        checker.job(value);
        checker.problems
    }

    fn problem(&mut self, at: &At, message: impl Into<String>) {
        // A missing key has no position; point at the nearest enclosing node that has one.
        let mut pointer = at.pointer.as_str();
        let position = loop {
            if let Some(p) = self.positions.get(pointer) {
                break Some(*p);
            }
            match pointer.rfind('/') {
                Some(cut) => pointer = &pointer[..cut],
                None => break None,
            }
        };
        self.problems.push(JobProblem {
            path: if at.path.is_empty() {
                "(top)".into()
            } else {
                at.path.clone()
            },
            line: position.map(|p| p.0),
            column: position.map(|p| p.1),
            message: message.into(),
        });
    }

    fn mapping<'v>(&mut self, value: &'v Value, at: &At) -> Option<&'v Map<String, Value>> {
        match value {
            Value::Object(map) => Some(map),
            other => {
                self.problem(at, format!("must be a mapping, found {}", kind(other)));
                None
            }
        }
    }

    fn required<'v>(
        &mut self,
        map: &'v Map<String, Value>,
        at: &At,
        key: &str,
    ) -> Option<&'v Value> {
        let value = map.get(key);
        if value.is_none() {
            self.problem(&at.key(key), "is required");
        }
        value
    }

    fn string(&mut self, value: &Value, at: &At, max: usize) {
        match value {
            Value::String(s) if !s.is_empty() && s.chars().count() <= max => {}
            Value::String(_) => {
                self.problem(at, format!("must be 1 to {max} characters long"));
            }
            other => self.problem(at, format!("must be a string, found {}", kind(other))),
        }
    }

    fn timeout(&mut self, value: &Value, at: &At) {
        let Some(map) = self.mapping(value, at) else {
            return;
        };
        let units: Vec<&String> = map
            .keys()
            .filter(|k| matches!(k.as_str(), "days" | "hours" | "minutes" | "seconds"))
            .collect();
        if units.len() != 1 {
            self.problem(
                at,
                "must give exactly one of days, hours, minutes or seconds (e.g. {minutes: 5})",
            );
        }
        for (key, amount) in map {
            match key.as_str() {
                "days" | "hours" | "minutes" | "seconds" => {
                    if !amount.is_u64() {
                        self.problem(
                            &at.key(key),
                            format!("must be a whole number, found {}", kind(amount)),
                        );
                    }
                }
                "skip" => {
                    if !amount.is_boolean() {
                        self.problem(&at.key(key), "must be true or false");
                    }
                }
                other => self.problem(
                    &at.key(other),
                    "is not a timeout unit; use days, hours, minutes or seconds",
                ),
            }
        }
    }

    fn timeout_map(&mut self, value: &Value, at: &At) {
        if let Some(map) = self.mapping(value, at) {
            for (name, timeout) in map {
                self.timeout(timeout, &at.key(name));
            }
        }
    }

    fn job(&mut self, value: &Value) {
        let root = At::root();
        let Value::Object(job) = value else {
            self.problem(
                &root,
                format!("a job definition must be a mapping, found {}", kind(value)),
            );
            return;
        };
        if let Some(name) = self.required(job, &root, "job_name") {
            self.string(name, &root.key("job_name"), 200);
        }
        for key in ["device_type", "device", "worker"] {
            if let Some(value) = job.get(key) {
                self.string(value, &root.key(key), 200);
            }
        }
        if let Some(timeouts) = self.required(job, &root, "timeouts") {
            self.timeouts(timeouts, &root.key("timeouts"));
        }
        if let Some(visibility) = self.required(job, &root, "visibility") {
            self.visibility(visibility, &root.key("visibility"));
        }
        if let Some(priority) = job.get("priority") {
            let ok = match priority {
                Value::String(s) => matches!(s.as_str(), "high" | "medium" | "low"),
                Value::Number(n) => n.as_u64().is_some_and(|n| n <= 100),
                _ => false,
            };
            if !ok {
                self.problem(
                    &root.key("priority"),
                    format!(
                        "must be high, medium, low or 0 to 100, found {}",
                        kind(priority)
                    ),
                );
            }
        }
        if let Some(context) = job.get("context") {
            self.context(context, &root.key("context"));
        }
        for key in ["metadata", "secrets", "environment"] {
            if let Some(value) = job.get(key) {
                self.mapping(value, &root.key(key));
            }
        }
        if let Some(tags) = job.get("tags") {
            self.string_list(tags, &root.key("tags"));
        }
        if let Some(protocols) = job.get("protocols") {
            self.protocols(protocols, &root.key("protocols"));
        }
        if let Some(notify) = job.get("notify") {
            self.notify(notify, &root.key("notify"));
        }
        if let Some(value) = job.get("reboot_to_fastboot") {
            if !value.is_boolean() {
                self.problem(&root.key("reboot_to_fastboot"), "must be true or false");
            }
        }
        if let Some(actions) = self.required(job, &root, "actions") {
            self.actions(actions, &root.key("actions"));
        }
    }

    fn string_list(&mut self, value: &Value, at: &At) {
        match value {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if !item.is_string() {
                        self.problem(
                            &at.index(i),
                            format!("must be a string, found {}", kind(item)),
                        );
                    }
                }
            }
            other => self.problem(
                at,
                format!("must be a list of strings, found {}", kind(other)),
            ),
        }
    }

    fn timeouts(&mut self, value: &Value, at: &At) {
        let Some(map) = self.mapping(value, at) else {
            return;
        };
        if let Some(job) = self.required(map, at, "job") {
            self.timeout(job, &at.key("job"));
        }
        for key in ["action", "connection", "queue"] {
            if let Some(timeout) = map.get(key) {
                self.timeout(timeout, &at.key(key));
            }
        }
        for key in ["actions", "connections"] {
            if let Some(timeouts) = map.get(key) {
                self.timeout_map(timeouts, &at.key(key));
            }
        }
    }

    fn visibility(&mut self, value: &Value, at: &At) {
        match value {
            Value::String(s) if s == "public" || s == "personal" => {}
            Value::Object(map) if map.len() == 1 && map.contains_key("group") => {
                self.string_list(&map["group"], &at.key("group"));
            }
            other => self.problem(
                at,
                format!(
                    "must be public, personal or {{group: [names]}}, found {}",
                    kind(other)
                ),
            ),
        }
    }

    fn context(&mut self, value: &Value, at: &At) {
        let Some(map) = self.mapping(value, at) else {
            return;
        };
        for (key, item) in map {
            let ok = match item {
                Value::String(_) | Value::Number(_) | Value::Bool(_) => true,
                Value::Array(items) => items.iter().all(|v| v.is_string() || v.is_number()),
                _ => false,
            };
            if !ok {
                self.problem(
                    &at.key(key),
                    format!(
                        "context values must be strings, numbers or lists of them, found {}",
                        kind(item)
                    ),
                );
            }
        }
    }

    fn protocols(&mut self, value: &Value, at: &At) {
        let Some(map) = self.mapping(value, at) else {
            return;
        };
        if let Some(multinode) = map.get("lava-multinode") {
            let at = at.key("lava-multinode");
            let Some(multinode) = self.mapping(multinode, &at) else {
                return;
            };
            if let Some(roles) = self.required(multinode, &at, "roles") {
                let roles_at = at.key("roles");
                if let Some(roles) = self.mapping(roles, &roles_at) {
                    for (name, role) in roles {
                        let role_at = roles_at.key(name);
                        let Value::Object(role) = role else {
                            self.problem(
                                &role_at,
                                format!(
                                    "a role must be a mapping with device_type (or connection) and \
                                     count, found {}; is this an already split sub-job?",
                                    kind(role)
                                ),
                            );
                            continue;
                        };
                        match role.get("count") {
                            Some(count) if count.is_u64() => {}
                            Some(other) => self.problem(
                                &role_at.key("count"),
                                format!("must be a whole number, found {}", kind(other)),
                            ),
                            None => self.problem(&role_at.key("count"), "is required"),
                        }
                        if !role.contains_key("device_type") && !role.contains_key("connection") {
                            self.problem(
                                &role_at,
                                "needs device_type (or connection for a secondary connection)",
                            );
                        }
                    }
                }
            }
            if let Some(timeout) = multinode.get("timeout") {
                self.timeout(timeout, &at.key("timeout"));
            }
        }
        for key in ["lava-xnbd", "lava-vland", "lava-lxc"] {
            if let Some(value) = map.get(key) {
                self.mapping(value, &at.key(key));
            }
        }
    }

    fn notify(&mut self, value: &Value, at: &At) {
        let Some(map) = self.mapping(value, at) else {
            return;
        };
        if let Some(criteria) = self.required(map, at, "criteria") {
            let criteria_at = at.key("criteria");
            if let Some(criteria) = self.mapping(criteria, &criteria_at) {
                match criteria.get("status").and_then(Value::as_str) {
                    Some(
                        "all" | "finished" | "running" | "complete" | "canceled" | "incomplete",
                    ) => {}
                    _ => self.problem(
                        &criteria_at.key("status"),
                        "must be all, finished, running, complete, canceled or incomplete",
                    ),
                }
            }
        }
        if let Some(verbosity) = map.get("verbosity") {
            if !matches!(
                verbosity.as_str(),
                Some("verbose" | "quiet" | "status-only")
            ) {
                self.problem(
                    &at.key("verbosity"),
                    "must be verbose, quiet or status-only",
                );
            }
        }
        if let Some(recipients) = map.get("recipients") {
            match recipients {
                Value::Array(list) => {
                    if list.len() > MAX_NOTIFY_TARGETS {
                        self.problem(
                            &at.key("recipients"),
                            format!(
                                "lists {} recipients; at most {MAX_NOTIFY_TARGETS}",
                                list.len()
                            ),
                        );
                    }
                    for (i, recipient) in list.iter().enumerate() {
                        self.notify_recipient(recipient, &at.key("recipients").index(i));
                    }
                }
                _ => self.problem(&at.key("recipients"), "must be a list"),
            }
        }
        if map.contains_key("callback") && map.contains_key("callbacks") {
            self.problem(at, "give callback or callbacks, not both");
        }
        if let Some(callback) = map.get("callback") {
            self.notify_callback(callback, &at.key("callback"));
        }
        if let Some(callbacks) = map.get("callbacks") {
            match callbacks {
                Value::Array(list) => {
                    if list.len() > MAX_NOTIFY_TARGETS {
                        self.problem(
                            &at.key("callbacks"),
                            format!(
                                "lists {} callbacks; at most {MAX_NOTIFY_TARGETS}",
                                list.len()
                            ),
                        );
                    }
                    for (i, callback) in list.iter().enumerate() {
                        self.notify_callback(callback, &at.key("callbacks").index(i));
                    }
                }
                _ => self.problem(&at.key("callbacks"), "must be a list of callbacks"),
            }
        }
    }

    /// A callback as LAVA's schema has it: `url` required, the rest from fixed choices.
    fn notify_callback(&mut self, value: &Value, at: &At) {
        let Some(callback) = self.mapping(value, at) else {
            return;
        };
        if let Some(url) = self.required(callback, at, "url") {
            match url.as_str() {
                Some(url) if url.starts_with("http://") || url.starts_with("https://") => {}
                _ => self.problem(&at.key("url"), "must be an http:// or https:// URL"),
            }
        }
        let choices: [(&str, &[&str]); 3] = [
            ("method", &["GET", "POST"]),
            ("dataset", &["minimal", "logs", "results", "all"]),
            ("content-type", &["json", "urlencoded"]),
        ];
        for (key, allowed) in choices {
            if let Some(value) = callback.get(key) {
                if !value.as_str().is_some_and(|v| allowed.contains(&v)) {
                    self.problem(
                        &at.key(key),
                        format!("must be one of {}", allowed.join(", ")),
                    );
                }
            }
        }
        for key in ["token", "header"] {
            if let Some(value) = callback.get(key) {
                if !value.is_string() {
                    self.problem(&at.key(key), "must be a string");
                }
            }
        }
    }

    /// A recipient: `to:` with `method: email` and an `email` or `user`, or `method: irc`
    /// and a `handle` or `user` (LAVA's messages).
    fn notify_recipient(&mut self, value: &Value, at: &At) {
        let Some(recipient) = self.mapping(value, at) else {
            return;
        };
        let Some(to) = self.required(recipient, at, "to") else {
            return;
        };
        let at = at.key("to");
        let Some(to) = self.mapping(to, &at) else {
            return;
        };
        match to.get("method").and_then(Value::as_str) {
            Some("email") => {
                if !to.contains_key("email") && !to.contains_key("user") {
                    self.problem(&at, "No valid user or email address specified.");
                }
            }
            // Accepted, as LAVA accepts it (the job runs unchanged); the master records the
            // notification as not sent, saying IRC is not built.
            Some("irc") => {
                if !to.contains_key("handle") && !to.contains_key("user") {
                    self.problem(&at, "No valid user or IRC handle specified.");
                }
            }
            _ => self.problem(&at.key("method"), "must be email or irc"),
        }
    }

    fn actions(&mut self, value: &Value, at: &At) {
        let Value::Array(actions) = value else {
            self.problem(
                at,
                format!("must be a list of actions, found {}", kind(value)),
            );
            return;
        };
        if actions.is_empty() {
            self.problem(at, "lists no actions");
        }
        let mut namespaced = 0;
        for (i, action) in actions.iter().enumerate() {
            let at = at.index(i);
            let Value::Object(item) = action else {
                self.problem(
                    &at,
                    format!(
                        "an action must be a mapping like {{deploy: ...}}, found {}",
                        kind(action)
                    ),
                );
                continue;
            };
            if item.len() != 1 {
                self.problem(
                    &at,
                    format!(
                        "an action has exactly one of deploy, boot, test or command, found {}",
                        item.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                );
                continue;
            }
            let Some((kind_name, body)) = item.iter().next() else {
                continue;
            };
            let at = at.key(kind_name);
            let Some(body) = self.mapping(body, &at) else {
                continue;
            };
            if body.contains_key("namespace") {
                namespaced += 1;
            }
            match kind_name.as_str() {
                "deploy" => {
                    self.method(body, &at, "to", DEPLOY_METHODS, "deploy");
                    self.artifacts(body, &at);
                }
                "boot" => self.method(body, &at, "method", BOOT_METHODS, "boot"),
                "test" => {
                    if !["definitions", "interactive", "monitors", "services"]
                        .iter()
                        .any(|k| body.contains_key(*k))
                    {
                        self.problem(
                            &at,
                            "a test action needs definitions, interactive, monitors or services",
                        );
                    }
                    if let Some(definitions) = body.get("definitions") {
                        self.definitions(definitions, &at.key("definitions"));
                    }
                }
                "command" => {
                    if let Some(name) = self.required(body, &at, "name") {
                        self.string(name, &at.key("name"), 200);
                    }
                }
                other => self.problem(
                    &at,
                    format!("unknown action '{other}'; use deploy, boot, test or command"),
                ),
            }
            if let Some(timeout) = body.get("timeout") {
                self.timeout(timeout, &at.key("timeout"));
            }
            if body.contains_key("failure_retry") && body.contains_key("repeat") {
                self.problem(
                    &at,
                    "Unable to use repeat and failure_retry, use a repeat block",
                );
            }
            for key in ["failure_retry", "repeat"] {
                if let Some(count) = body.get(key) {
                    if count.as_u64().is_none_or(|n| n < 1) {
                        self.problem(&at.key(key), "must be a whole number of at least 1");
                    }
                }
            }
        }
        if namespaced != 0 && namespaced != actions.len() {
            self.problem(
                at,
                "some actions have a namespace and some do not; when one action has a \
                 namespace, every action needs one",
            );
        }
    }

    fn method(
        &mut self,
        body: &Map<String, Value>,
        at: &At,
        key: &str,
        known: &[&str],
        what: &str,
    ) {
        let Some(value) = self.required(body, at, key) else {
            return;
        };
        match value.as_str() {
            Some(name) if known.contains(&name) => {}
            Some(name) => self.problem(
                &at.key(key),
                format!(
                    "unknown {what} method '{name}' (known: {})",
                    known.join(", ")
                ),
            ),
            None => self.problem(
                &at.key(key),
                format!("must be a string, found {}", kind(value)),
            ),
        }
    }

    fn definitions(&mut self, value: &Value, at: &At) {
        let Value::Array(definitions) = value else {
            self.problem(
                at,
                format!("must be a list of test definitions, found {}", kind(value)),
            );
            return;
        };
        for (i, definition) in definitions.iter().enumerate() {
            let at = at.index(i);
            let Some(definition) = self.mapping(definition, &at) else {
                continue;
            };
            match definition.get("from").and_then(Value::as_str) {
                Some("git" | "url" | "inline") => {}
                Some(other) => self.problem(
                    &at.key("from"),
                    format!("unknown source '{other}'; use git, url or inline"),
                ),
                None => self.problem(&at.key("from"), "is required (git, url or inline)"),
            }
            if let Some(name) = self.required(definition, &at, "name") {
                let ok = name.as_str().is_some_and(|n| {
                    !n.is_empty()
                        && n.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                });
                if !ok {
                    self.problem(
                        &at.key("name"),
                        "must be letters, digits, '-', '_' or '.' only (it names a directory)",
                    );
                }
            }
            if let Some(path) = self.required(definition, &at, "path") {
                if let Some(Err(e)) = path
                    .as_str()
                    .map(|p| super::confine::relative_path(p, "the repository"))
                {
                    self.problem(&at.key("path"), e.to_string());
                }
            }
            self.required(definition, &at, "repository");
            for key in ["repository", "branch", "revision"] {
                if let Some(text) = definition.get(key).and_then(Value::as_str) {
                    if text.starts_with('-') {
                        self.problem(
                            &at.key(key),
                            "may not start with '-' (git takes it as an option)",
                        );
                    }
                }
            }
        }
    }

    /// A deploy's artifacts: their keys and the file names at the end of their URLs name
    /// files in the job's directory, and checksums are text.
    fn artifacts(&mut self, body: &Map<String, Value>, at: &At) {
        for (key, artifact) in crate::pipeline::deploy_artifacts(body) {
            let at = match body.get("images") {
                Some(images) if images.get(&key).is_some_and(|a| a == &artifact) => {
                    at.key("images").key(&key)
                }
                _ => at.key(&key),
            };
            if let Err(e) = super::confine::file_name(&key) {
                self.problem(&at, format!("cannot be an artifact key: {e}"));
            }
            if let Some(Some(Err(e))) = artifact
                .get("url")
                .and_then(Value::as_str)
                .map(super::confine::url_file_name)
            {
                self.problem(&at.key("url"), e.to_string());
            }
            for sum in ["md5sum", "sha256sum", "sha512sum"] {
                match artifact.get(sum) {
                    None | Some(Value::String(_)) | Some(Value::Null) => {}
                    Some(other) => self.problem(
                        &at.key(sum),
                        format!(
                            "must be a string, found {}: quote it, or YAML reads the digits as a number",
                            kind(other)
                        ),
                    ),
                }
            }
        }
    }
}
