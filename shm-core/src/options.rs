//! [`Options`]: the builder that creates and opens segments, and [`remove`].

use crate::backend::Backend;
use crate::error::Result;
use crate::format::MAX_SLOTS;
use crate::layout::LayoutBuf;
use crate::raw_reader::RawReader;
use crate::raw_writer::{Make, RawWriter};
use crate::reader::Reader;
use crate::segment::Expect;
use crate::writer::Writer;
use crate::SharedState;
use std::time::Duration;

/// How to create or open a segment. `SharedState::create` and friends use the defaults.
///
/// ```no_run
/// use shm_core::{Options, SharedState};
/// # #[derive(SharedState, Clone, Copy)] #[repr(C)] struct Pose { x: f64 }
/// let w = Options::new().slots(4).mode(0o640).create::<Pose>("/pose", &Pose { x: 0.0 })?;
/// # Ok::<(), shm_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Options {
    slots: usize,
    mode: u32,
    ready_wait: Duration,
    backend: Backend,
    adopt_stored_layout: bool,
    /// Test hook (see `__private::hooks`): the creator aborts before marking the segment ready.
    pub(crate) crash_before_ready: bool,
    shared_writers: bool,
}

/// The default slot count, chosen by measurement (BENCHMARKS.md, "Slot count"): under a
/// writer that publishes back to back, readers of two slots retried 6 to 25 times more often
/// than readers of four, and were 1.6x slower at 4 KiB; three slots need a division to find a
/// version's slot on every read, four a mask. The price is memory: four copies of the payload.
const DEFAULT_SLOTS: usize = 4;

impl Default for Options {
    fn default() -> Self {
        Options {
            slots: DEFAULT_SLOTS,
            mode: 0o600,
            ready_wait: Duration::from_secs(1),
            backend: Backend::Shm,
            adopt_stored_layout: false,
            crash_before_ready: false,
            shared_writers: false,
        }
    }
}

impl Options {
    /// The defaults: named shared memory, 4 slots, mode `0o600`, wait up to 1 s for a segment
    /// being created by another process.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of slots (default 4). With `n >= 2` readers never wait for a write in progress;
    /// a read is retried only when the writer laps it `n - 1` times. `n = 1` is the classic
    /// seqlock: the smallest segment, but readers retry during every write, and starve under
    /// a writer that publishes back to back. Powers of two find a version's slot with a mask,
    /// other counts with a division. Fewer slots save memory (each holds a copy of the
    /// payload), at the price of more retries when the writer publishes faster than a
    /// reader copies.
    ///
    /// # Panics
    /// If `n` is 0 or more than 1024.
    pub fn slots(mut self, n: usize) -> Self {
        assert!(
            (1..=MAX_SLOTS).contains(&n),
            "slot count must be between 1 and {MAX_SLOTS}, got {n}"
        );
        self.slots = n;
        self
    }

    /// Permission bits of a created segment (default `0o600`: the owner only), applied exactly:
    /// the process's umask does not narrow them.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// How long `open` waits for a segment that another process is still creating before it
    /// fails with [`Error::NotReady`](crate::Error::NotReady) (default 1 s).
    pub fn ready_wait(mut self, wait: Duration) -> Self {
        self.ready_wait = wait;
        self
    }

    /// The backend (default [`Backend::Shm`]).
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// Whether the segment has several writers that take turns (default `false`: one writer at
    /// a time, holding the segment until it is dropped).
    ///
    /// Decided when the segment is created, with [`create`](Self::create) or
    /// [`open_or_create`](Self::open_or_create): any number of writers then attach to it with
    /// [`open_writer`](Self::open_writer) (or `open_or_create`), each with this option set, and
    /// write in turns, each [`Writer::turn`] exclusive, under a lock in the segment that the
    /// kernel frees if its holder dies. Readers read as always, without a lock. Opening such a
    /// segment without the option, or a one-writer segment with it, fails with
    /// [`WriterMode`](crate::Error::WriterMode).
    ///
    /// Shared-state segments only, of two or more slots: creating one with
    /// [`slots(1)`](Self::slots) panics (a writer that died mid-write would leave no complete
    /// value for the next turn).
    ///
    /// ```no_run
    /// use shm_core::{Options, SharedState};
    /// use std::time::Duration;
    /// # #[derive(SharedState, Clone, Copy)] #[repr(C)] struct Stats { hits: u64 }
    /// let mut w = Options::new()
    ///     .shared_writers(true)
    ///     .open_or_create::<Stats>("/stats", &Stats { hits: 0 })?;
    /// let mut t = w.turn(Duration::from_secs(1))?;
    /// t.hits += 1;
    /// drop(t); // publishes
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn shared_writers(mut self, shared: bool) -> Self {
        self.shared_writers = shared;
        self
    }

    /// Whether a writer that takes over a segment holding another version of its appendable
    /// type ([`open_writer`](Self::open_writer), [`open_or_create`](Self::open_or_create), and
    /// the stream producer's `open_stream_writer`) adopts the stored layout (default `false`:
    /// it fails with [`Error::LayoutMismatch`](crate::Error::LayoutMismatch) saying to
    /// re-create the segment or allow this).
    ///
    /// An adopting writer keeps the segment's layout, so every reader of it keeps reading as
    /// before: a newer writer writes only the fields the segment has, an older one (a
    /// rollback) writes its own fields and zeros for the rest, and either zeroes the fields
    /// it marks `#[shm(deprecated)]`. Its `get` returns its own type, missing fields zero. See
    /// [`Compat`](crate::Compat).
    ///
    /// A queue producer never adopts: its consumer takes every message as written, so a
    /// producer of another version is refused with or without this option (drain the queue,
    /// then re-create it).
    pub fn adopt_stored_layout(mut self, adopt: bool) -> Self {
        self.adopt_stored_layout = adopt;
        self
    }

