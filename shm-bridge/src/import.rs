//! Importing: remote segments whose `ID/NAME` matches an `--import` pattern, mirrored into
//! local segments `/NAME@ID`.
//!
//! A discovery loop asks every [`DISCOVER_EVERY`] for the `layout` of the segments of the
//! hosts the patterns name and checks each new announcement as hostile input
//! ([`Announcement::checked_layout`]). Each new import is set up on a short-lived thread of
//! its own (`import ID/NAME`), which subscribes to the segment's data and liveliness, asks
//! for the tokens present and for the current value (a stream: its position; a state's
//! current value is written in the query's callback, as updates are), hands the live import
//! back to the loop and ends: those queries wait for answers (up to a timeout), and must not
//! hold up the discovery of other segments (only a segment created again on its host while
//! its import is still being set up makes the loop wait for that setup, at most the queries'
//! timeouts; a bridge that is stopping asks nothing more). From then on every update is written
//! into the mirror in Zenoh's callbacks, with no thread of the import's own: the mirror is
//! created once the first value (a stream: the layout) is there, and the import holds the
//! mirror's writer lease exactly while the remote writer's liveliness token is present. The
//! discovery loop ends an import (it failed, its remote segment was created again, or the
//! bridge stops) by undeclaring its subscriptions and closing the mirror: a callback under way
//! or a late answer finds it closed, and the mirror is removed. A setup that fails closes its
//! mirror the same way (a value may have arrived by the subscription declared first).
//!
//! So the importer runs one thread (`import`, the discovery loop) whatever it imports, plus
//! one per import being set up, besides Zenoh's own.

use crate::wire::{Announcement, Batch, StateUpdate};
use crate::{glob, Shared};
use shm_core::{Error, LayoutBuf, Options, RawStreamWriter, RawWriter, SegmentKind};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use zenoh::pubsub::Subscriber;
use zenoh::query::ConsolidationMode;
use zenoh::sample::SampleKind;
use zenoh::Wait;

/// How often the importer asks for the segments its patterns match: a remote segment that
/// appears is mirrored within this time (plus the exporter's scan period).
pub const DISCOVER_EVERY: Duration = Duration::from_millis(500);
/// How long an import that ended (for example because another bridge holds the mirror) waits
/// before it is tried again.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);
/// How long a query waits for answers.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest step between a stream mirror's last message number and the next one accepted.
const MAX_JUMP: u64 = 1 << 40;
/// Refused announcements remembered (so that each is logged once).
const MAX_REFUSED: usize = 4096;
/// A stream's batches kept while its mirror is being created.
const QUEUE: usize = 1024;
/// Longest sleep of the discovery loop between two looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(20);

/// The default rule for naming mirrors: `/NAME@ID`.
pub const DEFAULT_MIRROR_NAME: &str = "/{name}@{id}";

/// The local name of the mirror of `NAME` (with or without its slash) from host `id`, by the
/// rule `template` (`{name}` and `{id}` replaced): `/NAME@ID` by default.
pub fn mirror_name(template: &str, id: &str, name: &str) -> String {
    template
        .replace("{name}", name.trim_start_matches('/'))
        .replace("{id}", id)
}

/// What an import hears from the network.
enum Event<'a> {
    /// A publication (or a query's answer) on `data`, borrowed from Zenoh's buffer.
    Data(&'a [u8]),
    /// A liveliness token `…/alive/EPOCH` appeared (true) or went (false).
    Alive(String, bool),
}

/// The imports by `ID/NAME`.
type Imports = HashMap<String, Import>;

/// One import: the segment's incarnation and layout hash, and where its setup is.
struct Import {
    /// Tells this import's notes from those of an earlier import of the same segment.
    serial: u64,
    instance: u64,
    layout_hash: u64,
    phase: Phase,
}

/// Where an import is.
enum Phase {
    /// Being set up on its thread, which returns the live import (none if it could not
    /// subscribe).
    Setup(JoinHandle<Option<Live>>),
    /// Running in Zenoh's callbacks.
    Live(Live),
}

/// A running import: the subscriptions whose callbacks write the mirror.
struct Live {
    mirror: Arc<Mutex<Mirror>>,
    data: Subscriber<()>,
    alive: Subscriber<()>,
}

