//! Items the derive's generated code and the crate's own tests refer to. Not public API: names
//! and signatures may change in any release.

pub use crate::layout::{Field, Kind, Layout};
pub use crate::shared_state::SharedState;
pub use core;

/// Implemented only by types that may implement [`SharedState`]: primitives, arrays, the helper
/// types and structs that derive it.
#[diagnostic::on_unimplemented(
    message = "`SharedState` cannot be implemented by hand for `{Self}`; remove this impl and add `#[derive(SharedState)]` to the struct",
    label = "hand-written `SharedState` impl",
    note = "only the derive proves that a type is safe to share between processes: `#[repr(C)]`, no padding, no pointers, every bit pattern valid"
)]
pub trait Sealed {}

/// The layout of a derived struct (`Layout` and `Field` are `#[non_exhaustive]`: only this
/// crate and the derive build them).
pub const fn struct_layout(
    size: usize,
    align: usize,
    name: &'static str,
    stable_name: Option<&'static str>,
    fields: &'static [Field],
    appendable: bool,
) -> Layout {
    Layout {
        size,
        align,
        kind: Kind::Struct {
            name,
            stable_name,
            fields,
            appendable,
        },
    }
}

/// One field of a derived struct's layout: its `#[shm(alias)]`, if any, and whether it is
/// `#[shm(deprecated)]`.
pub const fn field(
    name: &'static str,
    offset: usize,
    layout: &'static Layout,
    alias: Option<&'static str>,
    deprecated: bool,
) -> Field {
    Field {
        name,
        offset,
        layout,
        alias,
        deprecated,
    }
}

/// Placeholder layout the derive emits next to a compile error; never part of a program.
pub const UNCHECKED_LAYOUT: Layout = struct_layout(0, 1, "", None, &[], false);

/// Proof that `Self` has no implicit padding after one of its fields (`BYTES` must be 0; a
/// single byte of padding is reported by [`NoPaddingByteAfterField`] instead, for the grammar).
#[diagnostic::on_unimplemented(
    message = "`{Self}` has {BYTES} bytes of implicit padding after this field; add `_pad: [u8; {BYTES}]` after it",
    label = "followed by {BYTES} bytes of padding",
    note = "padding bytes are uninitialized: copying them to another process is undefined behaviour and can leak this process's memory",
    note = "or order the fields from largest to smallest alignment, which often leaves no gap"
)]
pub trait NoPaddingAfterField<const BYTES: usize> {}

impl<T: ?Sized> NoPaddingAfterField<0> for T {}

/// Proof that `Self` does not have exactly one byte of implicit padding after one of its fields
/// (`ONE` is 1 when it does, else 0).
#[diagnostic::on_unimplemented(
    message = "`{Self}` has 1 byte of implicit padding after this field; add `_pad: [u8; 1]` after it",
    label = "followed by 1 byte of padding",
    note = "padding bytes are uninitialized: copying them to another process is undefined behaviour and can leak this process's memory",
    note = "or order the fields from largest to smallest alignment, which often leaves no gap"
)]
pub trait NoPaddingByteAfterField<const ONE: usize> {}

impl<T: ?Sized> NoPaddingByteAfterField<0> for T {}

/// Proof that `Self` has no implicit padding after its last field (`BYTES` must be 0; a single
/// byte is reported by [`NoTrailingPaddingByte`]).
#[diagnostic::on_unimplemented(
    message = "`{Self}` has {BYTES} bytes of implicit padding at its end; add `_pad: [u8; {BYTES}]` as the last field",
    label = "{BYTES} bytes of trailing padding",
    note = "padding bytes are uninitialized: copying them to another process is undefined behaviour and can leak this process's memory",
    note = "a struct's size is a multiple of its alignment (raised by `align(N)`), so fields that end short of it leave a gap"
)]
pub trait NoTrailingPadding<const BYTES: usize> {}

impl<T: ?Sized> NoTrailingPadding<0> for T {}

/// Proof that `Self` does not have exactly one byte of implicit padding after its last field.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has 1 byte of implicit padding at its end; add `_pad: [u8; 1]` as the last field",
    label = "1 byte of trailing padding",
    note = "padding bytes are uninitialized: copying them to another process is undefined behaviour and can leak this process's memory",
    note = "a struct's size is a multiple of its alignment (raised by `align(N)`), so fields that end short of it leave a gap"
)]
pub trait NoTrailingPaddingByte<const ONE: usize> {}

