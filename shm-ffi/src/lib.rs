//! The C ABI of the shared-state runtime: writers (create, takeover, open-or-create), readers,
//! and removal, for C and C++ programs that link this library. The header is
//! `shm-ffi/include/shm_ffi.h`; C++ programs use `include/shm_ffi.hpp` over it.
//!
//! Contract of every entry point:
//! - it returns a [`Status`]; [`Status::Ok`] clears, and any other status sets, the calling
//!   thread's last-error message, which [`shm_ffi_last_error`] returns;
//! - it never unwinds into the caller: a panic is caught and reported as [`Status::Panic`];
//! - null pointers, buffers of the wrong size, invalid UTF-8 names and handles of the wrong
//!   kind are reported as [`Status::InvalidArgument`]. Dangling pointers cannot be detected.
//!
//! Layouts come from a generated header (`shm_core::export::c_header`): its `<NAME>_DESCRIPTOR`
//! bytes are decoded here and their hash computed; when the caller also passes
//! `<NAME>_LAYOUT_HASH`, the two must agree, so a header whose macros were edited apart is
//! refused before any segment is touched.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod handle;
pub use handle::Handle;
mod reader;
mod status;
mod writer;

pub use reader::*;
pub use status::{shm_ffi_last_error, Status};
pub use writer::*;
