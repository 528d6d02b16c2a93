//! Named shared memory, files and memfds: opening, creating, sizing and sealing the files
//! segments live in.

use super::{cvt, Access};
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::Path;

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
