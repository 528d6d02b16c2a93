//! The contenders: one writer side and one reader side each, over a value of `W` words.
//!
//! Every value the writers publish has all words equal (derived from one counter), so a reader
//! detects a torn copy by comparing the words; the unsynchronised plain copy shows what that
//! looks like.

use shm_core::{Options, Reader, SharedState, Writer};
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A contender by name, as on the command line and in the results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Unsynchronised plain copy out of (or into) a shared mapping: the limit.
    Limit,
    /// shm-core with this many slots.
    Ours(usize),
    /// A robust, process-shared pthread mutex around a plain copy.
    Mutex,
    /// Request/response over a Unix stream socket.
    Socket,
    /// iceoryx2's blackboard.
    Iceoryx2,
    /// Cloudflare's mmap-sync.
    MmapSync,
    /// A plain copy and a futex word beside it: the writer copies, bumps the word and
    /// `FUTEX_WAKE`s; the reader `FUTEX_WAIT`s on the word and copies. The floor of a blocked
    /// reader's wake-up (`latency_wake` only: no consistency of its own).
    Futex,
}

impl Kind {
    pub fn label(self) -> String {
        match self {
            Kind::Limit => "limit".into(),
            Kind::Ours(n) => format!("ours-{n}slot"),
            Kind::Mutex => "robust-mutex".into(),
            Kind::Socket => "unix-socket".into(),
            Kind::Iceoryx2 => "iceoryx2".into(),
            Kind::MmapSync => "mmap-sync".into(),
            Kind::Futex => "futex-raw".into(),
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "limit" => Kind::Limit,
            "robust-mutex" => Kind::Mutex,
            "unix-socket" => Kind::Socket,
            "iceoryx2" => Kind::Iceoryx2,
            "mmap-sync" => Kind::MmapSync,
            "futex-raw" => Kind::Futex,
            _ => Kind::Ours(
                s.strip_prefix("ours-")?
                    .strip_suffix("slot")?
                    .parse()
                    .ok()?,
            ),
        })
    }
}

/// The publishing side.
pub trait WriteSide<const W: usize> {
    fn publish(&mut self, value: &[u64; W]);
    /// Wakes blocked readers after a publish, where the contender has a separate notification
    /// (iceoryx2's event); others wake in `publish` or not at all.
    fn notify(&mut self) {}
}

/// The reading side.
pub trait ReadSide<const W: usize> {
    /// Copies the current value into `out`; returns how many times it retried.
    fn read(&mut self, out: &mut [u64; W]) -> u32;
    /// Where the reader is, for [`wait`](Self::wait): taken before a read.
    fn token(&self) -> u64 {
        0
    }
    /// Blocks until a publish after `token` was taken, where the contender can block; `false`
    /// if it cannot.
    fn wait(&mut self, _token: u64) -> bool {
        false
    }
}

/// The files or objects a contender named `name` leaves, to remove.
pub fn leftovers(kind: Kind, name: &str) -> Vec<PathBuf> {
    let base = name.trim_start_matches('/');
    match kind {
        Kind::Limit | Kind::Mutex | Kind::Ours(_) | Kind::Futex => {
            vec![PathBuf::from(format!("/dev/shm/{base}"))]
        }
        Kind::Socket => vec![PathBuf::from(format!("/tmp/{base}.sock"))],
        Kind::MmapSync => ["_state", "_data_0", "_data_1"]
            .iter()
            .map(|s| PathBuf::from(format!("/dev/shm/{base}{s}")))
            .collect(),
        Kind::Iceoryx2 => vec![],
    }
}

/// Something to do with a concrete writer side: each contender's code is monomorphised into
/// the measuring loop, as a program using it would be (no virtual call per operation).
pub trait WithWriter<const W: usize> {
    fn run<S: WriteSide<W>>(self, side: S);
}

/// Something to do with a concrete reader side; see [`WithWriter`].
pub trait WithReader<const W: usize> {
    fn run<R: ReadSide<W>>(self, side: R);
}

