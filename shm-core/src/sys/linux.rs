//! Operating-system calls: named shared memory, files, memfd, OFD locks, futexes and memory
//! barriers on other processes' CPUs (`membarrier`).
//!
//! Every `unsafe` call into libc lives here and in the files next to it (`files.rs`: named
//! shared memory, files and memfds; `leases.rs`: OFD locks; `waiting.rs`: futexes and
//! `membarrier`; `mutex.rs`: the turn lock of turn-taking writers), behind small safe functions that take and return owned file descriptors and
//! `io::Result`s.

mod events;
mod files;
mod leases;
mod mutex;
mod waiting;

pub use events::{
    eventfd, eventfd_drain, eventfd_signal, futex_wait_shared, futex_waitv, futex_wake_private,
    has_futex_waitv, pidfd_open, poll_readable, FutexWaitv, FUTEX2_PRIVATE, FUTEX2_SIZE_U32,
};
pub use files::{
    allocate, file_open_nofollow, file_size, memfd, pid, reopen, seal_size, shm_name_is_directory,
    shm_open, shm_unlink, unlinked,
};
pub use leases::{
    identity, open_placeholder, replace_descriptor, try_lock_consumer, try_lock_writer,
    try_share_writer_lock, unlock_leases, writer_lock_held,
};
pub use mutex::{
    describe_lock_abi, mutex_consistent, mutex_init, mutex_lock, mutex_unlock, Locked, LOCK_ABI,
    LOCK_SIZE,
};
pub use waiting::{
    at_fork, barrier_on_registered_processes, futex_wait, futex_wake_all, is_barrier_target,
    register_as_barrier_target,
};

use std::io;

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Access wanted on a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read only.
    ReadOnly,
    /// Read and write.
    ReadWrite,
}

impl Access {
    fn flags(self) -> libc::c_int {
        match self {
            Access::ReadOnly => libc::O_RDONLY,
            Access::ReadWrite => libc::O_RDWR,
        }
    }
}

/// The page size.
pub fn page_size() -> usize {
    // SAFETY: `sysconf` with a valid name has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

// A `sigset_t` starts with the 64 bits the kernel uses (signals 1 to 64), which `SigAction`
// keeps as one word.
const _: () = assert!(std::mem::size_of::<libc::sigset_t>() >= 8);

/// A signal disposition as plain words (handler address, flags, mask), so that the SIGBUS
/// guard can keep copies of it in static atomics and read them inside its handler. Small, so
/// that the handler's frames fit on an alternate signal stack that already holds two kernel
/// signal frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SigAction {
    /// `sa_sigaction`/`sa_handler`: a function address, `SIG_DFL` or `SIG_IGN`.
    pub handler: usize,
    /// `sa_flags`.
    pub flags: libc::c_int,
    /// `sa_mask`: its first 64 bits, all the kernel keeps (signals 1 to 64), laid out as the C
    /// library lays them out.
    pub mask: u64,
}

