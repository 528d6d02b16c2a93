//! Streams: every message, in order, from a sender process to a receiver process pinned to
//! different CPUs. Contenders: our queue and broadcast stream, a plain single-producer
//! single-consumer ring in shared memory as the tutorials write it (the limit), a Unix-domain
//! stream socket, a named pipe and iceoryx2's publish-subscribe.
//!
//! Every message carries its number and its send time, and every other word derives from its
//! number: the receiver checks each one inside the timing (`torn` counts the bad ones) and
//! counts the messages a lossy contender dropped (`retries` in the rows).
//!
//! - `stream_throughput`: the sender sends `count` messages as fast as the contender lets it
//!   (our queue, the ring, the socket and the pipe apply backpressure; our broadcast stream and
//!   iceoryx2's default service overwrite what the receiver has not taken). The row's median is
//!   the receiver's nanoseconds per message received, first to last.
//! - `latency_stream`: one message every 20 us, each stamped when sent; the row gives the
//!   one-way latency's p50 and p99, the receiver polling without sleeping.

use crate::measure::now_ns;
use crate::{pin, tell, Budget, Row};
use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Message sizes.
pub const SIZES: [usize; 2] = [64, 4096];
/// Capacity of every ring, in messages.
const CAPACITY: usize = 1024;
/// Time between two messages in the latency case.
const LATENCY_GAP: Duration = Duration::from_micros(20);

/// The contenders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contender {
    Queue,
    Stream,
    Ring,
    Socket,
    Pipe,
    Iceoryx2,
}

pub const ALL: [Contender; 6] = [
    Contender::Queue,
    Contender::Stream,
    Contender::Ring,
    Contender::Socket,
    Contender::Pipe,
    Contender::Iceoryx2,
];

impl Contender {
    pub fn label(self) -> &'static str {
        match self {
            Contender::Queue => "ours-queue",
            Contender::Stream => "ours-stream",
            Contender::Ring => "spsc-ring",
            Contender::Socket => "unix-socket",
            Contender::Pipe => "pipe",
            Contender::Iceoryx2 => "iceoryx2-pubsub",
        }
    }

    fn parse(s: &str) -> Option<Contender> {
        ALL.into_iter().find(|c| c.label() == s)
    }
}

/// Message `n` sent at `stamp`.
fn message<const W: usize>(n: u64, stamp: u64) -> [u64; W] {
    core::array::from_fn(|i| match i {
        0 => n,
        1 => stamp,
        _ => n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i as u64,
    })
}

/// The number and send time of `m`, if every word agrees with its number.
fn check<const W: usize>(m: &[u64; W]) -> Option<(u64, u64)> {
    let n = m[0];
    (2..W)
        .all(|i| m[i] == n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i as u64)
        .then_some((n, m[1]))
}

