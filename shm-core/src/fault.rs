//! The SIGBUS guard: a peer that shrinks a segment's file under our mapping turns the next
//! access into `Error::Truncated` instead of killing this process.
//!
//! Accessing a page of a shared file mapping that lies beyond the file's end raises SIGBUS.
//! Any process that can open a named segment for writing can `ftruncate` it, so without a guard
//! a hostile or careless peer can kill every reader and the writer. The guard owns its signal,
//! as libwayland-server's `wl_shm` does:
//!
//! - Every mapping of a segment is entered in a lock-free table of address ranges
//!   ([`Guard::new`]) and removed again before it is unmapped. The table starts with
//!   [`CHUNK`] entries in static memory and grows by further chunks allocated by
//!   [`Guard::new`] (never by the handler) and kept for the life of the process, so every
//!   mapping is guarded however many are open.
//! - The guard's own SIGBUS action (`SA_SIGINFO | SA_ONSTACK | SA_NODEFER`) runs first. For a
//!   fault on an address in one of our ranges, it marks the range truncated, maps private zero
//!   pages over the rest of it with `mmap(MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS)` (readable,
//!   and writable only if the mapping was) and returns: no other handler sees the fault. The
//!   faulting access is then restarted, reads zeros, and the call that made it sees the mark
//!   and reports [`Error::Truncated`](crate::Error::Truncated). The mark is stored before the
//!   zero pages appear, so no thread reads zeros without seeing it.
//! - Any other SIGBUS (a fault elsewhere, or a signal sent with `kill`) goes to the action that
//!   was installed before ours, as if we were not there: a function is called with the same
//!   arguments (three if it asked for `SA_SIGINFO`, else one) and with its own mask blocked; if
//!   it was the default disposition, a fault is left to repeat under the default and a sent
//!   signal is raised again under it, so the process dies of SIGBUS as it would have; if it
//!   was ignored, a sent signal stays ignored and a fault kills (the kernel does not let a
//!   fault be ignored). Rust's standard library installs a SIGBUS handler at startup (it
//!   reports stack overflows, which on Linux arrive as SIGSEGV, and resets any SIGBUS to the
//!   default); it is chained this way.
//! - A chained handler may change SIGBUS's disposition. After it returns, the handler compares
//!   the disposition with the one it found on entry. If a handler put back an earlier
//!   installation of ours (it removed itself, restoring the action it had replaced), the guard
//!   chains again to what it chained to before that handler. If it installed something else
//!   (std resets to the default): for a fault that repeats when the handler returns
//!   (`BUS_ADRALN`, `BUS_ADRERR`, `BUS_OBJERR`, `BUS_MCEERR_AR`) the new disposition is left,
//!   so the fault runs again under it exactly as without us; for any other signal (sent with
//!   `kill`, `BUS_MCEERR_AO`, ...) the guard chains to the new disposition from now on and puts
//!   back the one it found, so our mappings stay guarded and the next such signal meets what
//!   it would have met without us (a second `kill -BUS` after std's reset kills).
//! - A handler installed after ours (by `sigaction` elsewhere in the program) runs first until
//!   the next mapping is registered: [`Guard::new`] then installs ours again in front of it,
//!   chaining to it. Each installation of ours has a generation, visible in its signal mask,
//!   and the guard keeps what each generation chains to ([`HISTORY`] of them), so that a
//!   handler that removes itself by restoring the action it replaced (Python's
//!   `faulthandler`, most crash reporters) restores an older generation of ours, which the
//!   guard recognises: it then chains to what it chained to before that handler. So a later
//!   handler sees our faults only between its installation and our next registration, and from
//!   then on only the signals that are not ours, once each.
//! - Several copies of this runtime in one process (a Python extension and the C library, each
//!   linking its own) recognise each other's action by a signature in its signal mask
//!   (`SIGRTMAX`, `SIGRTMAX-1` and `SIGRTMAX-3` blocked, `SIGRTMAX-2` not; the generation is
//!   `SIGRTMAX-4` and `SIGRTMAX-5`). A copy's first installation goes in front
//!   of whatever is installed, another copy included, and chains to it; after that a copy never
//!   goes in front of another copy. So the copies form one chain, each reached through those
//!   installed after it, and a fault in any copy's range reaches that copy.
//! - A chained handler can call ours again for the same signal (it saved our action as its
//!   previous one, and we had gone in front of it). The handler remembers the signals it is
//!   chaining on each thread (by the address of their `siginfo_t`, the thread and its own
//!   stack frame) and which generation's action it called: entered again for the same one, it
//!   chains to the action of the generation before, so each handler in the chain runs once and
//!   the nesting is bounded by [`HISTORY`]; entered again below the first generation, it ends
//!   the chain as the default disposition would.
//!
//! The handler only loads and stores atomics in static memory (or in table chunks that are
//! never freed) and makes the `mmap`, `sigaction`, `pthread_sigmask`, `gettid`, `tgkill` and
//! `raise` calls: no allocation, no lock, no formatting, no panic; it restores `errno`. Its
//! action asks for `SA_ONSTACK` because the handlers it chains to (std's, `faulthandler`'s) ask
//! for it and it cannot switch stacks for them; a chained handler that did not ask for it also
//! runs on the alternate stack when the thread has one.
//!
//! Limits:
//! - A thread that blocks SIGBUS is killed by a fault in a truncated mapping: the kernel
//!   resets a blocked fault signal to the default before delivering it, so no handler runs.
//!   The same holds for accesses made while a chained handler runs (SIGBUS is blocked then
//!   unless that handler asked for `SA_NODEFER`) and in threads created with every signal
//!   blocked. Programs that read segments must leave SIGBUS unblocked.
//! - A handler installed after our last registration sees our faults until the next one
//!   (it usually chains to us, its previous action, which then handles them). At most
//!   [`HISTORY`] generations are kept: with that many handlers installed over ours, the guard
//!   stays behind the last one.
//! - A handler that removes itself by restoring another copy's action (it had replaced that
//!   copy's, and this copy had gone in front of it) leaves this copy out of the installed
//!   chain: its ranges are guarded again only if that copy chains to it.
//! - A previous action's `SA_RESETHAND` is not emulated (it is called every time). While our
//!   handler runs, the signature signals above are blocked.
//! - A library holding this code (a Python extension, the C library) must not be unloaded while
//!   its handler is installed or chained to, and a library whose handler we chain to must not
//!   be unloaded either (we would call into unmapped code).
//! - A chained handler that leaves with `longjmp` leaves its delivery record behind; a record
//!   of the same thread at or below the current frame, or of a thread that has exited, is
//!   reclaimed. A left-over record above the frame, for a later signal of the same thread with
//!   the same `siginfo_t` address reached through another handler, makes that signal skip the
//!   generations after the one it recorded. With every one of the [`DELIVERIES`] records in use
//!   the handler chains to the first generation's action.
//! - Concurrent changes of the chained actions (a registration and a handler on another
//!   thread) are published with a compare-and-swap and retried; one that fails [`RETRIES`]
//!   times is dropped.
//! - `fork` while another thread registers a mapping: the child's first registration waits
//!   for a lock held by a thread that does not exist in the child. Programs that fork from
//!   several threads must not register mappings around the fork (as with any lock held in
//!   Rust's std).
//! - Every fault in our ranges is reported as a truncation, whatever its cause (a `tmpfs` out
//!   of space under a sparse file raises the same `BUS_ADRERR`). If `mmap` fails (the process
//!   is at `vm.max_map_count`), the fault is handed on as a foreign one and kills.
//! - The zero pages stay for the life of the mapping: a segment once truncated stays truncated
//!   for this handle, even if the file grows again.