pub fn with_writer<const W: usize>(kind: Kind, name: &str, job: impl WithWriter<W>) {
    match kind {
        Kind::Limit => job.run(PlainWriter::<W>(Mapping::create(name, W * 8))),
        Kind::Ours(slots) => {
            let zero: Box<[u64; W]> = vec![0; W].into_boxed_slice().try_into().unwrap();
            job.run(
                Options::new()
                    .slots(slots)
                    .create::<[u64; W]>(name, &zero)
                    .expect("create the segment"),
            )
        }
        Kind::Mutex => job.run(MutexSide::<W>::create(name)),
        Kind::Socket => unreachable!("the socket writer is a server (see `serve`)"),
        Kind::Iceoryx2 => job.run(ice::Writer::<W>::create(name)),
        Kind::MmapSync => job.run(msync::Writer::<W>::create(name)),
        Kind::Futex => job.run(FutexSide::<W>(Mapping::create(name, FUTEX_ROOM + W * 8))),
    }
}

pub fn with_reader<const W: usize>(kind: Kind, name: &str, job: impl WithReader<W>) {
    match kind {
        Kind::Limit => job.run(PlainReader::<W>(Mapping::open(name, W * 8))),
        Kind::Ours(_) => job.run(<[u64; W]>::open(name).expect("open the segment")),
        Kind::Mutex => job.run(MutexSide::<W>::open(name)),
        Kind::Socket => job.run(SocketReader(
            UnixStream::connect(format!("/tmp/{}.sock", name.trim_start_matches('/')))
                .expect("connect"),
        )),
        Kind::Iceoryx2 => job.run(ice::Reader::<W>::open(name)),
        Kind::MmapSync => job.run(msync::Reader::<W>::open(name)),
        Kind::Futex => job.run(FutexSide::<W>(Mapping::open(name, FUTEX_ROOM + W * 8))),
    }
}

/// Opens a reader side and reads once: one attach.
pub fn attach<const W: usize>(kind: Kind, name: &str, buf: &mut [u64; W]) {
    struct Once<'a, const W: usize>(&'a mut [u64; W]);
    impl<const W: usize> WithReader<W> for Once<'_, W> {
        fn run<R: ReadSide<W>>(self, mut side: R) {
            side.read(self.0);
        }
    }
    with_reader(kind, name, Once(buf));
}

// ---------------------------------------------------------------------------------------------
// shm-core

impl<const W: usize> WriteSide<W> for Writer<[u64; W]> {
    #[inline(always)]
    fn publish(&mut self, value: &[u64; W]) {
        self.write(value);
    }
}

impl<const W: usize> ReadSide<W> for Reader<[u64; W]> {
    #[inline(always)]
    fn read(&mut self, out: &mut [u64; W]) -> u32 {
        let mut retries = 0;
        while !shm_core::__private::hooks::read_attempt(self, out) {
            retries += 1;
            if retries >= crate::measure::STARVED_AFTER {
                break;
            }
        }
        retries
    }

    fn token(&self) -> u64 {
        self.version()
    }

    fn wait(&mut self, token: u64) -> bool {
        self.wait_for_update(token, Duration::from_secs(5)).is_ok()
    }
}

// ---------------------------------------------------------------------------------------------
// A shared mapping (the plain copy and the mutex live in one)

pub struct Mapping {
    ptr: *mut u8,
    len: usize,
}

impl Mapping {
    fn map(name: &str, len: usize, create: bool) -> Mapping {
        let cname = CString::new(name).unwrap();
        let flags = if create {
            libc::O_CREAT | libc::O_EXCL | libc::O_RDWR
        } else {
            libc::O_RDWR
        };
        // SAFETY: `cname` is a NUL-terminated string that lives across the call.
        let fd = unsafe { libc::shm_open(cname.as_ptr(), flags, 0o600) };
        assert!(
            fd >= 0,
            "shm_open {name}: {}",
            std::io::Error::last_os_error()
        );
        if create {
            // SAFETY: `fd` is the descriptor just opened.
            let rc = unsafe { libc::ftruncate(fd, len as libc::off_t) };
            assert_eq!(rc, 0, "ftruncate {name}");
        }
        // SAFETY: a fresh shared mapping of `len` bytes of `fd`, which is at least `len` long
        // (created so, or by the creator); the kernel picks the address.
        let ptr = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED, "mmap {name}");
        // SAFETY: `fd` is ours; the mapping keeps the object alive.
        unsafe { libc::close(fd) };
        Mapping {
            ptr: ptr as *mut u8,
            len,
        }
    }
    pub fn create(name: &str, len: usize) -> Mapping {
        Self::map(name, len, true)
    }
    pub fn open(name: &str, len: usize) -> Mapping {
        Self::map(name, len, false)
    }
    /// The start of the mapping (page-aligned).
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, unmapped once.
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len) };
    }
}

