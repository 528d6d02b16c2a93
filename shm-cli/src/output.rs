//! How the tool reports: exit codes, one-line errors, and colour on terminals only.

use std::fmt;
use std::io::{self, IsTerminal, Write};

/// Exit codes, documented in docs/cli.md.
pub mod exit {
    /// Success; for `check`, the segment is healthy.
    pub const OK: u8 = 0;
    /// The segment is damaged (a `check` failed, or it cannot be opened because its header,
    /// descriptor or state is wrong).
    pub const DAMAGED: u8 = 1;
    /// No segment has that name, or the file is not a segment of this format.
    pub const NOT_FOUND: u8 = 2;
    /// The operating system refused access.
    pub const PERMISSION: u8 = 3;
    /// Any other failure (I/O errors, timeouts, a feature not available).
    pub const OTHER: u8 = 4;
    /// The command line is wrong (unknown flag, bad name, unknown field).
    pub const USAGE: u8 = 64;
}

/// Why a command failed: the one line printed after `shm: `, and the exit code.
#[derive(Debug)]
pub struct Failure {
    /// The exit code.
    pub code: u8,
    /// The message, without the `shm: ` prefix.
    pub message: String,
    /// Set when stdout was closed by its reader: the command stops quietly with exit code 0.
    pub stdout_closed: bool,
}

impl Failure {
    /// A failure with `code` and `message`.
    pub fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
            stdout_closed: false,
        }
    }

    /// The failure for an error `shm_core` reported about segment `name`.
    pub fn core(name: &str, e: &shm_core::Error) -> Failure {
        use shm_core::Error as E;
        let (code, message) = match e {
            E::NotFound { .. } => (exit::NOT_FOUND, format!("no segment named {name:?}")),
            E::NotASegment { found } => (
                exit::NOT_FOUND,
                format!("{name:?} is not a segment of this format (magic {found:#018x})"),
            ),
            E::PermissionDenied { .. } => (
                exit::PERMISSION,
                format!("permission denied opening segment {name:?}"),
            ),
            E::InvalidName { reason, .. } => (
                exit::USAGE,
                format!("{name:?} is not a valid segment name: {reason}"),
            ),
            E::Corrupt { .. }
            | E::FormatVersion { .. }
            | E::Truncated { .. }
            | E::LayoutMismatch { .. }
            | E::NotReady => (
                exit::DAMAGED,
                format!("segment {name:?} is damaged: {e} (see `shm check {name}`)"),
            ),
            E::WriterDied => (
                exit::DAMAGED,
                format!("segment {name:?}: the writer died mid-write; no consistent value is left"),
            ),
            E::Timeout => (
                exit::OTHER,
                format!("segment {name:?}: no consistent value could be read in time (a peer keeps the slot busy)"),
            ),
            E::Io { source, .. } => (exit::OTHER, format!("{e}: {source}")),
            other => (exit::OTHER, format!("segment {name:?}: {other}")),
        };
        Failure::new(code, message)
    }

    /// The failure for an I/O error on segment `name`'s file.
    pub fn file(name: &str, e: &io::Error) -> Failure {
        match e.kind() {
            io::ErrorKind::NotFound => {
                Failure::new(exit::NOT_FOUND, format!("no segment named {name:?}"))
            }
            io::ErrorKind::PermissionDenied => Failure::new(
                exit::PERMISSION,
                format!("permission denied opening segment {name:?}"),
            ),
            _ => Failure::new(exit::OTHER, format!("segment {name:?}: {e}")),
        }
    }
}

/// Writing to stdout failed: quietly done if the reader closed the pipe, else an error.
impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Failure {
                code: exit::OK,
                message: String::new(),
                stdout_closed: true,
            }
        } else {
            Failure::new(exit::OTHER, format!("writing the output: {e}"))
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Prints `shm: <failure>` on stderr; if stderr itself is gone there is nobody to tell, and
/// the exit code still says it.
pub fn error_line(f: &Failure) {
    let _ = writeln!(io::stderr(), "shm: {f}");
}

/// A command's result: its exit code, or why it failed.
pub type Outcome = Result<u8, Failure>;

/// Whether stdout is a terminal.
pub fn stdout_is_terminal() -> bool {
    io::stdout().is_terminal()
}

/// Colours for human output: on only when stdout is a terminal and `NO_COLOR` is unset or
/// empty (<https://no-color.org>).
#[derive(Clone, Copy, Debug)]
pub struct Style {
    enabled: bool,
}

impl Style {
    /// The style for stdout.
    pub fn for_stdout() -> Style {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style {
            enabled: stdout_is_terminal() && !no_color,
        }
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.enabled {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// Green: healthy, alive.
    pub fn good(self, text: &str) -> String {
        self.paint("32", text)
    }

    /// Red: failed, dead.
    pub fn bad(self, text: &str) -> String {
        self.paint("31", text)
    }

    /// Yellow: worth a look.
    pub fn warn(self, text: &str) -> String {
        self.paint("33", text)
    }

    /// Bold: headings.
    pub fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }

    /// Dim: secondary details.
    pub fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }
}

/// Rows of cells as aligned columns, two spaces apart; the last column is not padded.
/// Widths count characters, and `visible` (the cells without colour codes) sets them.
pub fn table(rows: &[Vec<String>], visible: &[Vec<String>]) -> String {
    let columns = visible.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; columns];
    for row in visible {
        for (i, cell) in row.iter().enumerate() {
            // The last cell of a short row (a message) spans the remaining columns.
            if i + 1 < row.len() || row.len() == columns {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    for (row, plain) in rows.iter().zip(visible) {
        let mut line = String::new();
        for (i, (cell, plain_cell)) in row.iter().zip(plain).enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths[i].saturating_sub(plain_cell.chars().count()) + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A table whose cells carry no colour.
pub fn plain_table(rows: &[Vec<String>]) -> String {
    table(rows, rows)
}