use crate::sys::{self, SigAction};
use core::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// How many mappings one chunk of the table holds (the first chunk is static).
pub(crate) const CHUNK: usize = 1024;

/// One guarded mapping's address range, as a small seqlock: `seq` is odd while the range is
/// being written, so that the signal handler (which may interrupt a registration on the same or
/// another thread) never acts on a half-written range.
struct Entry {
    /// Whether a [`Guard`] owns this entry (claimed with a compare-and-swap).
    claimed: AtomicBool,
    /// Even when `start` and `len` are stable; odd while they change.
    seq: AtomicUsize,
    /// The first address of the mapping.
    start: AtomicUsize,
    /// The length of the mapping in bytes; 0 when the entry is free.
    len: AtomicUsize,
    /// Set by the signal handler before it maps zero pages over part of this range.
    truncated: AtomicBool,
    /// Whether the mapping is writable (the zero pages then are too).
    writable: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE: Entry = Entry {
    claimed: AtomicBool::new(false),
    seq: AtomicUsize::new(0),
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    truncated: AtomicBool::new(false),
    writable: AtomicBool::new(false),
};

/// A chunk of the table, and the next one (null until the table grows past this one).
struct Chunk {
    entries: [Entry; CHUNK],
    /// Null, or a chunk leaked from a `Box`, never freed.
    next: AtomicPtr<Chunk>,
}

static FIRST: Chunk = Chunk {
    entries: [FREE; CHUNK],
    next: AtomicPtr::new(core::ptr::null_mut()),
};

/// The table's chunks, in order. Async-signal-safe (atomic loads).
fn chunks() -> impl Iterator<Item = &'static Chunk> {
    let mut next = Some(&FIRST);
    core::iter::from_fn(move || {
        let chunk = next?;
        // SAFETY: `next` is null or a chunk leaked by `claim` (published with Release after
        // it was fully built), which is never freed.
        next = unsafe { chunk.next.load(Ordering::Acquire).as_ref() };
        Some(chunk)
    })
}

