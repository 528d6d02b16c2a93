//! A segment made of arbitrary bytes: planted as a named shared-memory object, then opened with
//! the typed reader, the untyped reader and as a writer, and read with the bounded calls. Every
//! outcome must be a value or a typed error: no panic, no hang, no fault.
//!
//! The input's first bytes are mostly used as a whole segment; to reach past the header checks,
//! inputs that start with `b'V'` are applied as a patch to a valid segment instead (offset,
//! bytes pairs), so that the fuzzer mutates a segment that is otherwise correct.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shm_core::{Options, SharedState};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::OnceLock;
use std::time::Duration;

#[derive(SharedState, Clone, Copy, Debug)]
#[repr(C)]
struct Pose {
    id: u32,
    flags: u32,
    pos: [f64; 3],
}

fn name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| format!("/shmfuzz-{}", std::process::id()))
}

/// A valid two-slot segment holding a `Pose`, made once.
fn template() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let n = format!("/shmfuzz-template-{}", std::process::id());
        let _ = shm_core::remove(&n);
        let w = Pose::create(
            &n,
            &Pose {
                id: 1,
                flags: 2,
                pos: [1.0, 2.0, 3.0],
            },
        )
        .unwrap();
        let bytes = std::fs::read(format!("/dev/shm{n}")).unwrap();
        drop(w);
        let _ = shm_core::remove(&n);
        bytes
    })
}

fn segment_bytes(data: &[u8]) -> Vec<u8> {
    match data.split_first() {
        Some((b'V', patch)) => {
            let mut bytes = template().to_vec();
            // One past the end as well, so that some patches land nowhere.
            let span = bytes.len() + 1;
            for chunk in patch.chunks(3) {
                if let [hi, lo, value] = *chunk {
                    let at = u16::from_le_bytes([lo, hi]) as usize;
                    if let Some(b) = bytes.get_mut(at % span) {
                        *b = value;
                    }
                }
            }
            bytes
        }
        _ => data.to_vec(),
    }
}

fuzz_target!(|data: &[u8]| {
    let bytes = segment_bytes(data);
    let n = name();
    let _ = shm_core::remove(n);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(format!("/dev/shm{n}"))
        .unwrap();
    f.write_all(&bytes).unwrap();
    drop(f);

    let opts = Options::new().ready_wait(Duration::ZERO);
    if let Ok(r) = opts.open::<Pose>(n) {
        let _ = r.try_read();
        let _ = r.read_timeout(Duration::from_millis(1));
        let _ = r.wait_for_update(r.version(), Duration::ZERO);
        // Nobody holds the writer lease, so `read` returns (a salvaged value if need be).
        let _ = r.read();
    }
    if let Ok(r) = opts.open_raw(n) {
        let mut buf = vec![0u8; r.payload_size()];
        let _ = r.try_read(&mut buf);
        let _ = format!("{} {:?}", r.layout(), r);
    }
    if let Ok(mut w) = opts.open_writer::<Pose>(n) {
        let _ = w.try_update(|p| p.id = p.id.wrapping_add(1));
    }
    let _ = shm_core::remove(n);
});
