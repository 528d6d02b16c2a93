//! Exporting: local segments whose names match an `--export` pattern, served to other hosts.
//!
//! A scanner lists `/dev/shm` every [`SCAN_EVERY`] and starts one worker thread per matching
//! segment (re-created segments get a new worker). A state worker waits on the segment's
//! futex (no polling) and publishes each new version it reads, dropping under congestion so
//! that remote readers get the latest value; a stream worker receives every message and
//! publishes them in batches, blocking under congestion so that nothing is lost while the
//! network keeps up. Each worker holds the liveliness token `…/alive/EPOCH` while the segment
//! has a live writer, checked at least every [`WAIT_SLICE`].

use crate::wire::{self, Announcement, Batch, StateUpdate};
use crate::{glob, Shared};
use shm_core::{Error, Options, RawReader, RawStreamReader, SegmentKind};
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use zenoh::bytes::ZBytes;
use zenoh::qos::CongestionControl;
use zenoh::Wait;

/// How often the scanner lists `/dev/shm`: a segment created after start is exported within
/// this time, plus the importer's discovery period.
pub const SCAN_EVERY: Duration = Duration::from_millis(250);
/// Longest wait of a worker between two looks at the writer's lease: a local writer's death
/// is announced (its liveliness token withdrawn) within about this time.
pub const WAIT_SLICE: Duration = Duration::from_millis(100);
/// Largest batch of stream messages published at once, in bytes (one message at least).
const BATCH_BYTES: usize = 64 * 1024;
/// How many idle periods ([`WAIT_SLICE`]) the last state update, or a lossy stream's last
/// message, is sent again for (it may have been dropped under congestion).
const TAIL_RESENDS: u32 = 10;