/// A free entry, claimed; grows the table when every entry is taken.
fn claim() -> &'static Entry {
    loop {
        let mut last = &FIRST;
        for chunk in chunks() {
            let free = chunk.entries.iter().find(|e| {
                e.claimed
                    .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            });
            if let Some(e) = free {
                return e;
            }
            last = chunk;
        }
        let fresh = Box::into_raw(Box::new(Chunk {
            entries: [FREE; CHUNK],
            next: AtomicPtr::new(core::ptr::null_mut()),
        }));
        if last
            .next
            .compare_exchange(
                core::ptr::null_mut(),
                fresh,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            // Another thread grew the table first; use its chunk.
            // SAFETY: `fresh` came from `Box::into_raw` above and was never published.
            drop(unsafe { Box::from_raw(fresh) });
        }
    }
}

/// How many chunks the table has (for tests).
#[cfg(test)]
fn chunk_count() -> usize {
    chunks().count()
}

/// The page size, read before the handler is installed (`sysconf` is not async-signal-safe).
static PAGE_SIZE: AtomicUsize = AtomicUsize::new(4096);
/// Test hook: mappings made after this is set are not guarded (see `__private::hooks`).
static DISABLED: AtomicBool = AtomicBool::new(false);

/// Makes every later mapping of this process unguarded, so tests can show what the guard
/// prevents.
pub(crate) fn disable() {
    DISABLED.store(true, Ordering::Relaxed);
}

/// How many generations of our action are remembered, each with the action it chains to.
pub(crate) const HISTORY: usize = 8;

/// The signature of a copy's action: `SIGRTMAX - n` is blocked for each `n` here...
const SIGNATURE_BLOCKED: [libc::c_int; 3] = [0, 1, 3];
/// ... and `SIGRTMAX - 2` is not. All far from `SIGRTMIN .. SIGRTMIN + 2`, which the C library
/// reserves for itself, and unlikely to be blocked by accident in exactly this pattern.
const SIGNATURE_UNBLOCKED: libc::c_int = 2;
/// The generation bits: `SIGRTMAX - 4` (bit 0) and `SIGRTMAX - 5` (bit 1).
const GENERATION_SIGNALS: [libc::c_int; 2] = [4, 5];
/// How many generations the mask tells apart.
const GENERATIONS: usize = 1 << GENERATION_SIGNALS.len();

/// Which mask bits the signature covers, and their values in it (written once before our
/// first installation, read by the handler).
static SIGNATURE_CARE: AtomicU64 = AtomicU64::new(0);
static SIGNATURE_SET: AtomicU64 = AtomicU64::new(0);
/// The mask bit of each generation bit.
static GENERATION_BITS: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

/// Computes the signature's mask bits with `sigaddset` (so the layout is the C library's, the
/// same in every copy) and stores them for the handler. Not async-signal-safe.
fn store_signature() {
    let max = libc::SIGRTMAX();
    let bits = |offsets: &[libc::c_int]| {
        let sigs: Vec<libc::c_int> = offsets.iter().map(|n| max - n).collect();
        sys::sigset_bits(&sigs)
    };
    let mut care = SIGNATURE_BLOCKED.to_vec();
    care.push(SIGNATURE_UNBLOCKED);
    SIGNATURE_CARE.store(bits(&care), Ordering::Relaxed);
    SIGNATURE_SET.store(bits(&SIGNATURE_BLOCKED), Ordering::Relaxed);
    for (g, n) in GENERATION_BITS.iter().zip(GENERATION_SIGNALS) {
        g.store(bits(&[n]), Ordering::Relaxed);
    }
}

/// Whether `a` is the action of a copy of this runtime (this one or another).
/// Async-signal-safe.
fn is_copy(a: &SigAction) -> bool {
    let care = SIGNATURE_CARE.load(Ordering::Relaxed);
    let signed = care != 0 && a.mask & care == SIGNATURE_SET.load(Ordering::Relaxed);
    signed && a.flags & libc::SA_SIGINFO != 0 && !a.is_default() && !a.is_ignore()
}

/// Whether `a` is this copy's action.
fn is_ours(a: &SigAction) -> bool {
    a.handler == ours()
}

/// The generation (modulo [`GENERATIONS`]) an action of ours carries in its mask.
fn generation_of(a: &SigAction) -> usize {
    GENERATION_BITS
        .iter()
        .enumerate()
        .filter(|(_, bit)| a.mask & bit.load(Ordering::Relaxed) != 0)
        .map(|(i, _)| 1 << i)
        .sum()
}

/// Our action for generation `generation`: the handler, the signature and the generation's
/// bits blocked while it runs, restarting system calls if `restart`.
fn our_action(generation: usize, restart: bool) -> SigAction {
    let mut a = SigAction::new_handler(on_sigbus, restart);
    a.mask = SIGNATURE_SET.load(Ordering::Relaxed);
    for (i, bit) in GENERATION_BITS.iter().enumerate() {
        if generation & (1 << i) != 0 {
            a.mask |= bit.load(Ordering::Relaxed);
        }
    }
    a
}

