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
