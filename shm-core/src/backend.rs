//! [`Backend`]: where a segment's memory lives, and how a name is opened, created or removed
//! in each.

use crate::error::{Error, Result};
use crate::format::validate_shm_name;
use crate::sys::{self, Access};
use std::fs::File;
use std::io;
use std::path::Path;

/// Where a segment's memory lives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// POSIX named shared memory (`shm_open`, under `/dev/shm` on Linux); names look like
    /// `"/robot-state"`. The default.
    #[default]
    Shm,
    /// A regular file, mapped shared: the state survives restarts (and reboots, on a disk).
    /// Names are file paths; remove one with `std::fs::remove_file`.
    File,
    /// Anonymous memory (`memfd_create`) shared with `fork` children: no name, gone when the
    /// last process holding it exits. Create with
    /// [`Options::create_anonymous`](crate::Options::create_anonymous) and give children a
    /// [`Writer::reader`](crate::Writer::reader) made before forking.
    Anonymous,
}

/// Classifies an error from opening, creating or removing `name`.
fn classify(action: &'static str, name: &str, e: io::Error) -> Error {
    let name = name.to_string();
    match e.raw_os_error() {
        Some(libc::ENOENT) => Error::NotFound { name },
        Some(libc::EEXIST) => Error::AlreadyExists { name },
        Some(libc::EACCES) | Some(libc::EPERM) => Error::PermissionDenied { name },
        // A symbolic link at the name (opened with `O_NOFOLLOW`), or a directory: something
        // planted there, not a segment.
        Some(libc::ELOOP) | Some(libc::EISDIR) => Error::NotASegment { found: 0 },
        Some(libc::EINVAL) | Some(libc::ENAMETOOLONG) => Error::InvalidName {
            name,
            reason: "the operating system refused the name",
        },
        _ => Error::Io {
            action,
            name,
            source: e,
        },
    }
}

/// Keeps `file` only if it is a regular file. A FIFO, device, socket or directory planted at a
/// segment's name is refused with `NotASegment` (it was opened with `O_NONBLOCK`, so opening it
/// did not block either).
fn refuse_unless_regular(file: File, action: &'static str, name: &str) -> Result<File> {
    let meta = file.metadata().map_err(Error::io(action, name))?;
    if meta.is_file() {
        Ok(file)
    } else {
        Err(Error::NotASegment { found: 0 })
    }
}

impl Backend {
    /// Opens the segment file `name` (creating it exclusively, with permission bits `mode`, if
    /// `create`).
    pub(crate) fn open(&self, name: &str, create: bool, access: Access, mode: u32) -> Result<File> {
        let action = if create { "creating" } else { "opening" };
        match self {
            Backend::Shm => {
                validate_shm_name(name)?;
                let file = sys::shm_open(name, create, access, mode).map_err(|e| {
                    // The C library reports a directory at a valid name as EINVAL.
                    if e.raw_os_error() == Some(libc::EINVAL) && sys::shm_name_is_directory(name) {
                        Error::NotASegment { found: 0 }
                    } else {
                        classify(action, name, e)
                    }
                })?;
                refuse_unless_regular(file, action, name)
            }
            Backend::File => {
                if name.is_empty() || name.contains('\0') {
                    return Err(Error::InvalidName {
                        name: name.to_string(),
                        reason: "a file path is non-empty and has no NUL",
                    });
                }
                let file = sys::file_open_nofollow(Path::new(name), create, access, mode)
                    .map_err(|e| classify(action, name, e))?;
                refuse_unless_regular(file, action, name)
            }
            Backend::Anonymous if create => sys::memfd().map_err(Error::io(action, name)),
            Backend::Anonymous => Err(Error::InvalidName {
                name: name.to_string(),
                reason: "anonymous segments have no name; use `Options::create_anonymous`",
            }),
        }
    }

    /// Removes the name `name` (mapped segments stay usable until unmapped). Anonymous segments
    /// have no name: nothing to do.
    pub(crate) fn unlink(&self, name: &str) -> Result<()> {
        let r = match self {
            Backend::Shm => {
                validate_shm_name(name)?;
                sys::shm_unlink(name)
            }
            Backend::File => std::fs::remove_file(name),
            Backend::Anonymous => return Ok(()),
        };
        r.map_err(|e| classify("removing", name, e))
    }
}
