//! Our SIGBUS action and its installation: the signature and the generation its signal mask
//! carries, by which copies of this runtime recognise each other and the handler recognises an
//! older installation of its own.

use super::chain::{change_chain, read_chain, Chain, HISTORY};
use super::{on_sigbus, ours, PAGE_SIZE};
use crate::sys::{self, SigAction};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

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
pub(super) fn is_ours(a: &SigAction) -> bool {
    a.handler == ours()
}

/// The generation (modulo [`GENERATIONS`]) an action of ours carries in its mask.
pub(super) fn generation_of(a: &SigAction) -> usize {
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

/// The newest generation that is `generation` modulo [`GENERATIONS`], at most `newest`.
fn generation_at_most(newest: usize, generation: usize) -> Option<usize> {
    let back = (newest % GENERATIONS + GENERATIONS - generation % GENERATIONS) % GENERATIONS;
    newest.checked_sub(back)
}

/// An installation of ours of generation `generation` is SIGBUS's disposition: if it is older
/// than the newest, the handlers installed since removed themselves (each restoring the action
/// it had replaced), so forget the generations after it. Async-signal-safe.
pub(super) fn back_to_generation(generation: usize) -> bool {
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
/// Serializes installations by [`Guard::new`](super::Guard::new) (never taken by the handler).
static INSTALL: Mutex<()> = Mutex::new(());

/// Our handler, installed in front of the SIGBUS action installed now: always the first time;
/// later only if the installed action is not a copy of this runtime's (one of ours or
/// another copy's) and fewer than [`HISTORY`] generations exist. If the installed action is
/// an older generation of ours, the newer ones are forgotten (their handlers removed
/// themselves). `false` if `sigaction` failed before our first installation.
pub(super) fn install() -> bool {
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
    // SAFETY: `on_sigbus` is async-signal-safe (see the `fault` module documentation), takes
    // the three `SA_SIGINFO` arguments, and is a function of this program (a library holding
    // it must not be unloaded, see the `fault` module documentation).
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

#[cfg(test)]
mod tests {
    use super::*;

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
