//! The command line: every command and flag, with its help text.

use clap::{Args, Parser, Subcommand, ValueEnum};

/// See and manage live shared-state segments.
///
/// Every segment stores its type's layout descriptor, so `shm` decodes any segment field by
/// field with no Rust type at hand. NAME is a segment name, with or without the leading `/`
/// (`/robot-state` or `robot-state`); segments live in /dev/shm.
///
/// Exit codes: 0 success (healthy), 1 segment damaged, 2 no such segment or not of this format,
/// 3 permission denied, 4 other failure, 64 bad command line.
#[derive(Parser, Debug)]
#[command(name = "shm", version, max_term_width = 100)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// List the segments in /dev/shm: type, layout hash, size, slots, version, writer.
    ///
    /// By default lists the segments of this format, and files that start like one but cannot
    /// be opened (damaged, still being created, unreadable), each with a reason. `--all` also
    /// lists the other files in /dev/shm.
    Ls(LsArgs),
    /// Show a segment's layout as a table and its current value, decoded field by field.
    Inspect(InspectArgs),
    /// Show a segment's value live, updating on every change.
    ///
    /// Sleeps on the segment's futex until the writer publishes (no polling). On a terminal the
    /// values are redrawn in place, with the update rate; updates faster than the screen can
    /// show are coalesced. Piped, one line (or one JSON object with `--json`) is printed per
    /// observed update, versions strictly increasing: a version the writer overwrote before it
    /// could be read is skipped (the writer is never slowed down). The first line is the
    /// current value. Stops on Ctrl-C, when the reader of the output goes away, or after
    /// `--count` lines, with exit code 0.
    Watch(WatchArgs),
    /// Print the layout a segment stores, for other languages.
    Export(ExportArgs),
    /// Remove segments by name (processes that have them mapped keep their mapping).
    Rm(RmArgs),
    /// Remove the segments left behind by dead writers.
    ///
    /// Removes a segment of this format only if its writer is dead (nobody holds the writer
    /// lease) and no process has it mapped (per /proc/*/maps). Segments with a live writer are
    /// never removed. Prints what it removed (or would remove) and why it kept the others.
    Gc(GcArgs),
    /// Validate a segment: header, geometry, descriptor, layout hash and slot sequences.
    ///
    /// Prints one line per check with ok or FAIL and details. Exit code 0 if healthy, 1 if
    /// damaged, 2 if there is no such segment or it is not of this format.
    Check(CheckArgs),
    /// Print a shell completion script: `shm completions bash > /etc/bash_completion.d/shm`.
    Completions(CompletionsArgs),
}

/// `shm ls`
#[derive(Args, Debug)]
pub struct LsArgs {
    /// Also list files in /dev/shm that are not segments of this format.
    #[arg(long, short)]
    pub all: bool,
    /// Print a JSON array instead of a table (schema in docs/cli.md).
    #[arg(long)]
    pub json: bool,
    /// List only segments whose name starts with this (e.g. `/robot-`).
    #[arg(long, value_name = "PREFIX")]
    pub prefix: Option<String>,
}

/// `shm inspect`
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The segment's name.
    pub name: String,
    /// Print one JSON object instead of tables (schema in docs/cli.md).
    #[arg(long)]
    pub json: bool,
    /// Also print the payload bytes as a hex dump.
    #[arg(long)]
    pub raw: bool,
    /// For a stream or queue: how many of its newest messages to show (for a queue, of those
    /// not taken yet).
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub last: usize,
    /// Also show this program layout (a JSON export, as `shm export` writes it) and whether a
    /// program of it may open the segment (the rule of "Compatibility").
    #[arg(long, value_name = "FILE")]
    pub expect: Option<std::path::PathBuf>,
}

/// `shm watch`
#[derive(Args, Debug)]
pub struct WatchArgs {
    /// The segment's name.
    pub name: String,
    /// Show only these fields: comma-separated paths such as `tick,pose.pos,wheels[0].rpm`.
    #[arg(long, value_delimiter = ',', value_name = "PATHS")]
    pub fields: Vec<String>,
    /// Stop after printing this many values (the first is the current value), or, for a
    /// stream or queue, this many messages.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Print one JSON object per line per update, even on a terminal (schema in docs/cli.md).
    #[arg(long)]
    pub json: bool,
    /// For a stream or queue: start with the oldest message it holds (for a queue, the oldest
    /// not taken yet) instead of the next one sent.
    #[arg(long)]
    pub from_oldest: bool,
}

/// Languages `shm export` can produce.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    /// The layout descriptor as JSON (schema `shm-state/layout`, docs/cli.md).
    Json,
    /// A C11 header: declarations, static assertions and the descriptor macros.
    C,
    /// The same header, which is valid C++17 too.
    Cpp,
    /// A Python module of ctypes structures (and numpy dtypes), checked at import.
    Python,
}

/// `shm export`
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The segment's name.
    pub name: String,
    /// The output language.
    #[arg(long, value_enum, default_value_t = Lang::Json)]
    pub lang: Lang,
}

/// `shm rm`
#[derive(Args, Debug)]
pub struct RmArgs {
    /// The segments' names.
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Also remove files that are not segments of this format, and say nothing about names
    /// that do not exist.
    #[arg(long, short)]
    pub force: bool,
}

/// `shm gc`
#[derive(Args, Debug)]
pub struct GcArgs {
    /// Only say what would be removed; remove nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Only consider segments whose name starts with this (e.g. `/robot-`).
    #[arg(long, value_name = "PREFIX")]
    pub prefix: Option<String>,
    /// Print one JSON object instead of lines (schema in docs/cli.md).
    #[arg(long)]
    pub json: bool,
}

/// `shm check`
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The segment's name.
    pub name: String,
    /// Print one JSON object instead of lines (schema in docs/cli.md).
    #[arg(long)]
    pub json: bool,
    /// Also check that a program of this layout (a JSON export, as `shm export` writes it)
    /// may open the segment, by the rule of "Compatibility" (exit 4 if not).
    #[arg(long, value_name = "FILE")]
    pub expect: Option<std::path::PathBuf>,
}

/// `shm completions`
#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}