/// Runs `case` (`stream_throughput` or `latency_stream`) for `contender` with messages of
/// `bytes`: a sender and a receiver child. `name` is unique to this run.
pub fn run_case(
    case: &str,
    contender: Contender,
    bytes: usize,
    name: &str,
    b: Budget,
) -> Option<Row> {
    let count = if case == "latency_stream" {
        b.samples as u64 * 20
    } else {
        b.samples as u64 * 2000
    };
    let spawn = |role: &str, cpu: usize| -> Child {
        Command::new(std::env::current_exe().expect("own executable"))
            .args([
                "--stream-role",
                role,
                contender.label(),
                &bytes.to_string(),
                case,
                name,
                &cpu.to_string(),
                &count.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn a child")
    };
    if contender == Contender::Pipe {
        let path = std::ffi::CString::new(fifo_path(name)).unwrap();
        // SAFETY: `path` is a valid NUL-terminated string.
        if unsafe { libc::mkfifo(path.as_ptr(), 0o600) } != 0 {
            eprintln!("mkfifo: {}", std::io::Error::last_os_error());
            return None;
        }
    }
    let mut tx = spawn("send", 0);
    let line = if line_of(&mut tx).as_deref() == Some("ready") {
        let mut rx = spawn("receive", 1);
        let line = if line_of(&mut rx).as_deref() == Some("ready") {
            // Both ends are open: go.
            let _ = tx.stdin.as_mut().map(|s| s.write_all(b"g\n"));
            let _ = tx.stdin.as_mut().map(|s| s.flush());
            line_of(&mut rx)
        } else {
            None
        };
        let _ = rx.kill();
        let _ = rx.wait();
        line
    } else {
        None
    };
    drop(tx.stdin.take());
    let _ = tx.kill();
    let _ = tx.wait();
    cleanup(contender, name);
    let mut row = crate::measure::parse(&line?)?;
    row.case = case.into();
    row.contender = contender.label().into();
    row.bytes = bytes;
    Some(row)
}

fn line_of(child: &mut Child) -> Option<String> {
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut()?)
        .read_line(&mut line)
        .ok()?;
    Some(line.trim().to_string()).filter(|l| !l.is_empty())
}

fn fifo_path(name: &str) -> String {
    format!("/tmp{name}.fifo")
}

fn socket_path(name: &str) -> String {
    format!("/tmp{name}.sock")
}

fn ring_path(name: &str) -> String {
    format!("/dev/shm{name}")
}

/// Removes what a case may have left (a killed child does not clean up).
fn cleanup(contender: Contender, name: &str) {
    let path = match contender {
        Contender::Queue | Contender::Stream | Contender::Ring => ring_path(name),
        Contender::Socket => socket_path(name),
        Contender::Pipe => fifo_path(name),
        Contender::Iceoryx2 => return,
    };
    let _ = std::fs::remove_file(path);
}

/// A child's entry: `--stream-role ROLE CONTENDER BYTES CASE NAME CPU COUNT`.
pub fn child(args: &[String]) {
    let role = args[0].clone();
    let contender = Contender::parse(&args[1]).expect("contender");
    let bytes: usize = args[2].parse().unwrap();
    let case = args[3].clone();
    let name = args[4].clone();
    let cpu: usize = args[5].parse().unwrap();
    let count: u64 = args[6].parse().unwrap();
    let worker = std::thread::Builder::new()
        .stack_size(16 << 20)
        .spawn(move || {
            pin(cpu);
            let job = Job {
                role,
                contender,
                case,
                name,
                count,
            };
            match bytes / 8 {
                8 => job.run::<8>(),
                512 => job.run::<512>(),
                w => panic!("no instantiation for {w} words"),
            }
        })
        .expect("spawn the worker thread");
    if worker.join().is_err() {
        std::process::exit(1);
    }
}

struct Job {
    role: String,
    contender: Contender,
    case: String,
    name: String,
    count: u64,
}

/// The sending end.
trait Tx<const W: usize> {
    /// Sends `m`, waiting for room where the contender has backpressure.
    fn send(&mut self, m: &[u64; W]);
}

/// The receiving end.
trait Rx<const W: usize> {
    /// The next message into `m` (waiting for it); `Err(n)` when `n` messages were lost
    /// before it.
    fn recv(&mut self, m: &mut [u64; W]) -> Result<(), u64>;
}

impl Job {
    fn run<const W: usize>(&self) {
        let n = &self.name;
        if self.role == "send" {
            match self.contender {
                Contender::Queue => self.send::<W>(ours::queue_tx(n)),
                Contender::Stream => self.send::<W>(ours::stream_tx(n)),
                Contender::Ring => self.send::<W>(ring::Ring::create(&ring_path(n))),
                Contender::Socket => self.send::<W>(io::socket_tx(&socket_path(n))),
                Contender::Pipe => self.send::<W>(io::pipe_tx(&fifo_path(n))),
                Contender::Iceoryx2 => self.send::<W>(ice::IceTx::create(n)),
            }
        } else {
            match self.contender {
                Contender::Queue => self.receive::<W>(ours::queue_rx(n)),
                Contender::Stream => self.receive::<W>(ours::stream_rx(n)),
                Contender::Ring => self.receive::<W>(ring::Ring::open(&ring_path(n))),
                Contender::Socket => self.receive::<W>(io::socket_rx(&socket_path(n))),
                Contender::Pipe => self.receive::<W>(io::pipe_rx(&fifo_path(n))),
                Contender::Iceoryx2 => self.receive::<W>(ice::IceRx::open(n)),
            }
        }
    }

    /// Says `ready` once `make` has made the sending end (for the socket and the pipe, once
    /// the receiver connected), waits for the go, then sends every message.
    fn send<const W: usize>(&self, make: impl Ready<W>) {
        let mut tx = make.ready();
        let mut go = String::new();
        let _ = std::io::stdin().read_line(&mut go);
        let latency = self.case == "latency_stream";
        for n in 1..=self.count {
            if latency {
                let until = Instant::now() + LATENCY_GAP;
                while Instant::now() < until {
                    core::hint::spin_loop();
                }
            }
            tx.send(&message::<W>(n, now_ns()));
        }
        // Keep the sending end open until the parent is done with the case.
        let mut rest = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut rest);
    }

    fn receive<const W: usize>(&self, mut rx: impl Rx<W>) {
        tell("ready");
        let mut m = [0u64; W];
        let (mut received, mut lost, mut bad, mut next) = (0u64, 0u64, 0u64, 1u64);
        let mut latencies = Vec::with_capacity(self.count as usize);
        let mut first = 0u64;
        while next <= self.count {
            match rx.recv(&mut m) {
                Ok(()) => {
                    let now = now_ns();
                    let Some((n, stamp)) = check(&m) else {
                        bad += 1;
                        next += 1;
                        continue;
                    };
                    if received == 0 {
                        first = now;
                    }
                    if n < next {
                        // Duplicated or out of order.
                        bad += 1;
                        continue;
                    }
                    // A lossy contender dropped the messages in between.
                    lost += n - next;
                    latencies.push(now.saturating_sub(stamp) as f64);
                    received += 1;
                    next = n + 1;
                }
                Err(missed) => {
                    lost += missed;
                    next += missed;
                }
            }
        }
        let elapsed = now_ns() - first;
        let (median, p99) = if self.case == "latency_stream" {
            latencies.sort_by(f64::total_cmp);
            let q = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
            (q(0.5), q(0.99))
        } else {
            let per = elapsed as f64 / received.saturating_sub(1).max(1) as f64;
            (per, per)
        };
        tell(
            &json!({
                "median_ns": median,
                "p99_ns": p99,
                "ops": received,
                "torn": bad,
                "retries": lost,
                "distinct": received,
                "used": received,
            })
            .to_string(),
        );
    }
}

