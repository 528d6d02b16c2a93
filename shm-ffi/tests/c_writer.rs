//! C programs built against `shm_ffi.h` and this build's library write segments that Rust
//! readers check: back-to-back values never torn and never backwards, a takeover of a Rust
//! writer's segment, and the errors a C caller sees.

#[path = "../../shm-core/tests/common/mod.rs"]
mod common;
#[path = "../../shm-core/tests/lang/mod.rs"]
mod lang;
mod support;

use common::Name;
use lang::{TempDir, C_FLAGS};
use shm_core::SharedState;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::build;

const WORDS: usize = 512;

/// 4 KiB whose every word holds the same counter.
#[derive(SharedState, Clone, Copy)]
#[repr(C)]
pub struct Stress {
    pub counter: u64,
    pub words: [u64; WORDS - 1],
}

const WRITER_C: &str = r#"#include "shm_ffi.h"
#include "stress.h"

#include <stdio.h>
#include <stdlib.h>

/* Creates the segment, then publishes back-to-back values whose every word is one counter,
 * until killed. */
int main(int argc, char **argv) {
    Stress *v = (Stress *)calloc(1, sizeof(Stress));
    shm_ffi_writer *w;
    uint64_t c = 0;
    size_t k;
    if (argc != 2 || !v) return 2;
    if (shm_ffi_writer_create(argv[1], SHM_FFI_LAYOUT(STRESS), v, sizeof *v, &w) != SHM_FFI_OK) {
        printf("error %s\n", shm_ffi_last_error());
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    for (;;) {
        c++;
        v->counter = c;
        for (k = 0; k < sizeof v->words / sizeof v->words[0]; k++) v->words[k] = c;
        if (shm_ffi_writer_write(w, v, sizeof *v) != SHM_FFI_OK) {
            printf("error %s\n", shm_ffi_last_error());
            return 1;
        }
    }
}
"#;

#[test]
fn c_writer_values_are_never_torn_or_backwards_for_a_rust_reader() {
    let dir = TempDir::new("ffiw");
    let name = Name::new("ffiw");
    std::fs::write(
        dir.path().join("stress.h"),
        shm_core::export::c_header::<Stress>(),
    )
    .unwrap();
    std::fs::write(dir.path().join("writer.c"), WRITER_C).unwrap();
    let exe = build("cc", C_FLAGS, dir.path(), "writer.c", "writer", false);
    let mut child = Command::new(exe)
        .arg(&*name)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");

    let r = Stress::open(&name).unwrap();
    assert!(r.info().writer().alive());
    let (mut reads, mut torn, mut backwards, mut distinct, mut last) = (0u64, 0, 0, 0u64, 0);
    let start = Instant::now();
    while (reads < 20_000 || distinct < 1_000) && start.elapsed() < Duration::from_secs(20) {
        let v = r.read();
        reads += 1;
        if v.words.iter().any(|&w| w != v.counter) {
            torn += 1;
        }
        if v.counter < last {
            backwards += 1;
        }
        if v.counter != last {
            distinct += 1;
        }
        last = v.counter;
    }
    common::kill(&mut child);
    assert_eq!(torn, 0, "torn reads of {reads}");
    assert_eq!(backwards, 0, "values went backwards in {reads} reads");
    assert!(
        distinct >= 1_000,
        "only {distinct} distinct values in {reads} reads"
    );
    assert!(
        !r.info().writer().alive(),
        "the killed writer's lease is released"
    );
}

const TAKEOVER_C: &str = r#"#include "shm_ffi.h"
#include "stress.h"

#include <stdio.h>
#include <stdlib.h>

static int fail(const char *what, shm_ffi_status st) {
    printf("%s status=%d message=%s\n", what, (int)st, shm_ffi_last_error());
    return 1;
}

/* Takes over the segment argv[1], checks the previous writer's value, publishes counter + 1. */
int main(int argc, char **argv) {
    Stress *v = (Stress *)calloc(1, sizeof(Stress));
    shm_ffi_writer *w;
    shm_ffi_status st;
    uint64_t version, epoch;
    int32_t created;
    size_t k;
    if (argc != 2 || !v) return 2;
    st = shm_ffi_writer_open(argv[1], SHM_FFI_LAYOUT(STRESS), &w);
    if (st != SHM_FFI_OK) return fail("open", st);
    if ((st = shm_ffi_writer_info(w, &version, &epoch, &created)) != SHM_FFI_OK) return fail("info", st);
    if ((st = shm_ffi_writer_get(w, v, sizeof *v)) != SHM_FFI_OK) return fail("get", st);
    printf("epoch=%llu created=%d version=%llu counter=%llu\n", (unsigned long long)epoch, (int)created,
           (unsigned long long)version, (unsigned long long)v->counter);
    v->counter++;
    for (k = 0; k < sizeof v->words / sizeof v->words[0]; k++) v->words[k] = v->counter;
    if ((st = shm_ffi_writer_write(w, v, sizeof *v)) != SHM_FFI_OK) return fail("write", st);
    /* Wrong sizes and null pointers are refused, not trusted. */
    st = shm_ffi_writer_write(w, v, sizeof *v - 8);
    printf("short=%d %s\n", (int)st, shm_ffi_last_error());
    st = shm_ffi_writer_write(NULL, v, sizeof *v);
    printf("null=%d %s\n", (int)st, shm_ffi_last_error());
    shm_ffi_writer_close(w);
    /* Closing released the lease: a new writer takes over at once. */
    st = shm_ffi_writer_open(argv[1], SHM_FFI_LAYOUT(STRESS), &w);
    printf("reopen=%d\n", (int)st);
    shm_ffi_writer_close(w);
    return 0;
}
"#;

#[test]
fn c_writer_takes_over_a_rust_writers_segment() {
    let dir = TempDir::new("ffitake");
    let name = Name::new("ffitake");
    std::fs::write(
        dir.path().join("stress.h"),
        shm_core::export::c_header::<Stress>(),
    )
    .unwrap();
    std::fs::write(dir.path().join("takeover.c"), TAKEOVER_C).unwrap();
    let exe = build("cc", C_FLAGS, dir.path(), "takeover.c", "takeover", false);
    let mut value = Box::new(Stress {
        counter: 41,
        words: [41; WORDS - 1],
    });
    let mut w = Stress::create(&name, &value).unwrap();
    value.counter = 42;
    value.words.fill(42);
    w.write(&value);

    // While the Rust writer lives, the C writer is refused.
    let out = Command::new(&exe).arg(&*name).output().unwrap();
    let out = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.starts_with("open status=10 message=another writer (pid "),
        "{out}"
    );

    drop(w);
    let out = Command::new(&exe).arg(&*name).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = String::from_utf8_lossy(&out.stdout).to_string();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "epoch=2 created=0 version=1 counter=42");
    assert_eq!(
        lines[1],
        "short=17 the value is 4088 bytes but the payload is 4096 bytes"
    );
    assert_eq!(lines[2], "null=17 the writer handle is null");
    assert_eq!(lines[3], "reopen=0");

    let r = Stress::open(&name).unwrap();
    let v = r.read();
    assert_eq!(v.counter, 43);
    assert!(v.words.iter().all(|&w| w == 43));
    assert_eq!(r.info().writer().epoch(), 3);
    assert_eq!(r.version(), 2);
}
