//! [`Turn`]: one exclusive turn of a writer among several that take turns
//! ([`Options::shared_writers`](crate::Options::shared_writers)).

use crate::error::Result;
use crate::writer::Writer;
use crate::SharedState;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use std::time::Duration;

/// A writer's turn: exclusive write access to a segment whose writers take turns, for the
/// guard's life. Dereferences to the current value (the latest any writer published), which
/// the turn may change; dropping the guard (or [`publish`](Self::publish)) publishes it, and
/// [`discard`](Self::discard) ends the turn without publishing.
///
/// Readers never see the turn: the value is published with the same seqlock protocol a single
/// writer uses, whole, once the turn ends. A turn that ends in a panic publishes nothing. If
/// the process dies during its turn (even in the middle of publishing), the kernel releases
/// the turn lock, and the next writer's turn repairs what it left, as a takeover does (a new
/// epoch), before it starts (see [`recovered`](Self::recovered)).
///
/// A turn stays on the thread that started it (it is not `Send`: the lock belongs to the
/// thread). Leaking a turn (`mem::forget`) keeps the lock held until that thread exits; the
/// writer's next `turn` then panics, and the writer, when dropped, keeps the segment mapped for
/// the rest of the process.
#[must_use = "a turn publishes when it is dropped: bind it, change the value, then drop it"]
pub struct Turn<'a, T: SharedState> {
    writer: &'a mut Writer<T>,
    recovered: bool,
    /// The lock belongs to this thread.
    _not_send: PhantomData<*const ()>,
}

impl<T: SharedState> Writer<T> {
    /// Takes a turn, waiting at most `timeout` for the writer whose turn it is to finish:
    /// fails with [`Error::Timeout`](crate::Error::Timeout) if it does not. The turn holds the
    /// latest value any writer published; change it through the guard, and drop the guard to
    /// publish it.
    ///
    /// ```no_run
    /// use shm_core::{Options, SharedState};
    /// use std::time::Duration;
    /// # #[derive(SharedState, Clone, Copy)] #[repr(C)] struct Clock { tick: u64 }
    /// let mut w = Options::new()
    ///     .shared_writers(true)
    ///     .open_writer::<Clock>("/clock")?;
    /// let mut t = w.turn(Duration::from_millis(100))?;
    /// t.tick += 1;
    /// drop(t);
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    ///
    /// Fails with [`Error::Corrupt`](crate::Error::Corrupt) if the published slot was damaged
    /// by another process, or [`Error::Truncated`](crate::Error::Truncated) once another
    /// process shrank the segment.
    ///
    /// # Panics
    /// If this writer does not take turns (made without
    /// [`Options::shared_writers`](crate::Options::shared_writers)); if a previous turn of it
    /// was leaked; in a process made by `fork` after this writer was made.
    pub fn turn(&mut self, timeout: Duration) -> Result<Turn<'_, T>> {
        self.turn_within(Some(timeout))
    }

    /// [`turn`](Self::turn), waiting without limit if `timeout` is `None`.
    pub(crate) fn turn_within(&mut self, timeout: Option<Duration>) -> Result<Turn<'_, T>> {
        let recovered = self.begin_turn(timeout)?;
        Ok(Turn {
            writer: self,
            recovered,
            _not_send: PhantomData,
        })
    }
}

impl<T: SharedState> Turn<'_, T> {
    /// Publishes the value and ends the turn (what dropping the guard does).
    pub fn publish(self) {
        drop(self);
    }

    /// Ends the turn without publishing: readers and the next turn keep the value published
    /// before it.
    pub fn discard(self) {
        let mut this = core::mem::ManuallyDrop::new(self);
        this.writer.end_turn(false);
    }

    /// Whether this turn began by recovering from a writer that died during its turn (its
    /// process was killed, say): the segment then has a new epoch
    /// (`info().writer().epoch()`), and the value is the last one published, without whatever
    /// the dead writer's turn changed.
    pub fn recovered(&self) -> bool {
        self.recovered
    }

    /// The version this turn publishes: one more than the version of the value it started
    /// from.
    pub fn version(&self) -> u64 {
        self.writer.version() + 1
    }
}

impl<T: SharedState> Deref for Turn<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.writer.turn_value_ref()
    }
}

impl<T: SharedState> DerefMut for Turn<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.writer.turn_value()
    }
}

impl<T: SharedState> Drop for Turn<'_, T> {
    fn drop(&mut self) {
        // A turn cut short by a panic may hold a half-changed value: publish nothing.
        self.writer.end_turn(!std::thread::panicking());
    }
}

impl<T: SharedState + core::fmt::Debug> core::fmt::Debug for Turn<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Turn")
            .field("version", &self.version())
            .field("recovered", &self.recovered)
            .field("value", &**self)
            .finish()
    }
}
