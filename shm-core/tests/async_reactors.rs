//! `WaitSet::next` under each way of driving it: inside a tokio runtime (tokio's reactor with
//! the feature `tokio`, else the process's waiting thread), under a minimal executor of our
//! own (the waiting thread), and under async-io's `block_on` (its reactor, with the feature
//! `async-io`); each with every backend. Also: a set's helper threads end with the set.

mod common;

use common::Name;
use shm_core::__private::hooks;
use shm_core::{SharedState, WaitBackend, WaitSet};
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

const BACKENDS: [WaitBackend; 3] = [
    WaitBackend::IoUring,
    WaitBackend::FutexWaitv,
    WaitBackend::Thread,
];
/// Rounds of publish-then-wait per run.
const ROUNDS: u64 = 500;
/// Far beyond any real wait: reaching it is a hang.
const BOUND: Duration = Duration::from_secs(60);

/// Runs `f` to completion on this thread, parking between polls.
fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    let start = Instant::now();
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        assert!(start.elapsed() < BOUND, "a wait set's future hung");
        std::thread::park_timeout(BOUND);
    }
}

/// A writer thread publishes version v once the reader acknowledged v - 1 and the set's wait
/// is armed (the waiter count says so); the set's future must report the segment each time.
fn ping_pong(backend: WaitBackend, run: impl Fn(&mut WaitSet) -> Vec<shm_core::Key>) {
    hooks::disable_async_wait_slice();
    let name = Name::new("reactor");
    let ack_name = Name::new("reactor-ack");
    let mut w = u64::create(&name, &0).unwrap();
    // Not 0 to begin with: the writer must not publish 1 before the reader acknowledged 0 (a
    // first `ready()` that registered the waiter could then see it, and fail its check).
    let mut ack = u64::create(&ack_name, &u64::MAX).unwrap();
    let r = u64::open(&name).unwrap();
    let acked = u64::open(&ack_name).unwrap();
    let mut set = WaitSet::with_backend(backend).unwrap();
    assert_eq!(set.backend(), backend);
    let key = set.attach(&r).unwrap();
    let probe = u64::open(&name).unwrap();
    let writer = std::thread::spawn(move || {
        for v in 1..=ROUNDS {
            let start = Instant::now();
            while acked.read() != v - 1 || hooks::waiters(hooks::raw(&probe)) == 0 {
                assert!(start.elapsed() < BOUND, "no acknowledgement of {}", v - 1);
                std::thread::yield_now();
            }
            w.write(&v);
        }
    });
    for v in 1..=ROUNDS {
        assert!(set.ready().unwrap().is_empty(), "nothing new before {v}");
        ack.write(&(v - 1));
        let ready = run(&mut set);
        assert_eq!(ready, vec![key]);
        assert_eq!(r.version(), v);
    }
    writer.join().unwrap();
}

#[test]
fn next_inside_tokio() {
    for b in BACKENDS {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        ping_pong(b, |set| rt.block_on(set.next()).unwrap());
    }
}

#[test]
fn next_under_another_executor() {
    for b in BACKENDS {
        ping_pong(b, |set| block_on(set.next()).unwrap());
    }
}

#[cfg(feature = "async-io")]
#[test]
fn next_under_async_io() {
    for b in BACKENDS {
        ping_pong(b, |set| async_io::block_on(set.next()).unwrap());
    }
}

/// A set's helper threads (fallback backends) end when the set is dropped.
#[test]
fn a_dropped_set_leaves_no_thread_behind() {
    let threads = || std::fs::read_dir("/proc/self/task").unwrap().count();
    let names: Vec<Name> = (0..200).map(|_| Name::new("reactor-threads")).collect();
    let writers: Vec<_> = names.iter().map(|n| u64::create(n, &0).unwrap()).collect();
    let readers: Vec<_> = names.iter().map(|n| u64::open(n).unwrap()).collect();
    for b in [WaitBackend::FutexWaitv, WaitBackend::Thread] {
        let before = threads();
        let mut set = WaitSet::with_backend(b).unwrap();
        for r in &readers {
            set.attach(r).unwrap();
        }
        assert!(set.ready().unwrap().is_empty());
        let armed = threads();
        assert!(armed > before, "{b:?} waits in threads");
        drop(set);
        let start = Instant::now();
        while threads() > before {
            assert!(
                start.elapsed() < BOUND,
                "{b:?}: {} threads left",
                threads() - before
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        for r in &readers {
            assert_eq!(hooks::waiters(hooks::raw(r)), 0);
        }
        eprintln!(
            "{b:?}: {} helper threads while armed, none after the drop",
            armed - before
        );
    }
    drop(writers);
}
