//! Streams against the transports users would otherwise pick, between two threads, at 64 B and
//! 4 KiB messages, all in the same run.
//!
//! Transports: `queue` (QueueProducer/QueueConsumer, lossless with backpressure; the consumer
//! takes with `try_recv`, and with `recv_into` in `queue_recv_into`), `broadcast`
//! (StreamWriter/StreamReader: the writer never waits, so in `throughput` the reader loses
//! messages whenever it falls behind by the capacity; lost ones count as passed, so that
//! figure is the writer's rate, not a lossless delivery rate), `spsc_ring` (the tutorials' ring buffer in shared memory: head and tail
//! counters with acquire/release, a plain `memcpy` of the payload, no seqlock; the limit of
//! what a ring can cost), `unix_socket` (a `UnixStream` pair, fixed-size frames) and `pipe`
//! (fixed-size frames, at most `PIPE_BUF` bytes each, so every write is atomic).
//!
//! Groups: `throughput_<size>/<transport>` (messages per second, one producer thread, the
//! consumer on the bench thread) and `rtt_<size>/<transport>` (a round trip: ping one way, the
//! echo back). Shared-memory receivers poll (spin, yielding the CPU every few spins), as
//! low-latency users run them; sockets and pipes block in the kernel, as they are used. Round-trip percentiles (p50, p99) are
//! measured apart from criterion, which reports means, and printed as `rtt_<size>/<transport>
//! p50=... p99=...`.
//!
//! ```text
//! cargo bench -p shm-core --bench stream -- --warm-up-time 1 --measurement-time 3
//! ```

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shm_core::{Error, QueueConsumer, QueueProducer, SharedState, StreamReader, StreamWriter};
use std::hint::black_box;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Spins a polling receiver (or a producer waiting for room) makes before it yields the CPU:
/// on a machine with more busy threads than cores, a poller that never yields can hold up the
/// very thread it waits for.
const SPINS: u32 = 64;

/// Busy-waits politely: spins, and yields the CPU every `SPINS` calls.
fn pause(spins: &mut u32) {
    *spins += 1;
    if *spins % SPINS == 0 {
        std::thread::yield_now();
    } else {
        core::hint::spin_loop();
    }
}

/// Messages a ring, stream or queue holds.
const CAPACITY: usize = 1024;
/// Round trips timed one by one for the percentiles.
const RTT_SAMPLES: usize = 20_000;

/// The sending half of a transport of `W`-word messages.
trait Tx<const W: usize>: Send {
    fn send(&mut self, m: &[u64; W]);
}

/// The receiving half: waits for the next message.
trait Rx<const W: usize>: Send {
    fn recv(&mut self, m: &mut [u64; W]);
}

/// Removes a named segment however the bench ends.
struct RemoveOnDrop(String);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = shm_core::remove(&self.0);
    }
}

fn segment_name(what: &str) -> RemoveOnDrop {
    static N: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "/shm-bench-stream-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let _ = shm_core::remove(&name);
    RemoveOnDrop(name)
}

impl<const W: usize> Tx<W> for QueueProducer<[u64; W]> {
    fn send(&mut self, m: &[u64; W]) {
        QueueProducer::send(self, m)
    }
}

impl<const W: usize> Rx<W> for QueueConsumer<[u64; W]> {
    fn recv(&mut self, m: &mut [u64; W]) {
        let mut spins = 0;
        loop {
            if let Some(v) = self.try_recv().expect("queue receive") {
                *m = v;
                return;
            }
            pause(&mut spins);
        }
    }
}

/// A queue consumer that receives with `recv_into` instead of `try_recv`.
struct RecvInto<const W: usize>(QueueConsumer<[u64; W]>);

impl<const W: usize> Rx<W> for RecvInto<W> {
    fn recv(&mut self, m: &mut [u64; W]) {
        let mut spins = 0;
        while !self.0.recv_into(m).expect("queue receive") {
            pause(&mut spins);
        }
    }
}

impl<const W: usize> Tx<W> for StreamWriter<[u64; W]> {
    fn send(&mut self, m: &[u64; W]) {
        StreamWriter::send(self, m)
    }
}

/// A broadcast reader that counts lost messages as passed: `recv` returns the next message it
/// gets, and `m[0]` says its number.
impl<const W: usize> Rx<W> for StreamReader<[u64; W]> {
    fn recv(&mut self, m: &mut [u64; W]) {
        let mut spins = 0;
        loop {
            match self.try_recv() {
                Ok(Some(v)) => {
                    *m = v;
                    return;
                }
                Ok(None) | Err(Error::Lagged { .. }) => pause(&mut spins),
                Err(e) => panic!("stream receive: {e}"),
            }
        }
    }
}

