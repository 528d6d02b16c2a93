//! Operating-system calls: named shared memory, files, memfd, OFD locks, futexes and memory
//! barriers on other processes' CPUs (`membarrier`).
//!
//! Every `unsafe` call into libc lives here, behind small safe functions that take and return
//! owned file descriptors and `io::Result`s.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::Once;
use std::time::Duration;

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

/// `shm_open(name, O_CREAT|O_EXCL|O_RDWR, mode)`, or without `O_CREAT|O_EXCL` when `create` is
/// false. The descriptor is close-on-exec, and opened with `O_NONBLOCK` so that a FIFO planted
/// at the name cannot block the open (the caller refuses anything but a regular file; the C
/// library adds `O_NOFOLLOW`).
pub fn shm_open(name: &str, create: bool, access: Access, mode: u32) -> io::Result<File> {
    let cname = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut flags = access.flags() | libc::O_CLOEXEC | libc::O_NONBLOCK;
    if create {
        flags |= libc::O_CREAT | libc::O_EXCL;
    }
    // SAFETY: `cname` is a valid NUL-terminated string that outlives the call; flags and mode
    // are plain integers.
    let fd = cvt(unsafe { libc::shm_open(cname.as_ptr(), flags, mode as libc::mode_t) })?;
    // SAFETY: `fd` was just returned by a successful `shm_open`, so it is open and owned by
    // nobody else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Whether the shared-memory name `name` (already validated) is a directory in `/dev/shm`,
/// where Linux keeps named shared memory.
pub fn shm_name_is_directory(name: &str) -> bool {
    std::fs::symlink_metadata(format!("/dev/shm{name}")).is_ok_and(|m| m.is_dir())
}

/// `shm_unlink(name)`.
pub fn shm_unlink(name: &str) -> io::Result<()> {
    let cname = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `cname` is a valid NUL-terminated string that outlives the call.
    cvt(unsafe { libc::shm_unlink(cname.as_ptr()) })?;
    Ok(())
}

/// Opens (or exclusively creates) a regular file for a file-backed segment.
pub fn file_open(path: &Path, create: bool, access: Access, mode: u32) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = std::fs::OpenOptions::new();
    o.read(true).write(access == Access::ReadWrite);
    if create {
        o.create_new(true).mode(mode);
    }
    // O_NONBLOCK: opening a FIFO (or device) by mistake must not block; it is refused after.
    o.custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
}

/// [`file_open`] that refuses a symbolic link as the last component of `path` (`O_NOFOLLOW`,
/// `ELOOP`): a link planted at a segment's path must not redirect its writes elsewhere.
pub fn file_open_nofollow(
    path: &Path,
    create: bool,
    access: Access,
    mode: u32,
) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = std::fs::OpenOptions::new();
    o.read(true).write(access == Access::ReadWrite);
    if create {
        o.create_new(true).mode(mode);
    }
    o.custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)
}

/// Reserves the first `len` bytes of `file`'s storage (`posix_fallocate`), so that running out
/// of memory or disk is an error now rather than a SIGBUS at first touch. File systems that
/// cannot preallocate are left as they are.
pub fn allocate(file: &File, len: u64) -> io::Result<()> {
    // SAFETY: `file` is an open descriptor; offset and length are plain integers.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len as libc::off_t) };
    match rc {
        0 => Ok(()),
        libc::EOPNOTSUPP | libc::EINVAL => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// Seals a memfd's size (`F_SEAL_SHRINK | F_SEAL_GROW`): no process holding it can truncate it
/// under the others' mappings.
pub fn seal_size(file: &File) -> io::Result<()> {
    // SAFETY: `file` is an open memfd created with MFD_ALLOW_SEALING; the seals are constants.
    cvt(unsafe {
        libc::fcntl(
            file.as_raw_fd(),
            libc::F_ADD_SEALS,
            libc::F_SEAL_SHRINK | libc::F_SEAL_GROW,
        )
    })?;
    Ok(())
}

/// `memfd_create` for an anonymous segment shared with `fork` children.
pub fn memfd() -> io::Result<File> {
    let name = c"shm-state-anonymous";
    // SAFETY: `name` is a valid NUL-terminated string; the flags are constants.
    let fd = cvt(unsafe {
        libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
    })?;
    // SAFETY: `fd` was just returned by a successful `memfd_create`; nobody else owns it.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Opens a new open file description for the same file as `file` (through `/proc/self/fd`),
/// so that locks taken or probed through it are distinct from `file`'s.
pub fn reopen(file: &File, access: Access) -> io::Result<File> {
    let path = format!("/proc/self/fd/{}", file.as_raw_fd());
    file_open(Path::new(&path), false, access, 0)
}

fn lock_struct(l_type: libc::c_int) -> libc::flock {
    // SAFETY: `flock` is a plain C struct of integers, for which all-zero bytes are valid.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = l_type as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = 0;
    fl.l_len = 1;
    fl
}

/// Takes the writer lease: an exclusive open-file-description lock on byte 0, released by the
/// kernel when the last descriptor of this open file description closes (including at process
/// death). `Ok(false)` when another open file description holds it.
pub fn try_lock_writer(file: &File) -> io::Result<bool> {
    let fl = lock_struct(libc::F_WRLCK);
    // SAFETY: `file` is an open descriptor and `fl` a valid `flock` that outlives the call.
    match cvt(unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &fl) }) {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether some open file description other than `file`'s holds the writer lease. Only
/// queries: it takes no lock and disturbs no one.
pub fn writer_lock_held(file: &File) -> io::Result<bool> {
    let mut fl = lock_struct(libc::F_WRLCK);
    // SAFETY: `file` is an open descriptor; `fl` is a valid `flock` the kernel may overwrite.
    cvt(unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) })?;
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}

/// Takes the queue consumer's lease: an exclusive open-file-description lock on byte 1 (the
/// writer lease is byte 0), released by the kernel as the writer lease is. `Ok(false)` when
/// another open file description holds it.
pub fn try_lock_consumer(file: &File) -> io::Result<bool> {
    let mut fl = lock_struct(libc::F_WRLCK);
    fl.l_start = 1;
    // SAFETY: `file` is an open descriptor and `fl` a valid `flock` that outlives the call.
    match cvt(unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &fl) }) {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Releases whatever lease (writer, consumer) `file`'s open file description holds: locks on
/// bytes 0 and 1 (`F_UNLCK`; nothing happens for a byte it does not hold). Releasing them
/// before the descriptor is closed means a `fork` child that still holds a copy of the
/// descriptor does not keep them.
pub fn unlock_leases(file: &File) -> io::Result<()> {
    let mut fl = lock_struct(libc::F_UNLCK);
    fl.l_len = 2;
    // SAFETY: `file` is an open descriptor and `fl` a valid `flock` that outlives the call.
    cvt(unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &fl) })?;
    Ok(())
}

