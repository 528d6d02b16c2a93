//! Deliveries to the previous handlers: a SIGBUS that is not ours goes to the action our
//! installed generation chains to, each chained handler runs once however the chain leads back
//! to us, and a disposition that a chained handler changes is followed.

use super::action::{back_to_generation, generation_of, is_ours};
use super::chain::{change_chain, read_chain};
use crate::sys::{self, SigAction};
use core::sync::atomic::{AtomicUsize, Ordering};

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
pub(super) const DELIVERIES: usize = 128;
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

/// Hands a SIGBUS that is not ours to the action our installed generation chains to (see the
/// `fault` module documentation).
pub(super) fn pass_on(sig: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: as in `on_sigbus` (`mod.rs`): `info` is what our handler was given.
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
            // handler of this program of the kind its flags say, still loaded (see the `fault`
            // module documentation); `info` and `context` are the arguments we were given.
            unsafe { a.call(sig, info, context) };
            after_call(entry, generation, repeats);
        }
        _ => end_chain(repeats),
    }
}

/// After a chained handler returned: if it changed SIGBUS's disposition from `entry`, follows
/// the change (see the `fault` module documentation).
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
}
