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
pub fn replace_descriptor(placeholder: RawFd, fd: RawFd) {
    // SAFETY: `dup3` takes two integers and a flag; on bad descriptors it fails with EBADF
    // and changes nothing. The caller owns `fd` (it only stands in for it) and keeps
    // `placeholder` open.
    unsafe { libc::dup3(placeholder, fd, libc::O_CLOEXEC) };
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

/// Whether SIGBUS has its default disposition (or is ignored, which the kernel overrides for
/// faults): then nobody but us handles it.
pub fn sigbus_is_default() -> bool {
    // SAFETY: `sigaction` is a plain C struct of integers and a mask, for which all-zero bytes
    // are valid.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only queries; `old` is a valid, writable `sigaction`.
    let rc = unsafe { libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut old) };
    rc != 0 || old.sa_sigaction == libc::SIG_DFL || old.sa_sigaction == libc::SIG_IGN
}

/// A signal disposition, as `sigaction` reports it.
pub struct SignalAction(libc::sigaction);

// SAFETY: a `sigaction` is plain data (a handler address, flags and a signal mask); the
// pointer-sized fields are addresses of code, not of data another thread could own.
unsafe impl Send for SignalAction {}
// SAFETY: as for `Send`; it is only ever read after it is stored.
unsafe impl Sync for SignalAction {}

/// SIGBUS's current disposition.
pub fn sigbus_action() -> Option<SignalAction> {
    // SAFETY: all-zero bytes are a valid `sigaction`.
    let mut cur: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only queries; `cur` is a valid, writable `sigaction`.
    let rc = unsafe { libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut cur) };
    (rc == 0).then_some(SignalAction(cur))
}

/// Re-installs `action` for SIGBUS if SIGBUS has its default disposition now (a chained
/// handler reset it). Async-signal-safe: two `sigaction` calls.
pub fn restore_sigbus_if_default(action: &SignalAction) {
    // SAFETY: all-zero bytes are a valid `sigaction`.
    let mut cur: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only queries; `cur` is a valid, writable `sigaction`.
    let rc = unsafe { libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut cur) };
    if rc == 0 && cur.sa_sigaction == libc::SIG_DFL {
        // SAFETY: `action.0` is the disposition the signal registry installed, read back from
        // the kernel, so it is a valid action whose handler is still in this program.
        unsafe { libc::sigaction(libc::SIGBUS, &action.0, std::ptr::null_mut()) };
    }
}

/// Replaces the pages `[addr, addr + len)` of a mapping of ours with private zero pages.
/// Async-signal-safe (one system call). `false` if the kernel refused.
///
/// Only the SIGBUS guard calls this, with a page-aligned range inside a mapping this process
/// made and still owns (see `fault.rs`): replacing its pages changes what those addresses read,
/// never which memory they belong to.
pub fn map_zero_pages(addr: usize, len: usize) -> bool {
    // SAFETY: the range is page-aligned and lies within one of our own live mappings (the
    // caller's contract above), so MAP_FIXED replaces only pages of that mapping, which every
    // user accesses through atomics (any byte value is valid); no Rust reference is
    // invalidated since the new pages are readable and writable at the same addresses.
    let p = unsafe {
        libc::mmap(
            addr as *mut libc::c_void,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    p as usize == addr
}

/// Restores SIGBUS's default disposition and raises it: the process dies of SIGBUS as if no
/// handler had been installed (for a fault, the faulting access repeats once the handler
/// returns and the kernel delivers the pending signal). Async-signal-safe.
pub fn die_of_sigbus() {
    // SAFETY: `sigaction` is a plain C struct for which all-zero bytes are valid.
    let mut dfl: libc::sigaction = unsafe { std::mem::zeroed() };
    dfl.sa_sigaction = libc::SIG_DFL;
    // SAFETY: `dfl` is a valid action (default disposition, empty mask); no old action wanted.
    unsafe { libc::sigaction(libc::SIGBUS, &dfl, std::ptr::null_mut()) };
    // SAFETY: `raise` has no preconditions; SIGBUS is blocked while its handler runs, so it
    // stays pending and is delivered, with the default action, when the handler returns.
    unsafe { libc::raise(libc::SIGBUS) };
}
