//! The admin commands that talk to a master over its HTTP API (`basalt workers ...`,
//! `basalt devices add ...`, `basalt jobs submit ...`): one module per noun, sharing the
//! [`Client`].

pub mod device_types;
pub mod devices;
pub mod jobs;
pub mod users;
pub mod workers;

use anyhow::{bail, Context};
use clap::Args;
use serde_json::Value;

/// Which master, and the token for changes.
#[derive(Args, Debug, Clone, Default)]
pub struct MasterArgs {
    /// The master's HTTP API (default http://localhost:8000).
    #[arg(long, env = "BASALT_URL", value_name = "URL")]
    pub url: Option<String>,
    /// An API token: the admin token the master writes to DATA_DIR/admin-token, or one made
    /// with `basalt user token`.
    #[arg(
        long,
        env = "BASALT_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
}

impl MasterArgs {
    /// A client for these settings.
    pub fn client(&self) -> Client {
        Client {
            url: self
                .url
                .clone()
                .unwrap_or_else(|| "http://localhost:8000".into())
                .trim_end_matches('/')
                .to_owned(),
            token: self.token.clone(),
            agent: ureq::AgentBuilder::new()
                .timeout(std::time::Duration::from_secs(30))
                .build(),
        }
    }
}

/// A connection to a master's API.
pub struct Client {
    url: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    fn request(&self, method: &str, path: &str) -> ureq::Request {
        let request = self.agent.request(method, &format!("{}{path}", self.url));
        match &self.token {
            Some(token) => request.set("Authorization", &format!("Bearer {token}")),
            None => request,
        }
    }

    fn finish(&self, result: Result<ureq::Response, ureq::Error>) -> anyhow::Result<String> {
        match result {
            Ok(response) => response
                .into_string()
                .context("reading the master's answer"),
            Err(ureq::Error::Status(code, response)) => {
                let body = response.into_string().unwrap_or_default();
                let message = serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
                    .unwrap_or(body);
                bail!("the master refused ({code}): {message}")
            }
            Err(e) => bail!(
                "cannot reach the master at {}: {e} (is `basalt master` running? set --url or \
                 BASALT_URL)",
                self.url
            ),
        }
    }

    /// GET, returning JSON.
    pub fn get(&self, path: &str) -> anyhow::Result<Value> {
        let text = self.finish(self.request("GET", path).call())?;
        serde_json::from_str(&text).context("the master's answer is not JSON")
    }

    /// GET, returning text.
    pub fn get_text(&self, path: &str) -> anyhow::Result<String> {
        self.finish(self.request("GET", path).call())
    }

    /// POST a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send_json("POST", path, body)
    }

    /// Sends a JSON body with `method` (POST, PATCH).
    pub fn send_json(&self, method: &str, path: &str, body: &Value) -> anyhow::Result<Value> {
        let text = self.finish(
            self.request(method, path)
                .set("Content-Type", "application/json")
                .send_string(&body.to_string()),
        )?;
        serde_json::from_str(&text).context("the master's answer is not JSON")
    }

    /// DELETE, with `query` pairs (answered with no body).
    pub fn delete(&self, path: &str, query: &[(&str, &str)]) -> anyhow::Result<()> {
        let request = query
            .iter()
            .fold(self.request("DELETE", path), |request, (key, value)| {
                request.query(key, value)
            });
        self.finish(request.call()).map(drop)
    }

    /// POST or PUT a text body.
    pub fn send_text(&self, method: &str, path: &str, body: &str) -> anyhow::Result<Value> {
        let text = self.finish(
            self.request(method, path)
                .set("Content-Type", "text/plain; charset=utf-8")
                .send_string(body),
        )?;
        serde_json::from_str(&text).context("the master's answer is not JSON")
    }
}

/// Prints rows as aligned columns.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let text: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = widths[i]))
            .collect();
        println!("{}", text.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// A time field (ms since the epoch) as `2026-11-25 10:00:00 UTC`, or `-`.
pub fn time_field(value: &Value, name: &str) -> String {
    crate::store::utc_seconds(value.get(name).and_then(Value::as_i64))
        .map_or_else(|| "-".into(), |t| format!("{t} UTC"))
}

/// A JSON field as display text (`-` when absent).
/// A time field (ms since the epoch) as `2026-11-25 10:00:00` (UTC), `-` if absent.
pub fn date_field(value: &Value, name: &str) -> String {
    match value.get(name).and_then(Value::as_i64) {
        Some(ms) => crate::store::utc_seconds(Some(ms)).unwrap_or_else(|| "-".into()),
        None => field(value, name),
    }
}

/// A field as text, `-` if absent.
pub fn field(value: &Value, name: &str) -> String {
    match value.get(name) {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}