/// One running export.
struct Worker {
    inode: u64,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// Runs the exporter until `shared.stop`: scans, starts and stops workers.
pub fn run(shared: Arc<Shared>) {
    let mut workers: HashMap<String, Worker> = HashMap::new();
    let mut refused: HashMap<String, u64> = HashMap::new();
    while !shared.stop.load(Ordering::Relaxed) {
        let found = scan(&shared);
        // Segments removed or re-created: stop their workers.
        workers.retain(|name, w| {
            let keep = found.get(name) == Some(&w.inode) && !w.thread.is_finished();
            if !keep {
                w.stop.store(true, Ordering::Relaxed);
            }
            keep
        });
        refused.retain(|name, inode| found.get(name) == Some(inode));
        for (name, inode) in found {
            if workers.contains_key(&name) || refused.get(&name) == Some(&inode) {
                continue;
            }
            match start(&shared, &name, inode) {
                Ok(Some((stop, thread))) => {
                    workers.insert(
                        name,
                        Worker {
                            inode,
                            stop,
                            thread,
                        },
                    );
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
    for w in workers.values() {
        w.stop.store(true, Ordering::Relaxed);
    }
    for (_, w) in workers {
        let _ = w.thread.join();
    }
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

/// Starts exporting `name`: `Ok(None)` if it is not ready yet, an error if it cannot be
/// exported.
type Started = Option<(Arc<AtomicBool>, JoinHandle<()>)>;

fn start(shared: &Arc<Shared>, name: &str, inode: u64) -> Result<Started, String> {
    let chunk = name.trim_start_matches('/');
    if !wire::is_key_chunk(chunk) {
        return Err(
            "its name cannot be a key expression chunk (it holds one of `*$?#` or starts with `@`)"
                .into(),
        );
    }
    let options = Options::new().ready_wait(Duration::from_millis(50));
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = stop.clone();
    let thread_shared = shared.clone();
    let owned = name.to_owned();
    match options.open_raw(name) {
        Ok(reader) => {
            let thread = std::thread::Builder::new()
                .name(format!("export {name}"))
                .spawn(move || export_state(&thread_shared, &owned, inode, reader, &thread_stop))
                .map_err(|e| e.to_string())?;
            Ok(Some((stop, thread)))
        }
        Err(Error::WrongKind {
            found: SegmentKind::Stream,
            ..
        }) => {
            let rx = options.subscribe_raw(name).map_err(|e| e.to_string())?;
            let thread = std::thread::Builder::new()
                .name(format!("export {name}"))
                .spawn(move || export_stream(&thread_shared, &owned, inode, rx, &thread_stop))
                .map_err(|e| e.to_string())?;
            Ok(Some((stop, thread)))
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

/// The liveliness token of a segment, held while it has a live writer.
struct Liveliness<'a> {
    shared: &'a Shared,
    name: &'a str,
    token: Option<(u64, zenoh::liveliness::LivelinessToken)>,
}

impl Liveliness<'_> {
    /// Holds the token `…/alive/EPOCH` if `alive`, none otherwise.
    fn set(&mut self, alive: bool, epoch: u64) {
        let held = self.token.as_ref().map(|(e, _)| *e);
        if alive && held == Some(epoch) || !alive && held.is_none() {
            return;
        }
        if let Some((_, token)) = self.token.take() {
            let _ = token.undeclare().wait();
        }
        if alive {
            let key = format!("{}/{epoch}", self.shared.key(self.name, "alive"));
            match self.shared.session.liveliness().declare_token(key).wait() {
                Ok(token) => self.token = Some((epoch, token)),
                Err(e) => self
                    .shared
                    .log
                    .error(format_args!("{}: liveliness token: {e}", self.name)),
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

fn export_state(shared: &Shared, name: &str, inode: u64, reader: RawReader, stop: &AtomicBool) {
    let log = &shared.log;
    let mut buf = vec![0u8; reader.payload_size()];
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
    let publisher = match shared
        .session
        .declare_publisher(shared.key(name, "data"))
        .congestion_control(CongestionControl::Drop)
        // Each value on its way at once, not batched with later ones: they would replace it.
        .express(true)
        .wait()
    {
        Ok(p) => p,
        Err(e) => return log.error(format_args!("{name}: publisher: {e}")),
    };
    let mut queryables_declared = None;
    let mut live = Liveliness {
        shared,
        name,
        token: None,
    };
    let mut last: Option<(u64, u64)> = None;
    let mut seen = 0u64;
    let mut resends = 0;
    // The writer's epoch as last looked at. The look (a lock query, a system call) is made
    // after publishing, not between the wake-up and the publication: a value published under
    // the previous epoch by a writer that just took over is published again under its own.
    let mut epoch = info.writer().epoch();
    log.info(format_args!("exporting state {name}"));
    while !stop.load(Ordering::Relaxed) {
        // Read the current value when it changed (or the writer changed).
        if last.is_none_or(|(e, v)| e != epoch || v != seen) {
            match reader.read_timeout(&mut buf, WAIT_SLICE) {
                Ok(version) => {
                    seen = version;
                    if last != Some((epoch, version)) {
                        last = Some((epoch, version));
                        // Encoded once: the publication and the queryable's copy share the
                        // bytes (a `ZBytes` clone is a reference count).
                        let update = ZBytes::from(StateUpdate::encode(epoch, version, &buf));
                        if let Err(e) = publisher.put(update.clone()).wait() {
                            log.error(format_args!("{name}: publishing: {e}"));
                        }
                        let mut s = served.lock().expect("not poisoned");
                        s.latest = Some(update);
                        s.announcement.epoch = epoch;
                        s.announcement.position = version;
                        drop(s);
                        resends = TAIL_RESENDS;
                    }
                }
                Err(Error::Timeout) => {}
                Err(e) => {
                    log.error(format_args!("{name}: reading: {e}; export stopped"));
                    break;
                }
            }
        }
        let writer = reader.info().writer();
        if writer.epoch() != epoch {
            // Another writer: read and publish again under its epoch before waiting.
            epoch = writer.epoch();
            continue;
        }
        // Serve only once a value is there, so that importers never get a value-less segment.
        if queryables_declared.is_none() && last.is_some() {
            match queryables(shared, name, &served, true) {
                Ok(q) => queryables_declared = Some(q),
                Err(e) => return log.error(format_args!("{name}: queryable: {e}")),
            }
        }
        live.set(writer.alive(), epoch);
        match reader.wait_for_update(seen, WAIT_SLICE) {
            Ok(v) => seen = v,
            Err(Error::Timeout) if resends > 0 => {
                // Idle: the last update may have been dropped under congestion, and no later
                // one would replace it. Send it again (importers ignore what they have).
                resends -= 1;
                let latest = served.lock().expect("not poisoned").latest.clone();
                if let Some(update) = latest {
                    let _ = publisher.put(update).wait();
                }
            }
            Err(Error::Timeout) => {}
            Err(e) => {
                log.error(format_args!("{name}: waiting: {e}; export stopped"));
                break;
            }
        }
    }
    live.set(false, 0);
    drop(queryables_declared);
    log.info(format_args!("stopped exporting {name}"));
}

fn export_stream(
    shared: &Shared,
    name: &str,
    inode: u64,
    mut rx: RawStreamReader,
    stop: &AtomicBool,
) {
    let log = &shared.log;
    let size = rx.payload_size();
    let mut message = vec![0u8; size];
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
    let publisher = match shared
        .session
        .declare_publisher(shared.key(name, "data"))
        .congestion_control(congestion)
        .wait()
    {
        Ok(p) => p,
        Err(e) => return log.error(format_args!("{name}: publisher: {e}")),
    };
    let _queryables = match queryables(shared, name, &served, false) {
        Ok(q) => q,
        Err(e) => return log.error(format_args!("{name}: queryable: {e}")),
    };
    let mut live = Liveliness {
        shared,
        name,
        token: None,
    };
    let mut batch = Vec::with_capacity(BATCH_BYTES + size + 16);
    let most = (BATCH_BYTES / (size + 8)).max(1);
    let (mut tail, mut tail_resends) = (Vec::with_capacity(size + 16), 0);
    log.info(format_args!(
        "exporting stream {name} ({})",
        if lossy { "lossy" } else { "lossless" }
    ));
    while !stop.load(Ordering::Relaxed) {
        let writer = rx.info().writer();
        let epoch = writer.epoch();
        live.set(writer.alive(), epoch);
        Batch::start(&mut batch, epoch);
        let mut count = 0;
        let mut last = 0;
        let mut timeout = WAIT_SLICE;
        while count < most {
            match rx.recv_timeout(&mut message, timeout) {
                Ok(number) => {
                    Batch::push(&mut batch, number, &message);
                    count += 1;
                    last = number;
                    // The rest of the batch is what is there now.
                    timeout = Duration::ZERO;
                }
                // Lost here (the network is slower than the writer): the gap in the numbers
                // tells remote readers exactly how many.
                Err(Error::Lagged { .. }) => {}
                Err(Error::Timeout) => break,
                Err(e) => {
                    log.error(format_args!("{name}: receiving: {e}; export stopped"));
                    live.set(false, 0);
                    return;
                }
            }
        }
        if count > 0 {
            if let Err(e) = publisher.put(batch.as_slice()).wait() {
                log.error(format_args!("{name}: publishing: {e}"));
            }
            let mut s = served.lock().expect("not poisoned");
            s.announcement.position = last;
            s.announcement.epoch = epoch;
            drop(s);
            if lossy {
                // The last message, kept to send again once the stream is idle.
                let record = size + 8;
                tail.clear();
                tail.extend_from_slice(&batch[..8]);
                tail.extend_from_slice(&batch[batch.len() - record..]);
                tail_resends = TAIL_RESENDS;
            }
        } else if tail_resends > 0 {
            // Idle: a lossy stream's last batch may have been dropped, and a far reader learns
            // of a loss only from a later message. Sending the last message again (the
            // importer skips numbers it has) makes the tail arrive, and with it the count.
            tail_resends -= 1;
            let _ = publisher.put(tail.as_slice()).wait();
        }
    }
    live.set(false, 0);
    log.info(format_args!("stopped exporting {name}"));
}