/// The limit: `copy_nonoverlapping` in, no synchronisation at all.
struct PlainWriter<const W: usize>(Mapping);

impl<const W: usize> WriteSide<W> for PlainWriter<W> {
    #[inline(always)]
    fn publish(&mut self, value: &[u64; W]) {
        // SAFETY: the mapping holds `W * 8` bytes, `value` too. The copy races with readers on
        // purpose: this is the hand-rolled `shm_open` + `mmap` + cast, measured as the lower
        // bound, and its readers count the torn values it gives.
        unsafe {
            core::ptr::copy_nonoverlapping(
                value.as_ptr() as *const u8,
                std::hint::black_box(self.0.ptr),
                W * 8,
            )
        };
    }
}

/// The limit: `copy_nonoverlapping` out, no synchronisation at all.
struct PlainReader<const W: usize>(Mapping);

impl<const W: usize> ReadSide<W> for PlainReader<W> {
    #[inline(always)]
    fn read(&mut self, out: &mut [u64; W]) -> u32 {
        // SAFETY: the mapping holds `W * 8` bytes, `out` too; deliberately unsynchronised (see
        // `PlainWriter`).
        unsafe {
            core::ptr::copy_nonoverlapping(
                std::hint::black_box(self.0.ptr as *const u8),
                out.as_mut_ptr() as *mut u8,
                W * 8,
            )
        };
        0
    }
}

// ---------------------------------------------------------------------------------------------
// A raw futex word beside a plain copy

/// Room for the futex word before the data: one cache line.
const FUTEX_ROOM: usize = 64;

/// The futex word at the start of the mapping, then the value.
pub(crate) struct FutexSide<const W: usize>(Mapping);

impl<const W: usize> FutexSide<W> {
    fn word(&self) -> &core::sync::atomic::AtomicU32 {
        // SAFETY: the mapping starts with `FUTEX_ROOM >= 4` bytes, page-aligned; any bytes are
        // a valid `AtomicU32`, and the other process changing them is what atomics are for.
        unsafe { &*(self.0.ptr as *const core::sync::atomic::AtomicU32) }
    }
    fn data(&self) -> *mut u8 {
        // SAFETY: `FUTEX_ROOM + W * 8` bytes are mapped.
        unsafe { self.0.ptr.add(FUTEX_ROOM) }
    }
    fn futex(&self, op: libc::c_int, val: u32, timeout: Option<&libc::timespec>) {
        // SAFETY: the word is a 4-aligned `u32` in a shared mapping that outlives the call;
        // `timeout` is null or a valid timespec. A shared (not private) futex: the peer is
        // another process.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                self.word().as_ptr(),
                op,
                val,
                timeout.map_or(core::ptr::null(), |t| t as *const libc::timespec),
            )
        };
    }
}

impl<const W: usize> WriteSide<W> for FutexSide<W> {
    #[inline(always)]
    fn publish(&mut self, value: &[u64; W]) {
        // SAFETY: the data is `W * 8` mapped bytes, `value` too; unsynchronised, as the limit
        // (the reader copies only after it was woken, 30-70 us before the next publish).
        unsafe { core::ptr::copy_nonoverlapping(value.as_ptr() as *const u8, self.data(), W * 8) };
        self.word().fetch_add(1, Ordering::Release);
    }
    fn notify(&mut self) {
        self.futex(libc::FUTEX_WAKE, i32::MAX as u32, None);
    }
}

