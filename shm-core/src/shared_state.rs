//! The [`SharedState`] trait: what a type must promise to live in shared memory.

use crate::__private::Sealed;
use crate::layout::{Kind, Layout, Primitive};
use crate::{Options, Reader, Result, Writer};
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// A type whose values can be shared between processes by copying its bytes.
///
/// Implemented for fixed-width integers (`u8`..`u128`, `i8`..`i128`), `f32`, `f64`, arrays of
/// `SharedState` types, the helper types [`FixedStr`](crate::FixedStr),
/// [`FixedVec`](crate::FixedVec) and [`ShmBool`](crate::ShmBool), and structs that
/// `#[derive(SharedState)]`. It cannot be implemented by hand: the derive is what proves the
/// properties below, and a hand-written impl fails to compile.
///
/// # Safety
///
/// An implementor guarantees that:
/// - every byte of every value is initialized: the type has no padding, interior or trailing;
/// - every pattern of `size_of::<Self>()` bytes is a valid value, so bytes written by any peer,
///   including a hostile or crashed one, can be read as `Self` without undefined behaviour;
/// - the type holds no pointer, reference, function pointer, vtable or interior mutability, so
///   its value means the same thing in every process;
/// - [`LAYOUT`](Self::LAYOUT) describes the type exactly: its size, alignment and, for structs,
///   every field's name, offset and layout, in declaration order.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be placed in shared memory",
    label = "`{Self}` does not implement `SharedState`",
    note = "shared memory holds fixed-width integers, `f32`/`f64`, arrays, `shm_core::FixedStr<N>`, `shm_core::FixedVec<T, N>`, `shm_core::ShmBool` and structs that `#[derive(SharedState)]`"
)]
pub unsafe trait SharedState: Copy + Send + Sync + Sealed + 'static {
    /// The type's layout descriptor.
    const LAYOUT: &'static Layout;

    /// The layout hash: [`Layout::layout_hash`] of [`LAYOUT`](Self::LAYOUT), a compile-time
    /// constant.
    ///
    /// Stored in every segment and checked when another process opens it.
    const LAYOUT_HASH: u64 = Self::LAYOUT.layout_hash();

    /// Creates the named shared-memory segment `name` (e.g. `"/robot-state"`) holding
    /// `initial`, and returns its writer. Fails with [`Error::AlreadyExists`](crate::Error::AlreadyExists) if it exists.
    /// See [`Options`] for slots, mode and other backends.
    fn create(name: &str, initial: &Self) -> Result<Writer<Self>> {
        Options::new().create(name, initial)
    }

    /// Opens the segment `name` for reading, checking the layout hash: a segment holding
    /// another type fails with [`Error::LayoutMismatch`](crate::Error::LayoutMismatch) naming the first field that differs.
    fn open(name: &str) -> Result<Reader<Self>> {
        Options::new().open(name)
    }

    /// Opens the segment `name` as its writer, taking over from a writer that exited or died
    /// (a new epoch); fails with [`Error::WriterBusy`](crate::Error::WriterBusy) while a live writer holds it.
    fn open_writer(name: &str) -> Result<Writer<Self>> {
        Options::new().open_writer(name)
    }

    /// Creates the segment `name` with `initial`, or opens it as its writer if it exists:
    /// an idempotent start, safe when many processes race to do it.
    fn open_or_create(name: &str, initial: &Self) -> Result<Writer<Self>> {
        Options::new().open_or_create(name, initial)
    }

    /// Creates the broadcast stream `name` holding up to `capacity` messages and returns its
    /// writer, whose [`send`](crate::StreamWriter::send) never blocks (it overwrites the
    /// oldest message). Fails with [`Error::AlreadyExists`](crate::Error::AlreadyExists) if
    /// the name is taken.
    ///
    /// # Panics
    /// If `capacity` is 0 or more than 2^24.
    fn create_stream(name: &str, capacity: usize) -> Result<crate::StreamWriter<Self>> {
        Options::new().create_stream(name, capacity)
    }

    /// Subscribes to the stream `name`, checking the layout hash: the reader receives every
    /// message sent from now on, in order.
    fn subscribe(name: &str) -> Result<crate::StreamReader<Self>> {
        Options::new().subscribe(name)
    }

    /// Subscribes to the stream `name` from the oldest message it still holds.
    fn subscribe_from_oldest(name: &str) -> Result<crate::StreamReader<Self>> {
        Options::new().subscribe_from_oldest(name)
    }

    /// Opens the stream `name` as its writer, taking over from a writer that exited or died
    /// (a new epoch) and continuing its message numbering; fails with
    /// [`Error::WriterBusy`](crate::Error::WriterBusy) while a live writer holds it.
    fn open_stream_writer(name: &str) -> Result<crate::StreamWriter<Self>> {
        Options::new().open_stream_writer(name)
    }

    /// Creates the queue `name` (one producer, one consumer, backpressure) holding up to
    /// `capacity` messages not yet taken, and returns its producer.
    ///
    /// # Panics
    /// If `capacity` is 0 or more than 2^24.
    fn create_queue(name: &str, capacity: usize) -> Result<crate::QueueProducer<Self>> {
        Options::new().create_queue(name, capacity)
    }

    /// Opens the queue `name` as its producer, taking over from one that exited or died.
    fn open_queue_producer(name: &str) -> Result<crate::QueueProducer<Self>> {
        Options::new().open_queue_producer(name)
    }

    /// Opens the queue `name` as its consumer: it continues after the last message any
    /// consumer took.
    fn open_consumer(name: &str) -> Result<crate::QueueConsumer<Self>> {
        Options::new().open_consumer(name)
    }

    /// Creates the multi-producer stream `name`: `lanes` lanes (the most producers sending at
    /// once) of `capacity` messages each; returns the producer of lane 0 (drop it to free the
    /// lane). See [`LaneWriter`](crate::LaneWriter).
    ///
    /// # Panics
    /// If `lanes` is 0 or more than 1024, or `capacity` is 0 or more than 2^24.
    fn create_lanes(name: &str, lanes: usize, capacity: usize) -> Result<crate::LaneWriter<Self>> {
        Options::new().create_lanes(name, lanes, capacity)
    }

    /// Joins the multi-producer stream `name` as a producer, taking a free lane and
    /// continuing its numbering; fails with [`Error::NoFreeLane`](crate::Error::NoFreeLane)
    /// while every lane has a live producer.
    fn join_stream(name: &str) -> Result<crate::LaneWriter<Self>> {
        Options::new().join_stream(name)
    }

    /// Subscribes to every lane of the multi-producer stream `name`, checking the layout hash:
    /// the reader receives every message sent from now on, in order within each lane.
    fn subscribe_lanes(name: &str) -> Result<crate::LaneReader<Self>> {
        Options::new().subscribe_lanes(name)
    }

    /// Creates the multi-producer queue `name`: `lanes` lanes of `capacity` messages not yet
    /// taken each; returns the producer of lane 0. See [`LaneProducer`](crate::LaneProducer).
    ///
    /// # Panics
    /// If `lanes` is 0 or more than 1024, or `capacity` is 0 or more than 2^24.
    fn create_lane_queue(
        name: &str,
        lanes: usize,
        capacity: usize,
    ) -> Result<crate::LaneProducer<Self>> {
        Options::new().create_lane_queue(name, lanes, capacity)
    }

    /// Joins the multi-producer queue `name` as a producer, taking a free lane.
    fn join_queue(name: &str) -> Result<crate::LaneProducer<Self>> {
        Options::new().join_queue(name)
    }

    /// Opens the multi-producer queue `name` as its consumer: every lane continues after the
    /// last message any consumer took from it.
    fn open_lane_consumer(name: &str) -> Result<crate::LaneConsumer<Self>> {
        Options::new().open_lane_consumer(name)
    }
}

