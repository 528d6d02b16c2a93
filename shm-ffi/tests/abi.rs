//! The contract of every entry point, called as C calls them: statuses that mirror the Rust
//! errors with the Rust messages, null pointers, wrong sizes, handles of the wrong kind and
//! descriptors whose hash disagrees refused, and the reader calls over a live Rust writer.

#[path = "../../shm-core/tests/common/mod.rs"]
mod common;

use common::Name;
use shm_core::{export, SharedState};
use shm_ffi::*;
use std::ffi::{c_char, CStr, CString};
use std::ptr::{null, null_mut};

#[derive(SharedState, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct Pose {
    pub tick: u64,
    pub pos: [f64; 3],
}

mod retyped {
    use shm_core::SharedState;

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    #[shm(name = "Pose")]
    pub struct Pose {
        pub tick: u64,
        pub pos: [f32; 4],
    }
}

fn last_error() -> String {
    // SAFETY: `shm_ffi_last_error` never returns null, and the string stays valid until the
    // next call into the library on this thread; we copy it at once.
    unsafe { CStr::from_ptr(shm_ffi_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// The descriptor bytes a generated header holds for `Pose`.
fn descriptor() -> Vec<u8> {
    shm_core::LayoutBuf::from(Pose::LAYOUT).encode()
}

fn bytes_of(p: &Pose) -> Vec<u8> {
    let mut out = p.tick.to_ne_bytes().to_vec();
    for x in p.pos {
        out.extend_from_slice(&x.to_ne_bytes());
    }
    out
}

fn c(name: &str) -> CString {
    CString::new(name).unwrap()
}

/// Creates (or opens) a writer through the ABI.
fn writer(
    f: unsafe extern "C" fn(
        *const c_char,
        *const u8,
        usize,
        u64,
        *const u8,
        usize,
        *mut *mut WriterHandle,
    ) -> Status,
    name: &str,
    hash: u64,
    initial: &[u8],
) -> (Status, *mut WriterHandle) {
    let d = descriptor();
    let n = c(name);
    let mut w = null_mut();
    // SAFETY: a NUL-terminated name, the descriptor's bytes and length, the initial value's
    // bytes and length, and a writable out pointer.
    let st = unsafe {
        f(
            n.as_ptr(),
            d.as_ptr(),
            d.len(),
            hash,
            initial.as_ptr(),
            initial.len(),
            &mut w,
        )
    };
    (st, w)
}

#[test]
fn writers_through_the_abi_create_take_over_and_report_rust_errors() {
    let name = Name::new("abiw");
    let v = Pose {
        tick: 7,
        pos: [1.0, 2.0, 3.0],
    };
    let (st, w) = writer(
        shm_ffi_writer_create,
        &name,
        Pose::LAYOUT_HASH,
        &bytes_of(&v),
    );
    assert_eq!(st, Status::Ok, "{}", last_error());
    assert_eq!(last_error(), "");
    let (mut version, mut epoch, mut created) = (9, 9, 9);
    // SAFETY: a live writer handle and writable outs.
    let st = unsafe { shm_ffi_writer_info(w, &mut version, &mut epoch, &mut created) };
    assert_eq!((st, version, epoch, created), (Status::Ok, 0, 1, 1));

    // Already there: the Rust error and message.
    let (st, _) = writer(shm_ffi_writer_create, &name, 0, &bytes_of(&v));
    assert_eq!(st, Status::AlreadyExists);
    assert_eq!(
        last_error(),
        format!("a shared segment named {:?} already exists", &*name)
    );
    // open_or_create attaches, but the lease is held.
    let (st, _) = writer(shm_ffi_writer_open_or_create, &name, 0, &bytes_of(&v));
    assert_eq!(st, Status::WriterBusy, "{}", last_error());

    // A hash that is not the descriptor's: refused before touching any segment.
    let (st, _) = writer(shm_ffi_writer_create, "/never", 1234, &bytes_of(&v));
    assert_eq!(st, Status::InvalidArgument);
    assert!(
        last_error().contains("the header's macros disagree"),
        "{}",
        last_error()
    );

    // Wrong sizes and null pointers.
    let (st, _) = writer(shm_ffi_writer_create, "/never", 0, &bytes_of(&v)[..8]);
    assert_eq!(st, Status::InvalidArgument);
    assert_eq!(
        last_error(),
        "the initial value is 8 bytes but the payload is 32 bytes"
    );
    let d = descriptor();
    // SAFETY: null pointers are what is being tested; the library must refuse them.
    let st =
        unsafe { shm_ffi_writer_create(null(), d.as_ptr(), d.len(), 0, null(), 0, null_mut()) };
    assert_eq!(st, Status::InvalidArgument);
    // SAFETY: as above.
    let st = unsafe { shm_ffi_writer_write(null_mut(), null(), 0) };
    assert_eq!(st, Status::InvalidArgument);
    assert_eq!(last_error(), "the writer handle is null");
    // SAFETY: closing null is allowed.
    assert_eq!(unsafe { shm_ffi_writer_close(null_mut()) }, Status::Ok);

    // Publish, then close and take over: the new writer sees the value, epoch 2.
    let next = Pose { tick: 8, ..v };
    // SAFETY: a live writer and a buffer of the payload size.
    let st = unsafe { shm_ffi_writer_write(w, bytes_of(&next).as_ptr(), 32) };
    assert_eq!(st, Status::Ok);
    // SAFETY: a live writer, closed once.
    assert_eq!(unsafe { shm_ffi_writer_close(w) }, Status::Ok);
    let (st, w) = writer(shm_ffi_writer_open_or_create, &name, 0, &bytes_of(&v));
    assert_eq!(st, Status::Ok, "{}", last_error());
    let mut got = [0u8; 32];
    // SAFETY: a live writer and a writable buffer of the payload size.
    let st = unsafe { shm_ffi_writer_get(w, got.as_mut_ptr(), 32) };
    assert_eq!(st, Status::Ok);
    assert_eq!(got.to_vec(), bytes_of(&next));
    // SAFETY: a live writer and writable outs.
    unsafe { shm_ffi_writer_info(w, &mut version, &mut epoch, &mut created) };
    assert_eq!((version, epoch, created), (1, 2, 0));

    // A reader handle is not a writer.
    let n = c(&name);
    let mut r = null_mut();
    // SAFETY: a name, no descriptor (any segment), a writable out.
    let st = unsafe { shm_ffi_reader_open(n.as_ptr(), null(), 0, 0, &mut r) };
    assert_eq!(st, Status::Ok);
    // SAFETY: a live handle of the wrong kind, which the library must refuse by its tag.
    let st = unsafe { shm_ffi_writer_write(r.cast(), got.as_ptr(), 32) };
    assert_eq!(st, Status::InvalidArgument);
    assert_eq!(last_error(), "the writer handle is not a writer");
    // SAFETY: live handles, closed once.
    unsafe {
        shm_ffi_reader_close(r);
        shm_ffi_writer_close(w);
    }
    // SAFETY: a NUL-terminated name.
    assert_eq!(unsafe { shm_ffi_remove(n.as_ptr()) }, Status::Ok);
    // SAFETY: as above.
    assert_eq!(unsafe { shm_ffi_remove(n.as_ptr()) }, Status::NotFound);
}

#[test]
fn readers_through_the_abi_check_the_type_and_read_a_rust_writer() {
    let name = Name::new("abir");
    let n = c(&name);
    let mut w = Pose::create(
        &name,
        &Pose {
            tick: 1,
            pos: [0.5; 3],
        },
    )
    .unwrap();
    let d = descriptor();
    let mut r = null_mut();
    // SAFETY: a name, the descriptor's bytes and length, a writable out.
    let st =
        unsafe { shm_ffi_reader_open(n.as_ptr(), d.as_ptr(), d.len(), Pose::LAYOUT_HASH, &mut r) };
    assert_eq!(st, Status::Ok, "{}", last_error());

    let mut buf = [0u8; 32];
    let mut version = 99;
    // SAFETY: a live reader, a writable buffer of the payload size, a writable out.
    let st = unsafe {
        shm_ffi_reader_read_timeout(r, buf.as_mut_ptr(), 32, 1_000_000_000, &mut version)
    };
    assert_eq!((st, version), (Status::Ok, 0));
    assert_eq!(
        buf.to_vec(),
        bytes_of(&Pose {
            tick: 1,
            pos: [0.5; 3]
        })
    );
    // SAFETY: as above, with a buffer of the wrong size, which must be refused.
    let st = unsafe { shm_ffi_reader_try_read(r, buf.as_mut_ptr(), 31, null_mut()) };
    assert_eq!(st, Status::InvalidArgument);

    let (mut alive, mut pid, mut epoch, mut hash, mut size) = (0, 0, 0, 0, 0);
    // SAFETY: a live reader and writable outs.
    unsafe {
        assert_eq!(shm_ffi_reader_writer_alive(r, &mut alive), Status::Ok);
        assert_eq!(shm_ffi_reader_writer_pid(r, &mut pid), Status::Ok);
        assert_eq!(shm_ffi_reader_writer_epoch(r, &mut epoch), Status::Ok);
        assert_eq!(shm_ffi_reader_layout_hash(r, &mut hash), Status::Ok);
        assert_eq!(shm_ffi_reader_payload_size(r, &mut size), Status::Ok);
    }
    assert_eq!((alive, pid, epoch), (1, std::process::id(), 1));
    assert_eq!((hash, size), (Pose::LAYOUT_HASH, 32));

    // SAFETY: a live reader; the version out may be null.
    let st = unsafe { shm_ffi_reader_wait_for_update(r, 0, 1_000_000, null_mut()) };
    assert_eq!(st, Status::Timeout);
    assert_eq!(last_error(), "timed out");
    w.write(&Pose {
        tick: 2,
        pos: [1.5; 3],
    });
    // SAFETY: as above.
    let st = unsafe { shm_ffi_reader_wait_for_update(r, 0, -1, &mut version) };
    assert_eq!((st, version), (Status::Ok, 1));
    // SAFETY: a live reader and a writable buffer of the payload size.
    let st = unsafe { shm_ffi_reader_try_read(r, buf.as_mut_ptr(), 32, &mut version) };
    assert_eq!((st, version, buf[0]), (Status::Ok, 1, 2));
    drop(w);
    // SAFETY: a live reader and a writable out.
    unsafe { shm_ffi_reader_writer_alive(r, &mut alive) };
    assert_eq!(alive, 0);
    // SAFETY: a live reader, closed once.
    assert_eq!(unsafe { shm_ffi_reader_close(r) }, Status::Ok);

    // Another type's descriptor: the Rust reader's error, word for word.
    let other = shm_core::LayoutBuf::from(retyped::Pose::LAYOUT).encode();
    // SAFETY: a name, a descriptor and its length, a writable out.
    let st = unsafe { shm_ffi_reader_open(n.as_ptr(), other.as_ptr(), other.len(), 0, &mut r) };
    assert_eq!(st, Status::LayoutMismatch);
    let rust = match retyped::Pose::open(&name) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("accepted"),
    };
    assert_eq!(last_error(), rust);
    assert!(rust.contains("field `pos`"), "{rust}");
    // A descriptor that does not decode.
    // SAFETY: as above.
    let st = unsafe { shm_ffi_reader_open(n.as_ptr(), other.as_ptr(), 3, 0, &mut r) };
    assert_eq!(st, Status::InvalidArgument);
    assert!(last_error().starts_with("the layout descriptor does not decode"));
    // The generated header's descriptor is the one used here.
    assert!(
        export::c_header::<Pose>().contains(&format!("#define POSE_DESCRIPTOR_LEN {}", d.len()))
    );
}