impl<const W: usize> ReadSide<W> for FutexSide<W> {
    #[inline(always)]
    fn read(&mut self, out: &mut [u64; W]) -> u32 {
        // SAFETY: as in `publish`.
        unsafe { core::ptr::copy_nonoverlapping(self.data(), out.as_mut_ptr() as *mut u8, W * 8) };
        0
    }
    fn token(&self) -> u64 {
        self.word().load(Ordering::Acquire).into()
    }
    fn wait(&mut self, token: u64) -> bool {
        let timeout = libc::timespec {
            tv_sec: 5,
            tv_nsec: 0,
        };
        // One sleep: the caller goes round again after a spurious wake-up or a timeout.
        if u64::from(self.word().load(Ordering::Acquire)) == token {
            self.futex(libc::FUTEX_WAIT, token as u32, Some(&timeout));
        }
        u64::from(self.word().load(Ordering::Acquire)) != token
    }
}

// ---------------------------------------------------------------------------------------------
// Robust process-shared pthread mutex

/// Room for the mutex before the data: one cache line or more.
const MUTEX_ROOM: usize = 128;

pub(crate) struct MutexSide<const W: usize>(Mapping);

impl<const W: usize> MutexSide<W> {
    pub(crate) fn create(name: &str) -> Self {
        Self::create_with(name, false)
    }
    /// The same lock, priority-inheriting (`PTHREAD_PRIO_INHERIT`) too.
    pub(crate) fn create_pi(name: &str) -> Self {
        Self::create_with(name, true)
    }
    fn create_with(name: &str, pi: bool) -> Self {
        let m = Mapping::create(name, MUTEX_ROOM + W * 8);
        // SAFETY: the attribute object is initialised before use and destroyed after; the
        // mutex lies at the start of the fresh mapping (page-aligned, MUTEX_ROOM >=
        // size_of::<pthread_mutex_t>()), which no other process uses before the writer
        // reports ready.
        unsafe {
            let mut attr: libc::pthread_mutexattr_t = core::mem::zeroed();
            libc::pthread_mutexattr_init(&mut attr);
            libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED);
            libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST);
            if pi {
                libc::pthread_mutexattr_setprotocol(&mut attr, libc::PTHREAD_PRIO_INHERIT);
            }
            let rc = libc::pthread_mutex_init(m.ptr as *mut libc::pthread_mutex_t, &attr);
            assert_eq!(rc, 0, "pthread_mutex_init");
            libc::pthread_mutexattr_destroy(&mut attr);
        }
        MutexSide(m)
    }
    pub(crate) fn open(name: &str) -> Self {
        MutexSide(Mapping::open(name, MUTEX_ROOM + W * 8))
    }
    fn lock(&self) {
        let m = self.0.ptr as *mut libc::pthread_mutex_t;
        // SAFETY: `m` is the initialised process-shared mutex at the start of the mapping.
        let rc = unsafe { libc::pthread_mutex_lock(m) };
        if rc == libc::EOWNERDEAD {
            // SAFETY: we own the mutex (EOWNERDEAD); the data is a plain array, always valid.
            unsafe { libc::pthread_mutex_consistent(m) };
        } else {
            assert_eq!(rc, 0, "pthread_mutex_lock");
        }
    }
    fn unlock(&self) {
        // SAFETY: this process locked the mutex in `lock`.
        unsafe { libc::pthread_mutex_unlock(self.0.ptr as *mut libc::pthread_mutex_t) };
    }
    fn data(&self) -> *mut u8 {
        // SAFETY: `MUTEX_ROOM + W * 8` bytes are mapped.
        unsafe { self.0.ptr.add(MUTEX_ROOM) }
    }
}

impl<const W: usize> WriteSide<W> for MutexSide<W> {
    #[inline(always)]
    fn publish(&mut self, value: &[u64; W]) {
        self.lock();
        // SAFETY: the data is `W * 8` mapped bytes, accessed only under the mutex.
        unsafe { core::ptr::copy_nonoverlapping(value.as_ptr() as *const u8, self.data(), W * 8) };
        self.unlock();
    }
}

impl<const W: usize> ReadSide<W> for MutexSide<W> {
    #[inline(always)]
    fn read(&mut self, out: &mut [u64; W]) -> u32 {
        self.lock();
        // SAFETY: the data is `W * 8` mapped bytes, accessed only under the mutex.
        unsafe { core::ptr::copy_nonoverlapping(self.data(), out.as_mut_ptr() as *mut u8, W * 8) };
        self.unlock();
        0
    }
}