impl<T: ?Sized> NoTrailingPaddingByte<0> for T {}

/// 1 if a gap of `bytes` is a single byte, else 0: the `ONE` argument of the padding proofs.
pub const fn one_byte(bytes: usize) -> usize {
    (bytes == 1) as usize
}

/// `bytes` unless it is a single byte (reported by the `ONE` proofs), else 0: the `BYTES`
/// argument of the padding proofs.
pub const fn several_bytes(bytes: usize) -> usize {
    if bytes == 1 {
        0
    } else {
        bytes
    }
}

/// Fails to compile unless `T` has no padding after the field the call is spanned on.
pub const fn assert_no_padding_after_field<
    T: ?Sized + NoPaddingByteAfterField<ONE> + NoPaddingAfterField<BYTES>,
    const ONE: usize,
    const BYTES: usize,
>() {
}

/// Fails to compile unless `T` has no trailing padding.
pub const fn assert_no_trailing_padding<
    T: ?Sized + NoTrailingPaddingByte<ONE> + NoTrailingPadding<BYTES>,
    const ONE: usize,
    const BYTES: usize,
>() {
}

/// Proof that a field's type is [`SharedState`]. `Field` and `Owner` are type parameters of the
/// function the derive generates for the field, named after the field and its struct, so that
/// the message names them; the trait lives here so that code in a `#![no_implicit_prelude]`
/// module, where the `diagnostic` namespace does not resolve, needs none of it.
#[diagnostic::on_unimplemented(
    message = "field `{Field}` of `{Owner}` has type `{Self}`, which cannot be placed in shared memory; use a fixed-width type, a `shm_core` helper type, or a struct that derives `SharedState`",
    label = "`{Self}` does not implement `SharedState`",
    note = "shareable types are fixed-width integers (`u8`..`u128`, `i8`..`i128`; `u64` rather than `usize`), `f32`, `f64`, arrays `[T; N]` of shareable types, `shm_core::FixedStr<N>` for strings, `shm_core::FixedVec<T, N>` for vectors, `shm_core::ShmBool` for booleans, and `#[repr(C)]` structs that `#[derive(SharedState)]`"
)]
pub trait FieldIsSharedState<Field, Owner>: SharedState {}

// The unmet bound is reported as `FieldIsSharedState`, which names the field, rather than as
// the `SharedState` bound of this impl.
#[diagnostic::do_not_recommend]
impl<Field, Owner, T: SharedState> FieldIsSharedState<Field, Owner> for T {}

/// The layout of the type a field projection `|s| &s.field` points to, which must be
/// [`SharedState`]; `Field` and `Owner` only name the field in the error. `S` need not be
/// `Sized`: an unsized field (a slice behind an alias) is reported here as not `SharedState`.
pub const fn field_layout<Field, Owner, S: ?Sized, T: FieldIsSharedState<Field, Owner>>(
    _: fn(&S) -> &T,
) -> &'static Layout {
    <T as SharedState>::LAYOUT
}

/// The type a field projection `|s| &s.field` points to, as a value whose methods refine the
/// error for a field type that is not [`SharedState`]: the derive calls
/// `field_type(..).__shared_state_refuse()` before [`field_layout`], in a closure that is never
/// run. For a `usize`, an `isize`, a slice or a `str` (behind an alias or an associated type,
/// where the derive cannot see them), the inherent method of that type is picked, whose unmet
/// bound names the field and the fix; the error it reports implies the generic one of
/// [`field_layout`] at the same span, so the compiler shows only the specific one. Every other
/// type gets [`AnyFieldType`]'s method, which requires nothing. This only adds requirements:
/// whether the derive accepts a field is decided by [`field_layout`] alone.
pub struct FieldType<Field, Owner, T: ?Sized>(
    core::marker::PhantomData<FieldTypeMarker<Field, Owner, T>>,
);

/// What [`FieldType`] holds: no value of `T`, so that it is `Sized` for any field type.
type FieldTypeMarker<Field, Owner, T> = (Field, Owner, fn() -> *const T);

/// The [`FieldType`] of a field projection `|s| &s.field`.
pub const fn field_type<Field, Owner, S: ?Sized, T: ?Sized>(
    _: fn(&S) -> &T,
) -> FieldType<Field, Owner, T> {
    FieldType(core::marker::PhantomData)
}

