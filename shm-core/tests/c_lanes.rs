//! A C program, built with the real `cc` from a generated header and `include/shm_state.h`,
//! reads a multi-producer stream that three live Rust producer processes send to: it finds the
//! lane count in the directory segment (kind 3, `lanes` at offset 256), opens every lane
//! (`NAME.lane-K`) as an ordinary broadcast stream, and receives from them in rotation,
//! checking that every message is whole, each producer's messages in order, and every loss
//! counted (received + lost == sent, per lane).

mod common;
mod lang;

use common::{env, role, spawn_role, Name, ENTRY};
use lang::{compile, TempDir, C_FLAGS};
use shm_core::stream::lanes::lane_name;
use shm_core::SharedState;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// A message: its producer, its number in that producer's sends, and a word derived from both.
#[derive(SharedState, Clone, Copy, Debug)]
#[repr(C)]
struct Tick {
    producer: u64,
    seq: u64,
    check: u64,
}

const LANES: usize = 3;
const PER_PRODUCER: u64 = 50_000;

/// Child-process entry point (see `common::ENTRY`).
#[test]
#[ignore = "child-process entry point: runs only when a test spawns it"]
fn child_process_entry_point() {
    if role().as_deref() == Some("producer") {
        let mut tx = Tick::join_stream(&env("SHM_NAME")).expect("join");
        let producer = tx.lane() as u64;
        for seq in 1..=PER_PRODUCER {
            tx.send(&Tick {
                producer,
                seq,
                check: producer.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ seq,
            });
            // A pause now and then lets the reader, one process among four on a machine with
            // fewer cores, receive most messages.
            if seq % 128 == 0 {
                std::thread::sleep(std::time::Duration::from_micros(100));
            }
        }
    }
}

const READER_C: &str = r#"#define _POSIX_C_SOURCE 200809L
#include "shm_state.h"
#include "tick.h"
#include <fcntl.h>
#include <unistd.h>

#define MAX_LANES 16

/* The lane count of the directory `name`: the header's `kind` (offset 96) must be 3 (lanes);
 * the directory line's `lanes` is the uint32 at offset 256. */
static int lane_count(const char *name) {
    char path[512];
    uint32_t kind = 0, lanes = 0;
    int fd;
    snprintf(path, sizeof path, "/dev/shm%s", name);
    fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    if (pread(fd, &kind, 4, 96) != 4 || pread(fd, &lanes, 4, 256) != 4) lanes = 0;
    close(fd);
    return kind == 3 && lanes > 0 && lanes <= MAX_LANES ? (int)lanes : -1;
}

int main(int argc, char **argv) {
    shm_stream s[MAX_LANES];
    uint64_t received[MAX_LANES] = {0}, missed[MAX_LANES] = {0}, expect[MAX_LANES];
    uint64_t last_seq[MAX_LANES] = {0}, total, done = 0, bad = 0, disorder = 0, n;
    int lanes, k, next = 0;
    int64_t idle_since = 0;
    Tick m;
    char lane[512];
    if (argc != 3) return 2;
    setvbuf(stdout, NULL, _IONBF, 0);
    total = strtoull(argv[2], NULL, 10);
    lanes = lane_count(argv[1]);
    if (lanes < 0) {
        printf("error not a lanes directory\n");
        return 1;
    }
    for (k = 0; k < lanes; k++) {
        snprintf(lane, sizeof lane, "%s.lane-%d", argv[1], k);
        if (shm_stream_open(&s[k], lane, SHM_LAYOUT(TICK), 1) != SHM_OK) {
            printf("error lane %d: %s\n", k, s[k].reader.message);
            return 1;
        }
        expect[k] = shm_stream_position(&s[k]);
    }
    printf("ready lanes=%d\n", lanes);
    while (done < total) {
        int got = 0;
        /* One message (or gap) from the first lane that has one, starting after the last. */
        for (k = 0; k < lanes && !got; k++) {
            int l = (next + k) % lanes;
            shm_status st = shm_stream_try_recv(&s[l], &m, &n);
            if (st == SHM_OK) {
                if (n != expect[l] || m.seq <= last_seq[l]) disorder++;
                if (m.check != ((m.producer * UINT64_C(0x9e3779b97f4a7c15)) ^ m.seq)) bad++;
                last_seq[l] = m.seq;
                expect[l] = n + 1;
                received[l]++;
                done++;
            } else if (st == SHM_LAGGED) {
                missed[l] += shm_stream_missed(&s[l]);
                expect[l] += shm_stream_missed(&s[l]);
                done += shm_stream_missed(&s[l]);
            } else if (st == SHM_EMPTY) {
                continue;
            } else {
                printf("error lane %d status=%d %s\n", l, (int)st, s[l].reader.message);
                return 1;
            }
            got = 1;
            next = (l + 1) % lanes;
            idle_since = 0;
        }
        if (!got) {
            if (!idle_since) idle_since = shm__now_ns();
            if (shm__now_ns() - idle_since > INT64_C(60000000000)) {
                printf("error nothing received for 60 s\n");
                return 1;
            }
            shm__sleep_ns(20000);
        }
    }
    for (k = 0; k < lanes; k++) {
        printf("lane=%d received=%llu missed=%llu sent=%llu\n", k, (unsigned long long)received[k],
               (unsigned long long)missed[k], (unsigned long long)shm_stream_sent(&s[k]));
        shm_stream_close(&s[k]);
    }
    printf("bad=%llu disorder=%llu\n", (unsigned long long)bad, (unsigned long long)disorder);
    return 0;
}
"#;

#[test]
fn c_reads_a_multi_producer_stream_lane_by_lane() {
    if role().is_some() {
        return;
    }
    let dir = TempDir::new("c-lanes");
    std::fs::write(
        dir.path().join("tick.h"),
        shm_core::export::c_header::<Tick>(),
    )
    .unwrap();
    std::fs::write(dir.path().join("reader.c"), READER_C).unwrap();
    let exe = compile("cc", C_FLAGS, dir.path(), "reader.c", "reader", &[]);

    let name = Name::new("c-lanes");
    let _lanes: Vec<Name> = (0..LANES).map(|k| Name(lane_name(&name, k))).collect();
    drop(Tick::create_lanes(&name, LANES, 1024).unwrap());
    let total = PER_PRODUCER * LANES as u64;
    let mut reader = Command::new(&exe)
        .args([&*name, &total.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(reader.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert_eq!(first, format!("ready lanes={LANES}"));
    let producers: Vec<_> = (0..LANES)
        .map(|_| spawn_role(ENTRY, "producer", &[("SHM_NAME", name.to_string())]))
        .collect();
    for mut p in producers {
        assert!(p.wait().unwrap().success());
    }
    let report: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(reader.wait().unwrap().success(), "{report:?}");
    assert_eq!(report.last().unwrap(), "bad=0 disorder=0", "{report:?}");
    let (mut received, mut missed) = (0, 0);
    for (k, line) in report[..LANES].iter().enumerate() {
        let fields: Vec<u64> = line
            .split(' ')
            .map(|f| f.split_once('=').unwrap().1.parse().unwrap())
            .collect();
        assert_eq!(fields[0], k as u64);
        assert_eq!(
            fields[1] + fields[2],
            PER_PRODUCER,
            "lane {k}: received + lost == sent: {line}"
        );
        assert_eq!(fields[3], PER_PRODUCER);
        received += fields[1];
        missed += fields[2];
    }
    assert!(received > 0);
    eprintln!("the C reader received {received} and lost {missed} of {total}");
}
