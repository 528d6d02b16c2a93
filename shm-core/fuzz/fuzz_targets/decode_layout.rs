//! The stored layout descriptor's decoder on arbitrary bytes: it must return a layout or a
//! `DecodeError`, never panic, and never allocate without bound; what it accepts must survive
//! an encode/decode round trip and be printable and comparable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shm_core::{LayoutBuf, SharedState};

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Probe {
    a: u64,
    b: [u32; 4],
    c: f64,
}

fuzz_target!(|data: &[u8]| {
    if let Ok(layout) = LayoutBuf::decode(data) {
        let again = LayoutBuf::decode(&layout.encode()).expect("an encoded layout decodes");
        assert_eq!(again, layout);
        let _ = layout.layout_hash();
        let _ = layout.to_string();
        let _ = layout.struct_name();
        let _ = layout.fields().len();
        let probe = LayoutBuf::from(Probe::LAYOUT);
        let _ = layout.first_difference(&probe);
        let _ = probe.first_difference(&layout);
    }
});
