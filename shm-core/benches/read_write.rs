//! Read and write cost against a raw copy of the same bytes in and out of shared memory.
//!
//! Each group is one payload size; in it, `memcpy_baseline` copies the payload out of (or into)
//! a shared tmpfs mapping with `copy_nonoverlapping`, which is what a hand-rolled
//! `shm_open` + `mmap` + cast does (and is racy). `uncontended` is `Reader::read` or
//! `Writer::write` on a segment of `[u64; N]`; `read_into/uncontended` is `Reader::read_into`,
//! which copies into the caller's buffer as the baseline does; `read_into/word_by_word` and
//! `word_by_word` copy word by word with relaxed atomics instead of the bulk copy (what the
//! bulk copy gains, in the same run); `w1` reads while another thread writes the same segment
//! continuously.
//!
//!
//! The `copy_*` groups measure the bulk copy alone, from a shared mapping into private memory
//! as a read does: `memcpy` (glibc's, through `libc::memcpy`) against `chosen`, the routine
//! reads and writes use at that size on this CPU, and every routine the CPU can run side by
//! side (`rep_movsb`, `sse2`, `avx2`), which is how the thresholds in
//! `protocol/copy.rs` were picked. The plan `chosen` follows is printed first.
//!
//! ```text
//! cargo bench -p shm-core --bench read_write
//! cargo bench -p shm-core --bench read_write -- copy
//! ```

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use memmap2::MmapMut;
use shm_core::{Reader, SharedState, Writer};
use std::hint::black_box;
use std::mem::{size_of, MaybeUninit};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A shared mapping of `len` bytes on tmpfs, as the segments themselves are; the file is
/// unlinked at once, the mapping stays.
fn shared_mapping(len: usize) -> MmapMut {
    let path = format!("/dev/shm/shm-bench-baseline-{}-{len}", std::process::id());
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .expect("create the baseline file");
    std::fs::remove_file(&path).expect("unlink the baseline file");
    file.set_len(len as u64).expect("size the baseline file");
    // SAFETY: the file was created above by this process and is already unlinked, so nothing
    // else can map, resize or modify it while the mapping lives.
    let mut map = unsafe { MmapMut::map_mut(&file) }.expect("map the baseline file");
    map.fill(0x5a);
    map
}

/// Removes the bench's segment however the bench ends.
struct RemoveOnDrop(String);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = shm_core::remove(&self.0);
    }
}

fn group<'c>(c: &'c mut Criterion, name: String, bytes: usize) -> BenchmarkGroup<'c, WallTime> {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Bytes(bytes as u64));
    g
}

/// Reads a value and hands its address to the optimizer's black box. Returning the value from
/// the routine instead would make criterion read every byte of it again (a volatile copy).
fn read_into_black_box<T: SharedState>(reader: &Reader<T>) {
    let value = black_box(reader).read();
    black_box(&value);
}

fn read_cases<const WORDS: usize>(
    c: &mut Criterion,
    label: &str,
    writer: Writer<[u64; WORDS]>,
    reader: &Reader<[u64; WORDS]>,
) -> Writer<[u64; WORDS]> {
    let bytes = size_of::<[u64; WORDS]>();
    let mut g = group(c, format!("read_{label}"), bytes);

    let map = shared_mapping(bytes);
    let src = map.as_ptr();
    g.bench_function("memcpy_baseline", |b| {
        b.iter(|| {
            let mut out = MaybeUninit::<[u64; WORDS]>::uninit();
            // SAFETY: `src` points to `bytes` readable bytes of the mapping, which outlives the
            // benchmark; `out` is a local of exactly `bytes` bytes; they do not overlap.
            unsafe {
                core::ptr::copy_nonoverlapping(black_box(src), out.as_mut_ptr().cast::<u8>(), bytes)
            };
            black_box(&out);
        })
    });

    g.bench_function("uncontended", |b| b.iter(|| read_into_black_box(reader)));
    // The copy word by word with relaxed atomic loads, as before the bulk copy: the same run
    // measures what the bulk copy gains.
    g.bench_function("read_into/word_by_word", |b| {
        let mut out = Box::new([0u64; WORDS]);
        b.iter(|| {
            while !shm_core::__private::hooks::read_attempt_word_by_word(
                black_box(reader),
                &mut out,
            ) {}
            black_box(&out);
        })
    });
    g.bench_function("read_into/uncontended", |b| {
        let mut out = Box::new([0u64; WORDS]);
        b.iter(|| {
            black_box(reader).read_into(&mut out);
            black_box(&out);
        })
    });

    let stop = Arc::new(AtomicBool::new(false));
    let background = {
        let stop = stop.clone();
        let mut writer = writer;
        std::thread::spawn(move || {
            let mut value = [0u64; WORDS];
            while !stop.load(Ordering::Relaxed) {
                value[0] = value[0].wrapping_add(1);
                writer.write(&value);
            }
            writer
        })
    };
    g.bench_function("w1", |b| b.iter(|| read_into_black_box(reader)));
    stop.store(true, Ordering::Relaxed);
    let writer = background.join().expect("the background writer");
    g.finish();
    writer
}

