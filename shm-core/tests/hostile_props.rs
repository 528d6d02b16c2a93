//! Property: random mutations of a valid segment's header, slots and stored descriptor (and
//! random truncations) never make opening or reading panic or hang; every open either
//! succeeds or gives a typed error, and every bounded read of an opened segment returns.
//!
//! A bounded run (a few thousand cases) in the normal suite; the fuzz targets in
//! `shm-core/fuzz` run the same attack without a bound.

mod common;

use common::Name;
use proptest::prelude::*;
use shm_core::{Options, RawReader, SharedState};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

#[derive(SharedState, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Pose {
    id: u32,
    flags: u32,
    pos: [f64; 3],
    label: shm_core::FixedStr<28>,
}

/// The bytes of a valid two-slot segment holding a `Pose`, made once.
fn valid_segment() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let name = Name::new("prop-template");
        let mut w = Pose::create(
            &name,
            &Pose {
                id: 1,
                flags: 2,
                pos: [1.0, 2.0, 3.0],
                label: shm_core::FixedStr::from_str_truncate("template"),
            },
        )
        .unwrap();
        w.update(|p| p.id += 1);
        std::fs::read(format!("/dev/shm{}", &*name)).unwrap()
    })
}

/// One mutation of the segment's bytes.
#[derive(Clone, Debug)]
enum Mutation {
    /// Set one byte.
    Byte(usize, u8),
    /// Set one aligned 8-byte word to an interesting value.
    Word(usize, u64),
    /// Cut the file to this length.
    Truncate(usize),
}

fn mutation(len: usize) -> impl Strategy<Value = Mutation> {
    let interesting = prop_oneof![
        Just(0u64),
        Just(1),
        Just(u64::MAX),
        Just(u32::MAX as u64),
        Just(len as u64),
        Just(len as u64 + 8),
        Just(1 << 20),
        Just(1 << 63),
        any::<u64>(),
    ];
    prop_oneof![
        4 => (0..len, any::<u8>()).prop_map(|(o, b)| Mutation::Byte(o, b)),
        // Mostly the header (the first 32 words), sometimes anywhere.
        4 => (prop_oneof![3 => 0..32usize, 1 => 0..len / 8], interesting)
            .prop_map(|(w, v)| Mutation::Word(w * 8, v)),
        1 => (0..len + 64).prop_map(Mutation::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    match *m {
        Mutation::Byte(o, b) => bytes[o] = b,
        Mutation::Word(o, v) => bytes[o..o + 8].copy_from_slice(&v.to_ne_bytes()),
        Mutation::Truncate(n) => bytes.resize(n, 0),
    }
}

/// Writes `bytes` as the named shared-memory segment.
fn plant(name: &str, bytes: &[u8]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(format!("/dev/shm{name}"))
        .unwrap();
    f.write_all(bytes).unwrap();
}

/// Opens and reads the planted segment every way there is; panics (failing the case) only if
/// a call takes too long. Returns how many opens succeeded.
fn exercise(name: &str) -> usize {
    let limit = Duration::from_secs(2);
    let opts = Options::new().ready_wait(Duration::ZERO);
    let mut opened = 0;
    let start = Instant::now();
    if let Ok(r) = opts.open::<Pose>(name) {
        opened += 1;
        let _ = r.try_read();
        let _ = r.read_timeout(Duration::from_millis(1));
        let _ = r.wait_for_update(r.version(), Duration::from_millis(1));
        let _ = (
            r.info().writer().alive(),
            r.info().writer().epoch(),
            r.info().slots(),
        );
        // No writer holds the lease, so `read` ends too (with a salvaged value if need be).
        let _ = r.read();
    }
    if let Ok(r) = opts.open_raw(name) {
        opened += 1;
        let mut buf = vec![0u8; r.payload_size()];
        let _ = r.try_read(&mut buf);
        let _ = r.read_timeout(&mut buf, Duration::from_millis(1));
        let _ = format!("{} {:?}", r.layout(), r);
    }
    if let Ok(mut w) = opts.open_writer::<Pose>(name) {
        opened += 1;
        let _ = w.try_update(|p| p.id += 1);
        let _ = w.get();
    }
    assert!(start.elapsed() < limit, "took {:?}", start.elapsed());
    opened
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 3000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn mutated_segments_never_panic_or_hang(
        mutations in proptest::collection::vec(mutation(valid_segment().len()), 1..6)
    ) {
        let mut bytes = valid_segment().to_vec();
        for m in &mutations {
            if let Mutation::Truncate(_) = m {
                // Truncation last: the other offsets are into the full segment.
                continue;
            }
            apply(&mut bytes, m);
        }
        if let Some(t) = mutations.iter().find(|m| matches!(m, Mutation::Truncate(_))) {
            apply(&mut bytes, t);
        }
        let name = Name::new("prop");
        plant(&name, &bytes);
        exercise(&name);
    }
}

/// The generator reaches both outcomes: the template itself opens, and damage is refused.
#[test]
fn the_template_opens_and_damage_is_refused() {
    let name = Name::new("prop-valid");
    plant(&name, valid_segment());
    assert_eq!(exercise(&name), 3);
    let mut bad = valid_segment().to_vec();
    bad[0] ^= 1;
    let name = Name::new("prop-bad");
    plant(&name, &bad);
    assert_eq!(exercise(&name), 0);
    assert!(RawReader::open(&name).is_err());
}