/// One action in static memory, read and written with relaxed atomics inside a [`Chain`]'s
/// seqlock.
struct StoredAction {
    handler: AtomicUsize,
    flags: AtomicUsize,
    mask: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)]
const NO_ACTION: StoredAction = StoredAction {
    handler: AtomicUsize::new(libc::SIG_DFL),
    flags: AtomicUsize::new(0),
    mask: AtomicU64::new(0),
};

impl StoredAction {
    fn set(&self, a: &SigAction) {
        self.handler.store(a.handler, Ordering::Relaxed);
        self.flags.store(a.flags as u32 as usize, Ordering::Relaxed);
        self.mask.store(a.mask, Ordering::Relaxed);
    }

    fn get(&self) -> SigAction {
        SigAction {
            handler: self.handler.load(Ordering::Relaxed),
            flags: self.flags.load(Ordering::Relaxed) as u32 as libc::c_int,
            mask: self.mask.load(Ordering::Relaxed),
        }
    }
}

/// What each generation of our action chains to: `actions[g]` for generation `g < depth`; the
/// newest generation is `depth - 1`. A seqlock: written only by the one thread that owns the
/// slot while it is not published, read by anyone, who retries if it changed meanwhile.
struct Chain {
    /// Whether a writer or the publication owns this slot.
    owned: AtomicBool,
    /// Even when the slot is stable, odd while a writer fills it.
    seq: AtomicUsize,
    /// How many generations there are (0 before our first installation).
    depth: AtomicUsize,
    actions: [StoredAction; HISTORY],
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE_CHAIN: Chain = Chain {
    owned: AtomicBool::new(false),
    seq: AtomicUsize::new(0),
    depth: AtomicUsize::new(0),
    actions: [NO_ACTION; HISTORY],
};

#[allow(clippy::declare_interior_mutable_const)]
const PUBLISHED_CHAIN: Chain = Chain {
    owned: AtomicBool::new(true),
    ..FREE_CHAIN
};

/// How many slots hold the chain: one published, the others free for writers.
const CHAIN_SLOTS: usize = 8;
static CHAINS: [Chain; CHAIN_SLOTS] = [
    PUBLISHED_CHAIN,
    FREE_CHAIN,
    FREE_CHAIN,
    FREE_CHAIN,
    FREE_CHAIN,
    FREE_CHAIN,
    FREE_CHAIN,
    FREE_CHAIN,
];
/// The published slot's index in the low bits, and a count of publications above them (so a
/// compare-and-swap never mistakes a republished slot for the one it read).
static PUBLISHED: AtomicUsize = AtomicUsize::new(0);
const INDEX_BITS: u32 = 4;
const INDEX_MASK: usize = (1 << INDEX_BITS) - 1;
/// How many times a change of the chain is tried against concurrent ones before it is dropped.
pub(crate) const RETRIES: usize = 64;

impl Chain {
    /// A slot by a [`PUBLISHED`] value.
    fn at(published: usize) -> &'static Chain {
        &CHAINS[(published & INDEX_MASK) % CHAIN_SLOTS]
    }

    fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed).min(HISTORY)
    }

    fn action(&self, generation: usize) -> SigAction {
        self.actions[generation % HISTORY].get()
    }
}

/// Reads the published chain with `f` and returns what it returned, retrying until the read
/// was not disturbed by a writer. Async-signal-safe. Terminates: a writer only fills a slot
/// that is not published, so a read is disturbed only by a publication made while it ran.
fn read_chain<R>(f: impl Fn(&Chain) -> R) -> R {
    loop {
        let chain = Chain::at(PUBLISHED.load(Ordering::Acquire));
        let s1 = chain.seq.load(Ordering::Acquire);
        if s1 & 1 == 0 {
            let r = f(chain);
            fence(Ordering::Acquire);
            if chain.seq.load(Ordering::Relaxed) == s1 {
                return r;
            }
        }
        core::hint::spin_loop();
    }
}

/// Publishes a changed copy of the chain: copies the published slot into a free one, lets
/// `change` edit the copy (it returns `false` if there is nothing to change) and publishes it
/// with a compare-and-swap, retried from a fresh copy if another change came first. `false`
/// if it could not publish within [`RETRIES`] tries. Lock-free and async-signal-safe.
fn change_chain(change: impl Fn(&Chain) -> bool) -> bool {
    for _ in 0..RETRIES {
        let published = PUBLISHED.load(Ordering::Acquire);
        let from = Chain::at(published);
        let Some((i, to)) = CHAINS.iter().enumerate().find(|(_, c)| {
            c.owned
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        }) else {
            core::hint::spin_loop();
            continue;
        };
        let s = to.seq.load(Ordering::Relaxed);
        to.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        let s1 = from.seq.load(Ordering::Acquire);
        to.depth
            .store(from.depth.load(Ordering::Relaxed), Ordering::Relaxed);
        for (t, f) in to.actions.iter().zip(&from.actions) {
            t.set(&f.get());
        }
        fence(Ordering::Acquire);
        let copied = s1 & 1 == 0 && from.seq.load(Ordering::Relaxed) == s1;
        let changed = copied && change(to);
        to.seq.store(s.wrapping_add(2), Ordering::Release);
        if copied && !changed {
            to.owned.store(false, Ordering::Release);
            return true;
        }
        let next = (published & !INDEX_MASK).wrapping_add(1 << INDEX_BITS) | i;
        if changed
            && PUBLISHED
                .compare_exchange(published, next, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            from.owned.store(false, Ordering::Release);
            return true;
        }
        to.owned.store(false, Ordering::Release);
    }
    false
}

