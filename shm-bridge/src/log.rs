//! The bridge's log: one line per event on standard error, prefixed with the host id.

use std::fmt::Arguments;
use std::io::Write;

/// Writes log lines for the bridge `id`.
#[derive(Debug, Clone)]
pub struct Log {
    id: String,
    quiet: bool,
}

impl Log {
    /// A log for the bridge `id`; a `quiet` one writes errors only.
    pub fn new(id: &str, quiet: bool) -> Log {
        Log {
            id: id.to_owned(),
            quiet,
        }
    }

    /// Logs what the bridge does.
    pub fn info(&self, what: Arguments<'_>) {
        if !self.quiet {
            self.line("", what);
        }
    }

    /// Logs an error: something refused or failed; the bridge goes on.
    pub fn error(&self, what: Arguments<'_>) {
        self.line("error: ", what);
    }

    fn line(&self, level: &str, what: Arguments<'_>) {
        let _ = writeln!(
            std::io::stderr().lock(),
            "shm-bridge {}: {level}{what}",
            self.id
        );
    }
}
