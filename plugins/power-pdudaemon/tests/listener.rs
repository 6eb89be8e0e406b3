//! The pdudaemon driver against a real HTTP listener on 127.0.0.1 that answers like
//! pdudaemon (and like a pdudaemon having a bad day).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use basalt_plugin_api::{ErrorKind, Log, MemoryLog, PowerDriver};
use basalt_power_pdudaemon::new_pdudaemon;

/// A stand-in pdudaemon: answers each request with the next status in `statuses` (the last
/// one repeats) and records the request target.
struct FakePdudaemon {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl FakePdudaemon {
    fn start(statuses: &[u16]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let statuses = statuses.to_vec();
        thread::spawn(move || {
            for (i, stream) in listener.incoming().enumerate() {
                let Ok(mut stream) = stream else { break };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap();
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap() == 0 || header == "\r\n" {
                        break;
                    }
                }
                let target = request_line.split(' ').nth(1).unwrap_or("").to_owned();
                seen.lock().unwrap().push(target);
                let status = *statuses.get(i).or(statuses.last()).unwrap();
                let body = if status == 200 {
                    "OK - accepted request"
                } else {
                    "busy"
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Self { url, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn driver(url: &str, extra: &str) -> (basalt_power_pdudaemon::Pdudaemon, Arc<MemoryLog>) {
    let memory = Arc::new(MemoryLog::default());
    let config = format!(
        r#"{{"url": "{url}", "hostname": "pdu-rack1", "port": 4, "retry_delay": 0.01 {extra}}}"#
    );
    (
        new_pdudaemon(&config, Log::new(memory.clone())).unwrap(),
        memory,
    )
}

#[test]
fn on_off_and_reboot_send_pdudaemons_requests() {
    let pdu = FakePdudaemon::start(&[200]);
    let (driver, _) = driver(&pdu.url, r#", "delay": 5"#);
    let timeout = Duration::from_secs(5);
    driver.on(timeout).unwrap();
    driver.off(timeout).unwrap();
    driver.reboot(timeout).unwrap();
    assert_eq!(
        pdu.requests(),
        vec![
            "/power/control/on?hostname=pdu-rack1&port=4",
            "/power/control/off?hostname=pdu-rack1&port=4",
            "/power/control/reboot?hostname=pdu-rack1&port=4&delay=5",
        ]
    );
    assert_eq!(
        driver.state(timeout).unwrap(),
        basalt_plugin_api::PowerState::Unknown
    );
}

#[test]
fn server_errors_are_retried_until_success() {
    let pdu = FakePdudaemon::start(&[503, 500, 200]);
    let (driver, log) = driver(&pdu.url, r#", "retries": 3"#);
    driver.on(Duration::from_secs(5)).unwrap();
    assert_eq!(pdu.requests().len(), 3);
    assert!(log.text().contains("attempt 1 of 4 failed: HTTP 503"));
}

#[test]
fn giving_up_after_the_configured_retries_is_an_infrastructure_error() {
    let pdu = FakePdudaemon::start(&[503]);
    let (driver, _) = driver(&pdu.url, r#", "retries": 2"#);
    let error = driver.on(Duration::from_secs(5)).unwrap_err();
    assert_eq!(error.kind, ErrorKind::INFRASTRUCTURE);
    assert!(
        error.message().contains("failed after 3 attempts"),
        "{error}"
    );
    assert_eq!(pdu.requests().len(), 3);
}

#[test]
fn client_errors_are_not_retried() {
    let pdu = FakePdudaemon::start(&[400]);
    let (driver, _) = driver(&pdu.url, "");
    let error = driver.off(Duration::from_secs(5)).unwrap_err();
    assert_eq!(error.kind, ErrorKind::INVALID_CONFIG);
    assert!(error.message().contains("HTTP 400"), "{error}");
    assert_eq!(pdu.requests().len(), 1);
}

#[test]
fn a_dead_pdudaemon_is_reported_with_its_address() {
    // Bind then drop: nothing listens on this port any more.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (driver, _) = driver(&format!("http://127.0.0.1:{port}"), r#", "retries": 1"#);
    let error = driver.reboot(Duration::from_secs(5)).unwrap_err();
    assert_eq!(error.kind, ErrorKind::INFRASTRUCTURE);
    assert!(
        error.message().contains(&format!("127.0.0.1:{port}")),
        "{error}"
    );
}

#[test]
fn bad_configuration_says_which_field() {
    let error = new_pdudaemon(r#"{"hostname": "x"}"#, Log::discard())
        .err()
        .unwrap();
    assert_eq!(error.kind, ErrorKind::INVALID_CONFIG);
    assert!(error.message().contains("port"), "{error}");
    let error = new_pdudaemon(r#"{"hostname": "x", "port": 1, "prot": 2}"#, Log::discard())
        .err()
        .unwrap();
    assert!(error.message().contains("prot"), "{error}");
}
