//! Exporting: local segments whose names match an `--export` pattern, served to other hosts.
//!
//! A scanner lists `/dev/shm` every [`SCAN_EVERY`] and hands each matching segment (a
//! re-created one again) to one of two threads: one serves every exported state, the other
//! every exported stream, each waiting on all of its segments at once through one
//! [`WaitSet`] (no polling, and no thread per segment; a state exported alone is waited on
//! directly on its futex, which wakes quicker). A state is published at each new
//! version read, dropping under congestion so that remote readers get the latest value; a
//! stream's messages are published in batches, blocking under congestion so that nothing is
//! lost while the network keeps up (a stream that blocks does not hold up the states). Each
//! export holds the liveliness token `…/alive/EPOCH` while its segment has a live writer,
//! checked at least every [`WAIT_SLICE`]. With [`Config::spin`](crate::Config::spin), the
//! states' thread looks at its segments' version words for that long after each
//! publication before it sleeps, so that a writer publishing again within that time is seen
//! without a wake-up.

use crate::wire::{self, Announcement, Batch, StateUpdate};
use crate::{glob, Shared};
use shm_core::{Error, Key, Options, RawReader, RawStreamReader, SegmentKind, WaitSet};
use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use zenoh::bytes::ZBytes;
use zenoh::qos::CongestionControl;
use zenoh::Wait;

/// How often the scanner lists `/dev/shm`: a segment created after start is exported within
/// this time, plus the importer's discovery period.
pub const SCAN_EVERY: Duration = Duration::from_millis(250);
/// Longest wait of an export between two looks at the writer's lease: a local writer's death
/// is announced (its liveliness token withdrawn) within about this time.
pub const WAIT_SLICE: Duration = Duration::from_millis(100);
/// Longest sleep of an export thread between two looks at its new exports and stop flags.
const IDLE_POLL: Duration = Duration::from_millis(25);
/// Longest wait for a consistent read of a state whose writer keeps its slots busy.
const READ_WAIT: Duration = Duration::from_millis(1);
/// Largest batch of stream messages published at once, in bytes (one message at least).
const BATCH_BYTES: usize = 64 * 1024;
/// Batches a stream publishes in one turn before the other streams get theirs.
const BATCHES_PER_TURN: usize = 8;
/// How many idle periods ([`WAIT_SLICE`]) the last state update, or a lossy stream's last
/// message, is sent again for (it may have been dropped under congestion).
const TAIL_RESENDS: u32 = 10;

/// One running export, as the scanner sees it.
struct Running {
    inode: u64,
    /// Set by the scanner: stop exporting (the segment was removed or created again).
    stop: Arc<AtomicBool>,
    /// Set by the export thread once the export ended (on an error), so that it is retried.
    done: Arc<AtomicBool>,
}

/// An export handed to its thread.
struct Job {
    name: String,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
    export: Export,
}