/// The method of [`FieldType`] for types that have no more specific message than
/// [`FieldIsSharedState`]'s: requires nothing.
pub trait AnyFieldType {
    /// Does nothing; never called.
    fn __shared_state_refuse(&self) {}
}

impl<Field, Owner, T: ?Sized> AnyFieldType for FieldType<Field, Owner, T> {}

// The bounds below are never met (each trait requires `SharedState`, which these types do not
// implement and no other crate may implement for them). `for<'__shm>` keeps the compiler from
// rejecting a clause it can already see is false; the supertrait `FieldIsSharedState` makes the
// error imply the generic one at the same span, which the compiler then leaves out.

/// Reports a field whose type is `usize` behind an alias or an associated type.
#[diagnostic::on_unimplemented(
    message = "field `{Field}` of `{Owner}` is a `usize`, whose size differs between 32-bit and 64-bit processes; use `u64`",
    label = "`usize` is 4 bytes in a 32-bit process and 8 bytes in a 64-bit one"
)]
pub trait NotUsize<Field, Owner>: FieldIsSharedState<Field, Owner> {}

/// Reports a field whose type is `isize` behind an alias or an associated type.
#[diagnostic::on_unimplemented(
    message = "field `{Field}` of `{Owner}` is an `isize`, whose size differs between 32-bit and 64-bit processes; use `i64`",
    label = "`isize` is 4 bytes in a 32-bit process and 8 bytes in a 64-bit one"
)]
pub trait NotIsize<Field, Owner>: FieldIsSharedState<Field, Owner> {}

/// Reports a field whose type is a slice behind an alias or an associated type.
#[diagnostic::on_unimplemented(
    message = "field `{Field}` of `{Owner}` is a slice (`{Self}`), which is unsized; use an array `[T; N]` or `shm_core::FixedVec<T, N>`",
    label = "a slice has no fixed size"
)]
pub trait NotSlice<Field, Owner>: FieldIsSharedState<Field, Owner> {}

/// Reports a field whose type is `str` behind an alias or an associated type.
#[diagnostic::on_unimplemented(
    message = "field `{Field}` of `{Owner}` is a `str`, which is unsized; use `shm_core::FixedStr<N>`",
    label = "a `str` has no fixed size"
)]
pub trait NotStr<Field, Owner>: FieldIsSharedState<Field, Owner> {}

impl<Field, Owner> FieldType<Field, Owner, usize> {
    /// Reports the field as a `usize`; never called.
    pub fn __shared_state_refuse(&self)
    where
        for<'__shm> usize: NotUsize<Field, Owner>,
    {
    }
}

impl<Field, Owner> FieldType<Field, Owner, isize> {
    /// Reports the field as an `isize`; never called.
    pub fn __shared_state_refuse(&self)
    where
        for<'__shm> isize: NotIsize<Field, Owner>,
    {
    }
}

impl<Field, Owner, T> FieldType<Field, Owner, [T]> {
    /// Reports the field as a slice; never called.
    pub fn __shared_state_refuse(&self)
    where
        for<'__shm> [T]: NotSlice<Field, Owner>,
    {
    }
}

impl<Field, Owner> FieldType<Field, Owner, str> {
    /// Reports the field as a `str`; never called.
    pub fn __shared_state_refuse(&self)
    where
        for<'__shm> str: NotStr<Field, Owner>,
    {
    }
}

/// The size of the type a field projection `|s| &s.field` points to. The derive measures
/// fields this way rather than by repeating their type tokens, which a macro could expand
/// differently the second time.
pub const fn field_size<S: ?Sized, T>(_: fn(&S) -> &T) -> usize {
    core::mem::size_of::<T>()
}

/// The SIGBUS guard for a mapping of a segment file made outside the runtime (the `shm` tool
/// maps files it inspects itself): a peer shrinking the file turns an access beyond its end
/// into zeros and [`MappingGuard::truncated`] instead of killing the process.
#[derive(Debug)]
pub struct MappingGuard(crate::fault::Guard);

impl MappingGuard {
    /// Guards the `len` bytes mapped at `start`.
    ///
    /// # Safety
    /// `start..start + len` must be one read-only (`PROT_READ`) shared mapping of a file that
    /// the caller made, owns and keeps mapped until this guard is dropped, and that is only
    /// read through atomics (after a truncation the guard replaces its pages beyond the file's
    /// end with read-only zero pages). The guard and the mapping must be owned by one value,
    /// every access to the mapping must be made through a borrow of that value, and it must
    /// drop the guard before it unmaps: the signal handler relies on a faulting access keeping
    /// the mapping alive until the handler returns.
    pub unsafe fn new(start: *const u8, len: usize) -> MappingGuard {
        MappingGuard(crate::fault::Guard::new(start, len, false))
    }