/// Makes descriptor `fd` refer to what `placeholder` refers to, close-on-exec (`dup3`): the
/// open file description `fd` referred to loses this reference. Async-signal-safe (one system
/// call), for a `fork` child handler; errors are ignored, as such a handler can report none.
///
/// # Safety
/// The caller owns descriptor `fd` (it stands in for the owner, which will close it): any
/// other code using the number `fd` would find a different file behind it afterwards.
/// `placeholder` may be any number: if it is not open, `dup3` fails with EBADF and changes
/// nothing.
pub unsafe fn replace_descriptor(placeholder: RawFd, fd: RawFd) {
    // SAFETY: `dup3` takes two integers and a flag and touches no memory; on a bad descriptor
    // it fails and changes nothing. Replacing `fd` is the caller's to decide: it owns `fd`.
    unsafe { libc::dup3(placeholder, fd, libc::O_CLOEXEC) };
}

/// The identity (device, inode) of the file descriptor `fd` refers to, or `None` if it is not
/// open. Async-signal-safe (one `fstat`), for a `fork` child handler.
pub fn identity(fd: RawFd) -> Option<(u64, u64)> {
    // SAFETY: `stat` is a plain C struct of integers, for which all-zero bytes are valid.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fstat` only writes `st`, which outlives the call; any `fd` is allowed (a bad
    // one fails with EBADF).
    let ok = unsafe { libc::fstat(fd, &mut st) } == 0;
    ok.then_some((st.st_dev, st.st_ino))
}

/// Opens a descriptor that refers to no lease, close-on-exec, to stand in for a leased one
/// (see [`replace_descriptor`]): `/dev/null`, or an empty memfd where there is none; -1 if
/// neither opens. Async-signal-safe (`open`, `memfd_create`), for a `fork` child handler. The
/// caller owns the returned descriptor.
pub fn open_placeholder() -> RawFd {
    // SAFETY: the path is a NUL-terminated constant; the flags are constants.
    let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd >= 0 {
        return fd;
    }
    // SAFETY: the name is a NUL-terminated constant; the flag is a constant.
    unsafe { libc::memfd_create(c"shm-state-placeholder".as_ptr(), libc::MFD_CLOEXEC) }
}

/// Whether `file`'s name was removed (`st_nlink == 0`): a segment opened by name, then
/// removed by someone else, has no name left for anyone to open.
pub fn unlinked(file: &File) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    Ok(file.metadata()?.nlink() == 0)
}

/// The size of the file, from `fstat`.
pub fn file_size(file: &File) -> io::Result<u64> {
    Ok(file.metadata()?.len())
}

/// The calling process's id.
pub fn pid() -> u32 {
    std::process::id()
}

/// Blocks while `*word == expected`, at most `timeout`, on a process-shared futex.
///
/// Returns early on a wake-up, a changed value, a signal or a spurious wake-up; callers
/// re-check their condition.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a valid, aligned 32-bit atomic that lives in shared memory mapped for
    // the duration of the call; FUTEX_WAIT (not private) only reads it; `ts` outlives the call.
    // The result is deliberately ignored: every outcome (woken, EAGAIN, EINTR, ETIMEDOUT) makes
    // the caller re-check.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Wakes every process blocked in [`futex_wait`] on `word`.
