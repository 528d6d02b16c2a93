//! The turn lock of turn-taking writers: a process-shared, robust, priority-inheriting,
//! error-checking `pthread_mutex_t` that lives in a segment's header, and the tag that names
//! its binary layout.
//!
//! Robust: when the thread that holds it dies (its process is killed), the kernel marks it
//! (the robust futex list) and the next locker gets `EOWNERDEAD`; that locker repairs what
//! the dead owner left and calls `pthread_mutex_consistent`. Unlocking it without doing so
//! would make it `ENOTRECOVERABLE` for good, so callers never do. Priority-inheriting: a
//! low-priority writer holding a turn runs at the priority of the highest writer waiting for
//! it. Error-checking: a thread that locks it twice gets `EDEADLK` instead of hanging.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The C library code in [`LOCK_ABI`].
const LIBC: u32 = if cfg!(target_env = "gnu") {
    1
} else if cfg!(target_env = "musl") {
    2
} else {
    0xff
};

/// The architecture code in [`LOCK_ABI`].
const ARCH: u32 = if cfg!(target_arch = "x86_64") {
    1
} else if cfg!(target_arch = "aarch64") {
    2
} else {
    0xff
};

/// The size of this program's `pthread_mutex_t`.
pub const LOCK_SIZE: usize = core::mem::size_of::<libc::pthread_mutex_t>();

/// This program's turn-lock ABI, as stored in a turn-taking segment's header: the C library
/// (byte 3: 1 glibc, 2 musl), the architecture (byte 2: 1 x86-64, 2 aarch64) and the size of
/// `pthread_mutex_t` (bytes 0 and 1). Programs share a turn lock only if their tags are equal.
pub const LOCK_ABI: u32 = (LIBC << 24) | (ARCH << 16) | LOCK_SIZE as u32;

/// A tag of [`LOCK_ABI`]'s form in words: "glibc x86_64 pthread_mutex_t 40 bytes".
pub fn describe_lock_abi(tag: u32) -> String {
    let libc = match tag >> 24 {
        1 => "glibc",
        2 => "musl",
        _ => "unknown C library",
    };
    let arch = match (tag >> 16) & 0xff {
        1 => "x86_64",
        2 => "aarch64",
        _ => "unknown architecture",
    };
    format!("{libc} {arch} pthread_mutex_t {} bytes", tag & 0xffff)
}

/// How a lock was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Locked {
    /// From a previous owner that unlocked it.
    Clean,
    /// From a previous owner that died holding it (`EOWNERDEAD`): the caller owns it, must
    /// repair what the owner left, then call [`mutex_consistent`] before unlocking.
    OwnerDied,
}

fn check(ret: libc::c_int) -> io::Result<()> {
    match ret {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// Initializes the mutex at `m`: process-shared, robust, priority-inheriting, error-checking.
///
/// # Safety
/// `m` points to [`LOCK_SIZE`] writable bytes, aligned for a `pthread_mutex_t`, that stay
/// mapped for as long as any process uses the mutex, and that no thread uses as a mutex during
/// the call.
pub unsafe fn mutex_init(m: *mut libc::pthread_mutex_t) -> io::Result<()> {
    // SAFETY: all-zero bytes are a valid (not yet initialized) attribute object for `init`.
    let mut attr: libc::pthread_mutexattr_t = unsafe { core::mem::zeroed() };
    // SAFETY: `attr` is a local the call initializes.
    check(unsafe { libc::pthread_mutexattr_init(&mut attr) })?;
    let set = |attr: &mut libc::pthread_mutexattr_t| -> io::Result<()> {
        // SAFETY: `attr` was initialized above; the values are the documented constants.
        check(unsafe { libc::pthread_mutexattr_setpshared(attr, libc::PTHREAD_PROCESS_SHARED) })?;
        // SAFETY: as above.
        check(unsafe { libc::pthread_mutexattr_setrobust(attr, libc::PTHREAD_MUTEX_ROBUST) })?;
        // SAFETY: as above.
        check(unsafe { libc::pthread_mutexattr_setprotocol(attr, libc::PTHREAD_PRIO_INHERIT) })?;
        // SAFETY: as above.
        check(unsafe { libc::pthread_mutexattr_settype(attr, libc::PTHREAD_MUTEX_ERRORCHECK) })
    };
    let made = set(&mut attr).and_then(|()| {
        // SAFETY: the caller guarantees `m` is valid, aligned and unused as a mutex; `attr`
        // is initialized.
        check(unsafe { libc::pthread_mutex_init(m, &attr) })
    });
    // SAFETY: `attr` was initialized and is not used after this.
    unsafe { libc::pthread_mutexattr_destroy(&mut attr) };
    made
}

/// `pthread_mutex_clocklock` (glibc 2.30 and later), looked up once at run time so that the
/// program also runs on an older C library: 0 not looked up yet, 1 absent.
static CLOCKLOCK: AtomicUsize = AtomicUsize::new(0);

type ClockLock = unsafe extern "C" fn(
    *mut libc::pthread_mutex_t,
    libc::clockid_t,
    *const libc::timespec,
) -> libc::c_int;

fn clocklock() -> Option<ClockLock> {
    let mut f = CLOCKLOCK.load(Ordering::Relaxed);
    if f == 0 {
        // SAFETY: `dlsym` with the default handle and a NUL-terminated name only looks up.
        let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"pthread_mutex_clocklock".as_ptr()) };
        f = if p.is_null() { 1 } else { p as usize };
        CLOCKLOCK.store(f, Ordering::Relaxed);
    }
    // SAFETY: `f` is the address of the C library's `pthread_mutex_clocklock`, whose C type
    // (`int (pthread_mutex_t *, clockid_t, const struct timespec *)`) `ClockLock` declares.
    (f > 1).then(|| unsafe { core::mem::transmute::<usize, ClockLock>(f) })
}

