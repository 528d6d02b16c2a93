//! What each generation of our action chains to: a seqlock over slots in static memory, one
//! published, read by the handler and changed with a compare-and-swap.

use crate::sys::SigAction;
use core::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// How many generations of our action are remembered, each with the action it chains to.
pub(super) const HISTORY: usize = 8;

/// One action in static memory, read and written with relaxed atomics inside a [`Chain`]'s
/// seqlock.
pub(super) struct StoredAction {
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
    pub(super) fn set(&self, a: &SigAction) {
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
pub(super) struct Chain {
    /// Whether a writer or the publication owns this slot.
    owned: AtomicBool,
    /// Even when the slot is stable, odd while a writer fills it.
    seq: AtomicUsize,
    /// How many generations there are (0 before our first installation).
    pub(super) depth: AtomicUsize,
    pub(super) actions: [StoredAction; HISTORY],
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
pub(super) const RETRIES: usize = 64;

impl Chain {
    /// A slot by a [`PUBLISHED`] value.
    fn at(published: usize) -> &'static Chain {
        &CHAINS[(published & INDEX_MASK) % CHAIN_SLOTS]
    }

    pub(super) fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed).min(HISTORY)
    }

    pub(super) fn action(&self, generation: usize) -> SigAction {
        self.actions[generation % HISTORY].get()
    }
}

/// Reads the published chain with `f` and returns what it returned, retrying until the read
/// was not disturbed by a writer. Async-signal-safe. Terminates: a writer only fills a slot
/// that is not published, so a read is disturbed only by a publication made while it ran.
pub(super) fn read_chain<R>(f: impl Fn(&Chain) -> R) -> R {
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
pub(super) fn change_chain(change: impl Fn(&Chain) -> bool) -> bool {
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