/// The tutorials' single-producer single-consumer ring in shared memory.
mod spsc {
    use super::{pause, Rx, Tx, CAPACITY};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    /// A shared tmpfs mapping: `head` (consumer) and `tail` (producer) on their own cache
    /// lines, then `CAPACITY` slots of `W` words.
    pub struct Ring<const W: usize> {
        map: memmap2::MmapMut,
    }

    impl<const W: usize> Ring<W> {
        pub fn new() -> Arc<Ring<W>> {
            static N: AtomicU64 = AtomicU64::new(0);
            let path = format!(
                "/dev/shm/shm-bench-spsc-{}-{W}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            );
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
                .expect("create the ring file");
            std::fs::remove_file(&path).expect("unlink the ring file");
            file.set_len((128 + CAPACITY * W * 8) as u64)
                .expect("size the ring file");
            // SAFETY: the file was created by this process and is already unlinked, so nothing
            // else can map, resize or modify it while the mapping lives.
            let map = unsafe { memmap2::MmapMut::map_mut(&file) }.expect("map the ring file");
            Arc::new(Ring { map })
        }

        fn counter(&self, offset: usize) -> &AtomicU64 {
            assert!(offset + 8 <= 128);
            // SAFETY: `offset` (0 or 64) is inside the mapping's first 128 bytes (asserted) and
            // 8-aligned in a page-aligned mapping; an atomic is valid for any bytes; the borrow
            // is tied to the mapping.
            unsafe { &*(self.map.as_ptr().add(offset) as *const AtomicU64) }
        }

        fn slot(&self, i: u64) -> *mut [u64; W] {
            let i = (i % CAPACITY as u64) as usize;
            // SAFETY: slot `i < CAPACITY` lies within the mapping, which is 128 + CAPACITY * W * 8
            // bytes long.
            unsafe { self.map.as_ptr().add(128 + i * W * 8) as *mut [u64; W] }
        }
    }

    pub struct Producer<const W: usize> {
        pub ring: Arc<Ring<W>>,
        pub tail: u64,
    }

    pub struct Consumer<const W: usize> {
        pub ring: Arc<Ring<W>>,
        pub head: u64,
    }

    impl<const W: usize> Tx<W> for Producer<W> {
        fn send(&mut self, m: &[u64; W]) {
            let head = self.ring.counter(0);
            let mut spins = 0;
            while self.tail - head.load(Ordering::Acquire) == CAPACITY as u64 {
                pause(&mut spins);
            }
            // SAFETY: the slot is free: the consumer's head (Acquire) is past the message that
            // used it, and only this producer writes slots; the source is a local message.
            unsafe { self.ring.slot(self.tail).write(*m) };
            self.tail += 1;
            self.ring.counter(64).store(self.tail, Ordering::Release);
        }
    }