// ---------------------------------------------------------------------------------------------
// Unix socket request/response

/// Serves the value to one client: one byte in, the value out. `fresh` makes every response a
/// new value (the writer publishing back to back); otherwise the value stays.
pub fn serve<const W: usize>(name: &str, fresh: bool, stop: &AtomicBool, ready: impl FnOnce()) {
    let path = format!("/tmp/{}.sock", name.trim_start_matches('/'));
    let listener = UnixListener::bind(&path).expect("bind");
    listener
        .set_nonblocking(true)
        .expect("nonblocking listener");
    ready();
    let mut value: Box<[u64; W]> = vec![1; W].into_boxed_slice().try_into().unwrap();
    let mut c = 1u64;
    let mut req = [0u8; 1];
    while !stop.load(Ordering::Relaxed) {
        let Ok((mut conn, _)) = listener.accept() else {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        };
        conn.set_nonblocking(false).expect("blocking connection");
        while conn.read_exact(&mut req).is_ok() {
            if fresh {
                c += 1;
                value.fill(c);
            }
            // SAFETY: `[u64; W]` is `W * 8` initialised bytes.
            let bytes = unsafe { core::slice::from_raw_parts(value.as_ptr() as *const u8, W * 8) };
            if conn.write_all(bytes).is_err() {
                break;
            }
        }
    }
    let _ = std::fs::remove_file(path);
}

struct SocketReader(UnixStream);

impl<const W: usize> ReadSide<W> for SocketReader {
    fn read(&mut self, out: &mut [u64; W]) -> u32 {
        self.0.write_all(&[1]).expect("request");
        // SAFETY: `out` is `W * 8` bytes; any bytes are a valid `[u64; W]`.
        let bytes = unsafe { core::slice::from_raw_parts_mut(out.as_mut_ptr() as *mut u8, W * 8) };
        self.0.read_exact(bytes).expect("response");
        0
    }
}

// ---------------------------------------------------------------------------------------------
// iceoryx2 blackboard (and its event service for wake-ups)

mod ice {
    use super::{ReadSide, WriteSide};
    use iceoryx2::port::listener::Listener;
    use iceoryx2::port::notifier::Notifier;
    use iceoryx2::port::reader::EntryHandle;
    use iceoryx2::port::writer::EntryHandleMut;
    use iceoryx2::prelude::*;
    use std::time::Duration;

    fn service_name(name: &str, what: &str) -> ServiceName {
        format!("shm-bench/{}/{what}", name.trim_start_matches('/'))
            .as_str()
            .try_into()
            .expect("service name")
    }

    fn node() -> Node<ipc::Service> {
        iceoryx2::prelude::set_log_level(LogLevel::Error);
        NodeBuilder::new()
            .signal_handling_mode(SignalHandlingMode::Disabled)
            .create::<ipc::Service>()
            .expect("iceoryx2 node")
    }

    pub struct Writer<const W: usize> {
        entry: EntryHandleMut<ipc::Service, u64, [u64; W]>,
        notifier: Notifier<ipc::Service>,
        _writer: iceoryx2::port::writer::Writer<ipc::Service, u64>,
        _bb: iceoryx2::service::port_factory::blackboard::PortFactory<ipc::Service, u64>,
        _ev: iceoryx2::service::port_factory::event::PortFactory<ipc::Service>,
        _node: Node<ipc::Service>,
    }

    impl<const W: usize> Writer<W> {
        pub fn create(name: &str) -> Self {
            let node = node();
            let bb = node
                .service_builder(&service_name(name, "bb"))
                .blackboard_creator::<u64>()
                .add::<[u64; W]>(0, [0u64; W])
                .create()
                .expect("blackboard");
            let writer = bb.writer_builder().create().expect("blackboard writer");
            let entry = writer.entry::<[u64; W]>(&0).expect("blackboard entry");
            let ev = node
                .service_builder(&service_name(name, "ev"))
                .event()
                .open_or_create()
                .expect("event service");
            let notifier = ev.notifier_builder().create().expect("notifier");
            Writer {
                entry,
                notifier,
                _writer: writer,
                _bb: bb,
                _ev: ev,
                _node: node,
            }
        }
    }

