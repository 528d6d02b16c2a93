//! The thread backends, for kernels without io_uring futex waits: threads blocked in
//! `futex_waitv` (Linux 5.16+), each on up to 127 segment words plus a control word of its own
//! (a shard), or, below 5.16, one thread per armed wait blocked in `FUTEX_WAIT`. A watched
//! writer's pidfd is polled by one more thread, started with the first one. Every final
//! outcome is queued and signals the engine's eventfd.
//!
//! A wait leaves its thread only when that thread is not inside the system call that waits on
//! it: it is then final, and nothing of ours refers to its words any more.

use super::engine::{Outcome, Sleeper, Watch};
use crate::sys;
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Segment words per `futex_waitv` call (the kernel takes 128: one is the control word).
const PER_SHARD: usize = 127;
/// How often a thread on one segment word (no `futex_waitv`) looks at its control word.
const CHECK_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// One wait a thread sleeps on.
struct Entry {
    id: u64,
    watch: Arc<Watch>,
    /// Set by `cancel` or the pidfd thread: the wait ends at the thread's next turn.
    end: Option<Outcome>,
}

/// The waits of one thread, and the word that interrupts its sleep.
struct Shard {
    entries: Mutex<Vec<Entry>>,
    /// Bumped (and woken, privately) whenever `entries` changes.
    control: AtomicU32,
    /// Whether the thread still runs (a per-wait thread stops with its wait).
    running: std::sync::atomic::AtomicBool,
}

impl Shard {
    fn lock(&self) -> MutexGuard<'_, Vec<Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Interrupts the thread's sleep: its control word, and for a thread on one segment word
    /// (no `futex_waitv`), that word too (the other waiters on it re-check and sleep again).
    fn kick(&self, waitv: bool) {
        self.control.fetch_add(1, Ordering::SeqCst);
        sys::futex_wake_private(&self.control);
        if !waitv {
            for e in self.lock().iter() {
                sys::futex_wake_all(e.watch.pin.u32_at(e.watch.futex));
            }
        }
    }
}

struct Common {
    eventfd: Arc<OwnedFd>,
    done: Mutex<Vec<(u64, Outcome)>>,
    waitv: bool,
    shards: Mutex<Vec<Arc<Shard>>>,
    /// Which shard holds each wait.
    placed: Mutex<HashMap<u64, Arc<Shard>>>,
    /// Shards given waits with `defer`, to interrupt at the next flush.
    unkicked: Mutex<Vec<Arc<Shard>>>,
    /// Interruptions made by `arm` and `flush` (for a test hook).
    arm_kicks: std::sync::atomic::AtomicU64,
    /// The pidfd thread's control eventfd, once it runs.
    pid_control: Mutex<Option<Arc<OwnedFd>>>,
    /// Set when the backend is dropped: every thread ends its waits and stops.
    shutdown: std::sync::atomic::AtomicBool,
}

/// The thread backends (`waitv`: shards of [`PER_SHARD`] words; else a thread per wait).
pub(crate) struct Threads {
    common: Arc<Common>,
}

