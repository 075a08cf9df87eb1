//! The `zonewatch` command line: argument parsing, wiring and exit codes.
//! Exit codes: 0 clean, 1 findings reached `--fail-on`, 2 error.

mod config;
mod flags;
mod listen;
mod monitor;
mod read;
mod run;

use std::io::{self, IsTerminal};
use std::process::ExitCode;

use clap::Parser;

use crate::flags::{Args, Command, LogFormat};

fn main() -> ExitCode {
    let args = Args::parse();
    // A monitor runs for months: its log says what it does (info); the
    // one-shot verbs only warn. ZONEWATCH_LOG overrides (e.g. `debug`).
    let default = match args.command {
        Command::Monitor(_) => "info",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ZONEWATCH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_target(false);
    match (args.log_format, &args.command) {
        (LogFormat::Json, _) => builder.json().init(),
        (LogFormat::Human, Command::Monitor(_)) => {
            builder.with_ansi(io::stderr().is_terminal()).init()
        }
        (LogFormat::Human, _) => builder
            .with_ansi(io::stderr().is_terminal())
            .without_time()
            .init(),
    }
    let result = match args.command {
        Command::Flows(a) => run::flows(a),
        Command::Analyze(a) => run::analyze(a),
        Command::Monitor(a) => monitor::run(a),
        Command::Zones(z) => run::zones(z),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprintln!("zonewatch: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