impl SigAction {
    /// The action that calls `handler` with three arguments (`SA_SIGINFO`), on the alternate
    /// signal stack if the thread has one (`SA_ONSTACK`: the handlers it chains to, std's and
    /// Python's `faulthandler`'s, ask for it, and a handler called from ours runs on ours's
    /// stack), without blocking SIGBUS while it runs (`SA_NODEFER`: the handler sets the mask
    /// a chained handler expects itself), and restarting system calls if `restart` (to keep
    /// the previous action's `SA_RESTART` for a SIGBUS sent with `kill`). The mask is empty.
    pub fn new_handler(
        handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void),
        restart: bool,
    ) -> SigAction {
        let restart = if restart { libc::SA_RESTART } else { 0 };
        SigAction {
            handler: handler as usize,
            flags: libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER | restart,
            mask: 0,
        }
    }

    fn from_raw(raw: &libc::sigaction) -> SigAction {
        // SAFETY: `sigset_t` is plain data of at least 8 bytes (asserted above); the read is
        // unaligned anyway. The C library leaves the rest of a reported `sa_mask` undefined
        // (it copies its whole buffer, of which the kernel filled these 8 bytes).
        let mask = unsafe {
            std::ptr::read_unaligned(&raw.sa_mask as *const libc::sigset_t as *const u64)
        };
        SigAction {
            handler: raw.sa_sigaction,
            flags: raw.sa_flags,
            mask,
        }
    }

    fn to_raw(self) -> libc::sigaction {
        // SAFETY: all-zero bytes are a valid `sigaction` (integers, a mask, an optional
        // restorer that `sigaction` fills in).
        let mut raw: libc::sigaction = unsafe { std::mem::zeroed() };
        raw.sa_sigaction = self.handler;
        raw.sa_flags = self.flags;
        raw.sa_mask = self.sigset();
        raw
    }

    /// The mask as a `sigset_t` (all signals above 64 clear).
    fn sigset(&self) -> libc::sigset_t {
        // SAFETY: all-zero bytes are a valid (empty) `sigset_t`.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `sigset_t` is plain data of at least 8 bytes (asserted above); the write is
        // unaligned anyway.
        unsafe {
            std::ptr::write_unaligned(&mut set as *mut libc::sigset_t as *mut u64, self.mask)
        };
        set
    }

    /// Whether this action is the default disposition.
    pub fn is_default(&self) -> bool {
        self.handler == libc::SIG_DFL
    }

    /// Whether this action ignores the signal.
    pub fn is_ignore(&self) -> bool {
        self.handler == libc::SIG_IGN
    }

    /// Calls this action's handler (a function, not `SIG_DFL` or `SIG_IGN`) as the kernel
    /// would have: with `(sig, info, context)` if it asked for `SA_SIGINFO`, else with `sig`,
    /// and with its mask (plus `sig` unless `SA_NODEFER`) blocked while it runs.
    /// Async-signal-safe: two `pthread_sigmask` calls around the call.
    ///
    /// # Safety
    /// `self.handler` must be the address of a signal handler of this process of the kind
    /// `self.flags` says (it was read back from the kernel as SIGBUS's disposition), and
    /// `info` and `context` must be what the kernel passed to the handler now running.
    pub unsafe fn call(
        &self,
        sig: libc::c_int,
        info: *mut libc::siginfo_t,
        context: *mut libc::c_void,
    ) {
        let mut block = self.sigset();
        if self.flags & libc::SA_NODEFER == 0 {
            // SAFETY: `block` is a valid signal set and `sig` a valid signal number.
            unsafe { libc::sigaddset(&mut block, sig) };
        }
        // SAFETY: all-zero bytes are a valid (empty) `sigset_t`.
        let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: both sets are valid and writable/readable as required.
        let masked = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &block, &mut old) } == 0;
        if self.flags & libc::SA_SIGINFO != 0 {
            // SAFETY: the caller's contract: the handler is a three-argument signal handler
            // (`SA_SIGINFO`), and the arguments are those the kernel gave us.
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                unsafe { std::mem::transmute(self.handler) };
            f(sig, info, context);
        } else {
            // SAFETY: the caller's contract: the handler is a one-argument signal handler.
            let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(self.handler) };
            f(sig);
        }
        if masked {
            // SAFETY: `old` is the mask `pthread_sigmask` returned above.
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
        }
    }
}

/// SIGBUS's current disposition. Async-signal-safe (one `sigaction` call).
pub fn sigbus_action() -> Option<SigAction> {
    // SAFETY: all-zero bytes are a valid `sigaction`.
    let mut cur: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only queries; `cur` is a valid, writable `sigaction`.
    let rc = unsafe { libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut cur) };
    (rc == 0).then(|| SigAction::from_raw(&cur))
}

/// Installs `new` as SIGBUS's disposition and returns the one it replaced (read in the same
/// call, so no action installed in between is lost). Async-signal-safe.
///
/// # Safety
/// `new.handler` must be `SIG_DFL`, `SIG_IGN`, or an async-signal-safe handler of the kind
/// `new.flags` says that stays in the program for as long as it is installed.
pub unsafe fn set_sigbus_action(new: &SigAction) -> Option<SigAction> {
    let raw = new.to_raw();
    // SAFETY: all-zero bytes are a valid `sigaction`.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: `raw` is a valid action (the caller vouches for its handler); `old` is writable.
    let rc = unsafe { libc::sigaction(libc::SIGBUS, &raw, &mut old) };
    (rc == 0).then(|| SigAction::from_raw(&old))
}

/// Restores SIGBUS's default disposition, so that a fault that repeats when the running handler
/// returns kills the process as it would have without any handler. Async-signal-safe.
pub fn set_sigbus_default() {
    let dfl = SigAction {
        handler: libc::SIG_DFL,
        flags: 0,
        mask: 0,
    };
    // SAFETY: the default disposition has no handler to vouch for.
    unsafe { set_sigbus_action(&dfl) };
}

