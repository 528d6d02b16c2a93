use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Tick {
    count: u64,
}

const HASH: u64 = Tick::LAYOUT_HASH;
const BUCKETS: usize = (Tick::LAYOUT_HASH % 7) as usize + 1;
static TABLE: [u8; BUCKETS] = [0; BUCKETS];
const _: () = assert!(Tick::LAYOUT_HASH != 0);

fn classify(hash: u64) -> &'static str {
    match hash {
        HASH => "tick",
        _ => "other",
    }
}

fn main() {
    assert_eq!(TABLE.len(), BUCKETS);
    assert_eq!(HASH, Tick::LAYOUT.layout_hash());
    assert_eq!(classify(Tick::LAYOUT_HASH), "tick");
    assert_eq!(classify(<u64 as SharedState>::LAYOUT_HASH), "other");
}
