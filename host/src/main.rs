//! The `basalt` binary: parse flags, run, report errors with their causes.

use std::process::ExitCode;

fn main() -> ExitCode {
    use std::io::IsTerminal;
    let cli = basalt::cli::parse_args();
    if cli.dies_quietly_on_closed_pipe() {
        // SAFETY: at start-up, before any thread exists; SIG_DFL installs no handler.
        unsafe {
            let _ = nix::sys::signal::signal(
                nix::sys::signal::Signal::SIGPIPE,
                nix::sys::signal::SigHandler::SigDfl,
            );
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BASALT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(cli.default_log_filter())),
        )
        // Colour only for a person at a terminal, not in log files and journals.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    match basalt::cli::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