/// Makes a sending end; `ready` says so to the parent at the right moment.
trait Ready<const W: usize> {
    type Tx: Tx<W>;
    fn ready(self) -> Self::Tx;
}

/// Ends that are usable as soon as they exist.
struct Made<T>(T);

impl<const W: usize, T: Tx<W>> Ready<W> for Made<T> {
    type Tx = T;
    fn ready(self) -> T {
        tell("ready");
        self.0
    }
}

mod ours {
    use super::{Made, Rx, Tx};
    use shm_core::{Error, QueueConsumer, QueueProducer, SharedState, StreamReader, StreamWriter};

    pub fn queue_tx<const W: usize>(name: &str) -> Made<QueueProducer<[u64; W]>> {
        Made(<[u64; W]>::create_queue(name, super::CAPACITY).expect("create the queue"))
    }

    pub fn stream_tx<const W: usize>(name: &str) -> Made<StreamWriter<[u64; W]>> {
        Made(<[u64; W]>::create_stream(name, super::CAPACITY).expect("create the stream"))
    }

    pub fn queue_rx<const W: usize>(name: &str) -> QueueConsumer<[u64; W]> {
        <[u64; W]>::open_consumer(name).expect("open the consumer")
    }

    pub fn stream_rx<const W: usize>(name: &str) -> StreamReader<[u64; W]> {
        <[u64; W]>::subscribe(name).expect("subscribe")
    }