    impl<const W: usize> WriteSide<W> for Writer<W> {
        #[inline(always)]
        fn publish(&mut self, value: &[u64; W]) {
            self.entry.update_with_copy(*value);
        }
        fn notify(&mut self) {
            self.notifier.notify().expect("notify");
        }
    }

    pub struct Reader<const W: usize> {
        entry: EntryHandle<ipc::Service, u64, [u64; W]>,
        listener: Listener<ipc::Service>,
        _reader: iceoryx2::port::reader::Reader<ipc::Service, u64>,
        _bb: iceoryx2::service::port_factory::blackboard::PortFactory<ipc::Service, u64>,
        _ev: iceoryx2::service::port_factory::event::PortFactory<ipc::Service>,
        _node: Node<ipc::Service>,
    }

    impl<const W: usize> Reader<W> {
        pub fn open(name: &str) -> Self {
            let node = node();
            let bb = node
                .service_builder(&service_name(name, "bb"))
                .blackboard_opener::<u64>()
                .open()
                .expect("open blackboard");
            let reader = bb.reader_builder().create().expect("blackboard reader");
            let entry = reader.entry::<[u64; W]>(&0).expect("blackboard entry");
            let ev = node
                .service_builder(&service_name(name, "ev"))
                .event()
                .open_or_create()
                .expect("event service");
            let listener = ev.listener_builder().create().expect("listener");
            Reader {
                entry,
                listener,
                _reader: reader,
                _bb: bb,
                _ev: ev,
                _node: node,
            }
        }
    }

    impl<const W: usize> ReadSide<W> for Reader<W> {
        #[inline(always)]
        fn read(&mut self, out: &mut [u64; W]) -> u32 {
            *out = *self.entry.get();
            0
        }
        fn wait(&mut self, _token: u64) -> bool {
            self.listener
                .timed_wait(|_| {}, Duration::from_secs(5))
                .map(|n| n > 0)
                .unwrap_or(false)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// mmap-sync

mod msync {
    use super::{ReadSide, WriteSide};
    use bytecheck::CheckBytes;
    use mmap_sync::synchronizer::Synchronizer;
    use rkyv::{Archive, Deserialize, Serialize};
    use std::time::Duration;

    /// The value as mmap-sync stores it: an rkyv archive.
    #[derive(Archive, Deserialize, Serialize)]
    #[archive_attr(derive(CheckBytes))]
    pub struct Words {
        pub words: Vec<u64>,
    }

    fn path(name: &str) -> String {
        format!("/dev/shm/{}", name.trim_start_matches('/'))
    }

    pub struct Writer<const W: usize> {
        sync: Synchronizer,
        value: Words,
    }

    impl<const W: usize> Writer<W> {
        pub fn create(name: &str) -> Self {
            let mut w = Writer {
                sync: Synchronizer::new(path(name).as_ref()),
                value: Words { words: vec![0; W] },
            };
            w.publish(&[0; W]);
            w
        }
    }

    impl<const W: usize> WriteSide<W> for Writer<W> {
        #[inline(always)]
        fn publish(&mut self, value: &[u64; W]) {
            self.value.words.copy_from_slice(value);
            self.sync
                .write(&self.value, Duration::from_secs(1))
                .expect("mmap-sync write");
        }
    }

    pub struct Reader<const W: usize> {
        sync: Synchronizer,
    }

    impl<const W: usize> Reader<W> {
        pub fn open(name: &str) -> Self {
            Reader {
                sync: Synchronizer::new(path(name).as_ref()),
            }
        }
    }

    impl<const W: usize> ReadSide<W> for Reader<W> {
        #[inline(always)]
        fn read(&mut self, out: &mut [u64; W]) -> u32 {
            // SAFETY: the data files hold archives of `Words` written by our writer, which
            // `write` validated before publishing them (mmap-sync's contract for unchecked
            // reads).
            let guard = unsafe { self.sync.read::<Words>(false) }.expect("mmap-sync read");
            out.copy_from_slice(&guard.words[..W]);
            0
        }
    }
}