    impl<const W: usize> Rx<W> for Consumer<W> {
        fn recv(&mut self, m: &mut [u64; W]) {
            let tail = self.ring.counter(64);
            let mut spins = 0;
            while tail.load(Ordering::Acquire) == self.head {
                pause(&mut spins);
            }
            // SAFETY: the producer published this slot (tail, Acquire) and does not write it
            // again until the head store below.
            *m = unsafe { self.ring.slot(self.head).read() };
            self.head += 1;
            self.ring.counter(0).store(self.head, Ordering::Release);
        }
    }
}

/// A byte stream (Unix socket or pipe) carrying fixed-size frames.
struct Framed<S>(S);

impl<const W: usize, S: Write + Send> Tx<W> for Framed<S> {
    fn send(&mut self, m: &[u64; W]) {
        let bytes: Vec<u8> = m.iter().flat_map(|w| w.to_ne_bytes()).collect();
        self.0.write_all(&bytes).expect("write a frame");
    }
}

impl<const W: usize, S: Read + Send> Rx<W> for Framed<S> {
    fn recv(&mut self, m: &mut [u64; W]) {
        let mut bytes = vec![0u8; W * 8];
        self.0.read_exact(&mut bytes).expect("read a frame");
        for (w, b) in m.iter_mut().zip(bytes.chunks_exact(8)) {
            *w = u64::from_ne_bytes(b.try_into().unwrap());
        }
    }
}

/// A pipe: its read end and its write end.
fn pipe() -> (std::fs::File, std::fs::File) {
    use std::os::fd::FromRawFd;
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is an array of two ints for the kernel to fill.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(r, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just returned by a successful `pipe2` and are owned by
    // nothing else; each goes into exactly one `File`.
    unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    }
}

type Pair<const W: usize> = (Box<dyn Tx<W>>, Box<dyn Rx<W>>, Option<RemoveOnDrop>);

/// A fresh one-way channel of `kind`.
fn channel<const W: usize>(kind: &str) -> Pair<W> {
    match kind {
        "queue" => {
            let name = segment_name("q");
            let tx = <[u64; W]>::create_queue(&name.0, CAPACITY).expect("create queue");
            let rx = <[u64; W]>::open_consumer(&name.0).expect("open consumer");
            (Box::new(tx), Box::new(rx), Some(name))
        }
        "queue_recv_into" => {
            let name = segment_name("qi");
            let tx = <[u64; W]>::create_queue(&name.0, CAPACITY).expect("create queue");
            let rx = <[u64; W]>::open_consumer(&name.0).expect("open consumer");
            (Box::new(tx), Box::new(RecvInto(rx)), Some(name))
        }
        "broadcast" => {
            let name = segment_name("b");
            let tx = <[u64; W]>::create_stream(&name.0, CAPACITY).expect("create stream");
            let rx = <[u64; W]>::subscribe(&name.0).expect("subscribe");
            (Box::new(tx), Box::new(rx), Some(name))
        }
        "spsc_ring" => {
            let ring = spsc::Ring::<W>::new();
            (
                Box::new(spsc::Producer {
                    ring: ring.clone(),
                    tail: 0,
                }),
                Box::new(spsc::Consumer { ring, head: 0 }),
                None,
            )
        }
        "unix_socket" => {
            let (a, b) = std::os::unix::net::UnixStream::pair().expect("socket pair");
            (Box::new(Framed(a)), Box::new(Framed(b)), None)
        }
        "pipe" => {
            let (r, w) = pipe();
            (Box::new(Framed(w)), Box::new(Framed(r)), None)
        }
        other => unreachable!("{other}"),
    }
}

const KINDS: [&str; 6] = [
    "queue",
    "queue_recv_into",
    "broadcast",
    "spsc_ring",
    "unix_socket",
    "pipe",
];

/// Messages per second from a producer thread to the bench thread.
fn throughput<const W: usize>(c: &mut Criterion, label: &str) {
    let mut g = c.benchmark_group(format!("throughput_{label}"));
    g.throughput(Throughput::Elements(1));
    for kind in KINDS {
        let (mut tx, mut rx, _name) = channel::<W>(kind);
        let (order, orders) = mpsc::channel::<u64>();
        let producer = std::thread::spawn(move || {
            let mut m = [0u64; W];
            let mut n = 0;
            for count in orders {
                for _ in 0..count {
                    n += 1;
                    m[0] = n;
                    tx.send(&m);
                }
            }
        });
        let mut m = [0u64; W];
        let mut sent = 0u64;
        g.bench_function(kind, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                order.send(iters).unwrap();
                sent += iters;
                // A broadcast reader may skip lost messages: wait for the last one's number.
                while m[0] < sent {
                    rx.recv(&mut m);
                }
                black_box(&m);
                start.elapsed()
            })
        });
        drop(order);
        producer.join().unwrap();
    }
    g.finish();
}

/// Round trips: the bench thread pings, an echo thread sends each message back.
fn round_trips<const W: usize>(c: &mut Criterion, label: &str) {
    let mut g = c.benchmark_group(format!("rtt_{label}"));
    let mut percentiles = Vec::new();
    for kind in KINDS {
        let (mut ping_tx, mut ping_rx, _n1) = channel::<W>(kind);
        let (mut pong_tx, mut pong_rx, _n2) = channel::<W>(kind);
        let echo = std::thread::spawn(move || {
            let mut m = [0u64; W];
            loop {
                ping_rx.recv(&mut m);
                pong_tx.send(&m);
                if m[0] == u64::MAX {
                    return;
                }
            }
        });
        let mut m = [0u64; W];
        let mut n = 0;
        let mut trip = |m: &mut [u64; W]| {
            n += 1;
            m[0] = n;
            ping_tx.send(m);
            pong_rx.recv(m);
            assert_eq!(m[0], n);
        };
        g.bench_function(kind, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    trip(&mut m);
                }
                start.elapsed()
            })
        });
        let mut samples: Vec<Duration> = (0..RTT_SAMPLES)
            .map(|_| {
                let start = Instant::now();
                trip(&mut m);
                start.elapsed()
            })
            .collect();
        samples.sort();
        let p = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
        percentiles.push(format!(
            "rtt_{label}/{kind} p50={:?} p99={:?}",
            p(0.5),
            p(0.99)
        ));
        m[0] = u64::MAX;
        ping_tx.send(&m);
        pong_rx.recv(&mut m);
        echo.join().unwrap();
    }
    g.finish();
    for line in percentiles {
        println!("{line}");
    }
}

fn benches(c: &mut Criterion) {
    throughput::<8>(c, "64B");
    throughput::<512>(c, "4KiB");
    round_trips::<8>(c, "64B");
    round_trips::<512>(c, "4KiB");
}

criterion_group! {
    name = stream;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    targets = benches
}
criterion_main!(stream);
