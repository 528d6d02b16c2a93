/* waitset_epoll.c: an epoll loop that follows several shared-state segments and a broadcast
 * stream through one wait set descriptor.
 *
 *     waitset_epoll FINAL COUNT STREAM STATE...
 *
 * Each STATE segment holds a `Tick` whose writer publishes values up to FINAL; the STREAM
 * carries COUNT `Msg`s numbered from 1 (`check` is the number times 3). The program prints
 * "attached" once everything is attached, then runs until every state segment showed FINAL
 * and every message was received or reported lost (exactly: a lost run is one SHM_LAGGED
 * with its length), checking that values never go backwards and messages come in order. It
 * exits 0 then, 1 on a wrong value, 2 on bad arguments, 3 if nothing was ready for 60 seconds
 * while something was still missing.
 *
 * Built by shm-core/tests/c_waitset.rs against `tick.h` and `msg.h` generated with
 * `shm_core::export::c_header`:
 *
 *     cc -std=c11 -Wall -Wextra -Werror -pthread -I include -I . waitset_epoll.c
 */
#include "shm_state.h"
#include "msg.h"
#include "tick.h"

#include <sys/epoll.h>
#include <time.h>

#define MAX_STATES 64

int main(int argc, char **argv) {
    static shm_reader states[MAX_STATES];
    static uint64_t last[MAX_STATES];
    static int key_of[MAX_STATES];
    shm_stream stream;
    shm_waitset *ws;
    struct epoll_event ev;
    uint64_t final_value, count, expect = 1, received = 0, missed = 0, lagged = 0, wakeups = 0;
    int nstates, i, ep, stream_key, done_states = 0;
    time_t progress;
    if (argc < 5 || argc - 4 > MAX_STATES) return 2;
    setvbuf(stdout, NULL, _IONBF, 0);
    final_value = strtoull(argv[1], NULL, 10);
    count = strtoull(argv[2], NULL, 10);
    nstates = argc - 4;

    if (shm_stream_open(&stream, argv[3], SHM_LAYOUT(MSG), 1) != SHM_OK) {
        fprintf(stderr, "%s: %s\n", argv[3], stream.reader.message);
        return 1;
    }
    ws = shm_waitset_new();
    if (!ws) {
        perror("shm_waitset_new");
        return 1;
    }
    for (i = 0; i < nstates; i++) {
        if (shm_reader_open(&states[i], argv[4 + i], SHM_LAYOUT(TICK)) != SHM_OK) {
            fprintf(stderr, "%s: %s\n", argv[4 + i], states[i].message);
            return 1;
        }
        if ((key_of[i] = shm_waitset_attach(ws, &states[i])) < 0) {
            perror("shm_waitset_attach");
            return 1;
        }
    }
    if ((stream_key = shm_waitset_attach_stream(ws, &stream)) < 0) {
        perror("shm_waitset_attach_stream");
        return 1;
    }

    ep = epoll_create1(EPOLL_CLOEXEC);
    ev.events = EPOLLIN;
    ev.data.fd = shm_waitset_fd(ws);
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, shm_waitset_fd(ws), &ev) != 0) {
        perror("epoll");
        return 1;
    }
    printf("attached backend=%s\n", shm_waitset_backend(ws));
    progress = time(NULL);

    while (done_states < nstates || received + missed < count) {
        shm_waitset_event ready[16];
        int n, k;
        struct epoll_event got;
        if (epoll_wait(ep, &got, 1, 1000) != 1) n = 0;
        else n = shm_waitset_ready(ws, ready, 16);
        if (n == 0) {
            /* A backend may make the descriptor readable once a slice with nothing ready. */
            if (time(NULL) - progress >= 60) {
                fprintf(stderr, "stuck: %d of %d states final, %llu of %llu messages\n", done_states,
                        nstates, (unsigned long long)(received + missed), (unsigned long long)count);
                return 3;
            }
            continue;
        }
        progress = time(NULL);
        wakeups++;
        for (k = 0; k < n; k++) {
            if (ready[k].key == stream_key) {
                for (;;) {
                    Msg m;
                    uint64_t number;
                    shm_status st = shm_stream_try_recv(&stream, &m, &number);
                    if (st == SHM_EMPTY) break;
                    if (st == SHM_LAGGED) {
                        lagged++;
                        missed += shm_stream_missed(&stream);
                        expect += shm_stream_missed(&stream);
                        continue;
                    }
                    if (number != expect || m.number != number || m.check != 3 * number) {
                        fprintf(stderr, "message %llu (holding %llu, %llu) where %llu was due\n",
                                (unsigned long long)number, (unsigned long long)m.number,
                                (unsigned long long)m.check, (unsigned long long)expect);
                        return 1;
                    }
                    expect++;
                    received++;
                }
                continue;
            }
            for (i = 0; i < nstates && key_of[i] != ready[k].key; i++) {
            }
            if (i == nstates) {
                fprintf(stderr, "unknown key %d\n", ready[k].key);
                return 1;
            }
            if (ready[k].flags & SHM_WAITSET_CHANGED) {
                Tick t;
                if (shm_read(&states[i], &t) != SHM_OK) {
                    fprintf(stderr, "%s\n", states[i].message);
                    return 1;
                }
                if (t.value < last[i] || t.value > final_value) {
                    fprintf(stderr, "state %d went from %llu to %llu\n", i, (unsigned long long)last[i],
                            (unsigned long long)t.value);
                    return 1;
                }
                if (t.value == final_value && last[i] != final_value) done_states++;
                last[i] = t.value;
            }
        }
    }
    printf("ok states=%d final=%llu received=%llu missed=%llu lagged=%llu wakeups=%llu\n", nstates,
           (unsigned long long)final_value, (unsigned long long)received, (unsigned long long)missed,
           (unsigned long long)lagged, (unsigned long long)wakeups);
    for (i = 0; i < nstates; i++) {
        shm_waitset_detach(ws, key_of[i]);
        shm_reader_close(&states[i]);
    }
    shm_waitset_free(ws); /* detaches the stream */
    shm_stream_close(&stream);
    close(ep);
    return 0;
}