/// The newest generation that is `generation` modulo [`GENERATIONS`], at most `newest`.
fn generation_at_most(newest: usize, generation: usize) -> Option<usize> {
    let back = (newest % GENERATIONS + GENERATIONS - generation % GENERATIONS) % GENERATIONS;
    newest.checked_sub(back)
}

/// An installation of ours of generation `generation` is SIGBUS's disposition: if it is older
/// than the newest, the handlers installed since removed themselves (each restoring the action
/// it had replaced), so forget the generations after it. Async-signal-safe.
fn back_to_generation(generation: usize) -> bool {
    change_chain(|c| {
        let depth = c.depth();
        let Some(newest) = depth.checked_sub(1) else {
            return false;
        };
        match generation_at_most(newest, generation) {
            Some(g) if g < newest => {
                c.depth.store(g + 1, Ordering::Relaxed);
                true
            }
            _ => false,
        }
    })
}

/// Whether our handler has been installed at least once (then the chain has a generation).
static INSTALLED: AtomicBool = AtomicBool::new(false);
/// Serializes installations by [`Guard::new`] (never taken by the handler).
static INSTALL: Mutex<()> = Mutex::new(());

/// Our handler, installed in front of the SIGBUS action installed now: always the first time;
/// later only if the installed action is not a copy of this runtime's (one of ours or
/// another copy's) and fewer than [`HISTORY`] generations exist. If the installed action is
/// an older generation of ours, the newer ones are forgotten (their handlers removed
/// themselves). `false` if `sigaction` failed before our first installation.
fn install() -> bool {
    let _lock = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let installed = INSTALLED.load(Ordering::Relaxed);
    let Some(current) = sys::sigbus_action() else {
        return installed;
    };
    if is_ours(&current) {
        back_to_generation(generation_of(&current));
        return true;
    }
    if installed && is_copy(&current) {
        // Another copy went in front of us (its first installation): it chains to us, and
        // going back in front of it would close a cycle.
        return true;
    }
    if !installed {
        let page = sys::page_size();
        if page.is_power_of_two() {
            PAGE_SIZE.store(page, Ordering::Relaxed);
        }
        store_signature();
    }
    // The generation this installation creates: the first, or one past the newest.
    let generation = read_chain(Chain::depth);
    if generation >= HISTORY {
        return true;
    }
    // Published before ours is installed: until then `current` is installed and may call ours
    // (as its previous action); the handler skips the newest generation's action when it is
    // the installed one, so `current` still runs once.
    let pushed = change_chain(|c| {
        if c.depth() != generation {
            return false;
        }
        c.actions[generation].set(&current);
        c.depth.store(generation + 1, Ordering::Relaxed);
        true
    });
    if !pushed || read_chain(Chain::depth) != generation + 1 {
        return installed;
    }
    let mine = our_action(generation, current.flags & libc::SA_RESTART != 0);
    // SAFETY: `on_sigbus` is async-signal-safe (see the module documentation), takes the
    // three `SA_SIGINFO` arguments, and is a function of this program (a library holding it
    // must not be unloaded, see the module documentation).
    let Some(replaced) = (unsafe { sys::set_sigbus_action(&mine) }) else {
        change_chain(|c| {
            c.depth.store(generation, Ordering::Relaxed);
            true
        });
        return installed;
    };
    if replaced != current && !is_ours(&replaced) {
        // Another action was installed between the query and ours: chain to it instead.
        change_chain(|c| {
            c.actions[generation].set(&replaced);
            c.depth() == generation + 1
        });
    }
    INSTALLED.store(true, Ordering::Release);
    true
}

/// A guarded mapping's entry in the table; removes the entry on drop. Drop it before the
/// mapping is unmapped (declare it before the mapping in a struct).
#[derive(Debug)]
pub(crate) struct Guard {
    /// The entry, or `None` when the mapping is not guarded (the test hook, or `sigaction`
    /// failed).
    entry: Option<&'static Entry>,
}

impl core::fmt::Debug for Entry {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Entry")
            .field("start", &self.start.load(Ordering::Relaxed))
            .field("len", &self.len.load(Ordering::Relaxed))
            .finish()
    }
}