    /// The backend chosen.
    pub(crate) fn chosen_backend(&self) -> &Backend {
        &self.backend
    }

    pub(crate) fn make(&self) -> Make {
        Make {
            slots: self.slots,
            mode: self.mode,
            ready_wait: self.ready_wait,
            adopt: self.adopt_stored_layout,
            crash_before_ready: self.crash_before_ready,
            turns: self.shared_writers,
        }
    }

    /// Creates the segment `name` holding `initial` and returns its writer. Fails with
    /// [`AlreadyExists`](crate::Error::AlreadyExists) if the name is taken.
    pub fn create<T: SharedState>(&self, name: &str, initial: &T) -> Result<Writer<T>> {
        Writer::create(&self.backend, name, &self.make(), initial)
    }

    /// Creates an anonymous segment (whatever the backend option says) holding `initial`.
    pub fn create_anonymous<T: SharedState>(&self, initial: &T) -> Result<Writer<T>> {
        Writer::create(&Backend::Anonymous, "", &self.make(), initial)
    }

    /// Opens the segment `name` for reading, checking that it holds a `T`.
    pub fn open<T: SharedState>(&self, name: &str) -> Result<Reader<T>> {
        Reader::open_with(&self.backend, name, self.ready_wait)
    }

    /// Opens the segment `name` for reading whatever type it holds; see [`RawReader`].
    pub fn open_raw(&self, name: &str) -> Result<RawReader> {
        RawReader::open_with(&self.backend, name, self.ready_wait, &Expect::Any)
    }

    /// Creates the segment `name` holding the payload bytes `initial`, described by `layout`
    /// (whose [`layout_hash`](LayoutBuf::layout_hash) becomes the segment's), and returns an
    /// untyped writer: for writers in other languages, which have the layout a Rust type
    /// exported but not the type. Fails with [`InvalidLayout`](crate::Error::InvalidLayout) if
    /// the layout cannot describe a payload or `initial` is not its size.
    pub fn create_raw(&self, name: &str, layout: &LayoutBuf, initial: &[u8]) -> Result<RawWriter> {
        RawWriter::create(&self.backend, name, &self.make(), (layout, initial), false)
    }

    /// Creates the segment `name` as [`create_raw`](Self::create_raw) does or, if it exists and
    /// holds `layout`, opens it as its untyped writer (keeping its value), as
    /// [`open_or_create`](Self::open_or_create) does for a typed one: safe to race, and a
    /// segment whose creator died before making it ready is re-initialized.
    pub fn open_or_create_raw(
        &self,
        name: &str,
        layout: &LayoutBuf,
        initial: &[u8],
    ) -> Result<RawWriter> {
        RawWriter::create(&self.backend, name, &self.make(), (layout, initial), true)
    }

    /// Opens the segment `name` as its untyped writer, checking that it holds `layout` (by its
    /// layout hash, as a typed writer does); see [`open_writer`](Self::open_writer).
    pub fn open_raw_writer(&self, name: &str, layout: &LayoutBuf) -> Result<RawWriter> {
        let expect = Expect::Type {
            layout: layout.clone(),
            hash: layout.layout_hash(),
        };
        RawWriter::open(
            &self.backend,
            name,
            self.ready_wait,
            &expect,
            self.shared_writers,
            false,
        )
    }

    /// Opens the segment `name` as its writer: takes the writer lease (a new epoch), or fails
    /// with [`WriterBusy`](crate::Error::WriterBusy) while another live writer holds it. With
    /// [`shared_writers`](Self::shared_writers), attaches as one more of its turn-taking
    /// writers instead (`WriterBusy` only while a single writer holds it).
    pub fn open_writer<T: SharedState>(&self, name: &str) -> Result<Writer<T>> {
        Writer::open(
            &self.backend,
            name,
            self.ready_wait,
            self.shared_writers,
            self.adopt_stored_layout,
        )
    }

    /// Creates the segment `name` with `initial`, or, if it exists, opens it as its writer
    /// (keeping its current value). Safe to race: of many processes starting at once, exactly
    /// one creates it and every other one attaches to the initialized segment.
    ///
    /// Bounded: a peer that keeps removing and re-creating the name, or keeps a half-made
    /// segment changing, makes it fail with [`NotReady`](crate::Error::NotReady) once the
    /// ready wait, or 500 ms if that is longer, has passed.
    pub fn open_or_create<T: SharedState>(&self, name: &str, initial: &T) -> Result<Writer<T>> {
        Writer::open_or_create(&self.backend, name, &self.make(), initial)
    }
}

/// Removes the named shared-memory segment `name` (`"/robot-state"`). Processes that have it
/// open keep using it; the memory is freed when the last of them unmaps it.
///
/// A file-backed segment ([`Backend::File`]) is a file: remove it with `std::fs::remove_file`.
/// An anonymous one has no name.
pub fn remove(name: &str) -> Result<()> {
    Backend::Shm.unlink(name)
}
