//! Waiting and waking: process-shared futexes, and `membarrier`, the barrier a waiter makes
//! every registered writer's CPU execute (with the `fork` handler that registers a child).

use std::io;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::Once;
use std::time::Duration;

/// Blocks while `*word == expected`, at most `timeout`, on a process-shared futex.
///
/// Returns early on a wake-up, a changed value, a signal or a spurious wake-up; callers
/// re-check their condition.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a valid, aligned 32-bit atomic that lives in shared memory mapped for
    // the duration of the call; FUTEX_WAIT (not private) only reads it; `ts` outlives the call.
    // The result is deliberately ignored: every outcome (woken, EAGAIN, EINTR, ETIMEDOUT) makes
    // the caller re-check.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Wakes every process blocked in [`futex_wait`] on `word`.
pub fn futex_wake_all(word: &AtomicU32) {
    // SAFETY: `word` is a valid, aligned 32-bit atomic in mapped shared memory; FUTEX_WAKE
    // does not access it beyond identifying the futex.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// `membarrier` commands, from <linux/membarrier.h>.
const MEMBARRIER_CMD_QUERY: libc::c_int = 0;
const MEMBARRIER_CMD_GLOBAL_EXPEDITED: libc::c_int = 1 << 1;
const MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED: libc::c_int = 1 << 2;

/// [`BARRIER_TARGET`] and [`BARRIER_ISSUER`]: not known yet, yes, no.
const UNKNOWN: u8 = 0;
const YES: u8 = 1;
const NO: u8 = 2;

/// Whether this process is registered as a target of [`barrier_on_registered_processes`].
static BARRIER_TARGET: AtomicU8 = AtomicU8::new(UNKNOWN);
/// Whether this process can issue [`barrier_on_registered_processes`] (`UNKNOWN` until the
/// first try).
static BARRIER_ISSUER: AtomicU8 = AtomicU8::new(UNKNOWN);

/// `membarrier(cmd, 0, 0)`: its result, or -1.
fn membarrier(cmd: libc::c_int) -> libc::c_long {
    // SAFETY: membarrier takes two integers and a CPU id that the commands used here ignore;
    // it reads and writes no memory of ours.
    unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            cmd,
            0 as libc::c_uint,
            0 as libc::c_int,
        )
    }
}

/// Registers this process, once, as a target of the memory barriers other processes issue
/// with [`barrier_on_registered_processes`] (`MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED`), and
/// returns whether it is one. `false` where the kernel has no `membarrier` or a sandbox
/// forbids it. Only the first call in a process makes system calls.
///
/// A registration holds for every thread of the process, until it calls `exec`; a child made
/// by `fork` registers again (an `atfork` handler), and is not a target if that fails.
pub fn register_as_barrier_target() -> bool {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        let needed = MEMBARRIER_CMD_GLOBAL_EXPEDITED | MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED;
        let supported = membarrier(MEMBARRIER_CMD_QUERY);
        let registered = supported >= 0
            && supported & libc::c_long::from(needed) == libc::c_long::from(needed)
            && membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) == 0;
        if registered {
            // SAFETY: `register_child_again` is an `extern "C" fn()` that stays in the program;
            // it makes one system call and one atomic store, both allowed after `fork`.
            let handler = unsafe { libc::pthread_atfork(None, None, Some(register_child_again)) };
            if handler != 0 {
                // Without the handler a child could believe it is registered when it is not.
                BARRIER_TARGET.store(NO, Ordering::Relaxed);
                return;
            }
        }
        BARRIER_TARGET.store(if registered { YES } else { NO }, Ordering::Relaxed);
    });
    is_barrier_target()
}

/// Registers `fork` handlers (`pthread_atfork`): `prepare` runs in the parent before each
/// fork, `parent` in the parent after it, `child` in the child. Handlers stay for the life of
/// the process; `child` may only make async-signal-safe calls.
pub fn at_fork(
    prepare: extern "C" fn(),
    parent: extern "C" fn(),
    child: extern "C" fn(),
) -> io::Result<()> {
    // SAFETY: the handlers are `extern "C" fn()`s that stay in the program; what they may do
    // after `fork` is the caller's contract above.
    match unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) } {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// The `fork` child's half of [`register_as_barrier_target`]: the child is a new process,
/// registered only if it registers itself.
extern "C" fn register_child_again() {
    let registered = membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) == 0;
    BARRIER_TARGET.store(if registered { YES } else { NO }, Ordering::Relaxed);
}

/// Whether [`register_as_barrier_target`] registered this process. No system call: one load.
///
/// Relaxed: the store it reads was made after the registration's system call returned, and
/// from then on the kernel treats every thread of the process as a target.
#[inline(always)]
pub fn is_barrier_target() -> bool {
    BARRIER_TARGET.load(Ordering::Relaxed) == YES
}

/// Makes every thread of every process registered by [`register_as_barrier_target`] execute a
/// full memory barrier, and this thread too (`MEMBARRIER_CMD_GLOBAL_EXPEDITED`): a thread
/// running when this is called is interrupted for it, one not running gets it from the
/// scheduler. Returns whether the kernel did it; after the first failure (no `membarrier`, or
/// a sandbox forbids it) it no longer tries.
pub fn barrier_on_registered_processes() -> bool {
    if BARRIER_ISSUER.load(Ordering::Relaxed) == NO {
        return false;
    }
    let done = membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0;
    BARRIER_ISSUER.store(if done { YES } else { NO }, Ordering::Relaxed);
    done
}