impl Guard {
    /// Guards the mapping of `len` bytes at `start` (`writable` if it was mapped writable),
    /// installing the SIGBUS handler (see [`install`]).
    ///
    /// The owner of the mapping must make every access to it through a borrow of the value
    /// that owns this guard and the mapping, and drop the guard before it unmaps (see
    /// [`repair`]).
    pub fn new(start: *const u8, len: usize, writable: bool) -> Guard {
        if DISABLED.load(Ordering::Relaxed) || len == 0 || !install() {
            return Guard { entry: None };
        }
        let e = claim();
        let s = e.seq.load(Ordering::Relaxed);
        e.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        e.start.store(start as usize, Ordering::Relaxed);
        e.len.store(len, Ordering::Relaxed);
        e.truncated.store(false, Ordering::Relaxed);
        e.writable.store(writable, Ordering::Relaxed);
        e.seq.store(s.wrapping_add(2), Ordering::Release);
        Guard { entry: Some(e) }
    }

    /// Whether a peer truncated the file under this mapping and an access faulted (the
    /// faulting page and the rest of the range now read, or are about to read, as zeros).
    #[inline]
    pub fn truncated(&self) -> bool {
        self.entry
            .is_some_and(|e| e.truncated.load(Ordering::Acquire))
    }

    /// Whether the mapping is guarded at all.
    #[cfg(test)]
    pub fn is_active(&self) -> bool {
        self.entry.is_some()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(e) = self.entry {
            let s = e.seq.load(Ordering::Relaxed);
            e.seq.store(s.wrapping_add(1), Ordering::Relaxed);
            fence(Ordering::Release);
            e.len.store(0, Ordering::Relaxed);
            e.start.store(0, Ordering::Relaxed);
            e.truncated.store(false, Ordering::Relaxed);
            e.seq.store(s.wrapping_add(2), Ordering::Release);
            e.claimed.store(false, Ordering::Release);
        }
    }
}

/// The entry whose range holds `addr`, with that range (`start`, `len`) as validated by the
/// entry's seqlock. Async-signal-safe.
fn find(addr: usize) -> Option<(&'static Entry, usize, usize)> {
    chunks().find_map(|chunk| {
        chunk.entries.iter().find_map(|e| {
            let s1 = e.seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                return None;
            }
            let start = e.start.load(Ordering::Relaxed);
            let len = e.len.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            let s2 = e.seq.load(Ordering::Relaxed);
            let inside = addr >= start && addr - start < len;
            (s1 == s2 && inside).then_some((e, start, len))
        })
    })
}

/// If `addr` lies in one of our ranges, marks the range truncated and maps zero pages from
/// `addr`'s page to the end of the range. Async-signal-safe; no arithmetic that can overflow.
///
/// The range is known to be registered only when [`find`] read it; the `mmap` is sound
/// because the mapping cannot be unmapped (nor its address reused) before the access that
/// faulted returns: every access to a guarded mapping is made through a borrow of the value
/// that owns both the mapping and its [`Guard`] (a segment, or the owner of a
/// `MappingGuard`), and that value drops the guard before it unmaps. The faulting thread holds
/// that borrow for the whole access, so the range stays mapped and registered until the
/// handler has returned.
///
/// The mark is stored (Release) before the zero pages are mapped: another thread that reads a
/// zero page without faulting, then loads the mark (Acquire), sees it.
fn repair(addr: usize) -> bool {
    let Some((e, start, len)) = find(addr) else {
        return false;
    };
    let page = PAGE_SIZE.load(Ordering::Relaxed);
    // `page` is a power of two (checked when stored), so the mask is exact.
    let from = addr & !(page - 1);
    let Some(to) = start
        .checked_add(len)
        .and_then(|end| end.checked_next_multiple_of(page))
    else {
        return false;
    };
    // `from <= addr < start + len <= to`, and `from >= start` because mappings start on a
    // page boundary; checked anyway.
    let Some(n) = to.checked_sub(from).filter(|&n| n > 0 && from >= start) else {
        return false;
    };
    e.truncated.store(true, Ordering::Release);
    sys::map_zero_pages(from, n, e.writable.load(Ordering::Relaxed))
}

/// A signal this handler is chaining on some thread: the address of its `siginfo_t` (on the
/// signal frame, so unique among the deliveries in progress), the thread, the handler's own
/// frame, and the generation whose action it called.
struct Delivery {
    info: AtomicUsize,
    thread: AtomicUsize,
    frame: AtomicUsize,
    generation: AtomicUsize,
}

/// How many chaining deliveries are remembered at once (concurrent SIGBUS deliveries that are
/// not ours, across all threads).
pub(crate) const DELIVERIES: usize = 128;
#[allow(clippy::declare_interior_mutable_const)]
const NO_DELIVERY: Delivery = Delivery {
    info: AtomicUsize::new(0),
    thread: AtomicUsize::new(0),
    frame: AtomicUsize::new(0),
    generation: AtomicUsize::new(0),
};
static IN_FLIGHT: [Delivery; DELIVERIES] = [NO_DELIVERY; DELIVERIES];

