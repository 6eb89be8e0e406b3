//! Rendering in a child process whose memory is bounded, for the master.
//!
//! The fuel bounds a rendering's steps and [`super::engine`]'s buffer its output, but not
//! the memory its expressions build: `{% set s = s ~ s %}` in a short loop doubles a string
//! forty times without printing a byte. No in-process bound can stop that (an allocator may
//! not fail an allocation without aborting the process), so the master renders in a child —
//! its own program, `basalt internal-render` — with an address-space limit: a template that
//! grows without bound ends that child, and the master reports it as the template's error.
//! A child that cannot be started (no processes or descriptors left) falls back to rendering
//! in-process, with a warning: a lab under resource pressure keeps starting jobs.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{SearchPath, TemplateEngine, TemplateError};

/// The child's address-space limit: LAVA's templates render in a few MiB; the binary's own
/// mappings take a few hundred.
pub const MEMORY_LIMIT: u64 = 1024 * 1024 * 1024;

/// How long a rendering may take (the fuel ends runaway loops long before).
const TIME_LIMIT: Duration = Duration::from_secs(60);

/// The most the child may answer (the output bound, JSON-escaped, and some).
const MAX_ANSWER: u64 = 64 * 1024 * 1024;

/// Where the renderer program is.
#[derive(Debug, Clone)]
pub struct Isolation {
    /// The `basalt` binary (the master's own).
    pub program: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct Request {
    dirs: Vec<PathBuf>,
    name: String,
    source: String,
    context: serde_json::Value,
    fuel: u64,
}

#[derive(Serialize, Deserialize)]
enum Answer {
    Text(String),
    Error(String),
}

/// Renders `source` in a child of `isolation.program`; `None` when no child could be run
/// (render in-process instead).
pub(super) fn render(
    isolation: &Isolation,
    search: &SearchPath,
    name: &str,
    source: &str,
    context: &serde_json::Value,
    fuel: u64,
) -> Option<Result<String, TemplateError>> {
    let request = Request {
        dirs: search.dirs().to_vec(),
        name: name.to_owned(),
        source: source.to_owned(),
        context: context.clone(),
        fuel,
    };
    let failed = |message: String| {
        Some(Err(TemplateError::Render {
            template: Some(name.to_owned()),
            line: None,
            message,
        }))
    };
    let Ok(body) = serde_json::to_vec(&request) else {
        return failed("the rendering request cannot be written".into());
    };
    let mut child = match Command::new(&isolation.program)
        .arg("internal-render")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            tracing::warn!(
                "cannot start the template renderer {} ({e}); rendering {name} in-process",
                isolation.program.display()
            );
            return None;
        }
    };
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        let _ = child.kill();
        let _ = child.wait();
        return None;
    };
    // Both pipes on threads of their own, so the deadline holds whatever the child does.
    let writer = std::thread::spawn(move || stdin.write_all(&body));
    let reader = std::thread::spawn(move || {
        let mut answer = Vec::new();
        stdout
            .take(MAX_ANSWER)
            .read_to_end(&mut answer)
            .map(|_| answer)
    });
    let status = wait_with_deadline(&mut child, TIME_LIMIT);
    let _ = writer.join();
    let answer = reader.join().ok().and_then(Result::ok);
    if let Some(Ok(answer)) = answer.map(|a| serde_json::from_slice::<Answer>(&a)) {
        return Some(match answer {
            Answer::Text(text) => Ok(text),
            Answer::Error(message) => Err(TemplateError::Isolated(message)),
        });
    }
    failed(match status {
        Some(status) if status.success() => "the template renderer gave no answer".into(),
        Some(_) | None => format!(
            "rendering stopped: it needed more than the {} MiB a rendering may use (or more \
             than {} s) — a template that builds ever larger values",
            MEMORY_LIMIT >> 20,
            TIME_LIMIT.as_secs()
        ),
    })
}

fn wait_with_deadline(
    child: &mut std::process::Child,
    limit: Duration,
) -> Option<std::process::ExitStatus> {
    let started = std::time::Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if started.elapsed() < limit => {
                std::thread::sleep(Duration::from_millis(5));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// `basalt internal-render`: the child's side. Reads one request from standard input, limits
/// its own address space, renders in-process, and writes the answer to standard output.
pub fn serve() -> std::process::ExitCode {
    let mut input = Vec::new();
    if std::io::stdin()
        .take(MAX_ANSWER)
        .read_to_end(&mut input)
        .is_err()
    {
        return std::process::ExitCode::FAILURE;
    }
    let Ok(request) = serde_json::from_slice::<Request>(&input) else {
        return std::process::ExitCode::FAILURE;
    };
    drop(input);
    use nix::sys::resource::{setrlimit, Resource};
    if setrlimit(Resource::RLIMIT_AS, MEMORY_LIMIT, MEMORY_LIMIT).is_err() {
        return std::process::ExitCode::FAILURE;
    }
    let engine = TemplateEngine::new(SearchPath::new(request.dirs)).with_fuel(request.fuel);
    let answer = match engine.render_source_text(&request.name, &request.source, &request.context) {
        Ok(text) => Answer::Text(text),
        Err(e) => Answer::Error(e.to_string()),
    };
    let mut out = std::io::stdout().lock();
    let written = serde_json::to_writer(&mut out, &answer).is_ok() && out.flush().is_ok();
    match written {
        true => std::process::ExitCode::SUCCESS,
        false => std::process::ExitCode::FAILURE,
    }
}

/// The master's own program, for [`Isolation`].
pub fn this_program() -> Option<Isolation> {
    std::env::current_exe()
        .ok()
        .filter(|p| Path::new(p).is_file())
        .map(|program| Isolation { program })
}
