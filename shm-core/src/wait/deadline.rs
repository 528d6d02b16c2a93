//! [`Deadline`]: the end of a bounded wait.

use std::time::{Duration, Instant};

/// When a bounded wait ends; `Duration::MAX` (or any timeout too far to represent) means never.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadline(Option<Instant>);

impl Deadline {
    /// The instant `timeout` from now.
    pub fn after(timeout: Duration) -> Deadline {
        Deadline(Instant::now().checked_add(timeout))
    }

    /// A deadline that never passes.
    pub fn never() -> Deadline {
        Deadline(None)
    }

    /// Whether the deadline has passed.
    pub fn passed(&self) -> bool {
        self.0.is_some_and(|d| Instant::now() >= d)
    }

    /// The time left, at most `slice`; `None` once the deadline has passed. Long waits are cut
    /// into slices so that the waiter re-checks what it waits for at least that often.
    pub fn next_slice(&self, slice: Duration) -> Option<Duration> {
        match self.0 {
            None => Some(slice),
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                (!left.is_zero()).then(|| left.min(slice))
            }
        }
    }
}
