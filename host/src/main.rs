//! The `basalt` binary: parse flags, run, report errors with their causes.

use std::process::ExitCode;

fn main() -> ExitCode {
    use std::io::IsTerminal;
    let cli = basalt::cli::parse_args();
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
