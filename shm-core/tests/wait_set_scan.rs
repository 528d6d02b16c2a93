//! A `WaitSet` with many handles attached finds the ready ones with one collection of its
//! backend's outcomes per call (a few system calls), not one per attached handle: with 256
//! segments attached, one per handle made every wake-up cost hundreds of microseconds. The
//! waits one call arms start sleeping with one system call, not one each. And with that one
//! collection, a publish into any attached segment is still reported.

mod common;

use common::Name;
use shm_core::__private::hooks;
use shm_core::{SharedState, WaitBackend, WaitSet};
use std::time::Duration;

const SEGMENTS: usize = 64;
/// Far beyond any real wait: reaching it is a hang.
const BOUND: Duration = Duration::from_secs(60);

#[test]
fn ready_collects_once_however_many_are_attached() {
    let names: Vec<Name> = (0..SEGMENTS).map(|_| Name::new("setscan")).collect();
    let mut writers: Vec<_> = names
        .iter()
        .map(|n| u64::create(n, &0).expect("create"))
        .collect();
    let readers: Vec<_> = names.iter().map(|n| u64::open(n).expect("open")).collect();
    let mut tried = 0;
    for backend in [
        WaitBackend::IoUring,
        WaitBackend::FutexWaitv,
        WaitBackend::Thread,
    ] {
        let Ok(mut set) = WaitSet::with_backend(backend) else {
            // io_uring futex waits need Linux 6.7; the others always start.
            assert_eq!(backend, WaitBackend::IoUring, "{backend:?} did not start");
            continue;
        };
        tried += 1;
        let keys: Vec<_> = readers
            .iter()
            .map(|r| set.attach(r).expect("attach"))
            .collect();
        // Arms every wait; nothing was published since the readers opened. The waits start
        // sleeping together: one system call (an io_uring submission, an interruption of the
        // one `futex_waitv` thread), not one per wait.
        let armed_before = hooks::wait_set_arm_syscalls(&set);
        assert!(set.ready().expect("ready").is_empty(), "{backend:?}");
        let arm_syscalls = hooks::wait_set_arm_syscalls(&set) - armed_before;
        assert!(
            arm_syscalls <= 1,
            "{backend:?}: arming {SEGMENTS} waits in one ready() made {arm_syscalls} system calls"
        );
        let before = hooks::wait_set_reaps(&set);
        for _ in 0..3 {
            assert!(set.ready().expect("ready").is_empty(), "{backend:?}");
        }
        let reaps = hooks::wait_set_reaps(&set) - before;
        assert_eq!(
            reaps, 3,
            "{backend:?}: three ready() calls over {SEGMENTS} handles collected {reaps} times"
        );
        // Each segment in turn: the publish is reported, and only its key.
        for (i, w) in writers.iter_mut().enumerate().step_by(7) {
            w.write(&(i as u64 + 1));
            let got = set.wait(BOUND).expect("a publish is reported");
            assert_eq!(got, vec![keys[i]], "{backend:?}: segment {i}");
        }
    }
    assert!(tried >= 2, "no backend started");
}