    impl<const W: usize> Tx<W> for QueueProducer<[u64; W]> {
        #[inline(always)]
        fn send(&mut self, m: &[u64; W]) {
            QueueProducer::send(self, m);
        }
    }

    impl<const W: usize> Tx<W> for StreamWriter<[u64; W]> {
        #[inline(always)]
        fn send(&mut self, m: &[u64; W]) {
            StreamWriter::send(self, m);
        }
    }

    impl<const W: usize> Rx<W> for QueueConsumer<[u64; W]> {
        #[inline(always)]
        fn recv(&mut self, m: &mut [u64; W]) -> Result<(), u64> {
            // Straight into the caller's buffer, as the ring's consumer copies (`recv_into`).
            while !self.recv_into(m).expect("receive") {
                core::hint::spin_loop();
            }
            Ok(())
        }
    }

    impl<const W: usize> Rx<W> for StreamReader<[u64; W]> {
        #[inline(always)]
        fn recv(&mut self, m: &mut [u64; W]) -> Result<(), u64> {
            loop {
                match self.try_recv() {
                    Ok(Some(v)) => {
                        *m = v;
                        return Ok(());
                    }
                    Ok(None) => core::hint::spin_loop(),
                    Err(Error::Lagged { missed }) => return Err(missed),
                    Err(e) => panic!("receive: {e}"),
                }
            }
        }
    }
}

/// A single-producer single-consumer ring in shared memory as the tutorials write it: a head
/// and a tail counter on their own cache lines, the producer copies a message into the slot at
/// the head and publishes it with a Release store, the consumer copies it out after an Acquire
/// load and frees the slot with a Release store of the tail. No per-message sequence word, no
/// crash safety, no layout check.
mod ring {
    use super::{AtomicU64, Made, Ordering, Rx, Tx, CAPACITY};

    pub struct Ring<const W: usize> {
        base: *mut u8,
        len: usize,
        /// Copies of the other side's counter, reloaded only when they show no progress.
        seen: u64,
        mine: u64,
        owner: Option<String>,
    }

    const HEAD: usize = 0;
    const TAIL: usize = 64;
    const SLOTS: usize = 128;

    impl<const W: usize> Ring<W> {
        fn map(path: &str, create: bool) -> Ring<W> {
            let len = SLOTS + CAPACITY * W * 8;
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(create)
                .open(path)
                .expect("the ring file");
            if create {
                f.set_len(len as u64).expect("size the ring");
            }
            use std::os::fd::AsRawFd;
            // SAFETY: a shared mapping of `len` bytes of the file we opened, with no address
            // hint; the result is checked against MAP_FAILED.
            let base = unsafe {
                libc::mmap(
                    core::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    f.as_raw_fd(),
                    0,
                )
            };
            assert_ne!(base, libc::MAP_FAILED);
            Ring {
                base: base as *mut u8,
                len,
                seen: 0,
                mine: 0,
                owner: create.then(|| path.to_string()),
            }
        }

        pub fn create(path: &str) -> Made<Ring<W>> {
            Made(Self::map(path, true))
        }

        pub fn open(path: &str) -> Ring<W> {
            Self::map(path, false)
        }

        fn counter(&self, at: usize) -> &AtomicU64 {
            // SAFETY: `at` is 0 or 64, inside the page-aligned mapping and 8-aligned; the
            // borrow does not outlive `self`, which owns the mapping.
            unsafe { &*(self.base.add(at) as *const AtomicU64) }
        }

        fn slot(&self, n: u64) -> *mut [u64; W] {
            let i = (n % CAPACITY as u64) as usize;
            // SAFETY: slot `i` < CAPACITY lies inside the mapping (`SLOTS + CAPACITY * W * 8`
            // bytes), 8-aligned.
            unsafe { self.base.add(SLOTS + i * W * 8) as *mut [u64; W] }
        }
    }