/// The oldest generation an outer call of this handler for the delivery `info` on `thread`
/// called, if this call was reached again through the chain: records of the same delivery on
/// the same thread with a frame above ours (the stack grows down; every delivery to a thread
/// runs on the one stack its handlers use, the alternate one if it has one).
fn outer_generation(info: usize, thread: usize, frame: usize) -> Option<usize> {
    IN_FLIGHT
        .iter()
        .filter(|d| {
            d.info.load(Ordering::Acquire) == info
                && d.thread.load(Ordering::Relaxed) == thread
                && d.frame.load(Ordering::Relaxed) > frame
        })
        .map(|d| d.generation.load(Ordering::Relaxed))
        .min()
}

/// Whether a record can be taken: free, or left over by a handler that left with `longjmp`
/// (the same thread, a frame at or below ours: no call of ours on this thread's stack is
/// below us), or by a thread that has exited.
fn reclaimable(d: &Delivery, thread: usize, frame: usize, full: bool) -> Option<usize> {
    let info = d.info.load(Ordering::Acquire);
    let owner = d.thread.load(Ordering::Relaxed);
    let stale = owner == thread && d.frame.load(Ordering::Relaxed) <= frame;
    (info == 0 || stale || (full && owner != 0 && !sys::thread_alive(owner))).then_some(info)
}

/// Records this call for `info` on `thread`; `None` if every record is in use.
fn enter(info: usize, thread: usize, frame: usize, generation: usize) -> Option<&'static Delivery> {
    let take = |full| {
        IN_FLIGHT.iter().find(|d| {
            reclaimable(d, thread, frame, full).is_some_and(|old| {
                d.info
                    .compare_exchange(old, info, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            })
        })
    };
    let d = take(false).or_else(|| take(true))?;
    d.thread.store(thread, Ordering::Relaxed);
    d.frame.store(frame, Ordering::Relaxed);
    d.generation.store(generation, Ordering::Relaxed);
    Some(d)
}

/// Frees a record taken by [`enter`].
fn leave(d: &Delivery) {
    d.thread.store(0, Ordering::Relaxed);
    d.info.store(0, Ordering::Release);
}

/// Whether a SIGBUS with this `si_code` is a fault that the kernel raises again when the
/// handler returns (the access is restarted): `BUS_ADRALN`, `BUS_ADRERR`, `BUS_OBJERR`,
/// `BUS_MCEERR_AR`. Codes <= 0 were sent by a process; `BUS_MCEERR_AO` and `SI_KERNEL` do
/// not repeat.
fn repeats(code: Option<libc::c_int>) -> bool {
    matches!(
        code,
        Some(libc::BUS_ADRALN | libc::BUS_ADRERR | libc::BUS_OBJERR | libc::BUS_MCEERR_AR)
    )
}

/// Ends the chain as the default disposition would: the default is installed; a fault that
/// repeats then kills the process when the handler returns; any other signal is raised again
/// and kills it.
fn end_chain(repeats: bool) {
    sys::set_sigbus_default();
    if !repeats {
        sys::raise_sigbus();
    }
}

/// The address of [`on_sigbus`], as `sigaction` reports it when it is installed.
fn ours() -> usize {
    on_sigbus as *const () as usize
}

/// The SIGBUS handler. Async-signal-safe (see the module documentation).
extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    let errno = sys::errno();
    // SAFETY: `info` is null or what the kernel (or a handler chaining to us with the kernel's
    // arguments) passed to a SIGBUS handler.
    let addr = unsafe { sys::sigbus_fault_address(info) };
    if !addr.is_some_and(repair) {
        pass_on(sig, info, context);
    }
    sys::set_errno(errno);
}

/// Hands a SIGBUS that is not ours to the action our installed generation chains to (see the
/// module documentation).
fn pass_on(sig: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: as in `on_sigbus`.
    let code = unsafe { sys::signal_code(info) };
    let repeats = repeats(code);
    // The disposition on entry: if it is one of our generations, the handlers installed after
    // it removed themselves.
    let entry = sys::sigbus_action();
    if let Some(e) = entry.filter(is_ours) {
        back_to_generation(generation_of(&e));
    }
    let thread = sys::thread_id();
    let marker = 0u8;
    let frame = core::hint::black_box(&marker) as *const u8 as usize;
    let key = info as usize;
    // A null `info` cannot be told apart from other deliveries: not recorded.
    let outer = (key != 0)
        .then(|| outer_generation(key, thread, frame))
        .flatten();
    let (mut generation, mut action) = read_chain(|c| {
        let newest = c.depth().checked_sub(1)?;
        let g = match outer {
            // Reached again through the chain: the generations from `o` on already ran (and
            // some may have been forgotten since).
            Some(o) => o.checked_sub(1)?.min(newest),
            None => {
                let a = c.action(newest);
                // The newest generation's action is installed (our installation in front of
                // it is under way): it already ran, and called us.
                if newest > 0 && entry.is_some_and(|e| !is_ours(&e) && e == a) {
                    newest - 1
                } else {
                    newest
                }
            }
        };
        Some((g, c.action(g)))
    })
    .unzip();
    let record = match generation {
        Some(g) if key != 0 => enter(key, thread, frame, g),
        _ => None,
    };
    if key != 0 && record.is_none() && outer.is_none() && generation.is_some() {
        // No record free: the oldest generation, whose action cannot lead back here (it was
        // installed before ours, and no copy goes in front of another after its first time).
        generation = Some(0);
        action = Some(read_chain(|c| c.action(0)));
    }
    call(sig, info, context, entry, generation, action, repeats);
    if let Some(d) = record {
        leave(d);
    }
}

