//! `shm::Writer<T>` (include/shm_ffi.hpp) over this build's static library: a C++ writer
//! publishes values a Rust reader checks field by field while they change, and its errors are
//! exceptions carrying the runtime's messages.

#[path = "../../shm-core/tests/common/mod.rs"]
mod common;
#[path = "../../shm-core/tests/lang/mod.rs"]
mod lang;
mod support;

use common::Name;
use lang::{TempDir, CXX_FLAGS};
use shm_core::{Error, SharedState};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use support::build;

mod segment_side {
    use shm_core::SharedState;

    /// The type the C++ writer publishes: every field derived from `tick`.
    #[derive(SharedState, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    #[shm(name = "Pose")]
    pub struct Pose {
        pub tick: u64,
        pub pos: [f64; 3],
        pub status: u32,
        pub flags: u32,
    }

    impl Pose {
        /// The value whose tick is `c`.
        pub fn at(c: u64) -> Pose {
            Pose {
                tick: c,
                pos: [c as f64, 2.0 * c as f64, -(c as f64)],
                status: c as u32,
                flags: !(c as u32),
            }
        }
    }
}

mod retyped {
    use shm_core::SharedState;

    /// `Pose` with `flags` retyped: what a segment of an older program holds.
    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    #[shm(name = "Pose")]
    pub struct Pose {
        pub tick: u64,
        pub pos: [f64; 3],
        pub status: u32,
        pub flags: i32,
    }
}

use segment_side::Pose;

const WRITER_CPP: &str = r#"#include "shm_ffi.hpp"
#include "pose.h"

#include <cstdio>
#include <cstdlib>
#include <cstdint>

static Pose at(std::uint64_t c) {
    Pose p{};
    p.tick = c;
    p.pos[0] = (double)c;
    p.pos[1] = 2.0 * (double)c;
    p.pos[2] = -(double)c;
    p.status = (std::uint32_t)c;
    p.flags = ~(std::uint32_t)c;
    return p;
}

int main(int argc, char **argv) {
    if (argc != 4) return 2;
    std::setvbuf(stdout, nullptr, _IONBF, 0);
    std::uint64_t count = std::strtoull(argv[2], nullptr, 10);
    try {
        auto w = shm::Writer<Pose>::open_or_create(argv[1], at(0));
        std::printf("created=%d epoch=%llu\n", (int)w.created(), (unsigned long long)w.epoch());
        if (std::getchar() != 'g') return 2; // the reader is ready
        for (std::uint64_t c = 1; c <= count; c++) w.write(at(c));
        Pose last = w.get();
        std::printf("last=%llu version=%llu\n", (unsigned long long)last.tick, (unsigned long long)w.version());
        try {
            shm::Writer<Pose>::create(argv[1], at(0));
        } catch (const shm::Error &e) {
            std::printf("create: %d\n", (int)static_cast<const shm::FfiError &>(e).ffi_code());
        }
        try {
            shm::Writer<Pose>::open_writer(argv[1]);
        } catch (const shm::FfiError &e) {
            std::printf("busy: %d %s\n", (int)e.ffi_code(), e.what());
        }
    } catch (const shm::Error &e) {
        std::printf("error %d %s\n", (int)e.code(), e.what());
        return 1;
    }
    try {
        shm::Writer<Pose>::open_writer(argv[3]);
        std::printf("mismatch accepted\n");
    } catch (const shm::FfiError &e) {
        std::printf("mismatch: %d %d %s\n", (int)e.ffi_code(), (int)e.code(), e.what());
    }
    return 0;
}
"#;

#[test]
fn cpp_writer_publishes_values_a_rust_reader_checks() {
    let dir = TempDir::new("ffcpp");
    let name = Name::new("ffcpp");
    let other = Name::new("ffcpp-other");
    std::fs::write(
        dir.path().join("pose.h"),
        shm_core::export::c_header::<Pose>(),
    )
    .unwrap();
    std::fs::write(dir.path().join("writer.cpp"), WRITER_CPP).unwrap();
    let exe = build("c++", CXX_FLAGS, dir.path(), "writer.cpp", "writer", true);
    let _old = retyped::Pose::create(
        &other,
        &retyped::Pose {
            tick: 0,
            pos: [0.0; 3],
            status: 0,
            flags: 0,
        },
    )
    .unwrap();

    let count = 2_000_000u64;
    let mut child = Command::new(exe)
        .args([&*name, &count.to_string(), &*other])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || lines.next().unwrap().unwrap();
    assert_eq!(next(), "created=1 epoch=1");

    // Read while the C++ process writes: every snapshot is one whole value, never older.
    let r = Pose::open(&name).unwrap();
    child.stdin.take().unwrap().write_all(b"g").unwrap();
    let (mut reads, mut last, mut distinct) = (0u64, 0u64, 0u64);
    loop {
        let v = r.read();
        assert_eq!(v, Pose::at(v.tick), "a torn snapshot");
        assert!(v.tick >= last, "went back from {last} to {}", v.tick);
        distinct += u64::from(v.tick != last);
        last = v.tick;
        reads += 1;
        if last == count {
            break;
        }
        let dead = !r.info().writer().alive() && r.read().tick != count;
        assert!(!dead, "the C++ writer stopped at {last} of {count}");
    }
    assert_eq!(next(), format!("last={count} version={count}"));
    assert_eq!(next(), "create: 2");
    let busy = next();
    assert!(
        busy.starts_with(&format!("busy: 10 another writer (pid {})", child.id())),
        "{busy}"
    );
    let expected = match Pose::open_writer(&other) {
        Err(e @ Error::LayoutMismatch { .. }) => e.to_string(),
        other => panic!("the Rust writer accepted the retyped segment: {other:?}"),
    };
    assert!(expected.contains("field `flags`"), "{expected}");
    assert_eq!(next(), format!("mismatch: 8 8 {expected}"));
    assert!(child.wait().unwrap().success());
    assert_eq!(r.read(), Pose::at(count));
    assert!(
        distinct > 1,
        "the reader saw only {distinct} values in {reads} reads"
    );
}
