//! The web UI in a real browser (headless Chromium over WebDriver): the lab page lists the
//! board and its running job, and a running job's page shows its log growing, live, without
//! a reload, then its results (issue 6's acceptance).

use std::time::Duration;

use basalt_e2e::browser::Browser;
use basalt_e2e::cluster::{wait_for, Cluster};
use basalt_e2e::tool_available;
use serde_json::Value;

const LONG: Duration = Duration::from_secs(120);

#[test]
fn a_running_jobs_log_grows_on_its_page_then_its_results_appear() {
    if !tool_available("chromedriver") {
        return;
    }
    let mut cluster = Cluster::new();
    let _master = cluster.start_master();
    cluster.register_board();
    let _slave = cluster.start_slave();
    let job = cluster.job(
        "watched",
        &[
            "for i in $(seq 1 12); do echo tick-$i; sleep 1; done",
            "lava-test-case watched-case --result pass --measurement 7 --units s",
        ],
    );
    let id = cluster.submit(&job);
    cluster.wait_state(id, "running", LONG);

    let browser = Browser::start(&cluster.dir.mkdir("chromium-profile"));
    browser.open(&format!("{}/", cluster.url()));
    let lab = browser.eval("return document.getElementById('devices').innerText");
    let lab = lab.as_str().unwrap_or_default();
    assert!(lab.contains("sim-01") && lab.contains("running"), "{lab}");
    let queue = browser.eval("return document.getElementById('queue').innerText");
    assert!(
        queue.as_str().unwrap_or_default().contains("watched"),
        "{queue}"
    );

    browser.open(&format!("{}/jobs/{id}", cluster.url()));
    // A marker the page would lose if it reloaded: growth must come from the script.
    browser.eval("window.basaltMarker = 'still-here'; return null");
    let lines = || -> (u64, String) {
        let seen = browser.eval(
            "return [document.querySelectorAll('#log .line').length, \
             document.getElementById('job').getAttribute('data-state')]",
        );
        (
            seen[0].as_u64().unwrap_or(0),
            seen[1].as_str().unwrap_or_default().to_owned(),
        )
    };
    let (first, state) = wait_for("log lines on the page", LONG, || {
        let (count, state) = lines();
        (count > 0).then_some((count, state))
    });
    assert_eq!(
        state, "running",
        "the job finished before the page could watch it"
    );
    let grown = wait_for("the log to grow on the page", LONG, || {
        let (count, _) = lines();
        (count > first).then_some(count)
    });
    assert!(grown > first);
    let ticks = browser.eval(
        "return Array.from(document.querySelectorAll('#log .msg')).filter(m => m.textContent.startsWith('tick-')).length",
    );
    assert!(ticks.as_u64().unwrap_or(0) >= 1, "ticks shown: {ticks}");

    wait_for("the results on the page", LONG, || {
        let table = browser.eval(
            "var t = document.getElementById('results-table'); return t ? t.innerText : null",
        );
        match table {
            Value::String(text) if text.contains("watched-case") => Some(()),
            _ => None,
        }
    });
    assert_eq!(
        browser.eval("return window.basaltMarker"),
        Value::from("still-here"),
        "the page reloaded instead of updating itself"
    );
    let state = browser.eval("return document.getElementById('job-health').innerText");
    assert_eq!(state, Value::from("complete"));
    // Every line once: the page shows as many lines as the master holds.
    let (shown, _) = lines();
    let held = cluster.master_log(id).lines().count() as u64;
    assert_eq!(
        shown, held,
        "the page shows {shown} lines, the master holds {held}"
    );
}

/// Pages and API answers say where scripts may come from (this master only), that they may
/// not be framed, and that their types are not to be guessed.
#[test]
fn every_answer_carries_the_security_headers() {
    let mut cluster = Cluster::new();
    let _master = cluster.start_master();
    for path in [
        "/",
        "/jobs",
        "/api/v1/workers",
        "/static/job.js",
        "/no-such-page",
    ] {
        let response = match ureq::get(&format!("{}{path}", cluster.url())).call() {
            Ok(response) | Err(ureq::Error::Status(_, response)) => response,
            Err(e) => panic!("{path}: {e}"),
        };
        let csp = response
            .header("content-security-policy")
            .unwrap_or_default();
        assert!(csp.contains("default-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(
            response.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(response.header("x-frame-options"), Some("DENY"), "{path}");
    }
}