/// A thread serving exports of one kind, and the way to hand it more.
struct Pool {
    jobs: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Pool {
    fn start(shared: &Arc<Shared>, what: &str) -> Pool {
        let (tx, rx) = channel();
        let s = shared.clone();
        match std::thread::Builder::new()
            .name(format!("export {what}"))
            .spawn(move || serve(&s, rx))
        {
            Ok(thread) => Pool {
                jobs: Some(tx),
                thread: Some(thread),
            },
            Err(e) => {
                shared
                    .log
                    .error(format_args!("cannot start the {what} exports' thread: {e}"));
                Pool {
                    jobs: None,
                    thread: None,
                }
            }
        }
    }

    /// Hands `job` over; `false` if the thread is gone.
    fn give(&self, job: Job) -> bool {
        self.jobs.as_ref().is_some_and(|tx| tx.send(job).is_ok())
    }

    fn join(mut self) {
        drop(self.jobs.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs the exporter until `shared.stop`: scans, hands new exports to the states' or the
/// streams' thread, and stops those whose segment went.
pub fn run(shared: Arc<Shared>) {
    let states = Pool::start(&shared, "states");
    let streams = Pool::start(&shared, "streams");
    let mut running: HashMap<String, Running> = HashMap::new();
    let mut refused: HashMap<String, u64> = HashMap::new();
    while !shared.stop.load(Ordering::Relaxed) {
        let found = scan(&shared);
        // Segments removed or re-created, or exports that ended: stop them.
        running.retain(|name, r| {
            let keep = found.get(name) == Some(&r.inode) && !r.done.load(Ordering::Relaxed);
            if !keep {
                r.stop.store(true, Ordering::Relaxed);
            }
            keep
        });
        refused.retain(|name, inode| found.get(name) == Some(inode));
        for (name, inode) in found {
            if running.contains_key(&name) || refused.get(&name) == Some(&inode) {
                continue;
            }
            match start(&shared, &name, inode) {
                Ok(Some(export)) => {
                    let (stop, done) = Default::default();
                    let r = Running {
                        inode,
                        stop: Arc::clone(&stop),
                        done: Arc::clone(&done),
                    };
                    let pool = match export {
                        Export::State(_) => &states,
                        Export::Stream(_) => &streams,
                    };
                    let job = Job {
                        name: name.clone(),
                        stop,
                        done,
                        export,
                    };
                    if pool.give(job) {
                        running.insert(name, r);
                    }
                }
                // Not ready yet: try again at the next scan.
                Ok(None) => {}
                Err(why) => {
                    shared
                        .log
                        .error(format_args!("not exporting {name}: {why}"));
                    refused.insert(name, inode);
                }
            }
        }
        sleep_unless_stopped(&shared.stop, SCAN_EVERY);
    }
    for r in running.values() {
        r.stop.store(true, Ordering::Relaxed);
    }
    states.join();
    streams.join();
}

/// Sleeps `d`, waking early once `stop` is set.
pub fn sleep_unless_stopped(stop: &AtomicBool, d: Duration) {
    let step = Duration::from_millis(20);
    let mut left = d;
    while !stop.load(Ordering::Relaxed) && !left.is_zero() {
        let s = left.min(step);
        std::thread::sleep(s);
        left -= s;
    }
}

/// The names in `/dev/shm` (as `/NAME`) that match an export pattern, with their inodes.
/// Mirrors (names with `@`) never match, so two bridges on one host cannot loop.
fn scan(shared: &Shared) -> HashMap<String, u64> {
    let mut found = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/dev/shm") else {
        return found;
    };
    for entry in dir.flatten() {
        let Some(file) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let name = format!("/{file}");
        if file.contains('@') || !shared.config.export.iter().any(|g| glob::matches(g, &name)) {
            continue;
        }
        if let Ok(meta) = entry.metadata() {
            if meta.is_file() {
                found.insert(name, meta.ino());
            }
        }
    }
    found
}

/// Opens `name` for exporting: `Ok(None)` if it is not ready yet, an error if it cannot be
/// exported.
fn start(shared: &Shared, name: &str, inode: u64) -> Result<Option<Export>, String> {
    let chunk = name.trim_start_matches('/');
    if !wire::is_key_chunk(chunk) {
        return Err(
            "its name cannot be a key expression chunk (it holds one of `*$?#` or starts with `@`)"
                .into(),
        );
    }
    let options = Options::new().ready_wait(Duration::from_millis(50));
    match options.open_raw(name) {
        Ok(reader) => StateExport::new(shared, name, inode, reader).map(|e| Some(Export::State(e))),
        Err(Error::WrongKind {
            found: SegmentKind::Stream,
            ..
        }) => {
            let rx = options.subscribe_raw(name).map_err(|e| e.to_string())?;
            StreamExport::new(shared, name, inode, rx).map(|e| Some(Export::Stream(e)))
        }
        Err(Error::WrongKind {
            found: SegmentKind::Queue,
            ..
        }) => Err(
            "it is a queue, and queues are not exported: a queue's messages are taken \
             exactly once by one consumer, which a mirror on another host cannot be; \
             export a broadcast stream instead (see docs/bridge.md)"
                .into(),
        ),
        Err(Error::NotReady) | Err(Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// Serves the exports handed over on `jobs` until `shared.stop`: waits on all of them at once,
/// publishes what changed, and every [`WAIT_SLICE`] looks at each one's writer and stop flag.
fn serve(shared: &Shared, jobs: Receiver<Job>) {
    let log = &shared.log;
    let mut set = match WaitSet::new() {
        Ok(set) => set,
        Err(e) => return log.error(format_args!("cannot wait on exported segments: {e}")),
    };
    let mut exports: BTreeMap<Key, Job> = BTreeMap::new();
    // Exports with more to do at once (a stream beyond one turn, a new export, a tick).
    let mut busy: Vec<Key> = Vec::new();
    let mut next_tick = Instant::now() + WAIT_SLICE;
    let spin = shared.config.spin;
    let mut spin_until: Option<Instant> = None;
    let end = |job: Job, set: &mut WaitSet, key: Key, why: Option<String>| {
        if let Some(why) = why {
            log.error(format_args!("{why}; export stopped"));
        }
        set.detach(key);
        job.export.finish(shared, &job.name);
        job.done.store(true, Ordering::Relaxed);
    };
    while !shared.stop.load(Ordering::Relaxed) {
        while let Ok(job) = jobs.try_recv() {
            match job.export.attach(&mut set) {
                Ok(key) => {
                    job.export.started(log, &job.name);
                    exports.insert(key, job);
                    busy.push(key);
                }
                Err(e) => {
                    let why = format!("{}: waiting: {e}", job.name);
                    log.error(format_args!("{why}; export stopped"));
                    job.export.finish(shared, &job.name);
                    job.done.store(true, Ordering::Relaxed);
                }
            }
        }
        let mut ready = std::mem::take(&mut busy);
        if ready.is_empty() {
            // Spinning: the version words of the states, until one moves or the budget is
            // spent (the writers' wake-ups are not waited for then).
            // Broken off at each tick, so that a long spin delays neither the looks at the
            // writers nor the new exports and stop flags.
            if let Some(until) = spin_until {
                let stop_at = until.min(next_tick);
                while ready.is_empty() && Instant::now() < stop_at {
                    for (key, job) in &exports {
                        if job.export.moved() {
                            ready.push(*key);
                        }
                    }
                    std::hint::spin_loop();
                }
                if ready.is_empty() && Instant::now() >= until {
                    spin_until = None;
                }
            }
        }
        if ready.is_empty() {
            let timeout = next_tick
                .saturating_duration_since(Instant::now())
                .min(IDLE_POLL);
            if let Some((key, e)) = alone(&exports) {
                // One state alone: waited on directly on its futex (woken by the writer's
                // `FUTEX_WAKE`, one system call per wake-up, as a thread of its own would be),
                // which is quicker than the set's way round (the kernel's wait ends, the set's
                // descriptor turns readable, the thread wakes, the wait is armed again).
                match e.reader.wait_for_update(e.seen, timeout) {
                    Err(Error::Timeout) => {}
                    // New, or an error its turn reports.
                    _ => ready.push(key),
                }
            } else {
                match set.wait(timeout) {
                    Ok(keys) => ready = keys,
                    Err(Error::Timeout) => {}
                    Err(e) => {
                        log.error(format_args!("waiting on exported segments: {e}"));
                        std::thread::sleep(IDLE_POLL);
                    }
                }
            }
        }
        for key in ready {
            let Some(job) = exports.get_mut(&key) else {
                continue;
            };
            match job.export.service(shared, &job.name) {
                Ok(Turn::Idle) => {}
                Ok(Turn::Published) => {
                    // Spinning is for states (a stream's messages are taken in batches).
                    if !spin.is_zero() && matches!(job.export, Export::State(_)) {
                        spin_until = Some(Instant::now() + spin);
                    }
                }
                Ok(Turn::More) => busy.push(key),
                Err(why) => {
                    let job = exports.remove(&key).expect("present");
                    end(job, &mut set, key, Some(why));
                }
            }
        }
        if Instant::now() >= next_tick {
            next_tick = Instant::now() + WAIT_SLICE;
            let keys: Vec<Key> = exports.keys().copied().collect();
            for key in keys {
                let job = exports.get_mut(&key).expect("present");
                let result = if job.stop.load(Ordering::Relaxed) {
                    Err(None)
                } else {
                    job.export.tick(shared, &job.name).map_err(Some)
                };
                match result {
                    Ok(true) => busy.push(key),
                    Ok(false) => {}
                    Err(why) => {
                        let job = exports.remove(&key).expect("present");
                        end(job, &mut set, key, why);
                    }
                }
            }
        }
    }
    for (key, job) in std::mem::take(&mut exports) {
        end(job, &mut set, key, None);
    }
}

/// The one export of a thread, if it is a state.
fn alone(exports: &BTreeMap<Key, Job>) -> Option<(Key, &StateExport)> {
    if exports.len() != 1 {
        return None;
    }
    match exports.iter().next() {
        Some((
            key,
            Job {
                export: Export::State(e),
                ..
            },
        )) => Some((*key, e)),
        _ => None,
    }
}

/// What one turn of an export did.
enum Turn {
    /// Nothing new.
    Idle,
    /// Published.
    Published,
    /// Published, and has more to do at once (a stream beyond one turn).
    More,
}

/// An exported segment.
enum Export {
    State(StateExport),
    Stream(StreamExport),
}

impl Export {
    fn attach(&self, set: &mut WaitSet) -> shm_core::Result<Key> {
        match self {
            Export::State(e) => set.attach(&e.reader),
            Export::Stream(e) => set.attach(&e.rx),
        }
    }

    fn started(&self, log: &crate::Log, name: &str) {
        match self {
            Export::State(_) => log.info(format_args!("exporting state {name}")),
            Export::Stream(e) => log.info(format_args!(
                "exporting stream {name} ({})",
                if e.lossy { "lossy" } else { "lossless" }
            )),
        }
    }

    /// Whether a state's version word moved past what was read (streams: never; they are not
    /// spun on).
    fn moved(&self) -> bool {
        match self {
            Export::State(e) => e.reader.version() != e.seen,
            Export::Stream(_) => false,
        }
    }

    /// Publishes what is new; an error (what and why) ends the export.
    fn service(&mut self, shared: &Shared, name: &str) -> Result<Turn, String> {
        match self {
            Export::State(e) => e.service(shared, name),
            Export::Stream(e) => e.service(shared, name),
        }
    }

    /// Every [`WAIT_SLICE`]: the writer's lease, the resends; `Ok(true)` if it has something
    /// to publish at once.
    fn tick(&mut self, shared: &Shared, name: &str) -> Result<bool, String> {
        match self {
            Export::State(e) => e.tick(shared, name),
            Export::Stream(e) => e.tick(shared, name),
        }
    }

    fn finish(self, shared: &Shared, name: &str) {
        match self {
            Export::State(mut e) => {
                e.live.set(shared, name, false, 0);
                drop(e.queryables.take());
            }
            Export::Stream(mut e) => {
                e.live.set(shared, name, false, 0);
            }
        }
        shared.log.info(format_args!("stopped exporting {name}"));
    }
}

/// The liveliness token of a segment, held while it has a live writer.
#[derive(Default)]
struct Liveliness {
    token: Option<(u64, zenoh::liveliness::LivelinessToken)>,
}

impl Liveliness {
    /// Holds the token `…/alive/EPOCH` of `name` if `alive`, none otherwise.
    fn set(&mut self, shared: &Shared, name: &str, alive: bool, epoch: u64) {
        let held = self.token.as_ref().map(|(e, _)| *e);
        if alive && held == Some(epoch) || !alive && held.is_none() {
            return;
        }
        if let Some((_, token)) = self.token.take() {
            let _ = token.undeclare().wait();
        }
        if alive {
            let key = format!("{}/{epoch}", shared.key(name, "alive"));
            match shared.session.liveliness().declare_token(key).wait() {
                Ok(token) => self.token = Some((epoch, token)),
                Err(e) => shared
                    .log
                    .error(format_args!("{name}: liveliness token: {e}")),
            }
        }
    }
}

/// What the `layout` and `data` queryables answer with.
struct Served {
    announcement: Announcement,
    /// State: the newest update published (epoch, version, bytes).
    latest: Option<ZBytes>,
}

fn announcement(
    instance: u64,
    kind: SegmentKind,
    layout: &shm_core::LayoutBuf,
    hash: u64,
    slots: usize,
    epoch: u64,
    position: u64,
) -> Announcement {
    Announcement {
        format_version: shm_core::FORMAT_VERSION,
        instance,
        kind,
        layout_hash: hash,
        payload_size: layout.size,
        payload_align: layout.align as u32,
        slots: slots as u64,
        epoch,
        position,
        descriptor: layout.encode(),
    }
}

/// Declares the `layout` queryable (and, for state, the `data` one) answering from `served`.
fn queryables(
    shared: &Shared,
    name: &str,
    served: &Arc<Mutex<Served>>,
    state: bool,
) -> Result<Vec<zenoh::query::Queryable<()>>, zenoh::Error> {
    // Answers carry the concrete key (a query's key may hold wildcards, an answer's may not).
    let mut out = Vec::new();
    let s = served.clone();
    let key = shared.key(name, "layout");
    out.push(
        shared
            .session
            .declare_queryable(key.clone())
            .callback(move |query| {
                let bytes = s.lock().expect("not poisoned").announcement.encode();
                let _ = query.reply(key.as_str(), bytes).wait();
            })
            .wait()?,
    );
    if state {
        let s = served.clone();
        let key = shared.key(name, "data");
        out.push(
            shared
                .session
                .declare_queryable(key.clone())
                .callback(move |query| {
                    let latest = s.lock().expect("not poisoned").latest.clone();
                    if let Some(bytes) = latest {
                        let _ = query.reply(key.as_str(), bytes).wait();
                    }
                })
                .wait()?,
        );
    }
    Ok(out)
}

/// An exported state.
struct StateExport {
    reader: RawReader,
    buf: Vec<u8>,
    served: Arc<Mutex<Served>>,
    publisher: zenoh::pubsub::Publisher<'static>,
    queryables: Option<Vec<zenoh::query::Queryable<()>>>,
    live: Liveliness,
    /// The newest (epoch, version) published.
    last: Option<(u64, u64)>,
    /// The version last read (or seen to be there).
    seen: u64,
    /// Idle periods the last update is still sent again for.
    resends: u32,
    /// Whether an update was published since the last tick.
    published: bool,
    /// The writer's epoch as last looked at. The header's epoch is loaded after publishing,
    /// not between the wake-up and the publication: a value published under the previous
    /// epoch by a writer that just took over is published again under its own. Whether the
    /// writer lives (a lock query, a system call) is asked at each tick.
    epoch: u64,
}

impl StateExport {
    fn new(
        shared: &Shared,
        name: &str,
        inode: u64,
        reader: RawReader,
    ) -> Result<StateExport, String> {
        let info = reader.info();
        let served = Arc::new(Mutex::new(Served {
            announcement: announcement(
                inode,
                SegmentKind::State,
                reader.layout(),
                info.layout_hash(),
                info.slots(),
                info.writer().epoch(),
                0,
            ),
            latest: None,
        }));
        let publisher = shared
            .session
            .declare_publisher(shared.key(name, "data"))
            .congestion_control(CongestionControl::Drop)
            // Each value on its way at once, not batched with later ones: they would replace it.
            .express(true)
            .wait()
            .map_err(|e| format!("publisher: {e}"))?;
        Ok(StateExport {
            buf: vec![0u8; reader.payload_size()],
            served,
            publisher,
            queryables: None,
            live: Liveliness::default(),
            last: None,
            seen: 0,
            resends: 0,
            published: false,
            epoch: info.writer().epoch(),
            reader,
        })
    }

    fn service(&mut self, shared: &Shared, name: &str) -> Result<Turn, String> {
        let mut turn = Turn::Idle;
        // At most twice: once more if the writer changed meanwhile.
        for _ in 0..2 {
            let version = self.reader.version();
            if self.last == Some((self.epoch, version)) {
                self.seen = version;
                return Ok(turn);
            }
            // Without waiting, or (the writer kept the slots busy) waiting briefly: the
            // thread serves the other states too.
            let read = match self.reader.try_read(&mut self.buf) {
                Err(Error::Timeout) => self.reader.read_timeout(&mut self.buf, READ_WAIT),
                other => other,
            };
            match read {
                Ok(version) => {
                    self.seen = version;
                    if self.last != Some((self.epoch, version)) {
                        self.last = Some((self.epoch, version));
                        // Encoded once: the publication and the queryable's copy share the
                        // bytes (a `ZBytes` clone is a reference count).
                        let update =
                            ZBytes::from(StateUpdate::encode(self.epoch, version, &self.buf));
                        if let Err(e) = self.publisher.put(update.clone()).wait() {
                            shared.log.error(format_args!("{name}: publishing: {e}"));
                        }
                        let mut s = self.served.lock().expect("not poisoned");
                        s.latest = Some(update);
                        s.announcement.epoch = self.epoch;
                        s.announcement.position = version;
                        drop(s);
                        self.resends = TAIL_RESENDS;
                        self.published = true;
                        turn = Turn::Published;
                    }
                }
                // Still busy: again at the next tick, or the next version's wake-up.
                Err(Error::Timeout) => return Ok(turn),
                Err(e) => return Err(format!("{name}: reading: {e}")),
            }
            // The writer's epoch from the header (a load); the lock query that tells whether
            // it lives waits for the next tick, off the path of the value just published
            // (made here, it took the CPU from Zenoh's thread sending the value).
            if (self.reader.writer_epoch() != self.epoch || self.queryables.is_none())
                && !self.writer_unchanged(shared, name)?
            {
                continue;
            }
            break;
        }
        Ok(turn)
    }

    /// Looks at the writer: `false` if its epoch changed (then the value is published again
    /// under the new one); declares the queryables once a value is there, and holds the
    /// liveliness token while the writer lives.
    fn writer_unchanged(&mut self, shared: &Shared, name: &str) -> Result<bool, String> {
        let writer = self.reader.info().writer();
        if writer.epoch() != self.epoch {
            self.epoch = writer.epoch();
            return Ok(false);
        }
        // Serve only once a value is there, so that importers never get a value-less segment.
        if self.queryables.is_none() && self.last.is_some() {
            self.queryables = Some(
                queryables(shared, name, &self.served, true)
                    .map_err(|e| format!("{name}: queryable: {e}"))?,
            );
        }
        self.live.set(shared, name, writer.alive(), self.epoch);
        Ok(true)
    }

    fn tick(&mut self, shared: &Shared, name: &str) -> Result<bool, String> {
        if !self.writer_unchanged(shared, name)?
            || self.last.is_none_or(|(_, v)| v != self.reader.version())
        {
            return Ok(true);
        }
        if !std::mem::take(&mut self.published) && self.resends > 0 {
            // Idle: the last update may have been dropped under congestion, and no later one
            // would replace it. Send it again (importers ignore what they have).
            self.resends -= 1;
            let latest = self.served.lock().expect("not poisoned").latest.clone();
            if let Some(update) = latest {
                let _ = self.publisher.put(update).wait();
            }
        }
        Ok(false)
    }
}

/// An exported stream.
struct StreamExport {
    rx: RawStreamReader,
    size: usize,
    message: Vec<u8>,
    served: Arc<Mutex<Served>>,
    publisher: zenoh::pubsub::Publisher<'static>,
    _queryables: Vec<zenoh::query::Queryable<()>>,
    live: Liveliness,
    lossy: bool,
    batch: Vec<u8>,
    /// Messages in a batch at most.
    most: usize,
    /// A lossy stream's last message (as a batch of one), and the idle periods it is still
    /// sent again for.
    tail: Vec<u8>,
    tail_resends: u32,
    /// Whether a batch was published since the last tick.
    published: bool,
    /// The writer's epoch when its liveliness was last asked (`None` before the first turn).
    looked: Option<u64>,
}

impl StreamExport {
    fn new(
        shared: &Shared,
        name: &str,
        inode: u64,
        rx: RawStreamReader,
    ) -> Result<StreamExport, String> {
        let size = rx.payload_size();
        let served = Arc::new(Mutex::new(Served {
            announcement: announcement(
                inode,
                SegmentKind::Stream,
                rx.layout(),
                rx.info().layout_hash(),
                rx.info().slots(),
                rx.info().writer().epoch(),
                rx.position().saturating_sub(1),
            ),
            latest: None,
        }));
        let lossy = shared.config.lossy.iter().any(|g| glob::matches(g, name));
        let congestion = if lossy {
            CongestionControl::Drop
        } else {
            CongestionControl::Block
        };
        let publisher = shared
            .session
            .declare_publisher(shared.key(name, "data"))
            .congestion_control(congestion)
            .wait()
            .map_err(|e| format!("publisher: {e}"))?;
        let queryables =
            queryables(shared, name, &served, false).map_err(|e| format!("queryable: {e}"))?;
        Ok(StreamExport {
            rx,
            size,
            message: vec![0u8; size],
            served,
            publisher,
            _queryables: queryables,
            live: Liveliness::default(),
            lossy,
            batch: Vec::with_capacity(BATCH_BYTES + size + 16),
            most: (BATCH_BYTES / (size + 8)).max(1),
            tail: Vec::with_capacity(size + 16),
            tail_resends: 0,
            published: false,
            looked: None,
        })
    }

    fn service(&mut self, shared: &Shared, name: &str) -> Result<Turn, String> {
        // The epoch from the header (a load); whether the writer lives (a lock query, a
        // system call) only for a new epoch here, else at each tick: off the messages' path.
        let epoch = self.rx.writer_epoch();
        if self.looked != Some(epoch) {
            self.look(shared, name);
        }
        let mut turn = Turn::Idle;
        for _ in 0..BATCHES_PER_TURN {
            Batch::start(&mut self.batch, epoch);
            let mut count = 0;
            let mut last = 0;
            while count < self.most {
                match self.rx.try_recv(&mut self.message) {
                    Ok(Some(number)) => {
                        Batch::push(&mut self.batch, number, &self.message);
                        count += 1;
                        last = number;
                    }
                    Ok(None) => break,
                    // Lost here (the network is slower than the writer): the gap in the
                    // numbers tells remote readers exactly how many.
                    Err(Error::Lagged { .. }) => {}
                    Err(e) => return Err(format!("{name}: receiving: {e}")),
                }
            }
            if count == 0 {
                return Ok(turn);
            }
            if let Err(e) = self.publisher.put(self.batch.as_slice()).wait() {
                shared.log.error(format_args!("{name}: publishing: {e}"));
            }
            let mut s = self.served.lock().expect("not poisoned");
            s.announcement.position = last;
            s.announcement.epoch = epoch;
            drop(s);
            self.published = true;
            if self.lossy {
                // The last message, kept to send again once the stream is idle.
                let record = self.size + 8;
                self.tail.clear();
                self.tail.extend_from_slice(&self.batch[..8]);
                self.tail
                    .extend_from_slice(&self.batch[self.batch.len() - record..]);
                self.tail_resends = TAIL_RESENDS;
            }
            if count < self.most {
                return Ok(Turn::Published);
            }
            turn = Turn::More;
        }
        Ok(turn)
    }

    /// Holds the liveliness token while the writer lives.
    fn look(&mut self, shared: &Shared, name: &str) {
        let writer = self.rx.info().writer();
        self.looked = Some(writer.epoch());
        self.live.set(shared, name, writer.alive(), writer.epoch());
    }

    fn tick(&mut self, shared: &Shared, name: &str) -> Result<bool, String> {
        self.look(shared, name);
        if !std::mem::take(&mut self.published) && self.tail_resends > 0 {
            // Idle: a lossy stream's last batch may have been dropped, and a far reader learns
            // of a loss only from a later message. Sending the last message again (the
            // importer skips numbers it has) makes the tail arrive, and with it the count.
            self.tail_resends -= 1;
            let _ = self.publisher.put(self.tail.as_slice()).wait();
        }
        // Messages the set may not report again (sent while a turn was under way).
        Ok(true)
    }
}
