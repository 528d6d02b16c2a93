//! Typed shared state between processes.
//!
//! One process writes a struct, any number of processes read consistent snapshots of it
//! through POSIX shared memory, without locks, syscalls or serialization. The segment format is
//! specified in `docs/segment-format.md`, so that readers in other languages can be written
//! from it; [`RawReader`] reads any segment by the layout it stores.
//!
//! `#[derive(SharedState)]` proves at compile time that a struct can be shared: `#[repr(C)]`,
//! no pointers, references or vtables, no padding, every bit pattern valid, a fixed layout. It
//! gives the type a [`Layout`] and a `const` [`LAYOUT_HASH`](SharedState::LAYOUT_HASH)
//! that a process opening the segment checks.
//!
//! ```
//! use shm_core::SharedState;
//!
//! #[derive(SharedState, Clone, Copy, Debug, PartialEq)]
//! #[repr(C)]
//! pub struct Telemetry {
//!     pub tick: u64,
//!     pub pos: [f64; 3],
//!     pub status: u32,
//!     pub flags: u32,
//! }
//!
//! const H: u64 = Telemetry::LAYOUT_HASH;
//! assert_eq!(Telemetry::LAYOUT.fields()[1].name, "pos");
//! assert_eq!(Telemetry::LAYOUT.fields()[1].offset, 8);
//! # let _ = H;
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

#[cfg(not(target_os = "linux"))]
compile_error!(
    "shm-core supports Linux only: it relies on futexes, memfd and open-file-description locks"
);
// Readers of read-only mappings load 8-byte atomics, which only 64-bit targets guarantee to do
// without a write (32-bit x86 may use `cmpxchg8b`, which faults on a read-only page).
#[cfg(not(target_pointer_width = "64"))]
compile_error!("shm-core supports 64-bit targets only: it loads 8-byte atomics from shared memory");
// The segment format's `inline` word holds a small value's bytes first, zero-extended: the
// value of that u64 is the value itself only on a little-endian host (docs/segment-format.md).
#[cfg(target_endian = "big")]
compile_error!("shm-core supports little-endian targets only (x86-64, aarch64): the segment format's `inline` word is defined for them");

extern crate self as shm_core;

mod backend;
mod error;
pub mod export;
mod fault;
mod format;
mod info;
pub mod layout;
mod lease;
mod options;
mod payload;
mod protocol;
mod raw_reader;
mod raw_writer;
mod reader;
mod segment;
mod shared_state;
pub mod stream;
#[cfg_attr(target_os = "linux", path = "sys/linux.rs")]
mod sys;
mod turn;
mod types;
mod wait;
mod writer;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use backend::Backend;
pub use error::{Error, Result};
pub use format::{SegmentKind, FORMAT_VERSION, LAYOUT_ENCODING_VERSION};
pub use info::{SegmentInfo, WriterInfo};
pub use layout::{Compat, Layout, LayoutBuf};
pub use options::{remove, Options};
pub use raw_reader::RawReader;
pub use raw_writer::RawWriter;
pub use reader::Reader;
pub use shared_state::SharedState;
pub use stream::lanes::{remove_lanes, LanesInfo};
pub use stream::{
    LaneConsumer, LaneProducer, LaneReader, LaneWriter, QueueConsumer, QueueProducer,
    RawStreamReader, RawStreamWriter, StreamReader, StreamWriter,
};
pub use turn::Turn;
pub use types::{FixedStr, FixedVec, ShmBool, ValueError};
pub use wait::{Changed, Key, WaitBackend, WaitSet, Waitable};
pub use writer::Writer;

/// Derives [`SharedState`](trait@SharedState) for a `#[repr(C)]` struct, proving at compile time
/// that it can be shared between processes.
///
/// Refused, each with an error that says why and what to use instead: enums, unions, generics,
/// lifetimes, tuple, unit and empty structs; a missing `#[repr(C)]` or `packed`, `transparent`
/// and integer reprs (`#[repr(C, align(N))]` is accepted); fields that are references, raw or
/// function pointers, trait objects, `Box`, `Vec`, `String`, `Rc`, `Arc`, `Cell`, `RefCell`,
/// `Option`, `usize`, `isize`, `bool`, `char`, or anything else that is not `SharedState`
/// (seen through type aliases and macros); and implicit padding anywhere.
///
/// `#[shm(name = "Name")]` gives the type a stable name that enters the layout hash and the
/// exports.
pub use shm_derive::SharedState;

/// The stream guide's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/streams.md")]
pub struct StreamsDoctests;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
