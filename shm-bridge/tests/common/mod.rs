//! Test support: bridge processes on loopback ports, re-executing this test binary in a child
//! role, unique names, bounded waits on observed progress.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Environment variable that tells a re-executed test binary which role to play.
pub const ROLE: &str = "SHM_BRIDGE_TEST_ROLE";
/// The ignored test every test binary dispatches its child roles from.
pub const ENTRY: &str = "child_process_entry_point";
/// How long any wait for progress may take before the test fails: generous, for a loaded
/// machine; waits end as soon as the progress is observed.
pub const PATIENCE: Duration = Duration::from_secs(60);

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A unique tag: `<tag>-<pid>-<n>`.
pub fn unique(tag: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{tag}-{}-{n}", std::process::id())
}

/// A segment name `/shmtest-...` unique to this call, removed (if it exists) on drop.
pub struct Name(pub String);

impl Name {
    /// `/shmtest-<tag>-<pid>-<n>`.
    pub fn new(tag: &str) -> Name {
        Name(format!("/shmtest-{}", unique(tag)))
    }

    /// The name of this segment's mirror imported from host `id`, removed on drop too.
    pub fn mirror(&self, id: &str) -> Name {
        Name(format!("{}@{id}", self.0))
    }

    /// The name without its slash, as a remote segment is addressed.
    pub fn bare(&self) -> &str {
        self.0.trim_start_matches('/')
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        let _ = shm_core::remove(&self.0);
    }
}

/// A host id unique to this call.
pub fn host(tag: &str) -> String {
    unique(tag)
}

/// Whether `/dev/shm` has the segment `name`.
pub fn exists(name: &str) -> bool {
    std::path::Path::new("/dev/shm")
        .join(name.trim_start_matches('/'))
        .exists()
}

/// Waits until `done()` holds, for at most [`PATIENCE`]; panics with `what` otherwise.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < PATIENCE,
            "gave up after {PATIENCE:?} waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0 and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A running `shm-bridge` process, its log lines collected.
pub struct Bridge {
    pub child: Child,
    pub id: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Bridge {
    /// Starts `shm-bridge --id ID ARGS...` and waits until it reports `ready`.
    pub fn start(id: &str, args: &[String]) -> Bridge {
        Bridge::try_start(id, args).unwrap_or_else(|log| panic!("bridge {id} exited: {log:#?}"))
    }

    /// Starts a bridge as [`start`](Self::start) does; its log if it exits before it is ready
    /// (its listening port was taken, for example).
    pub fn try_start(id: &str, args: &[String]) -> Result<Bridge, Vec<String>> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_shm-bridge"))
            .arg("--id")
            .arg(id)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start shm-bridge");
        let stderr = child.stderr.take().expect("piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[{line}]");
                sink.lock().unwrap().push(line);
            }
        });
        let mut bridge = Bridge {
            child,
            id: id.to_owned(),
            log,
        };
        let start = Instant::now();
        while !bridge.logged("ready") {
            if let Ok(Some(_)) = bridge.child.try_wait() {
                // Let the last lines arrive.
                std::thread::sleep(Duration::from_millis(100));
                return Err(bridge.log.lock().unwrap().clone());
            }
            assert!(start.elapsed() < PATIENCE, "bridge {id} never got ready");
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(bridge)
    }

    /// Starts a bridge listening on a free loopback port; returns it and its endpoint.
    /// The port is found free a moment before the bridge binds it: if another process took
    /// it meanwhile, the bridge exits and another port is tried.
    pub fn listening(id: &str, args: &[String]) -> (Bridge, String) {
        let mut last = Vec::new();
        for _ in 0..5 {
            let endpoint = format!("tcp/127.0.0.1:{}", free_port());
            let mut all = vec!["--listen".to_string(), endpoint.clone()];
            all.extend_from_slice(args);
            match Bridge::try_start(id, &all) {
                Ok(bridge) => return (bridge, endpoint),
                Err(log) => last = log,
            }
        }
        panic!("bridge {id} could not listen on a free port: {last:#?}");
    }

    /// Whether a log line contains `text`.
    pub fn logged(&self, text: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(text))
    }

    /// How many log lines contain `text`.
    pub fn count(&self, text: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(text))
            .count()
    }

    /// Lets `n` of the importer's discovery rounds pass (sleeping is what is measured here:
    /// that nothing more is logged meanwhile).
    pub fn wait_rounds(&self, n: u32) {
        std::thread::sleep(shm_bridge::DISCOVER_EVERY * n);
    }

    /// Waits until a log line contains `text`; panics if the bridge exits first.
    pub fn wait_log(&self, text: &str) {
        let start = Instant::now();
        while !self.logged(text) {
            assert!(
                start.elapsed() < PATIENCE,
                "bridge {} never logged {text:?}; log: {:#?}",
                self.id,
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends SIGTERM and waits for the exit, which must be 0.
    pub fn terminate(mut self) {
        signal(&self.child, libc::SIGTERM);
        let status = wait_exit(&mut self.child);
        assert!(status.success(), "bridge {} exited with {status}", self.id);
    }

    /// Kills the bridge with SIGKILL and reaps it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `sig` to `child`.
pub fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) with the pid of a child we have not reaped yet: it cannot name
    // another process.
    let rc = unsafe { libc::kill(child.id() as i32, sig) };
    assert_eq!(rc, 0, "kill {sig}");
}

/// Waits for `child` to exit, for at most [`PATIENCE`].
pub fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(start.elapsed() < PATIENCE, "process did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A child process of this test binary in a role: its stdout lines, its stdin.
pub struct Role {
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Role {
    /// Starts this test binary again in `role` with the environment `env`.
    pub fn spawn(role: &str, env: &[(&str, String)]) -> Role {
        let mut cmd = Command::new(std::env::current_exe().expect("current test binary"));
        cmd.args([
            ENTRY,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(ROLE, role)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn child role");
        let stdout = child.stdout.take().expect("piped");
        let stdin = child.stdin.take();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Role {
            child,
            stdin,
            lines,
        }
    }

    /// Waits for an output line starting with `prefix`; returns the rest of it.
    pub fn wait_line(&mut self, prefix: &str) -> String {
        let start = Instant::now();
        loop {
            if let Some(l) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.starts_with(prefix))
            {
                return l[prefix.len()..].trim().to_owned();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Output may still be on its way.
                std::thread::sleep(Duration::from_millis(200));
                if let Some(l) = self
                    .lines
                    .lock()
                    .unwrap()
                    .iter()
                    .find(|l| l.starts_with(prefix))
                {
                    return l[prefix.len()..].trim().to_owned();
                }
                panic!("child exited ({status}) before printing {prefix:?}");
            }
            assert!(start.elapsed() < PATIENCE, "child never printed {prefix:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The rest of an output line starting with `prefix`, if one was printed.
    pub fn line(&self, prefix: &str) -> Option<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.starts_with(prefix))
            .map(|l| l[prefix.len()..].trim().to_owned())
    }

    /// Writes one line to the child's stdin.
    pub fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write to child");
        stdin.flush().expect("flush");
    }

    /// Waits for the child to exit successfully.
    pub fn finish(mut self) {
        drop(self.stdin.take());
        let status = wait_exit(&mut self.child);
        assert!(status.success(), "child role failed: {status}");
    }

    /// Kills the child with SIGKILL and reaps it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads one line from stdin (a child role's instruction); `None` at end of input.
pub fn instruction() -> Option<String> {
    let mut line = String::new();
    match std::io::stdin().read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim().to_owned()),
    }
}

/// Prints a line to stdout for the parent and flushes it.
pub fn tell(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}