    /// Whether a peer shrank the file and an access faulted (what was read since is zeros).
    pub fn truncated(&self) -> bool {
        self.0.truncated()
    }
}

/// Hooks for the crate's own tests, which show what the protocol's checks prevent and simulate
/// crashes. Never for programs.
pub mod hooks {
    use crate::payload;
    use crate::protocol::{load_acquire, read_latest, Sink, Slots};
    use crate::{Options, RawReader, Reader, SharedState, Writer};
    use core::mem::MaybeUninit;
    use core::sync::atomic::Ordering;

    /// Makes the creator abort the process after writing everything but the `ready` state, as
    /// a creator that dies mid-initialization would.
    pub fn crash_before_ready(mut opts: Options) -> Options {
        opts.crash_before_ready = true;
        opts
    }

    /// Copies the latest published slot WITHOUT the seqlock's consistency check, so tests can
    /// show that the check is what prevents torn reads.
    pub fn read_unvalidated<T: SharedState>(r: &Reader<T>) -> T {
        let seg = r.raw().segment();
        let v = load_acquire(seg.published());
        let (_, words) = seg.slot(seg.index().slot_of(v));
        let len = payload::words(core::mem::size_of::<T>());
        let mut out = MaybeUninit::<T>::uninit();
        payload::sink_into(&mut out).take(&words[..len]);
        // SAFETY: the sink received every one of the `len` words of a `T`, so every byte of
        // `out` is written; every bit pattern is a valid `T` (`T: SharedState`).
        unsafe { out.assume_init() }
    }

    /// One read attempt into `dst`, as [`Reader::read_into`] makes before it retries (for a
    /// one-word payload, the load of the `inline` word): `true` if the copy is consistent. For
    /// the comparison harness, which counts retries.
    #[inline(always)]
    pub fn read_attempt<T: SharedState>(r: &Reader<T>, dst: &mut T) -> bool {
        // SAFETY: `MaybeUninit<T>` has the layout of `T`; the attempt only writes bytes into
        // it, and every byte pattern is a valid `T` (`T: SharedState`), so `*dst` stays valid.
        let out = unsafe { &mut *(dst as *mut T as *mut MaybeUninit<T>) };
        r.first_attempt(out)
    }

    /// One read attempt as [`read_attempt`] makes, but copying word by word with relaxed
    /// atomic loads (the portable path, without the bulk copy): for benchmarks that measure
    /// what the bulk copy gains.
    #[inline(always)]
    pub fn read_attempt_word_by_word<T: SharedState>(r: &Reader<T>, dst: &mut T) -> bool {
        let len = payload::words(core::mem::size_of::<T>());
        let dst = dst as *mut T as *mut u64;
        let full = core::mem::size_of::<T>() / 8;
        read_latest(r.raw().segment(), len, |i, w: u64| {
            if i < full {
                // SAFETY: word `i < full` lies within `*dst`, which the caller lends us
                // mutably; any bytes are a valid `T` (`T: SharedState`).
                unsafe { dst.add(i).write_unaligned(w) }
            }
        })
        .is_some()
    }

    /// A bulk copy routine: `(src, dst, n)` (see [`copy_routines`]).
    pub type CopyRoutine = unsafe fn(*const u8, *mut u8, usize);

    /// Every bulk copy routine this CPU can run: name, routine `(src, dst, n)` and the
    /// smallest `n` it takes; "chosen" is the one reads and writes use, which picks per size.
    /// For the copy benchmark, which measures them against `memcpy`.
    ///
    /// Calling a routine is unsafe: `src` must be valid for reads and `dst` for writes of `n`
    /// bytes (at least the routine's smallest), the ranges must not overlap, and nothing else
    /// may write either range during the call.
    pub fn copy_routines() -> Vec<(&'static str, CopyRoutine, usize)> {
        crate::protocol::copy::routines()
    }

    /// Which routine "chosen" (see [`copy_routines`]) uses at which size on this CPU, in words.
    pub fn copy_plan() -> String {
        crate::protocol::copy::describe()
    }