fn write_cases<const WORDS: usize>(
    c: &mut Criterion,
    label: &str,
    writer: &mut Writer<[u64; WORDS]>,
) {
    let bytes = size_of::<[u64; WORDS]>();
    let mut g = group(c, format!("write_{label}"), bytes);
    let value = [7u64; WORDS];

    let mut map = shared_mapping(bytes);
    let dst = map.as_mut_ptr();
    g.bench_function("memcpy_baseline", |b| {
        b.iter(|| {
            // SAFETY: `dst` points to `bytes` writable bytes of the mapping, which outlives the
            // benchmark; `value` is a local of exactly `bytes` bytes; they do not overlap.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    black_box(&value).as_ptr().cast::<u8>(),
                    black_box(dst),
                    bytes,
                )
            }
        })
    });

    g.bench_function("uncontended", |b| {
        b.iter(|| writer.write(black_box(&value)))
    });
    g.bench_function("word_by_word", |b| {
        b.iter(|| shm_core::__private::hooks::write_word_by_word(writer, black_box(&value)))
    });
    g.finish();
}

fn size<const WORDS: usize>(c: &mut Criterion, label: &str) {
    let name = format!("/shm-bench-{}-{label}", std::process::id());
    let _ = shm_core::remove(&name);
    let writer = <[u64; WORDS]>::create(&name, &[0; WORDS]).expect("create the bench segment");
    let _remove = RemoveOnDrop(name.clone());
    let reader = <[u64; WORDS]>::open(&name).expect("open the bench segment");

    let mut writer = read_cases(c, label, writer, &reader);
    write_cases(c, label, &mut writer);
}

/// A private buffer of `len` bytes starting on a cache line, as a slot's payload does (the
/// typical destination, a heap allocation of a few KiB, is 16-byte aligned at least).
struct Aligned {
    buf: Vec<u8>,
    start: usize,
}

impl Aligned {
    fn new(len: usize) -> Aligned {
        let buf = vec![0u8; len + 64];
        let start = buf.as_ptr().align_offset(64);
        Aligned { buf, start }
    }

    fn as_mut_ptr(&mut self) -> *mut u8 {
        self.buf[self.start..].as_mut_ptr()
    }
}

/// One group per size: `memcpy` and every bulk copy routine, from a shared mapping (at a cache
/// line, as a slot's payload is) into a private buffer.
fn copy_cases(c: &mut Criterion) {
    eprintln!(
        "copy plan of this CPU: {}",
        shm_core::__private::hooks::copy_plan()
    );
    let routines = shm_core::__private::hooks::copy_routines();
    for bytes in [256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536] {
        let label = if bytes >= 1024 {
            format!("{}KiB", bytes / 1024)
        } else {
            format!("{bytes}B")
        };
        let mut g = group(c, format!("copy_{label}"), bytes);
        let map = shared_mapping(bytes + 64);
        // SAFETY: offset 64 of a mapping of `bytes + 64` bytes.
        let src = unsafe { map.as_ptr().add(64) };
        let mut buf = Aligned::new(bytes);
        let dst = buf.as_mut_ptr();
        g.bench_function("memcpy", |b| {
            b.iter(|| {
                // SAFETY: `src` and `dst` are `bytes` bytes of two distinct live buffers.
                unsafe { libc::memcpy(black_box(dst).cast(), black_box(src).cast(), bytes) };
            })
        });
        for &(name, routine, min) in &routines {
            if bytes < min {
                continue;
            }
            g.bench_function(name, |b| {
                b.iter(|| {
                    // SAFETY: as for `memcpy`; `bytes` is at least the routine's minimum, and
                    // the routine is one this CPU runs.
                    unsafe { routine(black_box(src), black_box(dst), bytes) };
                })
            });
        }
        g.finish();
    }
}

fn benches(c: &mut Criterion) {
    copy_cases(c);
    size::<1>(c, "8B");
    size::<8>(c, "64B");
    size::<512>(c, "4KiB");
    size::<8192>(c, "64KiB");
}

criterion_group! {
    name = read_write;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = benches
}
criterion_main!(read_write);