/// `clock` now plus `d`, as an absolute `timespec`.
fn clock_after(clock: libc::clockid_t, d: Duration) -> libc::timespec {
    // SAFETY: all-zero bytes are a valid `timespec`.
    let mut now: libc::timespec = unsafe { core::mem::zeroed() };
    // SAFETY: `now` outlives the call, which only writes it; both clocks always exist.
    unsafe { libc::clock_gettime(clock, &mut now) };
    let secs = d.as_secs().min(i32::MAX as u64 / 2) as libc::time_t;
    let mut t = libc::timespec {
        tv_sec: now.tv_sec.saturating_add(secs),
        tv_nsec: now.tv_nsec + d.subsec_nanos() as libc::c_long,
    };
    if t.tv_nsec >= 1_000_000_000 {
        t.tv_sec += 1;
        t.tv_nsec -= 1_000_000_000;
    }
    t
}

/// Locks the mutex at `m`, waiting at most `timeout` (`None`: without limit). `Ok(None)` when
/// the time ran out. `EDEADLK` if this thread holds it already; `ENOTRECOVERABLE` if some
/// program unlocked it without making it consistent.
///
/// The deadline is on `CLOCK_MONOTONIC` (`pthread_mutex_clocklock`); where the C library or the
/// kernel cannot wait on that clock for a priority-inheriting mutex (glibc before 2.30, or a
/// kernel without `FUTEX_LOCK_PI2`), on `CLOCK_REALTIME` (`pthread_mutex_timedlock`), in rounds
/// that each re-check the monotonic deadline, so that a jump of the wall clock cannot stretch
/// the wait.
///
/// # Safety
/// `m` points to a mutex initialized by [`mutex_init`] (in this or another process) that stays
/// mapped during the call and, while this thread holds it, until it is unlocked or the thread
/// exits.
pub unsafe fn mutex_lock(
    m: *mut libc::pthread_mutex_t,
    timeout: Option<Duration>,
) -> io::Result<Option<Locked>> {
    let outcome = |ret: libc::c_int| match ret {
        0 => Ok(Some(Locked::Clean)),
        libc::EOWNERDEAD => Ok(Some(Locked::OwnerDied)),
        libc::ETIMEDOUT => Ok(None),
        e => Err(io::Error::from_raw_os_error(e)),
    };
    let Some(timeout) = timeout else {
        // SAFETY: the caller guarantees `m` is an initialized mutex that stays mapped.
        return outcome(unsafe { libc::pthread_mutex_lock(m) });
    };
    let deadline = Instant::now().checked_add(timeout);
    if let Some(clocklock) = clocklock() {
        let at = clock_after(libc::CLOCK_MONOTONIC, timeout);
        // SAFETY: as above; `at` outlives the call.
        let ret = unsafe { clocklock(m, libc::CLOCK_MONOTONIC, &at) };
        if ret != libc::EINVAL {
            return outcome(ret);
        }
    }
    // Bounded: each round ends at its realtime deadline, after which the monotonic one is
    // checked again; a forward jump of the wall clock only ends a round early.
    loop {
        let left = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()),
            None => Duration::from_secs(i32::MAX as u64 / 4),
        };
        let at = clock_after(libc::CLOCK_REALTIME, left);
        // SAFETY: as above; `at` outlives the call.
        match outcome(unsafe { libc::pthread_mutex_timedlock(m, &at) })? {
            None if !left.is_zero() => continue,
            other => return Ok(other),
        }
    }
}

/// Marks the mutex at `m`, taken with [`Locked::OwnerDied`], consistent again.
///
/// # Safety
/// `m` points to an initialized mutex this thread holds.
pub unsafe fn mutex_consistent(m: *mut libc::pthread_mutex_t) -> io::Result<()> {
    // SAFETY: the caller guarantees it.
    check(unsafe { libc::pthread_mutex_consistent(m) })
}

/// Unlocks the mutex at `m`.
///
/// # Safety
/// `m` points to an initialized mutex this thread holds, consistent (never one taken with
/// [`Locked::OwnerDied`] and not made consistent since).
pub unsafe fn mutex_unlock(m: *mut libc::pthread_mutex_t) -> io::Result<()> {
    // SAFETY: the caller guarantees it.
    check(unsafe { libc::pthread_mutex_unlock(m) })
}
