//! E-mail notifications: LAVA's subject and plain-text body (its `testjob_notification.txt`
//! layout for each verbosity, without the query comparison), handed to the lab's SMTP relay
//! in one SMTP session (EHLO, MAIL, RCPT, DATA). Relays on the lab network take mail from the
//! master without authentication; TLS and credentials are left to the relay (a local MTA).

use crate::store::display_name as display;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::store::{Job, TestResult};

/// LAVA's subject: `LAVA notification for Test Job 12 <description, 200 characters>`.
pub fn subject(job: &Job) -> String {
    let description: String = job.name.chars().take(200).collect();
    format!("LAVA notification for Test Job {} {description}", job.id)
}

fn when(ms: Option<i64>) -> String {
    crate::store::utc_seconds(ms)
        .map(|t| format!("{t} (+0000 UTC)"))
        .unwrap_or_default()
}

/// LAVA's body for `verbosity` (`verbose`, `quiet`, `status-only`).
pub fn body(job: &Job, results: &[TestResult], verbosity: &str, url_prefix: &str) -> String {
    let mut text = format!(
        "Hello,\n\nThe job with ID # {id} is now in state {state} and health {health}. Job was \
         submitted by {submitter}.\n\nJob details and log file: {url_prefix}/scheduler/job/{id}\n",
        id = job.id,
        state = display(job.state.as_str()),
        health = display(job.health.as_str()),
        submitter = job.submitter,
    );
    let finished = job.state == crate::store::JobState::Finished;
    if finished && verbosity != "status-only" {
        if job.health == crate::store::JobHealth::Incomplete {
            if let (Some(kind), Some(message)) = (&job.error_type, &job.error_msg) {
                text.push_str(&format!("\n{kind} error: {message}\n"));
            }
        }
        if let Some(device) = &job.actual_device {
            text.push_str(&format!(
                "\nDevice details:\nHostname: {device}\nType: {}\nWorker: {}\n",
                job.device_type,
                job.worker.as_deref().unwrap_or("")
            ));
        }
        let priority = match job.priority {
            0..=49 => "Low",
            50..=99 => "Medium",
            _ => "High",
        };
        let duration = match (job.start_time, job.end_time) {
            (Some(start), Some(end)) if end >= start => {
                let secs = (end - start) / 1000;
                format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
            }
            _ => "None".into(),
        };
        text.push_str(&format!(
            "\nJob details:\nPriority: {priority}\nDescription: {}\nSubmitted: {}\nStarted: {}\n\
             Finished: {}\nDuration: {duration}\n",
            job.name,
            when(Some(job.submit_time)),
            when(job.start_time),
            when(job.end_time),
        ));
        if verbosity == "verbose" {
            text.push_str("\nResults:\n");
            let mut suite = "";
            for r in results {
                if r.suite != suite {
                    suite = &r.suite;
                    text.push_str(&format!(
                        "\nTest Suite {suite}: {url_prefix}/results/{}/{suite}\n",
                        job.id
                    ));
                }
                let outcome = match r.result.as_str() {
                    "pass" => "Test passed",
                    "fail" => "Test failed",
                    "skip" => "Test skipped",
                    _ => "Unknown outcome",
                };
                text.push_str(&format!("Test Case {}: {outcome}\n", r.name));
                if let Some(m) = &r.measurement {
                    text.push_str(&format!(
                        "Measurement: {m} {}\n",
                        r.units.as_deref().unwrap_or("")
                    ));
                }
            }
        }
    }
    text.push_str("\n--\nLAVA\nLinaro Automated Validation Architecture\n");
    text
}

/// Why a mail was not taken.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// No answer, or the connection broke: worth another try.
    #[error("SMTP server {server}: {source}")]
    Io {
        /// The relay.
        server: String,
        /// What happened.
        source: std::io::Error,
    },
    /// The relay refused (its reply code and text).
    #[error("SMTP server {server} refused {step}: {reply}")]
    Refused {
        /// The relay.
        server: String,
        /// The command refused.
        step: &'static str,
        /// Its reply.
        reply: String,
        /// The reply code (4xx: try again; 5xx: will not change).
        code: u16,
    },
    /// An address that cannot go into an SMTP command.
    #[error("{0:?} is not an e-mail address that can be sent to")]
    Address(String),
}

fn reply(reader: &mut impl BufRead) -> std::io::Result<(u16, String)> {
    let mut text = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the connection closed mid-reply",
            ));
        }
        text.push_str(line.trim_end());
        let code = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
        // "250-" continues a multi-line reply, "250 " ends it.
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok((code, text));
        }
        text.push(' ');
    }
}

/// Whether `address` can go into an SMTP command and a header as it is: an `@`, and no
/// spaces, control characters, `<`, `>` or `,`.
pub fn plain_address(address: &str) -> bool {
    address.contains('@')
        && !address
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ','))
}

/// Sends one mail through `server` (`host:port`).
pub fn send(
    server: &str,
    from: &str,
    to: &str,
    subject: &str,
    body: &str,
    timeout: Duration,
) -> Result<(), MailError> {
    for address in [from, to] {
        if !plain_address(address) {
            return Err(MailError::Address(address.to_owned()));
        }
    }
    let io = |source| MailError::Io {
        server: server.to_owned(),
        source,
    };
    let stream = connect(server, timeout).map_err(io)?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let mut writer = stream.try_clone().map_err(io)?;
    let mut reader = BufReader::new(stream);
    let mut step = |command: Option<String>, name: &'static str, expect: u16| {
        if let Some(command) = command {
            writer.write_all(command.as_bytes()).map_err(io)?;
        }
        let (code, text) = reply(&mut reader).map_err(io)?;
        if code / 100 != expect / 100 {
            return Err(MailError::Refused {
                server: server.to_owned(),
                step: name,
                reply: text,
                code,
            });
        }
        Ok(())
    };
    step(None, "the connection", 220)?;
    step(Some("EHLO basalt\r\n".into()), "EHLO", 250)?;
    step(Some(format!("MAIL FROM:<{from}>\r\n")), "MAIL FROM", 250)?;
    step(Some(format!("RCPT TO:<{to}>\r\n")), "RCPT TO", 250)?;
    step(Some("DATA\r\n".into()), "DATA", 354)?;
    let subject: String = subject.chars().filter(|c| !c.is_control()).collect();
    let mut message = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    );
    // Every line break, whatever job text brought it (`\r`, `\r\n`, `\n`), becomes CRLF and
    // NULs go: a bare CR in a job's name must not end a line for the relay (SMTP smuggling).
    let body = body.replace("\r\n", "\n").replace(['\r', '\0'], "\n");
    for line in body.split('\n') {
        // Dot-stuffing: a line starting with "." would otherwise end the data early.
        if line.starts_with('.') {
            message.push('.');
        }
        message.push_str(line);
        message.push_str("\r\n");
    }
    message.push_str(".\r\n");
    step(Some(message), "the message", 250)?;
    let _ = step(Some("QUIT\r\n".into()), "QUIT", 221);
    Ok(())
}

fn connect(server: &str, timeout: Duration) -> std::io::Result<TcpStream> {
    use std::net::ToSocketAddrs;
    let mut last = None;
    for address in server.to_socket_addrs()? {
        match TcpStream::connect_timeout(&address, timeout) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other(format!("{server} has no address"))))
}