impl Threads {
    /// A backend that signals `eventfd`.
    pub fn new(eventfd: &Arc<OwnedFd>, waitv: bool) -> Threads {
        Threads {
            common: Arc::new(Common {
                eventfd: Arc::clone(eventfd),
                done: Mutex::new(Vec::new()),
                waitv,
                shards: Mutex::new(Vec::new()),
                placed: Mutex::new(HashMap::new()),
                unkicked: Mutex::new(Vec::new()),
                arm_kicks: std::sync::atomic::AtomicU64::new(0),
                pid_control: Mutex::new(None),
                shutdown: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Common {
    /// Records the final outcomes of `ended` and signals the eventfd.
    fn finish(&self, ended: Vec<Entry>) {
        if ended.is_empty() {
            return;
        }
        {
            let mut placed = lock(&self.placed);
            let mut done = lock(&self.done);
            for e in ended {
                placed.remove(&e.id);
                done.push((e.id, e.end.unwrap_or(Outcome::Woken)));
            }
        }
        sys::eventfd_signal(self.eventfd.as_fd());
    }

    /// Ends the wait `id` at its thread's next turn with `outcome` (if it has none yet).
    fn end(&self, id: u64, outcome: Outcome) {
        self.end_all(&[id], outcome);
    }

    /// Ends the waits `ids` as [`end`](Self::end) does, interrupting each thread once (not once
    /// per wait: a writer's death ends every wait on it at once).
    fn end_all(&self, ids: &[u64], outcome: Outcome) {
        let mut shards: Vec<(Arc<Shard>, Vec<u64>)> = Vec::new();
        {
            let placed = lock(&self.placed);
            for id in ids {
                let Some(shard) = placed.get(id) else {
                    continue;
                };
                match shards.iter_mut().find(|(s, _)| Arc::ptr_eq(s, shard)) {
                    Some((_, of)) => of.push(*id),
                    None => shards.push((Arc::clone(shard), vec![*id])),
                }
            }
        }
        for (shard, of) in shards {
            for e in shard.lock().iter_mut().filter(|e| of.contains(&e.id)) {
                e.end.get_or_insert(outcome);
            }
            shard.kick(self.waitv);
        }
    }

    /// Starts the pidfd thread if it does not run yet, or tells it the pidfds changed.
    fn watch_pids(self: &Arc<Self>) -> io::Result<()> {
        let mut ctl = lock(&self.pid_control);
        if let Some(fd) = ctl.as_ref() {
            sys::eventfd_signal(fd.as_fd());
            return Ok(());
        }
        let fd = Arc::new(sys::eventfd()?);
        let common = Arc::clone(self);
        let control = Arc::clone(&fd);
        std::thread::Builder::new()
            .name("shm-wait-pid".into())
            .spawn(move || pid_thread(&common, &control))?;
        *ctl = Some(fd);
        Ok(())
    }
}

/// The pidfd thread: polls every watched writer's pidfd and ends the waits on a writer whose
/// process ended.
fn pid_thread(common: &Arc<Common>, control: &OwnedFd) {
    loop {
        // Every pidfd of an armed wait, and the waits that watch it.
        let mut fds: Vec<RawFd> = vec![control.as_raw_fd()];
        let mut owners: Vec<Vec<u64>> = vec![Vec::new()];
        let mut keep: Vec<Arc<OwnedFd>> = Vec::new();
        for shard in lock(&common.shards).iter() {
            for e in shard.lock().iter().filter(|e| e.end.is_none()) {
                let Some(p) = &e.watch.pidfd else { continue };
                match fds.iter().position(|&f| f == p.as_raw_fd()) {
                    Some(i) => owners[i].push(e.id),
                    None => {
                        fds.push(p.as_raw_fd());
                        owners.push(vec![e.id]);
                        keep.push(Arc::clone(p));
                    }
                }
            }
        }
        let readable = sys::poll_readable(&fds, None);
        if common.shutdown.load(Ordering::SeqCst) {
            return;
        }
        let mut died = Vec::new();
        for i in readable {
            if i == 0 {
                sys::eventfd_drain(control.as_fd());
            }
            died.extend_from_slice(&owners[i]);
        }
        common.end_all(&died, Outcome::WriterDied);
        drop(keep);
    }
}

/// A shard's thread: sleeps on its waits' words (and its control word) and ends those that
/// were woken, changed, cancelled, or whose writer died.
fn shard_thread(common: &Arc<Common>, shard: &Arc<Shard>) {
    loop {
        // Under the lock: end what must end, and take the words to sleep on.
        let control = shard.control.load(Ordering::SeqCst);
        let (ended, words, slice) = {
            let mut entries = shard.lock();
            let stop = common.shutdown.load(Ordering::SeqCst);
            let (ended, kept): (Vec<Entry>, Vec<Entry>) =
                entries.drain(..).partition(|e| stop || e.end.is_some());
            *entries = kept;
            if entries.is_empty() && (stop || !common.waitv) {
                shard.running.store(false, Ordering::SeqCst);
                drop(entries);
                common.finish(ended);
                return;
            }
            let words: Vec<sys::FutexWaitv> = entries
                .iter()
                .map(|e| sys::FutexWaitv {
                    val: u64::from(e.watch.expected),
                    uaddr: e.watch.futex_addr() as u64,
                    flags: sys::FUTEX2_SIZE_U32,
                    reserved: 0,
                })
                .collect();
            let slice = entries.iter().filter_map(|e| e.watch.slice).min();
            (ended, words, slice)
        };
        common.finish(ended);
        let timed_out = if common.waitv {
            let mut all = Vec::with_capacity(words.len() + 1);
            all.push(sys::FutexWaitv {
                val: u64::from(control),
                uaddr: shard.control.as_ptr() as u64,
                flags: sys::FUTEX2_SIZE_U32 | sys::FUTEX2_PRIVATE,
                reserved: 0,
            });
            all.extend(words);
            // SAFETY: every segment word belongs to a wait still in `entries` (only this
            // thread removes them), whose watch pins its mapping; the control word lives in
            // `shard`, which this thread holds; it is private to this process.
            let r = unsafe { sys::futex_waitv(&all, slice) };
            matches!(r, Err(e) if e.raw_os_error() == Some(libc::ETIMEDOUT))
        } else {
            // One wait: sleep on its word; `kick` wakes that word to interrupt. A kick that
            // lands between the check below and the sleep is missed: the sleep is then cut at
            // [`CHECK_EVERY`] even without a slice, to look at the control word again.
            let (pin, futex) = {
                let entries = shard.lock();
                (entries[0].watch.pin.clone(), entries[0].watch.futex)
            };
            if shard.control.load(Ordering::SeqCst) == control {
                let sleep = Some(slice.unwrap_or(CHECK_EVERY));
                sys::futex_wait_shared(pin.u32_at(futex), words[0].val as u32, sleep);
            }
            false
        };
        // End the waits whose word changed (woken or stale), or all of them after a slice.
        let mut entries = shard.lock();
        for e in entries.iter_mut() {
            if timed_out
                || e.watch.pin.u32_at(e.watch.futex).load(Ordering::SeqCst) != e.watch.expected
            {
                e.end.get_or_insert(Outcome::Woken);
            }
        }
        if !common.waitv && entries.iter().all(|e| e.end.is_none()) {
            // A per-wait thread that slept a whole slice ends its wait (the waiter re-checks).
            if slice.is_some() && shard.control.load(Ordering::SeqCst) == control {
                entries.iter_mut().for_each(|e| {
                    e.end.get_or_insert(Outcome::Woken);
                });
            }
        }
    }
}

impl Drop for Threads {
    fn drop(&mut self) {
        let c = &self.common;
        c.shutdown.store(true, Ordering::SeqCst);
        for shard in lock(&c.shards).iter() {
            shard.kick(c.waitv);
        }
        if let Some(fd) = lock(&c.pid_control).as_ref() {
            sys::eventfd_signal(fd.as_fd());
        }
    }
}

impl Sleeper for Threads {
    fn arm(&self, id: u64, watch: Arc<Watch>, defer: bool) -> io::Result<()> {
        let c = &self.common;
        let watched = watch.pidfd.is_some();
        let entry = Entry {
            id,
            watch,
            end: None,
        };
        let mut shards = lock(&c.shards);
        shards.retain(|s| s.running.load(Ordering::SeqCst));
        let capacity = if c.waitv { PER_SHARD } else { 1 };
        let found = shards
            .iter()
            .find(|s| c.waitv && s.lock().len() < capacity)
            .cloned();
        let shard = match found {
            Some(s) => s,
            None => {
                let s = Arc::new(Shard {
                    entries: Mutex::new(Vec::new()),
                    control: AtomicU32::new(0),
                    running: std::sync::atomic::AtomicBool::new(true),
                });
                let (common, shard) = (Arc::clone(c), Arc::clone(&s));
                s.lock().push(entry);
                lock(&c.placed).insert(id, Arc::clone(&s));
                std::thread::Builder::new()
                    .name("shm-wait".into())
                    .spawn(move || shard_thread(&common, &shard))?;
                shards.push(s);
                drop(shards);
                return if watched { c.watch_pids() } else { Ok(()) };
            }
        };
        shard.lock().push(entry);
        lock(&c.placed).insert(id, Arc::clone(&shard));
        drop(shards);
        if defer {
            let mut unkicked = lock(&c.unkicked);
            if !unkicked.iter().any(|s| Arc::ptr_eq(s, &shard)) {
                unkicked.push(shard);
            }
        } else {
            c.arm_kicks.fetch_add(1, Ordering::Relaxed);
            shard.kick(true);
        }
        if watched {
            c.watch_pids()?;
        }
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        let unkicked = core::mem::take(&mut *lock(&self.common.unkicked));
        for shard in unkicked {
            self.common.arm_kicks.fetch_add(1, Ordering::Relaxed);
            shard.kick(true);
        }
        Ok(())
    }

    fn arm_syscalls(&self) -> u64 {
        self.common.arm_kicks.load(Ordering::Relaxed)
    }

    fn cancel(&self, id: u64) {
        self.common.end(id, Outcome::Woken);
    }

    fn reap(&self, out: &mut Vec<(u64, Outcome)>) {
        out.append(&mut lock(&self.common.done));
    }

    fn has_outcomes(&self) -> bool {
        !lock(&self.common.done).is_empty()
    }

    fn threads(&self) -> usize {
        let running = lock(&self.common.shards)
            .iter()
            .filter(|s| s.running.load(Ordering::SeqCst))
            .count();
        running + usize::from(lock(&self.common.pid_control).is_some())
    }
}
