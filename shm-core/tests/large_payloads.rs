//! Large payloads (maps, images, point clouds): a 64 MiB state is created from a boxed value,
//! written, updated and read from threads whose stacks are far smaller than the payload.
#![allow(missing_docs)]

mod common;

use common::Name;
use shm_core::SharedState;
use std::time::Duration;

const WORDS: usize = 8 << 20; // 64 MiB of u64

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
pub struct Map {
    pub words: [u64; WORDS],
}

/// A boxed map whose every word is `fill`, built without a map on the stack.
fn boxed(fill: u64) -> Box<Map> {
    let mut m = Box::<Map>::new_uninit();
    // SAFETY: `m` is one `Map` of writable memory; writing zero bytes over all of it is in
    // bounds.
    unsafe { m.as_mut_ptr().write_bytes(0, 1) };
    // SAFETY: every byte was written above, and all-zero bytes are a valid `Map` (every bit
    // pattern of a `SharedState` type is).
    let mut m = unsafe { m.assume_init() };
    m.words.fill(fill);
    m
}

/// Runs `f` on a thread with a 256 KiB stack.
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(f)
        .expect("spawn a small-stack thread")
        .join()
        .expect("the small-stack thread finished without overflowing");
}

#[test]
fn a_64_mib_payload_is_read_and_written_from_threads_with_256_kib_stacks() {
    let name = Name::new("large");
    let n = name.to_string();
    on_small_stack(move || {
        let initial = boxed(1);
        let mut w = Map::create(&n, &initial).unwrap();
        let r = Map::open(&n).unwrap();
        let mut out = boxed(0);
        r.read_into(&mut out);
        assert!(out.words.iter().all(|&w| w == 1));
        for v in 2..5 {
            w.write(&boxed(v));
            r.read_timeout_into(&mut out, Duration::from_secs(5))
                .unwrap();
            assert!(out.words.iter().all(|&w| w == v), "a whole version {v}");
        }
        w.update(|m| m.words[WORDS - 1] = 99);
        w.get_into(&mut out).unwrap();
        assert_eq!((out.words[0], out.words[WORDS - 1]), (4, 99));
        r.read_into(&mut out);
        assert_eq!((out.words[0], out.words[WORDS - 1]), (4, 99));
    });
}