/// Sends SIGBUS to the calling thread. Async-signal-safe.
pub fn raise_sigbus() {
    // SAFETY: `raise` has no preconditions.
    unsafe { libc::raise(libc::SIGBUS) };
}

/// Whether `info` describes a fault on an address (the kernel raised SIGBUS for an access), as
/// opposed to a SIGBUS sent with `kill`, `tgkill` or `sigqueue` (codes <= 0).
///
/// # Safety
/// `info` must be null or point to the `siginfo_t` the kernel passed to a SIGBUS handler.
pub unsafe fn sigbus_fault_address(info: *const libc::siginfo_t) -> Option<usize> {
    // SAFETY: the caller's contract: null or a valid `siginfo_t`.
    let info = unsafe { info.as_ref() }?;
    if info.si_code != libc::BUS_ADRERR {
        return None;
    }
    // SAFETY: for a SIGBUS with `si_code == BUS_ADRERR` the kernel fills in `si_addr`.
    Some(unsafe { info.si_addr() } as usize)
}

/// The `si_code` of `info`, or `None` if `info` is null. Codes <= 0 mean a process sent the
/// signal (`kill`, `tgkill`, `sigqueue`); positive ones that the kernel raised it (or, for
/// this process only, that it queued it to itself with `rt_tgsigqueueinfo`).
///
/// # Safety
/// `info` must be null or point to the `siginfo_t` the kernel passed to a signal handler.
pub unsafe fn signal_code(info: *const libc::siginfo_t) -> Option<libc::c_int> {
    // SAFETY: the caller's contract: null or a valid `siginfo_t`.
    unsafe { info.as_ref() }.map(|i| i.si_code)
}

/// The calling thread's id. Async-signal-safe (one system call).
pub fn thread_id() -> usize {
    // SAFETY: `gettid` has no arguments and no preconditions.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) };
    usize::try_from(tid).unwrap_or(0)
}

/// Whether the thread `tid` of this process still exists. Async-signal-safe (one system call
/// that sends nothing: signal 0 only checks).
pub fn thread_alive(tid: usize) -> bool {
    let Ok(tid) = libc::pid_t::try_from(tid) else {
        return false;
    };
    // SAFETY: `tgkill` with signal 0 sends nothing; any ids are acceptable arguments.
    let rc = unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, 0) };
    rc == 0 || errno() != libc::ESRCH
}

/// The mask (see [`SigAction::mask`]) of the signal set holding `signals`, each at most 64.
pub fn sigset_bits(signals: &[libc::c_int]) -> u64 {
    // SAFETY: all-zero bytes are a valid `sigaction`.
    let mut raw: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: `sa_mask` is a valid, writable signal set.
    unsafe { libc::sigemptyset(&mut raw.sa_mask) };
    for &s in signals {
        // SAFETY: as above; an invalid signal number is refused with an error, not UB.
        unsafe { libc::sigaddset(&mut raw.sa_mask, s) };
    }
    SigAction::from_raw(&raw).mask
}

/// The calling thread's `errno` (a signal handler must leave it as it found it).
pub fn errno() -> libc::c_int {
    // SAFETY: `__errno_location` returns the calling thread's errno, always valid.
    unsafe { *libc::__errno_location() }
}

/// Sets the calling thread's `errno`.
pub fn set_errno(value: libc::c_int) {
    // SAFETY: as in `errno`.
    unsafe { *libc::__errno_location() = value };
}

/// Replaces the pages `[addr, addr + len)` of a mapping of ours with private zero pages,
/// readable, and writable if `writable` (as the mapping was). Async-signal-safe (one system
/// call). `false` if the kernel refused.
///
/// Only the SIGBUS guard calls this, with a page-aligned range inside a mapping this process
/// made and that stays mapped until the call returns (see `fault/mod.rs`): replacing its pages
/// changes what those addresses read, never which memory they belong to.
pub fn map_zero_pages(addr: usize, len: usize, writable: bool) -> bool {
    let prot = if writable {
        libc::PROT_READ | libc::PROT_WRITE
    } else {
        libc::PROT_READ
    };
    // SAFETY: the range is page-aligned and lies within one of our own mappings that stays
    // mapped for the whole call (the caller's contract above), so MAP_FIXED replaces only pages
    // of that mapping, which every user accesses through atomics (any byte value is valid); no
    // Rust reference is invalidated since the new pages are mapped at the same addresses with
    // the access the mapping had.
    let p = unsafe {
        libc::mmap(
            addr as *mut libc::c_void,
            len,
            prot,
            libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    p as usize == addr
}
