//! `shm`: see and manage live shared-state segments without writing code.
//!
//! Every segment stores its type's layout descriptor (docs/segment-format.md), so the tool
//! decodes any segment field by field with no Rust type at hand. Commands, output and JSON
//! schemas are documented in docs/cli.md.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod check;
mod cli;
mod expect;
mod export;
mod gc;
mod inspect;
mod json;
mod ls;
mod output;
mod render;
mod scan;
mod segment_file;
mod watch;

use clap::{CommandFactory, Parser};
use cli::{Cli, Command};
use output::{exit, Outcome};
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with code 0; mistakes to stderr with EX_USAGE, so
            // that the exit codes of commands (2: not found) keep one meaning.
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(f) if f.stdout_closed => ExitCode::from(exit::OK),
        Err(f) => {
            output::error_line(&f);
            ExitCode::from(f.code)
        }
    }
}

fn run(command: Command) -> Outcome {
    match command {
        Command::Ls(a) => ls::run(&a),
        Command::Inspect(a) => inspect::run(&a),
        Command::Watch(a) => watch::run(&a),
        Command::Export(a) => export::run(&a),
        Command::Rm(a) => gc::rm(&a),
        Command::Gc(a) => gc::run(&a),
        Command::Check(a) => check::run(&a),
        Command::Completions(a) => {
            // Generated into memory first: the generator panics if its writer fails.
            let mut script = Vec::new();
            clap_complete::generate(a.shell, &mut Cli::command(), "shm", &mut script);
            let mut out = std::io::stdout().lock();
            out.write_all(&script)?;
            out.flush()?;
            Ok(exit::OK)
        }
    }
}
