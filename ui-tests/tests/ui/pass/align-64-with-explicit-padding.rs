use core::mem::{align_of, offset_of, size_of};
use shm_core::SharedState;

/// One cache line: the padding is spelled out, so every byte is initialized.
#[derive(SharedState, Clone, Copy)]
#[repr(C, align(64))]
struct CacheLine {
    sequence: u64,
    value: u32,
    _pad0: [u8; 4],
    samples: [u64; 5],
    _pad1: [u8; 8],
}

fn main() {
    assert_eq!(size_of::<CacheLine>(), 64);
    assert_eq!(align_of::<CacheLine>(), 64);
    let layout = CacheLine::LAYOUT;
    assert_eq!(layout.size, 64);
    assert_eq!(layout.align, 64);
    let fields = layout.fields();
    assert_eq!(fields.len(), 5);
    assert_eq!(fields[1].offset, offset_of!(CacheLine, value));
    assert_eq!(fields[2].name, "_pad0");
    assert_eq!(fields[3].offset, offset_of!(CacheLine, samples));
    assert_eq!(fields[4].offset, offset_of!(CacheLine, _pad1));
    // The fields cover the whole size: the last one ends where the struct does.
    let last = fields[4];
    assert_eq!(last.offset + last.layout.size, layout.size);
}
