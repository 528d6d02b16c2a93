//! The SIGBUS guard: a peer that shrinks a segment's file under our mapping turns the next
//! access into `Error::Truncated` instead of killing this process.
//!
//! `table.rs` holds the table of guarded ranges and the [`Guard`] that enters a mapping in it;
//! `action.rs` our SIGBUS action (the signature and generation in its mask) and its
//! installation; `chain.rs` what each generation of our action chains to; `delivery.rs` how a
//! signal that is not ours reaches the previous handlers. This file holds the handler's entry
//! point and the repair of a fault in one of our ranges.
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
//!
//! [`CHUNK`]: table::CHUNK
//! [`HISTORY`]: chain::HISTORY
//! [`DELIVERIES`]: delivery::DELIVERIES
//! [`RETRIES`]: chain::RETRIES

mod action;
mod chain;
mod delivery;
mod table;

use crate::sys;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use delivery::pass_on;
use table::find;

pub(crate) use table::Guard;

/// The page size, read before the handler is installed (`sysconf` is not async-signal-safe).
static PAGE_SIZE: AtomicUsize = AtomicUsize::new(4096);
/// Test hook: mappings made after this is set are not guarded (see `__private::hooks`).
static DISABLED: AtomicBool = AtomicBool::new(false);

/// Makes every later mapping of this process unguarded, so tests can show what the guard
/// prevents.
pub(crate) fn disable() {
    DISABLED.store(true, Ordering::Relaxed);
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
