//! Headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`), for
//! tests that must see what a user's browser sees: pages rendered, scripts run, the DOM as it
//! changes.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::cluster::wait_for;

/// Reads chromedriver's standard output up to "started successfully on port N."; the rest
/// of its output is drained by a thread so the driver never blocks on a full pipe.
fn driver_port(driver: &mut Child) -> u16 {
    use std::io::BufRead;
    let stdout = driver.stdout.take().expect("chromedriver's piped stdout");
    let mut lines = std::io::BufReader::new(stdout).lines();
    let port = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| {
            line.split_once("started successfully on port ")
                .and_then(|(_, port)| port.trim_end_matches('.').parse().ok())
        })
        .expect("chromedriver said on which port it listens");
    std::thread::spawn(move || lines.for_each(drop));
    port
}

/// A browser session; the driver and the browser go away when it is dropped.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    agent: ureq::Agent,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium whose profile lives in `profile`.
    pub fn start(profile: &Path) -> Self {
        // Port 0: the driver takes a port the kernel gives it and says which, so nothing
        // else can hold it between a choice and the bind.
        let mut driver = Command::new("chromedriver")
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let port = driver_port(&mut driver);
        let base = format!("http://127.0.0.1:{port}");
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(60))
            .build();
        wait_for("chromedriver to listen", Duration::from_secs(20), || {
            agent.get(&format!("{base}/status")).call().ok().map(|_| ())
        });
        // As root and on a closed network, Chromium needs these to start at all and to stop
        // reaching for Google's services.
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            format!("--user-data-dir={}", profile.display()),
        ];
        let capabilities = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": args },
            }}
        });
        let mut browser = Self {
            driver,
            base,
            session: String::new(),
            agent,
        };
        let created = browser.command("POST", "/session", capabilities);
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {created}"))
            .to_owned();
        browser
    }

    fn command(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let response = self
            .agent
            .request(method, &url)
            .send_json(body)
            .unwrap_or_else(|e| match e {
                ureq::Error::Status(code, r) => {
                    panic!(
                        "WebDriver {method} {path}: {code} {}",
                        r.into_string().unwrap_or_default()
                    )
                }
                e => panic!("WebDriver {method} {path}: {e}"),
            });
        let value: Value = response.into_json().expect("WebDriver answers JSON");
        value.get("value").cloned().unwrap_or(Value::Null)
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    /// Loads `url` and waits for it.
    pub fn open(&self, url: &str) {
        self.command("POST", &self.session_path("/url"), json!({ "url": url }));
    }

    /// Runs `script` (a function body; `return` gives the value) in the page.
    pub fn eval(&self, script: &str) -> Value {
        self.command(
            "POST",
            &self.session_path("/execute/sync"),
            json!({ "script": script, "args": [] }),
        )
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self
                .agent
                .delete(&format!("{}{}", self.base, self.session_path("")))
                .call();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