/// Runs `action`, the action of generation `generation` (`None`: the chain is exhausted, as
/// the default disposition), for this signal; then reconciles the disposition with `entry`,
/// the one found on entry.
fn call(
    sig: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
    entry: Option<SigAction>,
    generation: Option<usize>,
    action: Option<SigAction>,
    repeats: bool,
) {
    match action {
        Some(a) if a.is_ignore() => {
            if repeats {
                // The kernel does not let a fault be ignored: it would kill the process.
                end_chain(true);
            }
        }
        Some(a) if !a.is_default() && !is_ours(&a) => {
            // SAFETY: `a` was read back from the kernel as SIGBUS's disposition (when ours was
            // installed in front of it, or after a chained handler installed it), so it is a
            // handler of this program of the kind its flags say, still loaded (see the module
            // documentation); `info` and `context` are the arguments we were given.
            unsafe { a.call(sig, info, context) };
            after_call(entry, generation, repeats);
        }
        _ => end_chain(repeats),
    }
}

/// After a chained handler returned: if it changed SIGBUS's disposition from `entry`, follows
/// the change (see the module documentation).
fn after_call(entry: Option<SigAction>, generation: Option<usize>, repeats: bool) {
    let (Some(entry), Some(now)) = (entry, sys::sigbus_action()) else {
        return;
    };
    if now == entry {
        return;
    }
    if is_ours(&now) {
        // A handler removed itself, restoring an older installation of ours.
        back_to_generation(generation_of(&now));
        return;
    }
    if repeats {
        // The fault runs again under the new disposition, as it would have without us.
        return;
    }
    // What the next signal would have met without us: chain to it from now on, and keep
    // guarding our mappings. If that cannot be recorded, the new disposition stays installed
    // (the next signal meets it, and our next registration installs ours again in front).
    let recorded = generation.is_some_and(|g| {
        change_chain(|c| {
            if g >= c.depth() {
                return false;
            }
            c.actions[g].set(&now);
            true
        })
    });
    if !recorded {
        return;
    }
    // SAFETY: `entry` was read back from the kernel as SIGBUS's disposition when this handler
    // started, so it is a valid action whose handler (if any) is a handler of this program.
    unsafe { sys::set_sigbus_action(&entry) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_reused_and_ranges_found() {
        let a = [0u8; 64];
        let g = Guard::new(a.as_ptr(), a.len(), false);
        assert!(g.is_active());
        let addr = a.as_ptr() as usize;
        let (_, start, len) = find(addr + 63).unwrap();
        assert_eq!((start, len), (addr, 64));
        assert!(find(addr + 64).is_none_or(|(_, s, _)| s != addr));
        assert!(!g.truncated());
        drop(g);
        assert!(find(addr).is_none());
    }

    #[test]
    fn the_table_grows_past_its_first_chunk() {
        let a = [0u8; 64];
        let guards: Vec<Guard> = (0..CHUNK + 10)
            .map(|_| Guard::new(a.as_ptr(), 1, false))
            .collect();
        assert!(guards.iter().all(Guard::is_active));
        assert!(chunk_count() >= 2);
    }

    #[test]
    fn a_delivery_reached_again_through_the_chain_sees_the_outer_generation() {
        let (info, thread, outer, inner) = (0x1000, 7, 0x9000, 0x8000);
        let d = enter(info, thread, outer, 3).unwrap();
        assert_eq!(outer_generation(info, thread, inner), Some(3));
        // Another thread's delivery is never an outer call.
        assert_eq!(outer_generation(info, thread + 1, inner), None);
        // A record at or below our frame is left over (a handler left with longjmp).
        assert_eq!(outer_generation(info, thread, outer), None);
        let again = enter(0x2000, thread, outer, 0).unwrap();
        assert!(core::ptr::eq(d, again), "the left-over record is reused");
        leave(again);
    }

    #[test]
    fn generations_are_told_apart_modulo_the_mask_bits() {
        assert_eq!(generation_at_most(5, 1), Some(5));
        assert_eq!(generation_at_most(5, 0), Some(4));
        assert_eq!(generation_at_most(5, 2), Some(2));
        assert_eq!(generation_at_most(1, 3), None);
        store_signature();
        for g in 0..GENERATIONS {
            let a = our_action(g, false);
            assert!(is_copy(&a) && is_ours(&a));
            assert_eq!(generation_of(&a), g);
        }
    }
}