/// What an import tells the discovery loop, with its `ID/NAME` and serial.
#[derive(Clone)]
enum Note {
    /// Its setup is done: the thread is returning the live import.
    SetUp(String, u64),
    /// It failed (during its setup: it is ended when handed back).
    Failed(String, u64),
}

impl Live {
    /// Ends the import: its subscriptions are undeclared (no new callback starts), then the
    /// mirror is closed ([`Mirror::close`]).
    fn end(self, shared: &Shared) {
        let Live {
            mirror,
            data,
            alive,
        } = self;
        drop(data);
        drop(alive);
        lock(&mirror).close(shared);
    }

    /// Whether the import failed (it is then ended).
    fn failed(&self) -> bool {
        lock(&self.mirror).failed.is_some()
    }
}

impl Import {
    /// Ends the import, waiting for its setup first if it is not done.
    fn end(self, shared: &Shared) {
        match self.phase {
            Phase::Live(live) => live.end(shared),
            Phase::Setup(thread) => {
                if let Ok(Some(live)) = thread.join() {
                    live.end(shared);
                }
            }
        }
    }
}

/// Runs the importer until `shared.stop`.
pub fn run(shared: Arc<Shared>) {
    let mut imports: Imports = HashMap::new();
    let (notes, noted) = channel::<Note>();
    let mut serial = 0u64;
    // Announcements refused (key and bytes), logged once each.
    let mut refused: HashSet<(String, Vec<u8>)> = HashSet::new();
    let selectors: BTreeSet<String> = shared
        .config
        .import
        .iter()
        .map(|g| {
            let host = g.split('/').next().unwrap_or("*");
            let host = if host.contains(['*', '?']) { "*" } else { host };
            format!("{}/{host}/*/layout", shared.config.prefix)
        })
        .collect();
    // Imports that ended (refused, or the mirror is another bridge's), retried after a pause.
    let mut ended: HashMap<String, Instant> = HashMap::new();
    while !shared.stop.load(Ordering::Relaxed) {
        ended.retain(|_, at| at.elapsed() < RETRY_AFTER);
        for selector in &selectors {
            // Imports that failed or finished their setup meanwhile, at once rather than
            // after the round (a round waits for its answers).
            while let Ok(note) = noted.try_recv() {
                take_note(&shared, &mut imports, &mut ended, note);
            }
            let replies = match shared
                .session
                .get(selector.as_str())
                .consolidation(ConsolidationMode::None)
                .timeout(QUERY_TIMEOUT)
                .wait()
            {
                Ok(r) => r,
                Err(e) => {
                    shared.log.error(format_args!("asking {selector}: {e}"));
                    continue;
                }
            };
            while let Ok(reply) = replies.recv() {
                let Ok(sample) = reply.result() else { continue };
                let key = sample.key_expr().as_str().to_owned();
                let bytes = sample.payload().to_bytes().into_owned();
                let paused = ended
                    .keys()
                    .any(|k| key == format!("{}/{k}/layout", shared.config.prefix));
                if !paused {
                    let new = Start {
                        imports: &mut imports,
                        refused: &mut refused,
                        notes: &notes,
                        serial: &mut serial,
                    };
                    consider(&shared, &key, bytes, new);
                }
            }
        }
        tend(&shared, &mut imports, &mut ended, &noted, DISCOVER_EVERY);
    }
    for (_, import) in imports.drain() {
        import.end(&shared);
    }
}