pub fn futex_wake_all(word: &AtomicU32) {
    // SAFETY: `word` is a valid, aligned 32-bit atomic in mapped shared memory; FUTEX_WAKE
    // does not access it beyond identifying the futex.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// `membarrier` commands, from <linux/membarrier.h>.
const MEMBARRIER_CMD_QUERY: libc::c_int = 0;
const MEMBARRIER_CMD_GLOBAL_EXPEDITED: libc::c_int = 1 << 1;
const MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED: libc::c_int = 1 << 2;

/// [`BARRIER_TARGET`] and [`BARRIER_ISSUER`]: not known yet, yes, no.
const UNKNOWN: u8 = 0;
const YES: u8 = 1;
const NO: u8 = 2;

/// Whether this process is registered as a target of [`barrier_on_registered_processes`].
static BARRIER_TARGET: AtomicU8 = AtomicU8::new(UNKNOWN);
/// Whether this process can issue [`barrier_on_registered_processes`] (`UNKNOWN` until the
/// first try).
static BARRIER_ISSUER: AtomicU8 = AtomicU8::new(UNKNOWN);

/// `membarrier(cmd, 0, 0)`: its result, or -1.
fn membarrier(cmd: libc::c_int) -> libc::c_long {
    // SAFETY: membarrier takes two integers and a CPU id that the commands used here ignore;
    // it reads and writes no memory of ours.
    unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            cmd,
            0 as libc::c_uint,
            0 as libc::c_int,
        )
    }
}

/// Registers this process, once, as a target of the memory barriers other processes issue
/// with [`barrier_on_registered_processes`] (`MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED`), and
/// returns whether it is one. `false` where the kernel has no `membarrier` or a sandbox
/// forbids it. Only the first call in a process makes system calls.
///
/// A registration holds for every thread of the process, until it calls `exec`; a child made
/// by `fork` registers again (an `atfork` handler), and is not a target if that fails.
pub fn register_as_barrier_target() -> bool {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        let needed = MEMBARRIER_CMD_GLOBAL_EXPEDITED | MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED;
        let supported = membarrier(MEMBARRIER_CMD_QUERY);
        let registered = supported >= 0
            && supported & libc::c_long::from(needed) == libc::c_long::from(needed)
            && membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) == 0;
        if registered {
            // SAFETY: `register_child_again` is an `extern "C" fn()` that stays in the program;
            // it makes one system call and one atomic store, both allowed after `fork`.
            let handler = unsafe { libc::pthread_atfork(None, None, Some(register_child_again)) };
            if handler != 0 {
                // Without the handler a child could believe it is registered when it is not.
                BARRIER_TARGET.store(NO, Ordering::Relaxed);
                return;
            }
        }
        BARRIER_TARGET.store(if registered { YES } else { NO }, Ordering::Relaxed);
    });
    is_barrier_target()
}

/// Registers `fork` handlers (`pthread_atfork`): `prepare` runs in the parent before each
/// fork, `parent` in the parent after it, `child` in the child. Handlers stay for the life of
/// the process; `child` may only make async-signal-safe calls.
pub fn at_fork(
    prepare: extern "C" fn(),
    parent: extern "C" fn(),
    child: extern "C" fn(),
) -> io::Result<()> {
    // SAFETY: the handlers are `extern "C" fn()`s that stay in the program; what they may do
    // after `fork` is the caller's contract above.
    match unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) } {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// The `fork` child's half of [`register_as_barrier_target`]: the child is a new process,
/// registered only if it registers itself.
extern "C" fn register_child_again() {
    let registered = membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) == 0;
    BARRIER_TARGET.store(if registered { YES } else { NO }, Ordering::Relaxed);
}

/// Whether [`register_as_barrier_target`] registered this process. No system call: one load.
///
/// Relaxed: the store it reads was made after the registration's system call returned, and
/// from then on the kernel treats every thread of the process as a target.
#[inline(always)]
pub fn is_barrier_target() -> bool {
    BARRIER_TARGET.load(Ordering::Relaxed) == YES
}

/// Makes every thread of every process registered by [`register_as_barrier_target`] execute a
/// full memory barrier, and this thread too (`MEMBARRIER_CMD_GLOBAL_EXPEDITED`): a thread
/// running when this is called is interrupted for it, one not running gets it from the
/// scheduler. Returns whether the kernel did it; after the first failure (no `membarrier`, or
/// a sandbox forbids it) it no longer tries.
pub fn barrier_on_registered_processes() -> bool {
    if BARRIER_ISSUER.load(Ordering::Relaxed) == NO {
        return false;
    }
    let done = membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0;
    BARRIER_ISSUER.store(if done { YES } else { NO }, Ordering::Relaxed);
    done
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
