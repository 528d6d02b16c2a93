//! The one error type of the crate.

use core::fmt;
use std::io;

/// Everything that can go wrong creating, opening, reading or writing a shared segment.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// No segment has this name.
    NotFound {
        /// The segment name.
        name: String,
    },
    /// A segment with this name exists already (on `create`).
    AlreadyExists {
        /// The segment name.
        name: String,
    },
    /// The name is not a valid segment name.
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The operating system refused access to the segment.
    PermissionDenied {
        /// The segment name.
        name: String,
    },
    /// The segment does not start with this format's magic bytes: it is not one of ours. Also
    /// what a name that is not a regular file gives (a FIFO, device, socket, directory, or, for
    /// file-backed segments, a symbolic link): then `found` is 0.
    NotASegment {
        /// The magic value found (0 when the name is not a regular file).
        found: u64,
    },
    /// The segment is inconsistent: its header (sizes, offsets or counts that cannot be
    /// right), its stored layout, or its slots (the published slot never holds the published
    /// version, and no writer is alive to fix it).
    Corrupt {
        /// What is inconsistent.
        what: &'static str,
    },
    /// The segment was written in a format version this program does not read.
    FormatVersion {
        /// The version this program reads.
        expected: u32,
        /// The version found in the segment.
        found: u32,
    },
    /// The segment holds a different type than the opener expects.
    LayoutMismatch {
        /// The opener's layout hash.
        expected: u64,
        /// The layout hash stored in the segment.
        found: u64,
        /// The first difference, naming the field, e.g. "field `pos` is `[f64; 3]` at offset 8
        /// in the segment but `[f32; 3]` at offset 8 in this program".
        first_difference: String,
    },
    /// The segment is smaller than its header says, or too small for a header; or another
    /// process shrank it while this handle had it mapped (an access then faulted, and the
    /// guard put zero pages in place of the lost ones: see `docs/threat-model.md`).
    Truncated {
        /// Bytes needed.
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// Another live process holds the writer lease.
    WriterBusy {
        /// The process id of the current writer, as recorded in the segment (0 if unknown).
        pid: u32,
    },
    /// The segment's writers take turns ([`Options::shared_writers`](crate::Options::shared_writers))
    /// and this program opened it as its one writer, or the other way round: open it as it was
    /// created.
    WriterMode {
        /// Whether the segment's writers take turns.
        shared: bool,
    },
    /// The segment's writers take turns under a lock whose binary layout this program cannot
    /// share (another C library or architecture): tags as `shm_core` stores them, e.g. "glibc
    /// x86_64 pthread_mutex_t 40 bytes".
    LockAbi {
        /// This program's lock ABI tag.
        expected: u32,
        /// The segment's.
        found: u32,
    },
    /// The writer died during a write and nothing consistent can be read (one-slot segments).
    WriterDied,
    /// The segment's creator has not finished initializing it in time (or died doing so).
    NotReady,
    /// The wait timed out.
    Timeout,
    /// A layout given to create an untyped segment cannot describe a payload (size 0, an
    /// alignment that is not a power of two, ...), or the value does not fit it; or a layout
    /// given to an export (`shm_core::export::c_header_of`, ...) is not one a Rust type has.
    InvalidLayout {
        /// What is wrong with it.
        what: String,
    },
    /// A helper value holds invalid bytes.
    InvalidValue(crate::ValueError),
    /// A stream reader fell behind by more than the stream's capacity: the writer overwrote
    /// `missed` messages before this reader got to them. Reported once per gap; the next
    /// receive continues with the oldest message still available.
    Lagged {
        /// How many messages this reader lost, exactly.
        missed: u64,
    },
    /// Another live process consumes this queue: a queue has one consumer at a time.
    ConsumerBusy,
    /// Every lane of a multi-producer stream or queue has a live producer: a producer joins
    /// only when one of them exits or dies.
    NoFreeLane {
        /// How many lanes the stream or queue has.
        lanes: u32,
    },
    /// A queue is full: the consumer has not taken the oldest message yet, and a queue never
    /// overwrites one (on `try_send`).
    Full,
    /// The segment holds another kind of thing than the opener expects, e.g. a stream opened
    /// as shared state: open it with the calls of its kind.
    WrongKind {
        /// The kind the opener expects.
        expected: crate::SegmentKind,
        /// The kind the segment holds.
        found: crate::SegmentKind,
    },
    /// The operating system refused an operation on the segment for a reason not covered
    /// above (out of memory or disk space, too many open files, ...). The cause is the
    /// [`source`](std::error::Error::source).
    Io {
        /// What was being done, e.g. `"creating"` or `"mapping"`.
        action: &'static str,
        /// The segment name (empty for anonymous segments).
        name: String,
        /// The operating system's error.
        source: io::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotFound { name } => write!(f, "no shared segment named {name:?}"),
            Error::AlreadyExists { name } => {
                write!(f, "a shared segment named {name:?} already exists")
            }
            Error::InvalidName { name, reason } => {
                write!(f, "invalid segment name {name:?}: {reason}")
            }
            Error::PermissionDenied { name } => {
                write!(f, "permission denied for shared segment {name:?}")
            }
            Error::NotASegment { found: 0 } => f.write_str(
                "not a shared-state segment (not a regular file, or a symbolic link)",
            ),
            Error::NotASegment { found } => write!(
                f,
                "not a shared-state segment (magic {found:#018x} does not match)"
            ),
            Error::Corrupt { what } => write!(f, "corrupt segment: {what}"),
            Error::FormatVersion { expected, found } => write!(
                f,
                "segment format version {found} is not supported (this program reads version {expected})"
            ),
            Error::LayoutMismatch {
                expected,
                found,
                first_difference,
            } => write!(
                f,
                "layout mismatch: {first_difference} (layout hash {found:#018x} in the segment, {expected:#018x} in this program)"
            ),
            Error::Truncated { expected, found } => write!(
                f,
                "segment is truncated: {found} bytes, {expected} needed"
            ),
            Error::WriterBusy { pid } => {
                write!(f, "another writer (pid {pid}) holds the segment")
            }
            Error::WriterMode { shared: true } => f.write_str(
                "the segment's writers take turns: open it with `Options::shared_writers(true)` and write in turns",
            ),
            Error::WriterMode { shared: false } => f.write_str(
                "the segment has one writer at a time: open it without `Options::shared_writers`",
            ),
            Error::LockAbi { expected, found } => write!(
                f,
                "the segment's writers take turns under a lock of another binary layout ({}) than this program's ({})",
                crate::sys::describe_lock_abi(*found),
                crate::sys::describe_lock_abi(*expected)
            ),
            Error::WriterDied => f.write_str(
                "the writer died while writing and no consistent value is available",
            ),
            Error::NotReady => f.write_str(
                "the segment was not initialized in time (its creator may have died)",
            ),
            Error::Timeout => f.write_str("timed out"),
            Error::InvalidLayout { what } => write!(f, "invalid layout: {what}"),
            Error::InvalidValue(_) => f.write_str("a helper value holds invalid bytes"),
            Error::Lagged { missed } => write!(
                f,
                "the reader fell behind and lost {missed} message{}",
                if *missed == 1 { "" } else { "s" }
            ),
            Error::Full => f.write_str("the queue is full"),
            Error::ConsumerBusy => f.write_str("another process consumes this queue"),
            Error::NoFreeLane { lanes } => {
                write!(f, "all {lanes} lanes have a live producer")
            }
            Error::WrongKind { expected, found } => write!(
                f,
                "this segment holds {}, not {}",
                found.describe(),
                expected.describe()
            ),
            Error::Io { action, name, .. } => write!(f, "{action} segment {name:?}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::InvalidValue(e) => Some(e),
            _ => None,
        }
    }
}

impl Error {
    /// A function that wraps an `io::Error` met while doing `action` to segment `name`.
    pub(crate) fn io(action: &'static str, name: &str) -> impl FnOnce(io::Error) -> Error {
        let name = name.to_string();
        move |source| Error::Io {
            action,
            name,
            source,
        }
    }
}

impl From<crate::ValueError> for Error {
    fn from(e: crate::ValueError) -> Self {
        Error::InvalidValue(e)
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;