/// Sleeps `d`, waking early once `shared.stop` is set; meanwhile takes over the imports whose
/// setup is done and ends those that failed (to be retried after [`RETRY_AFTER`]).
fn tend(
    shared: &Shared,
    imports: &mut Imports,
    ended: &mut HashMap<String, Instant>,
    noted: &Receiver<Note>,
    d: Duration,
) {
    let until = Instant::now() + d;
    while !shared.stop.load(Ordering::Relaxed) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        match noted.recv_timeout(left.min(STOP_POLL)) {
            Ok(note) => take_note(shared, imports, ended, note),
            Err(RecvTimeoutError::Timeout) => {}
            // The loop holds a sender: never.
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Takes over an import whose setup is done, or ends one that failed.
fn take_note(
    shared: &Shared,
    imports: &mut Imports,
    ended: &mut HashMap<String, Instant>,
    note: Note,
) {
    let (key, serial, set_up) = match note {
        Note::SetUp(key, serial) => (key, serial, true),
        Note::Failed(key, serial) => (key, serial, false),
    };
    let Some(import) = imports.remove(&key) else {
        // A note from an import already ended.
        return;
    };
    let live = match import.phase {
        _ if import.serial != serial => {
            // A note from an earlier import of the same segment.
            imports.insert(key, import);
            return;
        }
        Phase::Setup(thread) if set_up => thread.join().ok().flatten(),
        Phase::Setup(thread) => {
            // A failure during setup: looked at when the setup hands the import back.
            imports.insert(
                key,
                Import {
                    phase: Phase::Setup(thread),
                    ..import
                },
            );
            return;
        }
        Phase::Live(live) => Some(live),
    };
    match live {
        Some(live) if !live.failed() => {
            imports.insert(
                key,
                Import {
                    phase: Phase::Live(live),
                    ..import
                },
            );
        }
        live => {
            if let Some(live) = live {
                live.end(shared);
            }
            ended.insert(key, Instant::now());
        }
    }
}

/// What starting an import needs besides the announcement: the running imports, the refusals
/// already logged, the discovery loop's notes and the last serial given.
struct Start<'a> {
    imports: &'a mut Imports,
    refused: &'a mut HashSet<(String, Vec<u8>)>,
    notes: &'a Sender<Note>,
    serial: &'a mut u64,
}

/// Starts importing the segment announced under `key` if a pattern matches it and its
/// announcement passes the checks; logs a refusal once.
fn consider(shared: &Arc<Shared>, key: &str, bytes: Vec<u8>, new: Start<'_>) {
    let prefix = format!("{}/", shared.config.prefix);
    let Some(rest) = key
        .strip_prefix(&prefix)
        .and_then(|r| r.strip_suffix("/layout"))
    else {
        return;
    };
    let Some((id, name)) = rest.split_once('/') else {
        return;
    };
    if id == shared.config.id
        || name.contains('/')
        || !shared.config.import.iter().any(|g| glob::matches(g, rest))
    {
        return;
    }
    if let Some(i) = new.imports.get(rest) {
        // The remote segment was removed and created again (its numbering starts over, its
        // layout may differ): stop mirroring the old one, which removes the mirror, and
        // mirror the new one from the next round on.
        let changed = Announcement::decode(&bytes)
            .is_ok_and(|a| (a.instance, a.layout_hash) != (i.instance, i.layout_hash));
        if changed {
            shared
                .log
                .info(format_args!("{rest} was created again on its host"));
            if let Some(i) = new.imports.remove(rest) {
                i.end(shared);
            }
        }
        return;
    }
    let checked = Announcement::decode(&bytes).and_then(|a| {
        let layout = a.checked_layout(shared.config.max_mirror_bytes)?;
        Ok((a, layout))
    });
    let (announcement, layout) = match checked {
        Ok(ok) => ok,
        Err(why) => {
            // Bounded: a peer that keeps announcing new bytes cannot make the set grow for
            // ever (its refusals are then logged again).
            if new.refused.len() >= MAX_REFUSED {
                new.refused.clear();
            }
            if new.refused.insert((key.to_owned(), bytes)) {
                shared
                    .log
                    .error(format_args!("refusing to import {rest}: {why}"));
            }
            return;
        }
    };
    *new.serial += 1;
    let serial = *new.serial;
    let (instance, layout_hash) = (announcement.instance, announcement.layout_hash);
    let remote = Remote {
        key: rest.to_owned(),
        id: id.to_owned(),
        name: format!("/{name}"),
        mirror: mirror_name(&shared.config.mirror_name, id, name),
        announcement,
        layout,
    };
    let (s, notes) = (shared.clone(), new.notes.clone());
    match std::thread::Builder::new()
        .name(format!("import {rest}"))
        .spawn(move || {
            // Tells the discovery loop to take the import, also if the setup panicked.
            let _hand_back = HandBack(notes.clone(), Note::SetUp(remote.key.clone(), serial));
            set_up(&s, Arc::new(remote), serial, notes)
        }) {
        Ok(thread) => {
            new.imports.insert(
                rest.to_owned(),
                Import {
                    serial,
                    instance,
                    layout_hash,
                    phase: Phase::Setup(thread),
                },
            );
        }
        Err(e) => shared.log.error(format_args!("importing {rest}: {e}")),
    }
}

/// Sends its note when dropped: a setup thread's last act, also if the setup panics.
struct HandBack(Sender<Note>, Note);

impl Drop for HandBack {
    fn drop(&mut self) {
        let _ = self.0.send(self.1.clone());
    }
}

/// A remote segment being imported.
struct Remote {
    /// `ID/NAME`.
    key: String,
    id: String,
    name: String,
    mirror: String,
    announcement: Announcement,
    layout: LayoutBuf,
}

/// The mirror's writer, while this bridge holds the lease.
enum MirrorWriter {
    State(RawWriter),
    Stream(RawStreamWriter),
}

/// An import's view of the mirror, updated from Zenoh's callbacks.
struct Mirror {
    shared: Arc<Shared>,
    remote: Arc<Remote>,
    /// The import's serial, and where its failure is told.
    serial: u64,
    notes: Sender<Note>,
    /// Set when the import ended: an answer to its query that arrives later is dropped.
    closed: bool,
    /// A stream's batches that arrived before its mirror was created (at most [`QUEUE`]).
    pending: Vec<Vec<u8>>,
    /// Why the import ended, once it did.
    failed: Option<String>,
    /// Whether the mirror exists (created or taken over by this bridge).
    exists: bool,
    writer: Option<MirrorWriter>,
    /// Liveliness tokens present (their keys).
    tokens: HashSet<String>,
    /// The newest remote epoch seen in a token.
    newest_epoch: u64,
    /// State: the newest (epoch, version) written.
    last: Option<(u64, u64)>,
}

impl Mirror {
    fn options(&self) -> Options {
        Options::new().ready_wait(Duration::from_millis(200))
    }

    /// Takes the mirror's writer lease if it is not held; `Err` says why it cannot be.
    fn take(&mut self) -> Result<(), String> {
        if self.writer.is_some() {
            return Ok(());
        }
        let name = &self.remote.mirror;
        let w = match self.remote.announcement.kind {
            SegmentKind::Stream => self
                .options()
                .open_raw_stream_writer(name, &self.remote.layout)
                .map(MirrorWriter::Stream),
            _ => self
                .options()
                .open_raw_writer(name, &self.remote.layout)
                .map(MirrorWriter::State),
        };
        self.writer = Some(w.map_err(|e| busy_or(e, name))?);
        self.repeat_epoch();
        Ok(())
    }

    /// Gives the mirror's writer the remote writer's epoch: the newest one a liveliness token
    /// named, else the announced one. A takeover records one more than the mirror's last
    /// epoch; this sets it back to the remote number when that is not lower than the mirror's
    /// epoch before the takeover (always, unless the mirror was left with a greater epoch by
    /// something other than this import).
    fn repeat_epoch(&mut self) {
        let epoch = match self.newest_epoch {
            0 => self.remote.announcement.epoch,
            e => e,
        };
        let done = match &mut self.writer {
            Some(MirrorWriter::State(w)) => w.set_epoch(epoch),
            Some(MirrorWriter::Stream(w)) => w.set_epoch(epoch),
            None => true,
        };
        if !done {
            self.shared.log.info(format_args!(
                "{}: the remote writer's epoch {epoch} is below the mirror's; the mirror keeps its own",
                self.remote.mirror
            ));
        }
    }

    /// Creates the mirror holding `initial` (state) or numbered after `last_sent` (stream),
    /// or takes over a mirror whose writer is gone (left by a bridge that was killed).
    fn create(&mut self, initial: &[u8], last_sent: u64) -> Result<(), String> {
        let remote = self.remote.clone();
        let name = &remote.mirror;
        let a = &self.remote.announcement;
        let created = match a.kind {
            SegmentKind::Stream => self
                .options()
                .create_raw_stream(name, &self.remote.layout, a.slots as usize, last_sent)
                .map(MirrorWriter::Stream),
            _ => self
                .options()
                .slots(a.slots as usize)
                .create_raw(name, &self.remote.layout, initial)
                .map(MirrorWriter::State),
        };
        match created {
            Ok(w) => {
                self.writer = Some(w);
                self.repeat_epoch();
            }
            Err(Error::AlreadyExists { .. }) => {
                if let Some(pid) = lease_holder(name) {
                    return Err(format!(
                        "the mirror {name} exists and its writer lease is held (pid {pid}): \
                         another bridge on this host imports {}/{}; not importing it twice",
                        self.remote.id,
                        self.remote.name.trim_start_matches('/')
                    ));
                }
                self.take()?;
                if let Some(MirrorWriter::State(w)) = &mut self.writer {
                    w.write(initial);
                }
            }
            Err(e) => return Err(format!("creating the mirror {name}: {e}")),
        }
        self.exists = true;
        // Created with the lease: keep it only while the remote writer is alive.
        if self.tokens.is_empty() {
            self.writer = None;
        }
        self.shared.log.info(format_args!(
            "mirroring {}/{} as {name}",
            self.remote.id,
            self.remote.name.trim_start_matches('/')
        ));
        Ok(())
    }

    /// Holds the lease exactly while a remote token is present.
    fn follow_liveliness(&mut self) -> Result<(), String> {
        if !self.exists {
            return Ok(());
        }
        if self.tokens.is_empty() {
            self.writer = None;
            Ok(())
        } else {
            self.take()
        }
    }

    /// Ends the import with the reason `why` (the discovery loop is told; the first reason
    /// is kept).
    /// Closes the import: a callback already under way or still queued, and a query's answer
    /// that arrives later, find it closed and do nothing; the reason it failed is logged, the
    /// writer lease released and the mirror removed (if this import made or took it).
    fn close(&mut self, shared: &Shared) {
        self.closed = true;
        if let Some(e) = self.failed.take() {
            shared.log.error(format_args!("{e}"));
        }
        self.writer = None;
        if self.exists {
            self.exists = false;
            let _ = shm_core::remove(&self.remote.mirror);
            shared
                .log
                .info(format_args!("removed the mirror {}", self.remote.mirror));
        }
    }

    fn fail(&mut self, why: String) {
        if self.failed.is_none() {
            self.failed = Some(why);
            let _ = self
                .notes
                .send(Note::Failed(self.remote.key.clone(), self.serial));
        }
    }

    /// Handles what the network delivered; an error ends the import (a malformed update is
    /// only logged).
    fn handle(&mut self, event: Event<'_>) {
        if self.failed.is_some() || self.closed {
            return;
        }
        let result = match event {
            Event::Alive(key, present) => self.alive(key, present),
            Event::Data(bytes) => match self.remote.announcement.kind {
                SegmentKind::Stream => self.stream(bytes),
                _ => self.state(bytes),
            }
            .or_else(|e| {
                if e.contains("lease is held") {
                    Err(e)
                } else {
                    // A malformed publication: refused, the import goes on.
                    self.shared.log.error(format_args!(
                        "{}: refused an update: {e}",
                        self.remote.mirror
                    ));
                    Ok(())
                }
            }),
        };
        if let Err(e) = result {
            self.fail(e);
        }
    }

    /// A token appeared or went.
    fn alive(&mut self, key: String, present: bool) -> Result<(), String> {
        let epoch = key
            .rsplit('/')
            .next()
            .and_then(|e| e.parse::<u64>().ok())
            .unwrap_or(0);
        if present {
            self.tokens.insert(key);
            if epoch > self.newest_epoch {
                // A new remote writer: the mirror gets a new epoch too.
                self.newest_epoch = epoch;
                self.writer = None;
            }
        } else {
            self.tokens.remove(&key);
        }
        self.follow_liveliness()
    }

    /// Writes a state update (ignoring one that is not newer within its epoch).
    fn state(&mut self, bytes: &[u8]) -> Result<(), String> {
        let size = self.remote.layout.size as usize;
        let (epoch, version, value) = StateUpdate::parse(bytes, size).map_err(|e| e.to_string())?;
        if let Some((e, v)) = self.last {
            if epoch < e || (epoch == e && version <= v) {
                return Ok(());
            }
        }
        self.last = Some((epoch, version));
        if !self.exists {
            self.create(value, 0)?;
        } else {
            self.take()?;
            if let Some(MirrorWriter::State(w)) = &mut self.writer {
                w.write(value);
            }
        }
        self.follow_liveliness()
    }

    /// Writes a batch of stream messages under their numbers.
    fn stream(&mut self, bytes: &[u8]) -> Result<(), String> {
        if !self.exists {
            if self.pending.len() < QUEUE {
                self.pending.push(bytes.to_vec());
            }
            return Ok(());
        }
        let size = self.remote.layout.size as usize;
        if self.writer.is_none() {
            self.take()?;
        }
        let Some(MirrorWriter::Stream(w)) = &mut self.writer else {
            return Ok(());
        };
        let mut absurd = None;
        Batch::decode(bytes, size, |number, message| {
            // A jump no writer could make (a hostile peer's number near the end of the range
            // would leave local readers no room to count on): refused, with the rest.
            if absurd.is_some() || number.saturating_sub(w.sent()) > MAX_JUMP {
                absurd.get_or_insert(number);
                return;
            }
            // Numbers not after the last one are messages the mirror already has (or that
            // were sent before it existed).
            w.send_numbered(number, message);
        })
        .map_err(|e| e.to_string())?;
        if let Some(number) = absurd {
            return Err(format!(
                "message number {number} is more than 2^40 after the last one, {}",
                w.sent()
            ));
        }
        self.follow_liveliness()
    }
}

/// The pid holding the writer lease of the segment `name`, if a writer holds it.
fn lease_holder(name: &str) -> Option<u32> {
    let options = Options::new().ready_wait(Duration::from_millis(200));
    match options.open_raw(name) {
        Ok(r) => {
            let writer = r.info().writer();
            writer.alive().then(|| writer.pid())
        }
        Err(Error::WrongKind { .. }) => options
            .subscribe_raw(name)
            .ok()
            .map(|r| r.info().writer())
            .filter(|w| w.alive())
            .map(|w| w.pid()),
        Err(_) => None,
    }
}

/// The message for a failed takeover of the mirror `name`.
fn busy_or(e: Error, name: &str) -> String {
    match e {
        Error::WriterBusy { pid } => format!(
            "the mirror {name} exists and its writer lease is held (pid {pid}): another bridge on \
             this host imports the same segment; not importing it twice"
        ),
        other => format!("taking over the mirror {name}: {other}"),
    }
}

/// Sets up the import of `remote`: subscribes to its data and liveliness, asks for the tokens
/// present and for the current value (a stream: creates the mirror at the exporter's
/// position); `None` if it could not subscribe (logged).
fn set_up(
    shared: &Arc<Shared>,
    remote: Arc<Remote>,
    serial: u64,
    notes: Sender<Note>,
) -> Option<Live> {
    let log = &shared.log;
    let data_key = shared.remote_key(&remote.id, &remote.name, "data");
    let alive_key = format!("{}/*", shared.remote_key(&remote.id, &remote.name, "alive"));
    // Updates are written into the mirror in Zenoh's callbacks, with no thread hop: a stream's
    // publisher that blocks under congestion is slowed by the mirror's writing itself.
    let mirror = Arc::new(Mutex::new(Mirror {
        shared: shared.clone(),
        remote: remote.clone(),
        serial,
        notes,
        closed: false,
        pending: Vec::new(),
        failed: None,
        exists: false,
        writer: None,
        tokens: HashSet::new(),
        newest_epoch: 0,
        last: None,
    }));
    let m = mirror.clone();
    let data = shared
        .session
        .declare_subscriber(data_key.as_str())
        .callback(move |s| {
            // Written into the mirror here, on Zenoh's receiving thread: no copy (the payload
            // is borrowed when it arrived in one piece) and no hand-over to another thread.
            lock(&m).handle(Event::Data(&s.payload().to_bytes()));
        })
        .wait();
    let m = mirror.clone();
    let alive = shared
        .session
        .liveliness()
        .declare_subscriber(alive_key.as_str())
        .history(true)
        .callback(move |s| {
            let present = s.kind() == SampleKind::Put;
            lock(&m).handle(Event::Alive(s.key_expr().as_str().to_owned(), present));
        })
        .wait();
    let (data, alive) = match (data, alive) {
        (Ok(d), Ok(a)) => (d, a),
        (data, alive) => {
            let e = (data.as_ref().err())
                .or(alive.as_ref().err())
                .map(ToString::to_string)
                .unwrap_or_default();
            // The one declared may have delivered a value, and with it made the mirror.
            drop((data, alive));
            log.error(format_args!("subscribing to {}: {e}", remote.name));
            lock(&mirror).close(shared);
            return None;
        }
    };
    // The tokens present now, so that the mirror is created with the right lease state (not
    // asked once the bridge is stopping: the loop waits for this setup).
    let stopping = || shared.stop.load(Ordering::Relaxed);
    if stopping() {
        // Nothing asked: ended at once.
    } else if let Ok(replies) = shared
        .session
        .liveliness()
        .get(alive_key.as_str())
        .timeout(QUERY_TIMEOUT)
        .wait()
    {
        while let Ok(reply) = replies.recv() {
            if let Ok(sample) = reply.result() {
                let key = sample.key_expr().as_str().to_owned();
                lock(&mirror).handle(Event::Alive(key, true));
            }
        }
    }
    let started = match remote.announcement.kind {
        _ if stopping() => Ok(()),
        // The current value at once, not at the next publication.
        SegmentKind::State => query_into(shared, &data_key, &mirror),
        // The layout is all a stream mirror needs: create it, numbered after the last
        // message the exporter had sent when it answered (asked after subscribing, so that
        // every later message arrives by the subscription), then write what arrived meanwhile.
        _ => {
            let layout_key = shared.remote_key(&remote.id, &remote.name, "layout");
            let position =
                query_position(shared, &layout_key).unwrap_or(remote.announcement.position);
            let mut m = lock(&mirror);
            let created = m.create(&[], position).and_then(|()| m.follow_liveliness());
            match created {
                Ok(()) => {
                    for batch in std::mem::take(&mut m.pending) {
                        m.handle(Event::Data(&batch));
                    }
                }
                Err(e) => m.fail(e),
            }
            Ok(())
        }
    };
    if let Err(e) = started {
        lock(&mirror).fail(e);
    }
    Some(Live {
        mirror,
        data,
        alive,
    })
}

/// Locks the mirror (one that a panicking callback left poisoned is still consistent: every
/// change is a whole value written or a lease taken or released).
fn lock(m: &Mutex<Mirror>) -> std::sync::MutexGuard<'_, Mirror> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Asks the `data` queryable for the current value, written into the mirror as it arrives
/// (in Zenoh's callback, as the subscription's updates are).
fn query_into(shared: &Shared, key: &str, mirror: &Arc<Mutex<Mirror>>) -> Result<(), String> {
    let m = mirror.clone();
    shared
        .session
        .get(key)
        .consolidation(ConsolidationMode::None)
        .timeout(QUERY_TIMEOUT)
        .callback(move |reply| {
            if let Ok(sample) = reply.result() {
                lock(&m).handle(Event::Data(&sample.payload().to_bytes()));
            }
        })
        .wait()
        .map_err(|e| format!("asking {key}: {e}"))
}

/// The position a fresh `layout` answer reports.
fn query_position(shared: &Shared, key: &str) -> Option<u64> {
    let replies = shared
        .session
        .get(key)
        .consolidation(ConsolidationMode::None)
        .timeout(QUERY_TIMEOUT)
        .wait()
        .ok()?;
    let mut position = None;
    while let Ok(reply) = replies.recv() {
        if let Ok(sample) = reply.result() {
            if let Ok(a) = Announcement::decode(&sample.payload().to_bytes()) {
                position = Some(a.position);
            }
        }
    }
    position
}