/// Compile-time proof, by zerocopy, that a leaf type has no padding and no invalid bit patterns.
const fn zerocopy_proves_pod<T: FromBytes + IntoBytes + Immutable>() {}

macro_rules! primitives {
    ($($t:ty => $p:ident),* $(,)?) => {$(
        impl Sealed for $t {}
        // SAFETY: fixed-width integers and IEEE floats have no padding, no invalid bit patterns
        // and no pointers (zerocopy checks the first two below); LAYOUT is built from
        // `size_of`/`align_of` of the type itself.
        unsafe impl SharedState for $t {
            const LAYOUT: &'static Layout = &Layout::primitive::<$t>(Primitive::$p);
        }
        const _: () = zerocopy_proves_pod::<$t>();
    )*};
}

primitives! {
    u8 => U8, u16 => U16, u32 => U32, u64 => U64, u128 => U128,
    i8 => I8, i16 => I16, i32 => I32, i64 => I64, i128 => I128,
    f32 => F32, f64 => F64,
}

impl<T: SharedState, const N: usize> Sealed for [T; N] {}

// SAFETY: an array has no padding between elements (an element's size is a multiple of its
// alignment) and none around them, so it is padding-free and all-bit-patterns-valid exactly when
// `T` is, which `T: SharedState` guarantees; it holds nothing but `T`s.
unsafe impl<T: SharedState, const N: usize> SharedState for [T; N] {
    const LAYOUT: &'static Layout = &Layout {
        size: core::mem::size_of::<[T; N]>(),
        align: core::mem::align_of::<[T; N]>(),
        kind: Kind::Array {
            len: N,
            element: T::LAYOUT,
        },
    };
}
