//! [`Status`], the calling thread's last-error message, and [`entry`], the guard every entry
//! point runs its body in.

use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// What an entry point returns: `SHM_FFI_OK` or the kind of failure. Mirrors
/// `shm_core::Error`'s variants, plus the failures of the boundary itself.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Success.
    Ok = 0,
    /// No segment has this name.
    NotFound = 1,
    /// A segment with this name exists already.
    AlreadyExists = 2,
    /// The name is not a valid segment name.
    InvalidName = 3,
    /// The operating system refused access.
    PermissionDenied = 4,
    /// Not a segment of this format (bad magic).
    NotASegment = 5,
    /// The segment is inconsistent.
    Corrupt = 6,
    /// An unsupported segment format version.
    FormatVersion = 7,
    /// The segment holds another type; the message names the first differing field.
    LayoutMismatch = 8,
    /// The segment is smaller than its header says.
    Truncated = 9,
    /// Another live process holds the writer lease.
    WriterBusy = 10,
    /// The writer died mid-write and no consistent value is available.
    WriterDied = 11,
    /// The segment's creator did not finish initializing it in time.
    NotReady = 12,
    /// The wait timed out.
    Timeout = 13,
    /// The layout cannot describe a payload, or a value is not its size.
    InvalidLayout = 14,
    /// A helper value holds invalid bytes.
    InvalidValue = 15,
    /// An operating-system error not covered above.
    Io = 16,
    /// A null pointer, a buffer of the wrong size, a name that is not UTF-8, a handle of the
    /// wrong kind, a descriptor that does not decode or disagrees with the hash passed.
    InvalidArgument = 17,
    /// A bug: the library panicked (the panic was caught at the boundary).
    Panic = 18,
    /// An error this version of the header does not name.
    Other = 19,
}

/// A failed call: its status and message.
pub(crate) struct Failure {
    pub status: Status,
    pub message: String,
}

impl Failure {
    /// A [`Status::InvalidArgument`] failure saying `message`.
    pub fn argument(message: impl Into<String>) -> Failure {
        Failure {
            status: Status::InvalidArgument,
            message: message.into(),
        }
    }
}

impl From<shm_core::Error> for Failure {
    fn from(e: shm_core::Error) -> Failure {
        use shm_core::Error as E;
        let status = match &e {
            E::NotFound { .. } => Status::NotFound,
            E::AlreadyExists { .. } => Status::AlreadyExists,
            E::InvalidName { .. } => Status::InvalidName,
            E::PermissionDenied { .. } => Status::PermissionDenied,
            E::NotASegment { .. } => Status::NotASegment,
            E::Corrupt { .. } => Status::Corrupt,
            E::FormatVersion { .. } => Status::FormatVersion,
            E::LayoutMismatch { .. } => Status::LayoutMismatch,
            E::Truncated { .. } => Status::Truncated,
            E::WriterBusy { .. } => Status::WriterBusy,
            E::WriterDied => Status::WriterDied,
            E::NotReady => Status::NotReady,
            E::Timeout => Status::Timeout,
            E::InvalidLayout { .. } => Status::InvalidLayout,
            E::InvalidValue(_) => Status::InvalidValue,
            E::Io { .. } => Status::Io,
            _ => Status::Other,
        };
        // The cause of an I/O error is its source; C has no chain, so append it.
        let message = match std::error::Error::source(&e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        };
        Failure { status, message }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    // An interior NUL cannot be represented: cut the message there.
    let end = message.find('\0').unwrap_or(message.len());
    let c = CString::new(&message[..end]).unwrap_or_default();
    LAST_ERROR.with(|m| *m.borrow_mut() = c);
}

/// Runs an entry point's body: converts its failure or panic to a status and the calling
/// thread's last-error message. Nothing unwinds past this.
pub(crate) fn entry(body: impl FnOnce() -> Result<(), Failure>) -> Status {
    let outcome = catch_unwind(AssertUnwindSafe(body));
    let (status, message) = match outcome {
        Ok(Ok(())) => (Status::Ok, String::new()),
        Ok(Err(f)) => (f.status, f.message),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            (Status::Panic, format!("internal error (panic): {what}"))
        }
    };
    // Setting the message allocates; a panic there must not unwind into C either.
    let _ = catch_unwind(|| set_last_error(&message));
    status
}

/// The calling thread's last-error message: empty after a successful call, else what the last
/// failed call on this thread reported (the Rust runtime's error text, e.g. "layout mismatch:
/// field `pos` is ..."). Never null; valid until the next call into this library on this
/// thread.
#[no_mangle]
pub extern "C" fn shm_ffi_last_error() -> *const c_char {
    static EMPTY: &[u8] = b"\0";
    catch_unwind(|| LAST_ERROR.with(|m| m.borrow().as_ptr()))
        .unwrap_or(EMPTY.as_ptr().cast::<c_char>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last() -> String {
        // SAFETY: never null, NUL-terminated, valid until the next call on this thread.
        unsafe { std::ffi::CStr::from_ptr(shm_ffi_last_error()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn a_panic_becomes_a_status_and_a_message_not_an_unwind() {
        assert_eq!(entry(|| panic!("boom {}", 1)), Status::Panic);
        assert_eq!(last(), "internal error (panic): boom 1");
        assert_eq!(entry(|| Ok(())), Status::Ok);
        assert_eq!(last(), "");
    }

    #[test]
    fn io_errors_keep_their_cause_in_the_message() {
        let e = shm_core::Error::Io {
            action: "mapping",
            name: "/x".into(),
            source: std::io::Error::from_raw_os_error(libc_enomem()),
        };
        let f = Failure::from(e);
        assert_eq!(f.status, Status::Io);
        assert!(
            f.message.starts_with("mapping segment \"/x\": "),
            "{}",
            f.message
        );
    }

    /// ENOMEM on Linux.
    fn libc_enomem() -> i32 {
        12
    }
}