    /// Publishes `value` as [`Writer::write`] does, but copying word by word with relaxed
    /// atomic stores (the portable path): for benchmarks that measure the bulk copy.
    ///
    /// # Panics
    /// If the size of `T` is not a multiple of 8 (the benchmarks use arrays of `u64`).
    #[inline(always)]
    pub fn write_word_by_word<T: SharedState>(w: &mut Writer<T>, value: &T) {
        assert_eq!(core::mem::size_of::<T>() % 8, 0);
        let len = payload::words(core::mem::size_of::<T>());
        let src = value as *const T as *const u64;
        w.raw_mut().publish(len, |i: usize| {
            // SAFETY: the protocol asks for words `i < len`, all within `*value` (its size is
            // `8 * len`), which is borrowed for the call and fully initialized (no padding).
            unsafe { src.add(i).read_unaligned() }
        });
    }

    /// The sequence word of every slot, in slot order: even when the slot is complete, odd
    /// while (or since) a write to it is in progress.
    pub fn slot_sequences(r: &RawReader) -> Vec<u64> {
        let seg = r.segment();
        (0..seg.index().count())
            .map(|i| seg.slot(i).0.load(Ordering::Relaxed))
            .collect()
    }

    /// Turns the SIGBUS guard off for every segment this process maps from now on, so tests
    /// can show that without it a peer's truncation kills the process.
    pub fn disable_truncation_guard() {
        crate::fault::disable();
    }

    /// The untyped reader under a typed one.
    pub fn raw<T: SharedState>(r: &Reader<T>) -> &RawReader {
        r.raw()
    }

    /// The untyped reader under a stream reader (for [`slot_sequences`]).
    pub fn stream_raw<T: SharedState>(r: &crate::StreamReader<T>) -> &RawReader {
        r.raw()
    }

    /// Makes every stream and queue wait in this process sleep on its futex for up to `slice`
    /// at a time instead of the 100 ms that bounds how long a missed wake-up can strand it, so
    /// that a test whose wait ends only by a wake-up shows every missing one.
    pub fn set_stream_wait_slice(slice: std::time::Duration) {
        let ms = u64::try_from(slice.as_millis()).unwrap_or(u64::MAX).max(1);
        crate::wait::WAIT_SLICE_OVERRIDE_MS.store(ms, Ordering::Relaxed);
    }

    /// Makes every asynchronous wait in this process (futures and wait sets armed from now
    /// on) sleep without the 100 ms slice that bounds a missed wake-up, so that a test sees
    /// every missed one as a hang.
    pub fn disable_async_wait_slice() {
        crate::wait::NO_SLICE.store(true, Ordering::Relaxed);
    }

    /// Times `set` collected its backend's outcomes (each a few system calls): a `ready()`
    /// collects once, however many handles are attached.
    pub fn wait_set_reaps(set: &crate::WaitSet) -> u64 {
        set.reaps()
    }

    /// System calls `set`'s backend made to start its waits sleeping (io_uring submissions,
    /// interruptions of a `futex_waitv` thread): one per `ready()` pass, however many waits it
    /// arms.
    pub fn wait_set_arm_syscalls(set: &crate::WaitSet) -> u64 {
        set.arm_syscalls()
    }

    /// Makes every waiter in this process (blocking or asynchronous) register without the
    /// waiter's `membarrier` barrier, so that a test can show the wake-ups it then misses.
    pub fn skip_waiter_barrier() {
        crate::wait::SKIP_BARRIER.store(true, Ordering::Relaxed);
    }

    /// The waiter count of the segment under `r` (the header's `waiters`).
    pub fn waiters(r: &RawReader) -> u32 {
        r.segment().header().waiters.load(Ordering::SeqCst)
    }

    /// Makes a queue consumer in this process kill its process (SIGKILL) right after a commit
    /// that owes a waiting producer a wake-up, before the wake-up, as a consumer killed at that
    /// moment would.
    pub fn kill_consumer_between_commit_and_wake() {
        crate::stream::KILL_BETWEEN_COMMIT_AND_WAKE.store(true, Ordering::Relaxed);
    }

    /// The sequence word of every slot of a queue, in slot order.
    pub fn queue_slot_sequences<T: SharedState>(c: &crate::QueueConsumer<T>) -> Vec<u64> {
        let seg = c.segment();
        (0..seg.index().count())
            .map(|i| seg.slot(i).0.load(Ordering::Relaxed))
            .collect()
    }
}
