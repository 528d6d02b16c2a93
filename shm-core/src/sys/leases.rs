//! Leases: the open-file-description locks a writer and a queue consumer hold, the query a
//! reader makes of them, and what a `fork` child does with the descriptors it inherited.

use super::cvt;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};

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

/// Takes the writer lease shared, as turn-taking writers hold it: a shared (read)
/// open-file-description lock on byte 0, which any number of descriptions hold at once but
/// which excludes the exclusive one of a single writer. On a description that holds the
/// exclusive lock, converts it, atomically (a creator that lets turn-taking writers in).
/// `Ok(false)` when another open file description holds it exclusively.
pub fn try_share_writer_lock(file: &File) -> io::Result<bool> {
    let fl = lock_struct(libc::F_RDLCK);
    // SAFETY: `file` is an open descriptor and `fl` a valid `flock` that outlives the call.
    match cvt(unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &fl) }) {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether some open file description other than `file`'s holds the writer lease, exclusive
/// or shared (turn-taking writers). Only queries: it takes no lock and disturbs no one.
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
