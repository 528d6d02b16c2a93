//! Descriptors and calls for asynchronous waiting: eventfds, pidfds, `poll`, `futex_waitv`
//! and private futexes (a waiting thread's own control word).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// `futex_waitv`'s system call number (the same on x86-64 and aarch64), Linux 5.16+.
const SYS_FUTEX_WAITV: libc::c_long = 449;
/// `futex2` flags: a 32-bit word, and (for words of this process only) private.
pub const FUTEX2_SIZE_U32: u32 = 0x02;
/// See [`FUTEX2_SIZE_U32`].
pub const FUTEX2_PRIVATE: u32 = 128;

/// One word of a [`futex_waitv`] call (`struct futex_waitv`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FutexWaitv {
    /// The value the word must hold for the call to sleep.
    pub val: u64,
    /// The word's address.
    pub uaddr: u64,
    /// [`FUTEX2_SIZE_U32`], and [`FUTEX2_PRIVATE`] for a word of this process only.
    pub flags: u32,
    /// Zero.
    pub reserved: u32,
}

/// A new non-blocking, close-on-exec eventfd counting from 0.
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: `eventfd` takes two integers; it returns a new descriptor or -1.
    let fd = super::cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
    // SAFETY: `fd` is a new descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds 1 to the eventfd `fd`, making it readable.
pub fn eventfd_signal(fd: BorrowedFd<'_>) {
    let one = 1u64.to_ne_bytes();
    // SAFETY: writes 8 bytes from a live buffer to a descriptor we borrow. A full counter
    // (EAGAIN) is already readable, which is all a signal needs.
    unsafe { libc::write(fd.as_raw_fd(), one.as_ptr().cast(), 8) };
}

/// Resets the non-blocking eventfd `fd` to 0; whether it was signalled.
pub fn eventfd_drain(fd: BorrowedFd<'_>) -> bool {
    let mut buf = [0u8; 8];
    // SAFETY: reads at most 8 bytes into a live buffer of 8 from a descriptor we borrow.
    unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), 8) == 8 }
}

/// Waits until one of `fds` is readable or `timeout` passes (`None`: no bound); the indexes
/// of the readable ones (also those that report an error or a hang-up). Interrupted by a
/// signal, it returns what is ready (maybe nothing).
pub fn poll_readable(fds: &[RawFd], timeout: Option<Duration>) -> Vec<usize> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = timeout.map_or(-1, |t| {
        libc::c_int::try_from(t.as_nanos().div_ceil(1_000_000)).unwrap_or(libc::c_int::MAX)
    });
    // SAFETY: `pfds` is a live array of `pfds.len()` pollfds that `poll` may write.
    let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
    if n <= 0 {
        return Vec::new();
    }
    (0..pfds.len()).filter(|&i| pfds[i].revents != 0).collect()
}

/// A pidfd for process `pid` (`pidfd_open`, Linux 5.3+): readable once the process exits.
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    // SAFETY: `pidfd_open` takes a pid and flags; it returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0 as libc::c_uint) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor nobody else owns (and fits an int: it is a descriptor).
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Sleeps until one of `words` is woken or no longer holds its value, or `timeout` passes
/// (`None`: no bound; the clock is `CLOCK_MONOTONIC`): `Ok(index)` of a woken word, or the
/// error (`EAGAIN`: a word held another value; `ETIMEDOUT`; `EINTR`; `ENOSYS` before 5.16).
///
/// # Safety
/// Every `uaddr` must be the address of a live, aligned 32-bit word for the whole call (the
/// kernel reads it); a word flagged private must belong to this process.
pub unsafe fn futex_waitv(words: &[FutexWaitv], timeout: Option<Duration>) -> io::Result<usize> {
    let deadline = timeout.map(|t| {
        // SAFETY: all-zero bytes are a valid `timespec`; `clock_gettime` writes it.
        let mut now: libc::timespec = unsafe { std::mem::zeroed() };
        // SAFETY: a valid clock id and a writable `timespec`.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
        let nanos = now.tv_nsec as u64 + u64::from(t.subsec_nanos());
        libc::timespec {
            tv_sec: now
                .tv_sec
                .saturating_add(t.as_secs().min(i32::MAX as u64) as libc::time_t)
                .saturating_add((nanos / 1_000_000_000) as libc::time_t),
            tv_nsec: (nanos % 1_000_000_000) as libc::c_long,
        }
    });
    let ts = deadline
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `words` is a live array of `words.len()` entries whose addresses the caller
    // vouches for; `ts` is null or a live `timespec`.
    let rc = unsafe {
        libc::syscall(
            SYS_FUTEX_WAITV,
            words.as_ptr(),
            words.len() as libc::c_uint,
            0 as libc::c_uint,
            ts,
            libc::CLOCK_MONOTONIC,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}

/// Whether the kernel has `futex_waitv` (a call with no words: `EINVAL` if it has, `ENOSYS`
/// if not).
pub fn has_futex_waitv() -> bool {
    // SAFETY: an empty array names no word.
    let r = unsafe { futex_waitv(&[], Some(Duration::ZERO)) };
    !matches!(r, Err(e) if e.raw_os_error() == Some(libc::ENOSYS))
}

/// Wakes every thread of this process blocked on `word` (private futex, also a private
/// [`futex_waitv`] word).
pub fn futex_wake_private(word: &AtomicU32) {
    // SAFETY: `word` is a live, aligned 32-bit atomic; FUTEX_WAKE only identifies the futex.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// A process-shared [`futex_wait`](super::futex_wait) with no bound when `timeout` is `None`.
pub fn futex_wait_shared(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    match timeout {
        Some(t) => super::futex_wait(word, expected, t),
        None => super::futex_wait(word, expected, Duration::from_secs(i32::MAX as u64)),
    }
}