    impl<const W: usize> Drop for Ring<W> {
        fn drop(&mut self) {
            // SAFETY: the mapping made in `map`, unmapped once.
            unsafe { libc::munmap(self.base as *mut libc::c_void, self.len) };
            if let Some(p) = &self.owner {
                let _ = std::fs::remove_file(p);
            }
        }
    }

    impl<const W: usize> Tx<W> for Ring<W> {
        #[inline(always)]
        fn send(&mut self, m: &[u64; W]) {
            // `mine`: messages sent; `seen`: the consumer's tail as last loaded.
            while self.mine - self.seen >= CAPACITY as u64 {
                self.seen = self.counter(TAIL).load(Ordering::Acquire);
                core::hint::spin_loop();
            }
            // SAFETY: the slot is free (the consumer's tail passed it, Acquire above) and only
            // this producer writes it until the Release store below publishes it.
            unsafe { self.slot(self.mine).write(*m) };
            self.mine += 1;
            self.counter(HEAD).store(self.mine, Ordering::Release);
        }
    }

    impl<const W: usize> Rx<W> for Ring<W> {
        #[inline(always)]
        fn recv(&mut self, m: &mut [u64; W]) -> Result<(), u64> {
            // `mine`: messages taken; `seen`: the producer's head as last loaded.
            while self.seen == self.mine {
                self.seen = self.counter(HEAD).load(Ordering::Acquire);
                core::hint::spin_loop();
            }
            // SAFETY: the slot holds a published message (Acquire above) that the producer
            // does not touch until the Release store of the tail below.
            *m = unsafe { self.slot(self.mine).read() };
            self.mine += 1;
            self.counter(TAIL).store(self.mine, Ordering::Release);
            Ok(())
        }
    }
}

/// A Unix-domain stream socket and a named pipe: bytes through the kernel, two copies per
/// message.
mod io {
    use super::{Ready, Rx, Tx};
    use std::io::{Read, Write};

    /// A byte stream carrying whole messages.
    pub struct Bytes<T>(T);

    /// Binds, says `ready`, then accepts the receiver.
    pub struct Listening(std::os::unix::net::UnixListener, String);

    pub fn socket_tx(path: &str) -> Listening {
        let _ = std::fs::remove_file(path);
        Listening(
            std::os::unix::net::UnixListener::bind(path).expect("bind"),
            path.to_string(),
        )
    }

    impl<const W: usize> Ready<W> for Listening {
        type Tx = Bytes<std::os::unix::net::UnixStream>;
        fn ready(self) -> Self::Tx {
            super::tell("ready");
            let (s, _) = self.0.accept().expect("accept");
            let _ = std::fs::remove_file(&self.1);
            Bytes(s)
        }
    }

    pub fn socket_rx(path: &str) -> Bytes<std::os::unix::net::UnixStream> {
        Bytes(std::os::unix::net::UnixStream::connect(path).expect("connect"))
    }

    /// Says `ready` (the parent made the FIFO), then opens it, which waits for the reader.
    pub struct Fifo(String);

    pub fn pipe_tx(path: &str) -> Fifo {
        Fifo(path.to_string())
    }

    impl<const W: usize> Ready<W> for Fifo {
        type Tx = Bytes<std::fs::File>;
        fn ready(self) -> Self::Tx {
            super::tell("ready");
            Bytes(
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&self.0)
                    .expect("open the FIFO"),
            )
        }
    }

    pub fn pipe_rx(path: &str) -> Bytes<std::fs::File> {
        Bytes(std::fs::File::open(path).expect("open the FIFO"))
    }

    fn as_bytes<const W: usize>(m: &[u64; W]) -> &[u8] {
        // SAFETY: `[u64; W]` is `W * 8` initialized bytes with no padding.
        unsafe { core::slice::from_raw_parts(m.as_ptr() as *const u8, W * 8) }
    }

    impl<const W: usize, T: Write> Tx<W> for Bytes<T> {
        fn send(&mut self, m: &[u64; W]) {
            self.0.write_all(as_bytes(m)).expect("write");
        }
    }

    impl<const W: usize, T: Read> Rx<W> for Bytes<T> {
        fn recv(&mut self, m: &mut [u64; W]) -> Result<(), u64> {
            // SAFETY: any bytes are a valid `[u64; W]`, which is `W * 8` bytes.
            let buf = unsafe { core::slice::from_raw_parts_mut(m.as_mut_ptr() as *mut u8, W * 8) };
            self.0.read_exact(buf).expect("read");
            Ok(())
        }
    }
}

/// iceoryx2's publish-subscribe service with its defaults for delivery (a full subscriber
/// buffer loses its oldest sample), a subscriber buffer of the rings' capacity.
mod ice {
    use super::{Made, CAPACITY};
    use iceoryx2::port::publisher::Publisher;
    use iceoryx2::port::subscriber::Subscriber;
    use iceoryx2::prelude::*;

    fn service<const W: usize>(
        node: &Node<ipc::Service>,
        name: &str,
    ) -> iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, [u64; W], ()>
    {
        let service_name: ServiceName = format!("shm-bench/{}/ps", name.trim_start_matches('/'))
            .as_str()
            .try_into()
            .expect("service name");
        node.service_builder(&service_name)
            .publish_subscribe::<[u64; W]>()
            .subscriber_max_buffer_size(CAPACITY)
            .open_or_create()
            .expect("publish-subscribe service")
    }

    fn node() -> Node<ipc::Service> {
        iceoryx2::prelude::set_log_level(LogLevel::Error);
        NodeBuilder::new()
            .signal_handling_mode(SignalHandlingMode::Disabled)
            .create::<ipc::Service>()
            .expect("iceoryx2 node")
    }

    pub struct IceTx<const W: usize> {
        publisher: Publisher<ipc::Service, [u64; W], ()>,
        _service: iceoryx2::service::port_factory::publish_subscribe::PortFactory<
            ipc::Service,
            [u64; W],
            (),
        >,
        _node: Node<ipc::Service>,
    }

    impl<const W: usize> IceTx<W> {
        pub fn create(name: &str) -> Made<IceTx<W>> {
            let node = node();
            let service = service::<W>(&node, name);
            let publisher = service.publisher_builder().create().expect("publisher");
            Made(IceTx {
                publisher,
                _service: service,
                _node: node,
            })
        }
    }

    impl<const W: usize> super::Tx<W> for IceTx<W> {
        #[inline(always)]
        fn send(&mut self, m: &[u64; W]) {
            let sample = self.publisher.loan_uninit().expect("loan");
            sample.write_payload(*m).send().expect("send");
        }
    }

    pub struct IceRx<const W: usize> {
        subscriber: Subscriber<ipc::Service, [u64; W], ()>,
        _service: iceoryx2::service::port_factory::publish_subscribe::PortFactory<
            ipc::Service,
            [u64; W],
            (),
        >,
        _node: Node<ipc::Service>,
    }

    impl<const W: usize> IceRx<W> {
        pub fn open(name: &str) -> IceRx<W> {
            let node = node();
            let service = service::<W>(&node, name);
            let subscriber = service
                .subscriber_builder()
                .buffer_size(CAPACITY)
                .create()
                .expect("subscriber");
            IceRx {
                subscriber,
                _service: service,
                _node: node,
            }
        }
    }

    impl<const W: usize> super::Rx<W> for IceRx<W> {
        #[inline(always)]
        fn recv(&mut self, m: &mut [u64; W]) -> Result<(), u64> {
            loop {
                if let Some(sample) = self.subscriber.receive().expect("receive") {
                    *m = *sample;
                    return Ok(());
                }
                core::hint::spin_loop();
            }
        }
    }
}
