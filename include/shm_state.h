/* shm_state.h: a header-only C11 (and C++17) reader of shm-state segments.
 *
 * It implements the reader side of docs/segment-format.md (format version 2): open and validate
 * a segment, check it holds the type a generated header describes (naming the first differing
 * field when it does not), read consistent snapshots through the multi-slot seqlock, wait for
 * updates on the shared futex, and probe whether the writer is alive. It also receives the
 * messages of a broadcast stream (`shm_stream_open`, section "Streams and queues") and observes
 * a queue without taking its messages (`shm_queue_observe`). Include it in one or many
 * translation units; it links nothing but libc. Linux only (futex, OFD locks).
 *
 *     #include "shm_state.h"
 *     #include "telemetry.h"      // from shm_core::export::c_header::<Telemetry>()
 *
 *     shm_reader r;
 *     if (shm_reader_open(&r, "/demo-telemetry", SHM_LAYOUT(TELEMETRY)) != SHM_OK) {
 *         fprintf(stderr, "%s\n", r.message);   // e.g. "layout mismatch: field `pos` is ..."
 *         return 1;
 *     }
 *     Telemetry t;
 *     shm_read(&r, &t);
 *     shm_reader_close(&r);
 *
 * Every access to shared memory is an atomic load (`__atomic_load_n`, the GCC/Clang builtins
 * that C11 `atomic_load_explicit` compiles to, usable from C and C++ alike) with the orderings
 * and fences the format prescribes: payload words are copied with relaxed 8-byte loads into a
 * buffer of the handle, never with memcpy from shared memory, and only a copy the sequence word
 * validates is copied into the caller's value.
 *
 * A handle is not safe to use from two threads at once (its copy buffer and message are its
 * own); open one handle per thread. */
#ifndef SHM_STATE_H
#define SHM_STATE_H

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* The membarrier system call, for kernel headers that predate it (x86-64 and aarch64 numbers). */
#ifndef SYS_membarrier
#if defined(__NR_membarrier)
#define SYS_membarrier __NR_membarrier
#elif defined(__x86_64__)
#define SYS_membarrier 324
#elif defined(__aarch64__)
#define SYS_membarrier 283
#else
#error "shm_state.h needs the membarrier system call number (Linux 4.3 headers or later)"
#endif
#endif
#define SHM__MEMBARRIER_CMD_GLOBAL_EXPEDITED (1 << 1)

/* Under strict -std=c11 glibc hides these; their values are the Linux ABI's. */
#ifndef F_OFD_GETLK
#define F_OFD_GETLK 36
#endif
#ifndef O_CLOEXEC
#define O_CLOEXEC 02000000
#endif
#if !defined(__cplusplus) && !defined(__USE_MISC)
extern long syscall(long number, ...);
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The handle and the decoder are this process's own memory, not a shared layout: padding in
 * them is harmless, and programs built with -Wpadded should not hear about it. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpadded"

/* ---------------------------------------------------------------- format constants */

#define SHM_FORMAT_VERSION 2u
/* The version of the layout hash and descriptor encoding, the first bytes the hash covers; it
 * stays 1 while the segment format moves on (docs/segment-format.md, "The layout hash"). */
#define SHM_LAYOUT_ENCODING_VERSION 1u
#define SHM_MAGIC UINT64_C(0x45544154534d4853) /* the bytes "SHMSTATE" read as a little-endian u64 */
#define SHM_HEADER_SIZE 256u
#define SHM_CACHE_LINE 64u
#define SHM_MAX_SLOTS 1024u
#define SHM_MAX_DESCRIPTOR (1u << 20)
#define SHM_MAX_DEPTH 32u
#define SHM_MAX_NODES 65536u
#define SHM_MAX_NAME 1024u
#define SHM_STATE_READY 1u
#define SHM_DEFAULT_READY_WAIT_NS INT64_C(1000000000)

/* Header field offsets. */
#define SHM_OFF_MAGIC 0
#define SHM_OFF_FORMAT_VERSION 8
#define SHM_OFF_STATE 12
#define SHM_OFF_LAYOUT_HASH 16
#define SHM_OFF_PAYLOAD_SIZE 24
#define SHM_OFF_PAYLOAD_ALIGN 32
#define SHM_OFF_SLOT_COUNT 36
#define SHM_OFF_SLOTS_OFFSET 40
#define SHM_OFF_SLOT_STRIDE 48
#define SHM_OFF_DESCRIPTOR_OFFSET 56
#define SHM_OFF_DESCRIPTOR_LEN 64
#define SHM_OFF_TOTAL_SIZE 72
#define SHM_OFF_WRITER_PID 80
#define SHM_OFF_WRITER_EPOCH 88
#define SHM_OFF_KIND 96
#define SHM_OFF_PUBLISHED 128
#define SHM_OFF_INLINE 136
#define SHM_OFF_FUTEX 192
#define SHM_OFF_WAITERS 196

/* What a segment holds (the header's `kind`). */
#define SHM_KIND_STATE 0u
#define SHM_KIND_STREAM 1u /* broadcast stream */
#define SHM_KIND_QUEUE 2u

/* Streams and queues: the control line between the header and slot 0, and their capacity. */
#define SHM_CONTROL_SIZE 64u
#define SHM_OFF_CONSUMED 256 /* queues: the number of the last message the consumer took */
#define SHM_MAX_STREAM_CAPACITY (1u << 24)

/* ---------------------------------------------------------------- public types */

/* What went wrong; the handle's `message` says it in words. */
typedef enum shm_status {
    SHM_OK = 0,
    SHM_ERR_NOT_FOUND,        /* no segment of that name */
    SHM_ERR_PERMISSION_DENIED,
    SHM_ERR_INVALID_NAME,
    SHM_ERR_NOT_A_SEGMENT,    /* bad magic, or not a regular file */
    SHM_ERR_FORMAT_VERSION,
    SHM_ERR_TRUNCATED,        /* smaller than its header says */
    SHM_ERR_CORRUPT,          /* inconsistent header */
    SHM_ERR_LAYOUT_MISMATCH,  /* another type; the message names the first differing field */
    SHM_ERR_NOT_READY,        /* its creator did not finish within the wait */
    SHM_ERR_TIMEOUT,
    SHM_ERR_WRITER_DIED,      /* no consistent value and no live writer */
    SHM_ERR_IO,               /* an unexpected system error */
    SHM_ERR_WRONG_KIND,       /* a stream or queue opened as state, or the other way round */
    SHM_EMPTY,                /* streams: no message yet (not an error) */
    SHM_LAGGED                /* streams: messages were lost, `shm_stream_missed` says how many */
} shm_status;

/* How the layout a segment stores relates to this program's ("Compatibility" in
 * docs/segment-format.md): two versions of one `#[shm(appendable)]` type may differ. */
typedef enum shm_compat {
    SHM_COMPAT_EXACT = 0,     /* the same bytes (the same hash, or only an aliased rename) */
    SHM_COMPAT_SEGMENT_NEWER, /* the segment is a later version: reads copy this program's prefix */
    SHM_COMPAT_SEGMENT_OLDER  /* the segment is an earlier version: the fields past it read as zero */
} shm_compat;

/* The type a program expects, from a generated header: `SHM_LAYOUT(TELEMETRY)`. */
typedef struct shm_layout {
    uint64_t hash;
    uint64_t size;
    uint64_t align;
    const uint8_t *descriptor;
    size_t descriptor_len;
} shm_layout;

static inline shm_layout shm_layout_make(uint64_t hash, uint64_t size, uint64_t align,
                                         const uint8_t *descriptor, size_t descriptor_len) {
    shm_layout l;
    l.hash = hash;
    l.size = size;
    l.align = align;
    l.descriptor = descriptor;
    l.descriptor_len = descriptor_len;
    return l;
}

/* The expected layout of the type whose generated macros start with PREFIX. */
#define SHM_LAYOUT(PREFIX)                                                                   \
    shm_layout_make(PREFIX##_LAYOUT_HASH, PREFIX##_SIZE, PREFIX##_ALIGN, PREFIX##_DESCRIPTOR, \
                    PREFIX##_DESCRIPTOR_LEN)

/* An open segment. Fields are read-only for users; the geometry is this process's validated
 * copy, never re-read from the header. */
typedef struct shm_reader {
    int fd;
    int writable; /* mapped read-write: may register as a futex waiter */
    uint32_t kind; /* SHM_KIND_STATE, SHM_KIND_STREAM or SHM_KIND_QUEUE */
    unsigned char *base;
    size_t mapped;
    uint64_t payload_size, payload_words, slot_count, slots_offset, slot_stride;
    uint64_t descriptor_offset, descriptor_len, total_size;
    uint64_t *buffer; /* payload_words words: the copy a read validates */
    shm_compat compat; /* how the stored layout relates to the program's */
    uint64_t value_size, copy_size; /* the program's value size; the bytes a read copies into it */
    shm_status status;
    char message[1024];
} shm_reader;

/* ---------------------------------------------------------------- atomics and time */

static inline uint64_t shm__load64(const unsigned char *p) {
    return __atomic_load_n((const uint64_t *)(const void *)p, __ATOMIC_RELAXED);
}
static inline uint32_t shm__load32(const unsigned char *p) {
    return __atomic_load_n((const uint32_t *)(const void *)p, __ATOMIC_RELAXED);
}
static inline uint8_t shm__load8(const unsigned char *p) {
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}
/* An acquire load as a relaxed load and an acquire fence: also sound on read-only mappings. */
static inline uint64_t shm__load64_acquire(const unsigned char *p) {
    uint64_t v = shm__load64(p);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    return v;
}

static inline int64_t shm__now_ns(void) {
    struct timespec ts = {0, 0};
    syscall(SYS_clock_gettime, 1 /* CLOCK_MONOTONIC */, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void shm__sleep_ns(int64_t ns) {
    struct timespec ts;
    ts.tv_sec = (time_t)(ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    syscall(SYS_clock_nanosleep, 1 /* CLOCK_MONOTONIC */, 0, &ts, (struct timespec *)NULL);
}

/* A deadline `timeout_ns` from now; negative timeouts mean none (INT64_MAX). */
static inline int64_t shm__deadline(int64_t timeout_ns) {
    int64_t now = shm__now_ns();
    if (timeout_ns < 0 || timeout_ns > INT64_MAX - now) return INT64_MAX;
    return now + timeout_ns;
}

/* ---------------------------------------------------------------- messages */

typedef struct shm__str {
    char *p;
    size_t cap, len;
} shm__str;

static inline void shm__put(shm__str *s, const char *t, size_t n) {
    while (n-- && s->len + 1 < s->cap) s->p[s->len++] = *t++;
    if (s->cap) s->p[s->len] = 0;
}
static inline void shm__puts(shm__str *s, const char *t) { shm__put(s, t, strlen(t)); }
static inline void shm__putu(shm__str *s, uint64_t v) {
    char b[24];
    snprintf(b, sizeof b, "%llu", (unsigned long long)v);
    shm__puts(s, b);
}

static inline shm_status shm__fail(shm_reader *r, shm_status st, const char *msg) {
    r->status = st;
    snprintf(r->message, sizeof r->message, "%s", msg);
    return st;
}

/* ---------------------------------------------------------------- descriptor decoding */

typedef struct shm__dnode {
    uint8_t kind, prim, has_stable; /* kind 7: an appendable struct, otherwise as kind 3 */
    uint64_t size, align, len; /* len: array length or helper capacity */
    uint32_t child;            /* element node (array, FixedVec) */
    const uint8_t *name, *stable;
    uint32_t name_len, stable_len, nfields, first_field;
} shm__dnode;

typedef struct shm__dfield {
    const uint8_t *name, *alias; /* alias: kind-7 fields with marks & 2 */
    uint32_t name_len, alias_len, node;
    uint64_t offset;
    uint8_t marks; /* kind-7 fields: 1 deprecated, 2 has an alias */
} shm__dfield;

typedef struct shm__desc {
    const uint8_t *bytes;
    size_t len, pos;
    shm__dnode *nodes;
    shm__dfield *fields;
    uint32_t nnodes, cap_nodes, nfields, cap_fields;
    const char *error;
} shm__desc;

static inline int shm__take(shm__desc *d, size_t n, const uint8_t **out) {
    if (n > d->len - d->pos) {
        d->error = "unexpected end of data";
        return 0;
    }
    *out = d->bytes + d->pos;
    d->pos += n;
    return 1;
}
static inline int shm__u8(shm__desc *d, uint8_t *v) {
    const uint8_t *p;
    if (!shm__take(d, 1, &p)) return 0;
    *v = p[0];
    return 1;
}
static inline int shm__u32(shm__desc *d, uint32_t *v) {
    const uint8_t *p;
    if (!shm__take(d, 4, &p)) return 0;
    *v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    return 1;
}
static inline int shm__u64(shm__desc *d, uint64_t *v) {
    const uint8_t *p;
    int i;
    if (!shm__take(d, 8, &p)) return 0;
    *v = 0;
    for (i = 7; i >= 0; i--) *v = *v << 8 | p[i];
    return 1;
}
static inline int shm__utf8(const uint8_t *s, uint32_t n) {
    uint32_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        uint32_t k, cp;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xc2 && c <= 0xdf) { k = 1; cp = c & 0x1fu; }
        else if (c >= 0xe0 && c <= 0xef) { k = 2; cp = c & 0x0fu; }
        else if (c >= 0xf0 && c <= 0xf4) { k = 3; cp = c & 0x07u; }
        else return 0;
        if (n - i <= k) return 0;
        for (uint32_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return 0;
            cp = cp << 6 | (s[i + j] & 0x3fu);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += k + 1;
    }
    return 1;
}
static inline int shm__str_field(shm__desc *d, const uint8_t **s, uint32_t *n) {
    if (!shm__u32(d, n)) return 0;
    if (*n > SHM_MAX_NAME) { d->error = "name too long"; return 0; }
    if (!shm__take(d, *n, s)) return 0;
    if (!shm__utf8(*s, *n)) { d->error = "name is not utf-8"; return 0; }
    return 1;
}

/* Decodes one node at `depth`; returns its index, or UINT32_MAX with d->error set. */
static inline uint32_t shm__node(shm__desc *d, uint32_t depth) {
    uint32_t idx, count, i;
    shm__dnode n;
    memset(&n, 0, sizeof n);
    if (depth > SHM_MAX_DEPTH) { d->error = "nested too deeply"; return UINT32_MAX; }
    if (d->nnodes >= SHM_MAX_NODES) {
        d->error = "too many types";
        return UINT32_MAX;
    }
    /* Every node takes at least 17 bytes, so a node past the capacity has no data left. */
    if (d->nnodes >= d->cap_nodes) {
        d->error = "unexpected end of data";
        return UINT32_MAX;
    }
    idx = d->nnodes++;
    if (!shm__u8(d, &n.kind) || !shm__u64(d, &n.size) || !shm__u64(d, &n.align)) return UINT32_MAX;
    switch (n.kind) {
    case 1:
        if (!shm__u8(d, &n.prim)) return UINT32_MAX;
        if (n.prim < 1 || n.prim > 12) { d->error = "unknown primitive"; return UINT32_MAX; }
        break;
    case 2:
    case 5:
        if (!shm__u64(d, &n.len)) return UINT32_MAX;
        if ((n.child = shm__node(d, depth + 1)) == UINT32_MAX) return UINT32_MAX;
        break;
    case 3:
    case 7:
        if (!shm__str_field(d, &n.name, &n.name_len) || !shm__u8(d, &n.has_stable)) return UINT32_MAX;
        if (n.has_stable > 1) { d->error = "bad stable-name flag"; return UINT32_MAX; }
        if (n.has_stable && !shm__str_field(d, &n.stable, &n.stable_len)) return UINT32_MAX;
        if (!shm__u32(d, &count)) return UINT32_MAX;
        /* Each field takes at least 4 + 8 + 17 bytes (and a marks byte in kind 7). */
        if (count > (d->len - d->pos) / (n.kind == 7 ? 30 : 29) || count > d->cap_fields - d->nfields) {
            d->error = "field count exceeds the data";
            return UINT32_MAX;
        }
        n.nfields = count;
        n.first_field = d->nfields;
        d->nfields += count;
        for (i = 0; i < count; i++) {
            shm__dfield *f = &d->fields[n.first_field + i];
            if (!shm__str_field(d, &f->name, &f->name_len) || !shm__u64(d, &f->offset)) return UINT32_MAX;
            if (n.kind == 7) {
                if (!shm__u8(d, &f->marks)) return UINT32_MAX;
                if (f->marks & ~3u) { d->error = "bad field marks"; return UINT32_MAX; }
                if ((f->marks & 2) && !shm__str_field(d, &f->alias, &f->alias_len)) return UINT32_MAX;
            }
            if ((f->node = shm__node(d, depth + 1)) == UINT32_MAX) return UINT32_MAX;
        }
        break;
    case 4:
        if (!shm__u64(d, &n.len)) return UINT32_MAX;
        break;
    case 6:
        break;
    default:
        d->error = "unknown kind tag";
        return UINT32_MAX;
    }
    d->nodes[idx] = n;
    return idx;
}

/* Decodes `len` bytes; the whole input must be consumed. Returns 1, or 0 with d->error set. */
static inline int shm__decode(shm__desc *d, const uint8_t *bytes, size_t len) {
    memset(d, 0, sizeof *d);
    d->bytes = bytes;
    d->len = len;
    d->cap_nodes = (uint32_t)(len / 17 + 1);
    d->cap_fields = (uint32_t)(len / 29 + 1);
    d->nodes = (shm__dnode *)calloc(d->cap_nodes, sizeof(shm__dnode));
    d->fields = (shm__dfield *)calloc(d->cap_fields, sizeof(shm__dfield));
    if (!d->nodes || !d->fields) { d->error = "out of memory"; return 0; }
    if (shm__node(d, 0) == UINT32_MAX) return 0;
    if (d->pos != len) { d->error = "trailing bytes after the descriptor"; return 0; }
    return 1;
}

static inline void shm__desc_free(shm__desc *d) {
    free(d->nodes);
    free(d->fields);
}

/* ---------------------------------------------------------------- descriptor comparison */

#define SHM__FNV(h, b) ((h) = ((h) ^ (uint8_t)(b)) * UINT64_C(0x100000001b3))

static inline uint64_t shm__fnv64(uint64_t h, uint64_t v) {
    int i;
    for (i = 0; i < 8; i++) SHM__FNV(h, v >> (8 * i));
    return h;
}
static inline uint64_t shm__fnvs(uint64_t h, const uint8_t *s, uint32_t n) {
    uint32_t i;
    h = shm__fnv64(h, n);
    for (i = 0; i < n; i++) SHM__FNV(h, s[i]);
    return h;
}
/* The layout hash's stream over one node (docs/segment-format.md): equal exactly when two
 * nodes describe the same bytes. */
static inline uint64_t shm__shape(const shm__desc *d, uint32_t i, uint64_t h) {
    const shm__dnode *n = &d->nodes[i];
    uint32_t k;
    SHM__FNV(h, n->kind);
    h = shm__fnv64(h, n->size);
    h = shm__fnv64(h, n->align);
    switch (n->kind) {
    case 1: SHM__FNV(h, n->prim); break;
    case 2:
    case 5: h = shm__shape(d, n->child, shm__fnv64(h, n->len)); break;
    case 3:
    case 7: /* markers and aliases do not enter the hash */
        SHM__FNV(h, n->has_stable);
        if (n->has_stable) h = shm__fnvs(h, n->stable, n->stable_len);
        h = shm__fnv64(h, n->nfields);
        for (k = 0; k < n->nfields; k++) {
            const shm__dfield *f = &d->fields[n->first_field + k];
            h = shm__fnvs(h, f->name, f->name_len);
            h = shm__fnv64(h, f->offset);
            h = shm__shape(d, f->node, h);
        }
        break;
    case 4: h = shm__fnv64(h, n->len); break;
    default: break;
    }
    return h;
}
static inline int shm__same(const shm__desc *a, uint32_t i, const shm__desc *b, uint32_t j) {
    uint64_t basis = UINT64_C(0xcbf29ce484222325);
    return shm__shape(a, i, basis) == shm__shape(b, j, basis);
}

/* The type as Rust spells it: `u32`, `[f64; 3]`, `Pose`, `FixedStr<16>`. */
static inline void shm__type(shm__str *s, const shm__desc *d, uint32_t i) {
    static const char *const prims[] = {"?",   "u8",  "u16", "u32", "u64", "u128", "i8",
                                        "i16", "i32", "i64", "i128", "f32", "f64"};
    const shm__dnode *n = &d->nodes[i];
    switch (n->kind) {
    case 1: shm__puts(s, prims[n->prim]); break;
    case 2: shm__puts(s, "["); shm__type(s, d, n->child); shm__puts(s, "; "); shm__putu(s, n->len); shm__puts(s, "]"); break;
    case 3:
    case 7:
        if (n->has_stable) shm__put(s, (const char *)n->stable, n->stable_len);
        else shm__put(s, (const char *)n->name, n->name_len);
        break;
    case 4: shm__puts(s, "FixedStr<"); shm__putu(s, n->len); shm__puts(s, ">"); break;
    case 5: shm__puts(s, "FixedVec<"); shm__type(s, d, n->child); shm__puts(s, ", "); shm__putu(s, n->len); shm__puts(s, ">"); break;
    default: shm__puts(s, "ShmBool"); break;
    }
}

static inline int shm__holds_struct(const shm__desc *d, uint32_t i) {
    const shm__dnode *n = &d->nodes[i];
    if (n->kind == 3 || n->kind == 7) return 1;
    if (n->kind == 2 || n->kind == 5) return shm__holds_struct(d, n->child);
    return 0;
}

static inline uint64_t shm__sat_add(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

static inline void shm__what(shm__str *s, const char *path) {
    if (!*path) { shm__puts(s, "the type"); return; }
    shm__puts(s, path[0] == '[' ? "element `" : "field `");
    shm__puts(s, path);
    shm__puts(s, "`");
}
static inline void shm__join(char *out, size_t cap, const char *path, const uint8_t *name, uint32_t n) {
    snprintf(out, cap, "%s%s%.*s", path, *path ? "." : "", (int)n, (const char *)name);
}
static inline void shm__shown(shm__str *s, const shm__desc *d, uint32_t i, int sized) {
    shm__puts(s, "`");
    shm__type(s, d, i);
    shm__puts(s, "`");
    if (sized) {
        shm__puts(s, " (size "); shm__putu(s, d->nodes[i].size);
        shm__puts(s, ", align "); shm__putu(s, d->nodes[i].align); shm__puts(s, ")");
    }
}
static inline void shm__mismatch(shm__str *s, const char *path, uint64_t sat, uint64_t pat,
                                 const shm__desc *sd, uint32_t si, const shm__desc *pd, uint32_t pi) {
    char a[256], b[256];
    shm__str ta = {a, sizeof a, 0}, tb = {b, sizeof b, 0};
    int sized;
    a[0] = b[0] = 0;
    shm__type(&ta, sd, si);
    shm__type(&tb, pd, pi);
    sized = !shm__same(sd, si, pd, pi) && strcmp(a, b) == 0;
    if (!*path) {
        shm__puts(s, "the type is "); shm__shown(s, sd, si, sized);
        shm__puts(s, " in the segment but "); shm__shown(s, pd, pi, sized);
        shm__puts(s, " in this program");
        return;
    }
    shm__what(s, path);
    shm__puts(s, " is "); shm__shown(s, sd, si, sized);
    shm__puts(s, " at offset "); shm__putu(s, sat);
    shm__puts(s, " in the segment but "); shm__shown(s, pd, pi, sized);
    shm__puts(s, " at offset "); shm__putu(s, pat);
    shm__puts(s, " in this program");
}
static inline void shm__shm_name(shm__str *s, const shm__dnode *n) {
    if (!n->has_stable) { shm__puts(s, "no `#[shm(name)]`"); return; }
    shm__puts(s, "`#[shm(name = \"");
    shm__put(s, (const char *)n->stable, n->stable_len);
    shm__puts(s, "\")]`");
}

/* Where the segment's node `si` (at offset `sat` of its type) first differs from this program's
 * node `pi`; as shm_core's `first_difference`. The two must differ. */
static inline void shm__diff(shm__str *s, const char *path, uint64_t sat, uint64_t pat,
                             const shm__desc *sd, uint32_t si, const shm__desc *pd, uint32_t pi) {
    const shm__dnode *sn = &sd->nodes[si], *pn = &pd->nodes[pi];
    char sub[512];
    if ((sn->kind == 3 || sn->kind == 7) && (pn->kind == 3 || pn->kind == 7)) {
        uint32_t k, common = sn->nfields < pn->nfields ? sn->nfields : pn->nfields;
        for (k = 0; k < common; k++) {
            const shm__dfield *sf = &sd->fields[sn->first_field + k];
            const shm__dfield *pf = &pd->fields[pn->first_field + k];
            uint64_t s_at = shm__sat_add(sat, sf->offset), p_at = shm__sat_add(pat, pf->offset);
            if (sf->name_len != pf->name_len || memcmp(sf->name, pf->name, sf->name_len) != 0) {
                shm__puts(s, "the segment has field `");
                shm__join(sub, sizeof sub, path, sf->name, sf->name_len);
                shm__puts(s, sub); shm__puts(s, ": "); shm__type(s, sd, sf->node);
                shm__puts(s, "` at offset "); shm__putu(s, s_at);
                shm__puts(s, " where this program has `");
                shm__join(sub, sizeof sub, path, pf->name, pf->name_len);
                shm__puts(s, sub); shm__puts(s, ": "); shm__type(s, pd, pf->node);
                shm__puts(s, "` at offset "); shm__putu(s, p_at);
                return;
            }
            shm__join(sub, sizeof sub, path, sf->name, sf->name_len);
            if (sf->offset != pf->offset) { shm__mismatch(s, sub, s_at, p_at, sd, sf->node, pd, pf->node); return; }
            if (!shm__same(sd, sf->node, pd, pf->node)) { shm__diff(s, sub, s_at, p_at, sd, sf->node, pd, pf->node); return; }
        }
        if (sn->nfields != pn->nfields) {
            const shm__desc *xd = sn->nfields > pn->nfields ? sd : pd;
            const shm__dnode *xn = sn->nfields > pn->nfields ? sn : pn;
            const shm__dfield *x = &xd->fields[xn->first_field + common];
            shm__what(s, path);
            shm__puts(s, " has "); shm__putu(s, sn->nfields);
            shm__puts(s, " fields in the segment but "); shm__putu(s, pn->nfields);
            shm__puts(s, " in this program; the first extra one is `");
            shm__join(sub, sizeof sub, path, x->name, x->name_len);
            shm__puts(s, sub); shm__puts(s, ": "); shm__type(s, xd, x->node);
            shm__puts(s, "` at offset ");
            shm__putu(s, shm__sat_add(xd == sd ? sat : pat, x->offset));
            return;
        }
        if (sn->has_stable != pn->has_stable || sn->stable_len != pn->stable_len ||
            (sn->has_stable && memcmp(sn->stable, pn->stable, sn->stable_len) != 0)) {
            shm__what(s, path);
            shm__puts(s, " has "); shm__shm_name(s, sn);
            shm__puts(s, " in the segment but "); shm__shm_name(s, pn);
            shm__puts(s, " in this program");
            return;
        }
    } else if (((sn->kind == 2 && pn->kind == 2) || (sn->kind == 5 && pn->kind == 5)) &&
               sn->len == pn->len && shm__holds_struct(sd, sn->child) &&
               shm__holds_struct(pd, pn->child) && !shm__same(sd, sn->child, pd, pn->child)) {
        /* A FixedVec's elements start after its 8-byte length. */
        uint64_t skip = sn->kind == 5 ? 8 : 0;
        snprintf(sub, sizeof sub, "%s[0]", path);
        shm__diff(s, sub, shm__sat_add(sat, skip), shm__sat_add(pat, skip), sd, sn->child, pd, pn->child);
        return;
    }
    shm__mismatch(s, path, sat, pat, sd, si, pd, pi);
}

/* ---------------------------------------------------------------- compatibility */

/* The rule of "Compatibility" in docs/segment-format.md (shm_core's `LayoutBuf::compatibility`
 * is the reference, and the messages are its messages): whether two different versions of an
 * `#[shm(appendable)]` type may share a segment. */

static inline int shm__name_eq(const uint8_t *a, uint32_t an, const uint8_t *b, uint32_t bn) {
    return an == bn && memcmp(a, b, an) == 0;
}
/* The segment's field `s` and this program's `p` are the same field: the same name, or one's
 * name is the other's alias. */
static inline int shm__same_field(const shm__dfield *s, const shm__dfield *p) {
    return shm__name_eq(s->name, s->name_len, p->name, p->name_len) ||
           ((p->marks & 2) && shm__name_eq(p->alias, p->alias_len, s->name, s->name_len)) ||
           ((s->marks & 2) && shm__name_eq(s->alias, s->alias_len, p->name, p->name_len));
}
/* Node `i` of `a` is the shorter version: the smaller size, or for equal sizes fewer fields. */
static inline int shm__shorter(const shm__desc *a, uint32_t i, const shm__desc *b, uint32_t j) {
    const shm__dnode *x = &a->nodes[i], *y = &b->nodes[j];
    return x->size < y->size || (x->size == y->size && x->nfields <= y->nfields);
}
/* Refuses (0, with the message) two appendable structs with different stable names. */
static inline int shm__same_stable(shm__str *s, const char *path, const shm__dnode *sn, const shm__dnode *pn) {
    if (sn->has_stable == pn->has_stable &&
        (!sn->has_stable || shm__name_eq(sn->stable, sn->stable_len, pn->stable, pn->stable_len)))
        return 1;
    shm__what(s, path);
    shm__puts(s, " has "); shm__shm_name(s, sn);
    shm__puts(s, " in the segment but "); shm__shm_name(s, pn);
    shm__puts(s, " in this program; a changed stable name makes another type");
    return 0;
}
static inline void shm__moved(shm__str *s, const char *path, uint64_t sat, uint64_t pat) {
    shm__puts(s, "field `"); shm__puts(s, path);
    shm__puts(s, "` is at offset "); shm__putu(s, sat);
    shm__puts(s, " in the segment but at offset "); shm__putu(s, pat);
    shm__puts(s, " in this program; appendable types may only add fields at the end");
}
/* `field `path.name: T`` */
static inline void shm__field_shown(shm__str *s, const char *path, const shm__desc *d, const shm__dfield *f) {
    char sub[512];
    shm__join(sub, sizeof sub, path, f->name, f->name_len);
    shm__puts(s, "`"); shm__puts(s, sub); shm__puts(s, ": "); shm__type(s, d, f->node); shm__puts(s, "`");
}

typedef struct shm__side {
    int seg_short;  /* the segment's layout is the shorter version */
    uint64_t limit; /* the shorter version's size: where the longer one's added fields may start */
} shm__side;

/* Field `k` has different names on the two sides: an inserted, removed, reordered or renamed
 * field. */
static inline void shm__misnamed(const shm__side *side, shm__str *s, const char *path, uint64_t at,
                                 const shm__desc *sd, const shm__dnode *sn, const shm__desc *pd,
                                 const shm__dnode *pn, uint32_t k) {
    const shm__dfield *sf = &sd->fields[sn->first_field + k], *pf = &pd->fields[pn->first_field + k];
    const shm__dfield *in_prog = NULL, *in_seg = NULL;
    char sub[512];
    uint32_t j;
    for (j = 0; j < pn->nfields && !in_prog; j++)
        if (shm__same_field(sf, &pd->fields[pn->first_field + j])) in_prog = &pd->fields[pn->first_field + j];
    for (j = 0; j < sn->nfields && !in_seg; j++)
        if (shm__same_field(&sd->fields[sn->first_field + j], pf)) in_seg = &sd->fields[sn->first_field + j];
    if (!in_prog && in_seg) {
        shm__puts(s, "field "); shm__field_shown(s, path, sd, sf);
        shm__puts(s, " at offset "); shm__putu(s, shm__sat_add(at, sf->offset));
        shm__puts(s, " in the segment is not in this program, which has `");
        shm__join(sub, sizeof sub, path, pf->name, pf->name_len); shm__puts(s, sub);
        shm__puts(s, "` there; appendable types may only add fields at the end, never remove one (mark it `#[shm(deprecated)]` instead) or insert one");
    } else if (in_prog && !in_seg) {
        shm__puts(s, "field "); shm__field_shown(s, path, pd, pf);
        shm__puts(s, " at offset "); shm__putu(s, shm__sat_add(at, pf->offset));
        shm__puts(s, " in this program is not in the segment, which has `");
        shm__join(sub, sizeof sub, path, sf->name, sf->name_len); shm__puts(s, sub);
        shm__puts(s, "` there; appendable types may only add fields at the end, never insert one or remove one (mark it `#[shm(deprecated)]` instead)");
    } else if (in_prog && in_seg) {
        shm__join(sub, sizeof sub, path, in_prog->name, in_prog->name_len);
        shm__moved(s, sub, shm__sat_add(at, sf->offset), shm__sat_add(at, in_prog->offset));
    } else {
        const shm__dfield *old = side->seg_short ? sf : pf, *new_ = side->seg_short ? pf : sf;
        shm__puts(s, "the segment has "); shm__field_shown(s, path, sd, sf);
        shm__puts(s, " where this program has "); shm__field_shown(s, path, pd, pf);
        shm__puts(s, " (offset "); shm__putu(s, shm__sat_add(at, pf->offset));
        shm__puts(s, "); add `#[shm(alias = \"");
        shm__put(s, (const char *)old->name, old->name_len);
        shm__puts(s, "\")]`");
        if (!side->seg_short) {
            shm__puts(s, " to `");
            shm__put(s, (const char *)new_->name, new_->name_len);
            shm__puts(s, "` in the newer version");
        }
        shm__puts(s, " if it was renamed");
    }
}

/* Checks that the shorter of the structs `si` (the segment's) and `pi` (this program's), at
 * offset `at` of the top-level type, is a prefix of the other; 0 with the message if not. */
static inline int shm__prefix(const shm__side *side, shm__str *s, const char *path, uint64_t at,
                              const shm__desc *sd, uint32_t si, const shm__desc *pd, uint32_t pi) {
    const shm__dnode *sn = &sd->nodes[si], *pn = &pd->nodes[pi];
    uint32_t k, common = sn->nfields < pn->nfields ? sn->nfields : pn->nfields;
    uint32_t nshort = side->seg_short ? sn->nfields : pn->nfields;
    uint32_t nlong = side->seg_short ? pn->nfields : sn->nfields;
    const shm__desc *ld = side->seg_short ? pd : sd, *xd = side->seg_short ? sd : pd;
    const shm__dnode *ln = side->seg_short ? pn : sn, *xn = side->seg_short ? sn : pn;
    char sub[512];
    for (k = 0; k < common; k++) {
        const shm__dfield *sf = &sd->fields[sn->first_field + k], *pf = &pd->fields[pn->first_field + k];
        const shm__dnode *a, *b;
        uint64_t s_at = shm__sat_add(at, sf->offset), p_at = shm__sat_add(at, pf->offset);
        int last, grows, sized;
        const char *why;
        char ta[256], tb[256];
        shm__str sa = {ta, sizeof ta, 0}, sb = {tb, sizeof tb, 0};
        if (!shm__same_field(sf, pf)) {
            shm__misnamed(side, s, path, at, sd, sn, pd, pn, k);
            return 0;
        }
        shm__join(sub, sizeof sub, path, pf->name, pf->name_len);
        if (sf->offset != pf->offset) { shm__moved(s, sub, s_at, p_at); return 0; }
        if (shm__same(sd, sf->node, pd, pf->node)) continue;
        a = &sd->nodes[sf->node];
        b = &pd->nodes[pf->node];
        last = k + 1 == nshort;
        grows = side->seg_short ? shm__shorter(sd, sf->node, pd, pf->node) : shm__shorter(pd, pf->node, sd, sf->node);
        if (last && grows && a->kind == 7 && b->kind == 7) {
            if (!shm__same_stable(s, sub, a, b)) return 0;
            if (!shm__prefix(side, s, sub, s_at, sd, sf->node, pd, pf->node)) return 0;
            continue;
        }
        if ((a->kind == 3 || a->kind == 7) && (b->kind == 3 || b->kind == 7)) {
            if (!last) why = "a nested struct may only grow when it is the last field";
            else if (!(a->kind == 7 && b->kind == 7)) why = "a nested struct may only grow when it is `#[shm(appendable)]` too";
            else why = "appendable types may only add fields at the end";
        } else {
            why = "appendable types may only add fields at the end: add a new field instead";
        }
        ta[0] = tb[0] = 0;
        shm__type(&sa, sd, sf->node);
        shm__type(&sb, pd, pf->node);
        sized = strcmp(ta, tb) == 0;
        shm__puts(s, "field `"); shm__puts(s, sub); shm__puts(s, "` is `"); shm__puts(s, ta); shm__puts(s, "`");
        if (sized) { shm__puts(s, " ("); shm__putu(s, a->size); shm__puts(s, " bytes)"); }
        shm__puts(s, " at offset "); shm__putu(s, s_at);
        shm__puts(s, " in the segment but `"); shm__puts(s, tb); shm__puts(s, "`");
        if (sized) { shm__puts(s, " ("); shm__putu(s, b->size); shm__puts(s, " bytes)"); }
        shm__puts(s, " in this program; "); shm__puts(s, why);
        return 0;
    }
    if (nshort > nlong) {
        const shm__dfield *gone = &xd->fields[xn->first_field + nlong];
        shm__puts(s, "field "); shm__field_shown(s, path, xd, gone);
        shm__puts(s, " (offset "); shm__putu(s, shm__sat_add(at, gone->offset));
        shm__puts(s, side->seg_short ? ") is in the segment but not in this program"
                                     : ") is in this program but not in the segment");
        shm__puts(s, "; appendable types may only add fields at the end (mark a field `#[shm(deprecated)]` instead of removing it, or give the type a new stable name)");
        return 0;
    }
    for (k = nshort; k < nlong; k++) {
        const shm__dfield *extra = &ld->fields[ln->first_field + k];
        uint64_t start = shm__sat_add(at, extra->offset);
        if (start < side->limit) {
            shm__puts(s, "field `");
            shm__join(sub, sizeof sub, path, extra->name, extra->name_len); shm__puts(s, sub);
            shm__puts(s, "` starts at offset "); shm__putu(s, start);
            shm__puts(s, side->seg_short ? " in this program, inside the " : " in the segment, inside the ");
            shm__putu(s, side->limit);
            shm__puts(s, side->seg_short ? " bytes of the segment" : " bytes of this program");
            shm__puts(s, "; appendable types may only add fields at the end");
            return 0;
        }
    }
    return 1;
}

/* The rule for two layouts of different hashes, at least one root an appendable struct: 1
 * and the case in `*c` when compatible, else 0 with the reason in `s`. */
static inline int shm__compatible(shm__str *s, const shm__desc *sd, const shm__desc *pd, shm_compat *c) {
    const shm__dnode *sn = &sd->nodes[0], *pn = &pd->nodes[0];
    shm__side side;
    if (sn->kind != 7 || pn->kind != 7) {
        shm__puts(s, sn->kind == 7 ? "the type is `#[shm(appendable)]` in the segment but not in this program"
                                   : "the type is `#[shm(appendable)]` in this program but not in the segment");
        shm__puts(s, "; only two appendable versions of one type may share a segment");
        return 0;
    }
    if (!shm__same_stable(s, "", sn, pn)) return 0;
    side.seg_short = shm__shorter(sd, 0, pd, 0);
    side.limit = side.seg_short ? sn->size : pn->size;
    if (!shm__prefix(&side, s, "", 0, sd, 0, pd, 0)) return 0;
    *c = sn->size < pn->size ? SHM_COMPAT_SEGMENT_OLDER
         : sn->size > pn->size ? SHM_COMPAT_SEGMENT_NEWER : SHM_COMPAT_EXACT;
    return 1;
}

/* The compatibility case as Rust's `Compat` spells it: "Exact", "SegmentNewer", "SegmentOlder". */
static inline const char *shm_compat_name(shm_compat c) {
    switch (c) {
    case SHM_COMPAT_SEGMENT_NEWER: return "SegmentNewer";
    case SHM_COMPAT_SEGMENT_OLDER: return "SegmentOlder";
    default: return "Exact";
    }
}

/* ---------------------------------------------------------------- opening */

static inline void shm__reset(shm_reader *r) {
    memset(r, 0, sizeof *r);
    r->fd = -1;
}

/* Unmaps and closes the segment; safe on a handle whose open failed. */
static inline void shm_reader_close(shm_reader *r) {
    if (r->base) munmap(r->base, r->mapped);
    if (r->fd >= 0) close(r->fd);
    free(r->buffer);
    r->base = NULL;
    r->buffer = NULL;
    r->fd = -1;
}

/* Checks a POSIX shared-memory name: `/` then 1 to 254 bytes, no other `/`, not `/.` or `/..`. */
static inline const char *shm__name_problem(const char *name) {
    size_t n = strlen(name);
    if (name[0] != '/') return "a shared-memory name starts with `/`, e.g. \"/robot-state\"";
    if (n < 2) return "a shared-memory name has at least one character after `/`";
    if (n > 255) return "a shared-memory name is at most 255 bytes";
    if (strchr(name + 1, '/')) return "a shared-memory name has no `/` after the first character";
    if (!strcmp(name, "/.") || !strcmp(name, "/..")) return "`.` and `..` are not segment names";
    return NULL;
}

/* A segment whose layout hash is not this program's: accepted (SHM_OK, with r->compat set) when
 * the rule of "Compatibility" accepts the two layouts, else SHM_ERR_LAYOUT_MISMATCH naming the
 * first difference. */
static inline shm_status shm__layout_mismatch(shm_reader *r, const shm_layout *want, uint64_t found) {
    shm__desc stored, program;
    shm__str s;
    uint8_t *copy;
    uint64_t i;
    shm_compat compat = SHM_COMPAT_EXACT;
    int accepted = 0;
    char diff[768];
    s.p = diff; s.cap = sizeof diff; s.len = 0; diff[0] = 0;
    copy = (uint8_t *)malloc(r->descriptor_len ? r->descriptor_len : 1);
    if (!copy) return shm__fail(r, SHM_ERR_IO, "out of memory");
    /* Descriptor bytes are shared memory too: copied with relaxed atomic byte loads. */
    for (i = 0; i < r->descriptor_len; i++) copy[i] = shm__load8(r->base + r->descriptor_offset + i);
    if (!shm__decode(&stored, copy, r->descriptor_len)) {
        shm__puts(&s, "the segment's malformed layout descriptor: ");
        shm__puts(&s, stored.error);
    } else if (!shm__decode(&program, want->descriptor, want->descriptor_len)) {
        shm__puts(&s, "this program's layout descriptor is malformed: ");
        shm__puts(&s, program.error);
        shm__desc_free(&program);
    } else {
        if (found != want->hash && (stored.nodes[0].kind == 7 || program.nodes[0].kind == 7))
            accepted = shm__compatible(&s, &stored, &program, &compat);
        else if (shm__same(&stored, 0, &program, 0))
            shm__puts(&s, "the stored descriptor matches this program's but the layout hash does not (corrupt header)");
        else
            shm__diff(&s, "", 0, 0, &stored, 0, &program, 0);
        shm__desc_free(&program);
    }
    shm__desc_free(&stored);
    free(copy);
    if (accepted) {
        r->compat = compat;
        r->value_size = want->size;
        r->copy_size = want->size < r->payload_size ? want->size : r->payload_size;
        return SHM_OK;
    }
    r->status = SHM_ERR_LAYOUT_MISMATCH;
    snprintf(r->message, sizeof r->message,
             "layout mismatch: %s (layout hash 0x%016llx in the segment, 0x%016llx in this program)",
             diff, (unsigned long long)found, (unsigned long long)want->hash);
    return r->status;
}

/* Step 6 of Opening: the stored descriptor decodes, hashes to the stored layout hash, and its
 * size and alignment are the header's, so that the segment's description is what its hash
 * promises. */
static inline shm_status shm__check_stored(shm_reader *r, uint64_t found, uint64_t psize, uint32_t palign) {
    shm__desc stored;
    uint8_t *copy;
    uint64_t i, h = UINT64_C(0xcbf29ce484222325);
    const char *problem = NULL;
    copy = (uint8_t *)malloc(r->descriptor_len ? r->descriptor_len : 1);
    if (!copy) return shm__fail(r, SHM_ERR_IO, "out of memory");
    /* Descriptor bytes are shared memory too: copied with relaxed atomic byte loads. */
    for (i = 0; i < r->descriptor_len; i++) copy[i] = shm__load8(r->base + r->descriptor_offset + i);
    if (!shm__decode(&stored, copy, r->descriptor_len)) {
        problem = "corrupt segment: the stored layout descriptor is malformed";
    } else {
        for (i = 0; i < 4; i++) SHM__FNV(h, (uint32_t)SHM_LAYOUT_ENCODING_VERSION >> (8 * i));
        {
            const uint16_t probe = 1;
            SHM__FNV(h, *(const uint8_t *)&probe ? 'L' : 'B');
        }
        if (shm__shape(&stored, 0, h) != found)
            problem = "corrupt segment: the stored layout does not have the stored layout hash";
        else if (stored.nodes[0].size != psize || stored.nodes[0].align != palign)
            problem = "corrupt segment: the payload size or alignment does not match the stored layout";
    }
    shm__desc_free(&stored);
    free(copy);
    return problem ? shm__fail(r, SHM_ERR_CORRUPT, problem) : SHM_OK;
}

/* What a segment of `kind` holds and how a C program reads it, for WrongKind messages. */
static inline const char *shm__describe_kind(uint32_t kind) {
    switch (kind) {
    case SHM_KIND_STATE: return "shared state (read it with `shm_reader_open`)";
    case SHM_KIND_STREAM: return "a broadcast stream (read it with `shm_stream_open`)";
    default: return "a queue (observe it with `shm_queue_observe`)";
    }
}

/* Validates the mapped, ready header (steps 4 to 6 of Opening in docs/segment-format.md, with
 * the kind check of "Streams and queues"): the segment must hold `expect_kind`. */
static inline shm_status shm__validate(shm_reader *r, const shm_layout *want, uint32_t expect_kind) {
    const unsigned char *h = r->base;
    uint64_t mapped = r->mapped, total, desc_len, psize, words, stride, desc_off, slots_off, found;
    uint32_t version = shm__load32(h + SHM_OFF_FORMAT_VERSION), slots, palign, kind;
    char msg[256];
    if (version != SHM_FORMAT_VERSION) {
        snprintf(msg, sizeof msg,
                 "segment format version %u is not supported (this program reads version %u)",
                 version, SHM_FORMAT_VERSION);
        return shm__fail(r, SHM_ERR_FORMAT_VERSION, msg);
    }
    total = shm__load64(h + SHM_OFF_TOTAL_SIZE);
    if (total > mapped) {
        snprintf(msg, sizeof msg, "segment is truncated: %llu bytes, %llu needed",
                 (unsigned long long)mapped, (unsigned long long)total);
        return shm__fail(r, SHM_ERR_TRUNCATED, msg);
    }
    kind = shm__load32(h + SHM_OFF_KIND);
    if (kind > SHM_KIND_QUEUE) return shm__fail(r, SHM_ERR_CORRUPT, "corrupt segment: unknown segment kind");
    slots = shm__load32(h + SHM_OFF_SLOT_COUNT);
    if (slots == 0 || slots > (kind == SHM_KIND_STATE ? SHM_MAX_SLOTS : SHM_MAX_STREAM_CAPACITY))
        return shm__fail(r, SHM_ERR_CORRUPT, "corrupt segment: slot count out of range");
    desc_len = shm__load64(h + SHM_OFF_DESCRIPTOR_LEN);
    if (desc_len > SHM_MAX_DESCRIPTOR) return shm__fail(r, SHM_ERR_CORRUPT, "corrupt segment: descriptor too large");
    psize = shm__load64(h + SHM_OFF_PAYLOAD_SIZE);
    palign = shm__load32(h + SHM_OFF_PAYLOAD_ALIGN);
    if (psize == 0 || psize > mapped)
        return shm__fail(r, SHM_ERR_CORRUPT, "corrupt segment: payload size out of range");
    if (palign == 0 || (palign & (palign - 1)) != 0)
        return shm__fail(r, SHM_ERR_CORRUPT, "corrupt segment: payload alignment is not a power of two");
    /* psize <= mapped, so none of this wraps; the product is still checked. Streams and queues
     * have their control line between the header and slot 0. */
    words = psize / 8 + (psize % 8 != 0);
    stride = (SHM_CACHE_LINE + words * 8 + SHM_CACHE_LINE - 1) / SHM_CACHE_LINE * SHM_CACHE_LINE;
    slots_off = SHM_HEADER_SIZE + (kind == SHM_KIND_STATE ? 0 : SHM_CONTROL_SIZE);
    if (__builtin_mul_overflow(stride, (uint64_t)slots, &desc_off) ||
        __builtin_add_overflow(desc_off, slots_off, &desc_off) ||
        shm__load64(h + SHM_OFF_SLOTS_OFFSET) != slots_off ||
        shm__load64(h + SHM_OFF_SLOT_STRIDE) != stride ||
        shm__load64(h + SHM_OFF_DESCRIPTOR_OFFSET) != desc_off || desc_off > total ||
        total - desc_off != desc_len)
        return shm__fail(r, SHM_ERR_CORRUPT,
                         "corrupt segment: slot geometry does not match the payload size and slot count");
    if (kind != expect_kind) {
        snprintf(msg, sizeof msg, "this segment holds %s, not %s", shm__describe_kind(kind),
                 shm__describe_kind(expect_kind));
        return shm__fail(r, SHM_ERR_WRONG_KIND, msg);
    }
    r->kind = kind;
    r->payload_size = psize;
    r->payload_words = words;
    r->slot_count = slots;
    r->slots_offset = slots_off;
    r->slot_stride = stride;
    r->descriptor_offset = desc_off;
    r->descriptor_len = desc_len;
    r->total_size = total;
    r->compat = SHM_COMPAT_EXACT;
    r->value_size = r->copy_size = psize;
    found = shm__load64(h + SHM_OFF_LAYOUT_HASH);
    /* Another hash is accepted only by the rule of "Compatibility", which sets the sizes. */
    if (found != want->hash && shm__layout_mismatch(r, want, found) != SHM_OK)
        return r->status;
    if (shm__check_stored(r, found, psize, palign) != SHM_OK)
        return r->status;
    if (found == want->hash && (psize != want->size || palign != want->align))
        return shm__layout_mismatch(r, want, found);
    r->buffer = (uint64_t *)calloc(words, 8);
    if (!r->buffer) return shm__fail(r, SHM_ERR_IO, "out of memory");
    return SHM_OK;
}

/* Opens the segment `name`, of kind `kind`, holding the type `want` describes, waiting at most
 * `ready_wait_ns` (negative: forever) for its creator to finish. On failure the handle holds
 * the code and a message and owns nothing (closing it is harmless). */
static inline shm_status shm__open(shm_reader *r, const char *name, const shm_layout *want,
                                   uint32_t kind, int64_t ready_wait_ns) {
    const char *bad;
    struct stat st;
    int64_t deadline, pause = 50000;
    char msg[512];
    shm__reset(r);
    if ((bad = shm__name_problem(name)) != NULL) {
        snprintf(msg, sizeof msg, "invalid segment name \"%.300s\": %s", name, bad);
        return shm__fail(r, SHM_ERR_INVALID_NAME, msg);
    }
    /* Read-write if permitted, so that waits can register on the futex; else read-only. */
    r->writable = 1;
    r->fd = shm_open(name, O_RDWR | O_CLOEXEC | O_NONBLOCK, 0);
    if (r->fd < 0 && (errno == EACCES || errno == EPERM)) {
        r->writable = 0;
        r->fd = shm_open(name, O_RDONLY | O_CLOEXEC | O_NONBLOCK, 0);
    }
    if (r->fd < 0) {
        int e = errno;
        shm_status st2 = e == ENOENT ? SHM_ERR_NOT_FOUND
                         : (e == EACCES || e == EPERM) ? SHM_ERR_PERMISSION_DENIED
                         : (e == EINVAL || e == ENAMETOOLONG) ? SHM_ERR_INVALID_NAME
                                                              : SHM_ERR_IO;
        snprintf(msg, sizeof msg, "cannot open segment \"%.300s\": %s", name, strerror(e));
        return shm__fail(r, st2, msg);
    }
    deadline = shm__deadline(ready_wait_ns);
    for (;;) {
        if (fstat(r->fd, &st) != 0) {
            snprintf(msg, sizeof msg, "fstat of segment \"%.300s\": %s", name, strerror(errno));
            shm__fail(r, SHM_ERR_IO, msg);
            break;
        }
        if (!S_ISREG(st.st_mode)) {
            shm__fail(r, SHM_ERR_NOT_A_SEGMENT, "not a segment: not a regular file");
            break;
        }
        if ((uint64_t)st.st_size >= SHM_HEADER_SIZE) {
            uint64_t magic;
            uint32_t state;
            /* Never map more than fstat reports; re-map each time: the size may have grown. */
            void *m = mmap(NULL, (size_t)st.st_size, PROT_READ | (r->writable ? PROT_WRITE : 0),
                           MAP_SHARED, r->fd, 0);
            if (m == MAP_FAILED) {
                snprintf(msg, sizeof msg, "mmap of segment \"%.300s\": %s", name, strerror(errno));
                shm__fail(r, SHM_ERR_IO, msg);
                break;
            }
            r->base = (unsigned char *)m;
            r->mapped = (size_t)st.st_size;
            magic = shm__load64(r->base + SHM_OFF_MAGIC);
            state = shm__load32(r->base + SHM_OFF_STATE);
            __atomic_thread_fence(__ATOMIC_ACQUIRE); /* pairs with the creator's Release of state */
            if (magic == SHM_MAGIC && state == SHM_STATE_READY) {
                if (shm__validate(r, want, kind) == SHM_OK) return SHM_OK;
                break;
            }
            if (magic != 0 && magic != SHM_MAGIC) {
                snprintf(msg, sizeof msg, "not a shared-state segment (magic 0x%016llx does not match)",
                         (unsigned long long)magic);
                shm__fail(r, SHM_ERR_NOT_A_SEGMENT, msg);
                break;
            }
            munmap(r->base, r->mapped);
            r->base = NULL;
        } else if (st.st_size != 0) {
            snprintf(msg, sizeof msg, "segment is truncated: %lld bytes, %u needed",
                     (long long)st.st_size, SHM_HEADER_SIZE);
            shm__fail(r, SHM_ERR_TRUNCATED, msg);
            break;
        }
        /* Size 0 or magic 0: the creator is still initializing (or died doing so). */
        if (shm__now_ns() >= deadline) {
            shm__fail(r, SHM_ERR_NOT_READY, "the segment was not initialized in time (its creator may have died)");
            break;
        }
        shm__sleep_ns(pause);
        pause = pause * 2 > 5000000 ? 5000000 : pause * 2;
    }
    {
        shm_status keep = r->status;
        char saved[sizeof r->message];
        memcpy(saved, r->message, sizeof saved);
        shm_reader_close(r);
        r->status = keep;
        memcpy(r->message, saved, sizeof saved);
        return keep;
    }
}

/* Opens the state segment `name` holding the type `want` describes, waiting at most
 * `ready_wait_ns` (negative: forever) for its creator to finish. On failure the handle holds
 * the code and a message and owns nothing (closing it is harmless). A stream or queue is
 * refused with SHM_ERR_WRONG_KIND. */
static inline shm_status shm_reader_open_wait(shm_reader *r, const char *name, shm_layout want,
                                              int64_t ready_wait_ns) {
    return shm__open(r, name, &want, SHM_KIND_STATE, ready_wait_ns);
}

/* Opens with the default ready wait (1 s). */
static inline shm_status shm_reader_open(shm_reader *r, const char *name, shm_layout want) {
    return shm_reader_open_wait(r, name, want, SHM_DEFAULT_READY_WAIT_NS);
}

/* ---------------------------------------------------------------- reading */

/* The publish counter: the version of the latest value. */
static inline uint64_t shm_version(const shm_reader *r) {
    return shm__load64_acquire(r->base + SHM_OFF_PUBLISHED);
}

/* Copies a validated r->buffer into the program's value `out`: the first `copy_size` bytes, the
 * rest of its `value_size` zero ("Reading across versions"). */
static inline void shm__deliver(const shm_reader *r, void *out) {
    memcpy(out, r->buffer, r->copy_size);
    if (r->value_size > r->copy_size) memset((unsigned char *)out + r->copy_size, 0, r->value_size - r->copy_size);
}

/* How the segment's stored layout relates to this program's (SHM_COMPAT_EXACT unless both are
 * versions of an `#[shm(appendable)]` type). */
static inline shm_compat shm_reader_compat(const shm_reader *r) { return r->compat; }

/* Copies slot `i` into r->buffer ("Reading" in docs/segment-format.md); 1 when the copy is
 * consistent and, if `exact`, of the slot holding sequence value `want` (a complete version or
 * message), else of any complete one. */
static inline int shm__read_slot(shm_reader *r, uint64_t i, int exact, uint64_t want) {
    const unsigned char *slot = r->base + r->slots_offset + i * r->slot_stride;
    uint64_t s1 = shm__load64(slot), s2, k;
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if ((s1 & 1) || (exact && s1 != want)) return 0;
    for (k = 0; k < r->payload_words; k++) r->buffer[k] = shm__load64(slot + SHM_CACHE_LINE + 8 * k);
    /* Orders the payload loads before the second sequence load. */
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    s2 = shm__load64(slot);
    return s1 == s2;
}

/* One read attempt of the latest value into r->buffer; 1 when the copy is consistent. With
 * two or more slots only the published version itself is accepted (reads never go back). */
static inline int shm__attempt(shm_reader *r) {
    uint64_t v = shm_version(r);
    return shm__read_slot(r, v % r->slot_count, r->slot_count > 1, 2 * v + 2);
}

/* Whether a writer holds the segment's writer lease (an OFD lock on byte 0). Only queries. */
static inline int shm_writer_alive(const shm_reader *r) {
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = 0;
    fl.l_len = 1;
    if (fcntl(r->fd, F_OFD_GETLK, &fl) != 0) return 1;
    return fl.l_type != F_UNLCK;
}

/* The pid of the last writer that took the lease (informative). */
static inline uint32_t shm_writer_pid(const shm_reader *r) {
    return shm__load32(r->base + SHM_OFF_WRITER_PID);
}

/* The writer epoch: 1 for the creator, incremented by every writer that takes over. */
static inline uint64_t shm_writer_epoch(const shm_reader *r) {
    return shm__load64(r->base + SHM_OFF_WRITER_EPOCH);
}

/* Reads a consistent value into `out` (the program's type: value_size bytes), giving up at `deadline`
 * (INT64_MAX: never) with SHM_ERR_TIMEOUT, or with SHM_ERR_WRITER_DIED when nothing consistent
 * is left and no writer lives. */
static inline shm_status shm__read_until(shm_reader *r, void *out, int64_t deadline) {
    uint32_t failures = 0;
    int64_t next_probe = 0;
    for (;;) {
        if (shm__attempt(r)) {
            shm__deliver(r, out);
            return SHM_OK;
        }
        if (++failures < 64) continue;
        {
            int64_t now = shm__now_ns();
            if (now >= next_probe) {
                next_probe = now + 1000000;
                if (!shm_writer_alive(r)) {
                    if (shm__attempt(r)) {
                        shm__deliver(r, out);
                        return SHM_OK;
                    }
                    return shm__fail(r, SHM_ERR_WRITER_DIED, "the writer died while writing and no consistent value is available");
                }
            }
            if (now >= deadline) return shm__fail(r, SHM_ERR_TIMEOUT, "timed out");
            syscall(SYS_sched_yield);
        }
    }
}

/* Reads a consistent value into `out`; blocks while a hostile or dead writer leaves none. */
static inline shm_status shm_read(shm_reader *r, void *out) {
    return shm__read_until(r, out, INT64_MAX);
}

/* As shm_read, giving up after `timeout_ns` with SHM_ERR_TIMEOUT. */
static inline shm_status shm_read_timeout(shm_reader *r, void *out, int64_t timeout_ns) {
    return shm__read_until(r, out, shm__deadline(timeout_ns));
}

/* A bounded number of attempts, no sleeping: SHM_ERR_TIMEOUT if the writer kept the slot busy,
 * SHM_ERR_WRITER_DIED if no writer lives and nothing consistent is left. */
static inline shm_status shm_try_read(shm_reader *r, void *out) {
    int i;
    for (i = 0; i < 4096; i++) {
        if (shm__attempt(r)) {
            shm__deliver(r, out);
            return SHM_OK;
        }
    }
    if (shm_writer_alive(r)) return shm__fail(r, SHM_ERR_TIMEOUT, "timed out");
    if (shm__attempt(r)) {
        shm__deliver(r, out);
        return SHM_OK;
    }
    return shm__fail(r, SHM_ERR_WRITER_DIED, "the writer died while writing and no consistent value is available");
}

/* ---------------------------------------------------------------- waiting */

/* Counts one more waiter in `*waiters` (SeqCst) unless the count is at its maximum: then 0, and
 * the caller polls. A compare-and-swap loop rather than a fetch-add, so that a hostile count of
 * UINT32_MAX cannot wrap to 0 (with 0 waiters the writer skips the wake). */
static inline int shm__register_waiter(uint32_t *waiters) {
    uint32_t n = __atomic_load_n(waiters, __ATOMIC_SEQ_CST);
    do {
        if (n == UINT32_MAX) return 0;
    } while (!__atomic_compare_exchange_n(waiters, &n, n + 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));
    return 1;
}

/* Counts one waiter less, never below 0 (a hostile peer may have zeroed the count meanwhile). */
static inline void shm__unregister_waiter(uint32_t *waiters) {
    uint32_t n = __atomic_load_n(waiters, __ATOMIC_SEQ_CST);
    do {
        if (n == 0) return;
    } while (!__atomic_compare_exchange_n(waiters, &n, n - 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));
}

/* Waits until the version exceeds `since` or `timeout_ns` passes (negative: no limit); stores
 * the new version in `*version` (may be NULL). Sleeps on the shared futex when the segment is
 * mapped writable (registering in `waiters`), else polls every 200 us, as it does when it finds
 * `waiters` at its maximum (a hostile value it must not wrap). */
static inline shm_status shm_wait_for_update(shm_reader *r, uint64_t since, int64_t timeout_ns,
                                             uint64_t *version) {
    unsigned char *h = r->base;
    uint32_t *futex = (uint32_t *)(void *)(h + SHM_OFF_FUTEX);
    uint32_t *waiters = (uint32_t *)(void *)(h + SHM_OFF_WAITERS);
    int64_t deadline = shm__deadline(timeout_ns), left;
    uint64_t v = shm_version(r);
    shm_status st = SHM_ERR_TIMEOUT;
    if (v > since) goto done;
    /* A read-only mapping cannot register; a count at its maximum must not be wrapped. */
    if (!r->writable || !shm__register_waiter(waiters)) {
        for (;;) {
            v = shm_version(r);
            if (v > since) goto done;
            left = deadline - shm__now_ns();
            if (left <= 0) return shm__fail(r, SHM_ERR_TIMEOUT, "timed out");
            shm__sleep_ns(left < 200000 ? left : 200000);
        }
    }
    /* The waiter's half of the asymmetric barrier (docs/segment-format.md, "Waiting for an
     * update"): a writer may publish without a locked instruction, relying on this system call
     * to make its store visible before the re-check below, or our registration visible to it.
     * Where the kernel or a sandbox refuses, a wake-up can be missed and the wait then ends at
     * the next re-check (100 ms); the result is deliberately not checked. */
    syscall(SYS_membarrier, SHM__MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0);
    for (;;) {
        uint32_t word = __atomic_load_n(futex, __ATOMIC_SEQ_CST);
        struct timespec ts;
        v = __atomic_load_n((uint64_t *)(void *)(h + SHM_OFF_PUBLISHED), __ATOMIC_SEQ_CST);
        if (v > since) { st = SHM_OK; break; }
        left = deadline - shm__now_ns();
        if (left <= 0) break;
        if (left > 100000000) left = 100000000; /* re-check at least every 100 ms */
        ts.tv_sec = (time_t)(left / 1000000000);
        ts.tv_nsec = (long)(left % 1000000000);
        syscall(SYS_futex, futex, FUTEX_WAIT, word, &ts, (uint32_t *)NULL, 0);
    }
    shm__unregister_waiter(waiters);
    if (st != SHM_OK) return shm__fail(r, SHM_ERR_TIMEOUT, "timed out");
done:
    if (version) *version = v;
    return SHM_OK;
}

/* ---------------------------------------------------------------- streams and queues */

/* A reader of a broadcast stream (or an observer of a queue) with its own position, kept in
 * this process's memory: it never writes the segment, except the futex's `waiters` count while
 * it sleeps in `shm_stream_recv_timeout` (and not even that when it could map the segment only
 * read-only: then it polls). Messages are numbered from 1.
 *
 *     shm_stream s;
 *     if (shm_stream_open(&s, "/fills", SHM_LAYOUT(FILL), 0) != SHM_OK) {
 *         fprintf(stderr, "%s\n", s.reader.message);
 *         return 1;
 *     }
 *     for (;;) {
 *         Fill f;
 *         shm_status st = shm_stream_recv_timeout(&s, &f, NULL, 1000000000);
 *         if (st == SHM_OK) handle(&f);
 *         else if (st == SHM_LAGGED) fprintf(stderr, "lost %llu fills\n",
 *                                            (unsigned long long)shm_stream_missed(&s));
 *         else break;                          // SHM_ERR_TIMEOUT
 *     }
 *     shm_stream_close(&s);
 *
 * A reader that falls behind by more than the capacity loses the messages the writer
 * overwrote: the next receive returns SHM_LAGGED once, with their exact number in
 * `shm_stream_missed`, and the one after returns the oldest message still available. Messages
 * are never torn, duplicated or reordered: every message received plus every message reported
 * lost is every message sent since the reader's start. As shm_reader, one thread at a time. */
typedef struct shm_stream {
    shm_reader reader; /* the open segment; on failure its `status` and `message` say why */
    uint64_t next;     /* the number of the next message this reader wants */
    uint64_t missed;   /* the messages lost in the gap the last SHM_LAGGED reported */
    uint64_t pending;  /* a message received right after a gap, held in reader.buffer until the
                        * call after the one that reported the gap (its number; 0: none) */
} shm_stream;

static inline shm_status shm__stream_open(shm_stream *s, const char *name, shm_layout want,
                                          uint32_t kind, int from_oldest, int64_t ready_wait_ns) {
    uint64_t published, capacity;
    s->next = s->missed = s->pending = 0;
    if (shm__open(&s->reader, name, &want, kind, ready_wait_ns) != SHM_OK) return s->reader.status;
    published = shm_version(&s->reader);
    capacity = s->reader.slot_count;
    /* The ring holds messages `published - capacity + 1 ..= published`. */
    if (!from_oldest) s->next = published + 1;
    else s->next = published >= capacity ? published - capacity + 1 : 1;
    return SHM_OK;
}

/* Opens the broadcast stream `name` of messages of the type `want` describes, waiting at most
 * `ready_wait_ns` (negative: forever) for its creator to finish. The reader starts with the
 * next message sent (`from_oldest` 0) or with the oldest message the stream still holds
 * (`from_oldest` 1). A segment of another kind is refused with SHM_ERR_WRONG_KIND; on failure
 * `s->reader` holds the code and message and the handle owns nothing. */
static inline shm_status shm_stream_open_wait(shm_stream *s, const char *name, shm_layout want,
                                              int from_oldest, int64_t ready_wait_ns) {
    return shm__stream_open(s, name, want, SHM_KIND_STREAM, from_oldest, ready_wait_ns);
}

/* Opens with the default ready wait (1 s). */
static inline shm_status shm_stream_open(shm_stream *s, const char *name, shm_layout want,
                                         int from_oldest) {
    return shm_stream_open_wait(s, name, want, from_oldest, SHM_DEFAULT_READY_WAIT_NS);
}

/* Opens the queue `name` to observe its messages, as shm_stream_open_wait does for a stream;
 * a segment of another kind is refused with SHM_ERR_WRONG_KIND.
 *
 * An observer is not the queue's consumer: it never writes `consumed` and takes nothing, so
 * the consumer still receives every message. It sees each message the producer sent, whether
 * or not the consumer took it yet; the consumer may take one at any time, and the producer
 * then reuses its slot, so a message overwritten before the observer copied it is reported
 * lost (SHM_LAGGED), exactly as in a broadcast stream. `shm_stream_consumed` tells how far the
 * consumer is. */
static inline shm_status shm_queue_observe_wait(shm_stream *s, const char *name, shm_layout want,
                                                int from_oldest, int64_t ready_wait_ns) {
    return shm__stream_open(s, name, want, SHM_KIND_QUEUE, from_oldest, ready_wait_ns);
}

/* Opens with the default ready wait (1 s). */
static inline shm_status shm_queue_observe(shm_stream *s, const char *name, shm_layout want,
                                           int from_oldest) {
    return shm_queue_observe_wait(s, name, want, from_oldest, SHM_DEFAULT_READY_WAIT_NS);
}

/* Unmaps and closes the segment; safe on a handle whose open failed. */
static inline void shm_stream_close(shm_stream *s) {
    shm_reader_close(&s->reader);
    s->pending = 0;
}

/* Receives the next message into `out` (the program's type: value_size bytes) and its number into `*number`
 * (may be NULL), without waiting. Returns SHM_OK; SHM_EMPTY if no message was sent since the
 * last one received; or SHM_LAGGED, once, when this reader fell behind and the writer
 * overwrote `shm_stream_missed(s)` messages it had not received (nothing is stored then; the
 * next call returns the oldest message still available, which this call already copied). */
static inline shm_status shm_stream_try_recv(shm_stream *s, void *out, uint64_t *number) {
    shm_reader *r = &s->reader;
    uint64_t capacity = r->slot_count, m = s->next, published;
    if (s->pending) {
        shm__deliver(r, out);
        if (number) *number = s->pending;
        s->pending = 0;
        r->status = SHM_OK;
        return SHM_OK;
    }
    for (;;) {
        /* Acquire (load and fence): the slot of every message up to `published` shows that
         * message complete, or a later one. */
        published = shm_version(r);
        if (m > published) {
            /* Any messages found lost on the way are found again by the next call. */
            static const char empty[] = "no message yet";
            r->status = SHM_EMPTY;
            memcpy(r->message, empty, sizeof empty);
            return SHM_EMPTY;
        }
        /* Older messages are gone. */
        if (published >= capacity && m < published - capacity + 1) m = published - capacity + 1;
        if (shm__read_slot(r, m % capacity, 1, 2 * m + 2)) break;
        /* Message m was published, so its slot held it complete: the writer is writing, or
         * wrote, message m + capacity or a later one there. It is lost; go on with the next. */
        m++;
    }
    if (m > s->next) {
        s->missed = m - s->next;
        s->pending = m;
        s->next = m + 1;
        r->status = SHM_LAGGED;
        snprintf(r->message, sizeof r->message, "the reader fell behind and lost %llu message%s",
                 (unsigned long long)s->missed, s->missed == 1 ? "" : "s");
        return SHM_LAGGED;
    }
    s->next = m + 1;
    shm__deliver(r, out);
    if (number) *number = m;
    r->status = SHM_OK;
    return SHM_OK;
}

/* As shm_stream_try_recv, waiting at most `timeout_ns` (negative: no limit) for a message:
 * SHM_OK, SHM_LAGGED, or SHM_ERR_TIMEOUT. Sleeps on the stream's futex when the segment is
 * mapped writable, as shm_wait_for_update does (the writer pays for a wake only while somebody
 * sleeps; each sleep lasts at most 100 ms before re-checking), else polls every 200 us. A
 * writer that dies does not end the wait: another may take over. */
static inline shm_status shm_stream_recv_timeout(shm_stream *s, void *out, uint64_t *number,
                                                 int64_t timeout_ns) {
    shm_reader *r = &s->reader;
    int64_t deadline = shm__deadline(timeout_ns), left;
    int spins;
    for (;;) {
        shm_status st = shm_stream_try_recv(s, out, number);
        if (st != SHM_EMPTY) return st;
        /* A message that arrives within a microsecond or so costs no syscall. */
        for (spins = 0; spins < 128 && shm_version(r) < s->next; spins++) {
        }
        if (shm_version(r) >= s->next) continue;
        if (deadline == INT64_MAX) {
            left = -1;
        } else {
            left = deadline - shm__now_ns();
            if (left < 0) left = 0;
        }
        if (shm_wait_for_update(r, s->next - 1, left, NULL) != SHM_OK) return r->status;
    }
}

/* As shm_stream_recv_timeout without a time limit. */
static inline shm_status shm_stream_recv(shm_stream *s, void *out, uint64_t *number) {
    return shm_stream_recv_timeout(s, out, number, -1);
}

/* The messages lost in the gap the last SHM_LAGGED reported. */
static inline uint64_t shm_stream_missed(const shm_stream *s) { return s->missed; }

/* The number of the next message this reader receives. */
static inline uint64_t shm_stream_position(const shm_stream *s) {
    return s->pending ? s->pending : s->next;
}

/* The number of messages sent so far, by all the segment's writers (`published`). */
static inline uint64_t shm_stream_sent(const shm_stream *s) { return shm_version(&s->reader); }

/* The capacity in messages: how far this reader may fall behind before it loses some. */
static inline uint64_t shm_stream_capacity(const shm_stream *s) { return s->reader.slot_count; }

/* Queues: the number of the last message the consumer took (0: none; always 0 for a broadcast
 * stream). Only read: an observer never takes messages. */
static inline uint64_t shm_stream_consumed(const shm_stream *s) {
    return shm__load64_acquire(s->reader.base + SHM_OFF_CONSUMED);
}

/* Whether a writer (a queue's producer) holds the writer lease. */
static inline int shm_stream_writer_alive(const shm_stream *s) { return shm_writer_alive(&s->reader); }

/* The pid of the last writer that took the lease (informative). */
static inline uint32_t shm_stream_writer_pid(const shm_stream *s) { return shm_writer_pid(&s->reader); }

/* The writer epoch: 1 for the creator, incremented by every writer that takes over. */
static inline uint64_t shm_stream_writer_epoch(const shm_stream *s) { return shm_writer_epoch(&s->reader); }

/* How the stream's stored message layout relates to this program's (see shm_reader_compat). */
static inline shm_compat shm_stream_compat(const shm_stream *s) { return s->reader.compat; }

/* ---------------------------------------------------------------- wait sets */

/* A wait set: many state readers and stream readers behind one file descriptor, for event
 * loops (epoll, poll, glib, libuv). The descriptor (`shm_waitset_fd`, an eventfd) becomes
 * readable when an attached segment published something since the last `shm_waitset_ready`,
 * or when its writer was found dead; `shm_waitset_ready` then says which, without blocking.
 *
 *     shm_waitset *ws = shm_waitset_new();          // NULL with errno set on failure
 *     int a = shm_waitset_attach(ws, &pose_reader);  // a key, or -1 with errno set
 *     int b = shm_waitset_attach_stream(ws, &fills);
 *     // add shm_waitset_fd(ws) to the loop for reading (EPOLLIN, G_IO_IN, UV_READABLE); then
 *     shm_waitset_event ev[16];
 *     int n = shm_waitset_ready(ws, ev, 16);         // never blocks; drains the descriptor
 *     for (int i = 0; i < n; i++) {
 *         if (ev[i].flags & SHM_WAITSET_CHANGED) ... // key ev[i].key: read it, or receive its
 *                                                    // messages until SHM_EMPTY
 *         if (ev[i].flags & SHM_WAITSET_WRITER_GONE) ... // its writer died (the lease is free)
 *     }
 *     shm_waitset_detach(ws, a);                     // before closing the reader
 *     shm_waitset_free(ws);
 *
 * A state reader is reported changed once for every batch of publications (its event carries
 * the version seen, and the next report needs a newer one). A stream reader is reported while
 * it holds messages it did not receive, but the descriptor becomes readable again only for
 * messages sent after the report: receive until SHM_EMPTY. A dead writer is reported once
 * (SHM_WAITSET_WRITER_GONE), again only after another writer took the lease and died; it is
 * found by the lease probe (`shm_writer_alive`) at attach and then at least every wait slice.
 *
 * How it waits, with the protocol of docs/segment-format.md, "Waiting for an update" (count
 * as a waiter, `membarrier`, read the futex word, re-check `published`, sleep only if the word
 * is unchanged, on the shared futex, for at most SHM_WAIT_SLICE_MS at a time), with one of
 * three backends:
 *   - "io_uring" (Linux 6.7 or later; the default where it works): no thread. The set counts
 *     as a waiter of a segment only while its IORING_OP_FUTEX_WAIT is submitted (from the
 *     attach or a shm_waitset_ready until it completes), and keeps a slice timeout submitted; every completion writes the eventfd
 *     (IORING_REGISTER_EVENTFD), and shm_waitset_ready reaps them and submits again. The
 *     descriptor is also readable once a slice (shm_waitset_ready then re-checks and probes
 *     the leases, and may return 0).
 *   - "futex_waitv" (Linux 5.16 or later): helper threads sleep in futex_waitv on up to 127
 *     segments each (and a control word of their own), so n segments cost ceil(n / 127)
 *     threads.
 *   - "thread" (older kernels): a helper thread per attached segment, in FUTEX_WAIT.
 * A helper thread counts in a segment's waiter count only while it waits for that segment
 * (from a shm_waitset_ready, or the attach, to the next report), so a writer pays for
 * wake-ups only then. `SHM_WAIT_BACKEND=io_uring`, `futex_waitv` or `thread` in the
 * environment forces one (shm_waitset_new fails with ENOSYS where the kernel lacks it).
 * Segments mapped read-only (or whose waiter count is at its maximum) are polled every 200 us
 * instead.
 *
 * Build with `-pthread` (glibc 2.34 and later need no library for it; older ones need
 * libpthread), whichever backend runs. A wait set may be used from one thread at a time; the readers attached to it
 * must stay open (and at the same address) until detached, and their owner must not use them
 * from another thread while `shm_waitset_ready` runs (it reads a stream reader's position).
 * Helper threads block every signal but glibc's internal ones. A child made by `fork` has no
 * helper threads: it must not use its parent's wait sets (make its own). */

#ifndef SHM_WAIT_SLICE_MS
/* The longest single futex sleep of a wait set's helper thread, in milliseconds: a writer that
 * dies between publishing and waking strands a wait set for at most this long, and a dead
 * writer is found at most this long after it died. */
#define SHM_WAIT_SLICE_MS 100
#endif

/* The flags of a wait set event. */
#define SHM_WAITSET_CHANGED 1u     /* published something since the last report */
#define SHM_WAITSET_WRITER_GONE 2u /* no writer holds the lease */

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449 /* the same on every architecture */
#endif
#define SHM__FUTEX2_SIZE_U32 0x02u
#define SHM__WS_SHARD 127 /* futex_waitv takes 128 words: 127 segments and the control word */
#define SHM__WS_POLL_NS INT64_C(200000)
#define SHM__WS_WAITV 1
#define SHM__WS_THREAD 2
#define SHM__WS_URING 3
#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425 /* the same on every architecture */
#define SYS_io_uring_enter 426
#define SYS_io_uring_register 427
#endif
#define SHM__URING_OP_TIMEOUT 11
#define SHM__URING_OP_ASYNC_CANCEL 14
#define SHM__URING_OP_FUTEX_WAIT 51 /* Linux 6.7 */
#define SHM__URING_REGISTER_EVENTFD 4
#define SHM__URING_REGISTER_PROBE 8
#define SHM__URING_ENTER_GETEVENTS 1u
#define SHM__URING_TIMEOUT_TAG 1u /* user_data of the slice timeout (entries are pointers) */
#define SHM__URING_CANCEL_TAG 2u

/* One ready handle. */
typedef struct shm_waitset_event {
    int key;          /* what shm_waitset_attach returned */
    unsigned flags;   /* SHM_WAITSET_CHANGED and/or SHM_WAITSET_WRITER_GONE */
    uint64_t version; /* the segment's publish counter when it was reported */
} shm_waitset_event;

/* struct futex_waitv of <linux/futex.h>, for headers that predate it. */
typedef struct shm__futex_waitv {
    uint64_t val;
    uint64_t uaddr;
    uint32_t flags;
    uint32_t reserved;
} shm__futex_waitv;

struct shm__ws_shard;

/* An attached handle. Fields marked "lock" are read and written under the set's mutex; the
 * helper's own ones only by the shard's thread. */
typedef struct shm__ws_entry {
    const shm_reader *reader;
    const shm_stream *stream; /* NULL for a state reader */
    struct shm__ws_shard *shard;
    uint32_t *futex, *waiters;
    uint64_t *published;
    uint64_t since;    /* user: a state reader's version at its last report */
    uint64_t armed_at; /* lock: the helper reports a version above this */
    int armed;         /* lock: the helper watches it (until it reports it) */
    int gone;          /* lock: 0 writer alive, 1 found dead and not reported, 2 reported */
    int registered;    /* helper: counted in the segment's waiter count */
    int polls;         /* helper: cannot register (read-only mapping, or count at maximum) */
    int in_flight;     /* io_uring: a FUTEX_WAIT of its word is submitted and not completed */
} shm__ws_entry;

/* A helper thread and the entries it watches. */
typedef struct shm__ws_shard {
    struct shm_waitset *ws;
    pthread_t thread;
    uint32_t ctl; /* futex: bumped (under lock) by every change the thread must see */
    uint32_t ack; /* futex: the `ctl` of the thread's last look at its entries */
    int stop;     /* lock */
    int dirty;    /* lock: shm_waitset_ready re-armed an entry, the thread must look again */
    int n;        /* lock */
    shm__ws_entry *entries[SHM__WS_SHARD]; /* lock */
} shm__ws_shard;

/* io_uring's submission and completion entries and setup parameters (<linux/io_uring.h>),
 * for headers that predate them. */
typedef struct shm__uring_sqe {
    uint8_t opcode, flags;
    uint16_t ioprio;
    int32_t fd;
    uint64_t off, addr;
    uint32_t len, op_flags;
    uint64_t user_data;
    uint16_t buf_index, personality;
    int32_t file_index;
    uint64_t addr3, pad;
} shm__uring_sqe;

typedef struct shm__uring_cqe {
    uint64_t user_data;
    int32_t res;
    uint32_t flags;
} shm__uring_cqe;

typedef struct shm__uring_params {
    uint32_t sq_entries, cq_entries, flags, sq_thread_cpu, sq_thread_idle, features, wq_fd, resv[3];
    uint32_t sq_off[10]; /* head, tail, ring_mask, ring_entries, flags, dropped, array, ... */
    uint32_t cq_off[10]; /* head, tail, ring_mask, ring_entries, overflow, cqes, ... */
} shm__uring_params;

/* An io_uring instance: its fd and its three mappings. */
typedef struct shm__uring {
    int fd;
    uint32_t sq_entries;
    unsigned char *sq, *cq;
    size_t sq_len, cq_len, sqes_len;
    shm__uring_sqe *sqes;
    shm__uring_cqe *cqes;
    uint32_t *sq_head, *sq_tail, *sq_mask, *sq_flags, *sq_array, *cq_head, *cq_tail, *cq_mask;
} shm__uring;

/* A wait set; see above. */
typedef struct shm_waitset {
    pthread_mutex_t lock;
    int efd;
    int backend;
    int cap, nshards;
    shm__ws_entry **entries; /* by key; NULL: free */
    shm__ws_shard **shards;
    shm__uring ring;       /* the io_uring backend's */
    int timeout_in_flight; /* io_uring: the slice timeout is submitted */
    int probe_due;         /* io_uring: a slice ended, probe the leases */
    int64_t slice_ts[2];   /* io_uring: the timeout's struct __kernel_timespec */
} shm_waitset;

static inline void shm__ws_signal(int efd) {
    uint64_t one = 1;
    ssize_t rc = write(efd, &one, sizeof one);
    (void)rc; /* EAGAIN only at a count near 2^64: the descriptor is readable anyway */
}

static inline void shm__futex_wake(uint32_t *word) {
    syscall(SYS_futex, word, FUTEX_WAKE, INT32_MAX, (void *)NULL, (uint32_t *)NULL, 0);
}

static inline void shm__futex_wait(uint32_t *word, uint32_t expected, int64_t ns) {
    struct timespec ts;
    if (ns < 0) ns = 0;
    ts.tv_sec = (time_t)(ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    syscall(SYS_futex, word, FUTEX_WAIT, expected, &ts, (uint32_t *)NULL, 0);
}

/* Bumps a shard's control word (under lock) and wakes its thread; returns the new value. */
static inline uint32_t shm__ws_poke(shm__ws_shard *sh) {
    uint32_t c = __atomic_add_fetch(&sh->ctl, 1, __ATOMIC_SEQ_CST);
    shm__futex_wake(&sh->ctl);
    return c;
}

/* A helper thread: snapshot the armed entries (under lock), register in the new ones' waiter
 * counts, make the barrier, read each futex word, re-check each `published`, probe the leases
 * once a slice, report what is ready (disarming it, leaving its waiter count, writing the
 * eventfd), else sleep on every registered word and the control word for at most a slice. */
static inline void *shm__ws_run(void *arg) {
    shm__ws_shard *sh = (shm__ws_shard *)arg;
    shm_waitset *ws = sh->ws;
    shm__ws_entry *cur[SHM__WS_SHARD], *prev[SHM__WS_SHARD];
    uint64_t at[SHM__WS_SHARD];
    uint32_t word[SHM__WS_SHARD];
    unsigned fire[SHM__WS_SHARD];
    shm__futex_waitv wv[SHM__WS_SHARD + 1];
    const int64_t slice = (int64_t)SHM_WAIT_SLICE_MS * 1000000;
    int64_t next_probe = 0;
    int ncur = 0, nprev, i, j;
    for (;;) {
        uint32_t ctl;
        int stop, fresh = 0, polling = 0, nfire = 0;
        int64_t now, wait_ns;
        pthread_mutex_lock(&ws->lock);
        ctl = __atomic_load_n(&sh->ctl, __ATOMIC_SEQ_CST);
        stop = sh->stop;
        nprev = ncur;
        memcpy(prev, cur, sizeof(cur[0]) * (size_t)ncur);
        ncur = 0;
        for (i = 0; !stop && i < sh->n; i++) {
            if (!sh->entries[i]->armed) continue;
            cur[ncur] = sh->entries[i];
            at[ncur++] = sh->entries[i]->armed_at;
        }
        /* Entries no longer watched leave their waiter count now, while their segment is
         * surely mapped: detaching waits for this look (the acknowledgement below). */
        for (i = 0; i < nprev; i++) {
            for (j = 0; j < ncur && cur[j] != prev[i]; j++) {
            }
            if (j == ncur && prev[i]->registered) {
                shm__unregister_waiter(prev[i]->waiters);
                prev[i]->registered = 0;
            }
        }
        __atomic_store_n(&sh->ack, ctl, __ATOMIC_SEQ_CST);
        pthread_mutex_unlock(&ws->lock);
        shm__futex_wake(&sh->ack);
        if (stop) return NULL;

        for (i = 0; i < ncur; i++) {
            shm__ws_entry *e = cur[i];
            if (!e->registered && !e->polls) {
                if (e->reader->writable && shm__register_waiter(e->waiters)) {
                    e->registered = 1;
                    fresh = 1;
                } else {
                    e->polls = 1;
                }
            }
            polling |= e->polls;
        }
#ifndef SHM_WAITSET_NO_BARRIER_FOR_TESTS
        /* The waiter's half of the asymmetric barrier, once after registering (see
         * shm_wait_for_update). SHM_WAITSET_NO_BARRIER_FOR_TESTS leaves it out, for the test
         * that shows what it prevents: wake-ups missed by writers that publish without a
         * locked instruction. */
        if (fresh) syscall(SYS_membarrier, SHM__MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0);
#else
        (void)fresh;
#endif
        for (i = 0; i < ncur; i++) {
            shm__ws_entry *e = cur[i];
            uint64_t v;
            if (e->registered) {
                word[i] = __atomic_load_n(e->futex, __ATOMIC_SEQ_CST);
                v = __atomic_load_n(e->published, __ATOMIC_SEQ_CST);
            } else {
                v = shm__load64_acquire((const unsigned char *)e->published);
            }
            fire[i] = v > at[i] ? SHM_WAITSET_CHANGED : 0;
        }
        now = shm__now_ns();
        if (now >= next_probe) {
            int alive[SHM__WS_SHARD];
            next_probe = now + slice;
            for (i = 0; i < ncur; i++) alive[i] = shm_writer_alive(cur[i]->reader);
            pthread_mutex_lock(&ws->lock);
            for (i = 0; i < ncur; i++) {
                if (!alive[i] && cur[i]->gone == 0) {
                    cur[i]->gone = 1;
                    fire[i] |= SHM_WAITSET_WRITER_GONE;
                } else if (alive[i]) {
                    cur[i]->gone = 0;
                }
            }
            pthread_mutex_unlock(&ws->lock);
        }
        for (i = 0; i < ncur; i++) nfire += fire[i] != 0;
        if (nfire) {
            pthread_mutex_lock(&ws->lock);
            for (i = 0; i < ncur; i++) {
                if (!fire[i]) continue;
                cur[i]->armed = 0; /* until shm_waitset_ready re-arms it */
                if (cur[i]->registered) {
                    shm__unregister_waiter(cur[i]->waiters);
                    cur[i]->registered = 0;
                }
            }
            pthread_mutex_unlock(&ws->lock);
            shm__ws_signal(ws->efd);
            continue;
        }

        wait_ns = next_probe - now;
        if (wait_ns > slice) wait_ns = slice;
        if (polling && wait_ns > SHM__WS_POLL_NS) wait_ns = SHM__WS_POLL_NS;
        if (ws->backend == SHM__WS_WAITV) {
            struct timespec ts;
            int64_t until = now + wait_ns;
            int k = 0;
            for (i = 0; i < ncur; i++) {
                if (!cur[i]->registered) continue;
                wv[k].val = word[i];
                wv[k].uaddr = (uint64_t)(uintptr_t)cur[i]->futex;
                wv[k].flags = SHM__FUTEX2_SIZE_U32; /* shared: no FUTEX2_PRIVATE */
                wv[k++].reserved = 0;
            }
            wv[k].val = ctl;
            wv[k].uaddr = (uint64_t)(uintptr_t)&sh->ctl;
            wv[k].flags = SHM__FUTEX2_SIZE_U32;
            wv[k++].reserved = 0;
            ts.tv_sec = (time_t)(until / 1000000000);
            ts.tv_nsec = (long)(until % 1000000000);
            syscall(SYS_futex_waitv, wv, (unsigned)k, 0u, &ts, 1 /* CLOCK_MONOTONIC */);
        } else if (ncur == 1 && cur[0]->registered) {
            /* Control changes that must interrupt this sleep (detaching, freeing) also wake
             * the segment's word, repeatedly until acknowledged. */
            shm__futex_wait(cur[0]->futex, word[0], wait_ns);
        } else {
            shm__futex_wait(&sh->ctl, ctl, wait_ns);
        }
    }
}

/* Whether the kernel has futex_waitv (Linux 5.16): with no words it fails with EINVAL. */
static inline int shm__ws_has_waitv(void) {
    long rc = syscall(SYS_futex_waitv, (void *)NULL, 0u, 0u, (void *)NULL, 0);
    return !(rc == -1 && errno == ENOSYS);
}

/* ---- the io_uring backend: no helper thread. The set's own thread registers, barriers,
 * re-checks and submits one IORING_OP_FUTEX_WAIT per segment (shared: FUTEX2_SIZE_U32 only)
 * and a timeout of one slice; every completion writes the eventfd (IORING_REGISTER_EVENTFD),
 * and shm_waitset_ready reaps them and submits again. */

static inline void shm__uring_close(shm__uring *u) {
    if (u->sqes) munmap(u->sqes, u->sqes_len);
    if (u->cq) munmap(u->cq, u->cq_len);
    if (u->sq) munmap(u->sq, u->sq_len);
    if (u->fd > 0) close(u->fd);
    memset(u, 0, sizeof *u);
}

/* Sets up a ring whose completions write `efd`; 0, or -1 with errno set (ENOSYS where the
 * kernel has no io_uring, or no IORING_OP_FUTEX_WAIT). */
static inline int shm__uring_open(shm__uring *u, int efd) {
    shm__uring_params p;
    struct {
        uint8_t last_op, ops_len;
        uint16_t resv;
        uint32_t resv2[3];
        struct {
            uint8_t op, resv;
            uint16_t flags;
            uint32_t resv2;
        } ops[256];
    } probe;
    long fd;
    void *m;
    memset(u, 0, sizeof *u);
    memset(&p, 0, sizeof p);
    p.flags = 1u << 3; /* IORING_SETUP_CQSIZE: room for a completion of every wait at once */
    p.cq_entries = 4096;
    fd = syscall(SYS_io_uring_setup, 256u, &p);
    if (fd < 0) return -1;
    u->fd = (int)fd;
    u->sq_entries = p.sq_entries;
    u->sq_len = p.sq_off[6] + (size_t)p.sq_entries * 4;
    u->cq_len = p.cq_off[5] + (size_t)p.cq_entries * sizeof(shm__uring_cqe);
    u->sqes_len = (size_t)p.sq_entries * sizeof(shm__uring_sqe);
    m = mmap(NULL, u->sq_len, PROT_READ | PROT_WRITE, MAP_SHARED, u->fd, 0);
    if (m == MAP_FAILED) goto fail;
    u->sq = (unsigned char *)m;
    m = mmap(NULL, u->cq_len, PROT_READ | PROT_WRITE, MAP_SHARED, u->fd, 0x8000000);
    if (m == MAP_FAILED) goto fail;
    u->cq = (unsigned char *)m;
    m = mmap(NULL, u->sqes_len, PROT_READ | PROT_WRITE, MAP_SHARED, u->fd, 0x10000000);
    if (m == MAP_FAILED) goto fail;
    u->sqes = (shm__uring_sqe *)m;
    u->sq_head = (uint32_t *)(void *)(u->sq + p.sq_off[0]);
    u->sq_tail = (uint32_t *)(void *)(u->sq + p.sq_off[1]);
    u->sq_mask = (uint32_t *)(void *)(u->sq + p.sq_off[2]);
    u->sq_flags = (uint32_t *)(void *)(u->sq + p.sq_off[4]);
    u->sq_array = (uint32_t *)(void *)(u->sq + p.sq_off[6]);
    u->cq_head = (uint32_t *)(void *)(u->cq + p.cq_off[0]);
    u->cq_tail = (uint32_t *)(void *)(u->cq + p.cq_off[1]);
    u->cq_mask = (uint32_t *)(void *)(u->cq + p.cq_off[2]);
    u->cqes = (shm__uring_cqe *)(void *)(u->cq + p.cq_off[5]);
    memset(&probe, 0, sizeof probe);
    if (syscall(SYS_io_uring_register, u->fd, SHM__URING_REGISTER_PROBE, &probe, 256u) != 0 ||
        probe.last_op < SHM__URING_OP_FUTEX_WAIT || !(probe.ops[SHM__URING_OP_FUTEX_WAIT].flags & 1)) {
        errno = ENOSYS;
        goto fail;
    }
    if (syscall(SYS_io_uring_register, u->fd, SHM__URING_REGISTER_EVENTFD, &efd, 1u) != 0) goto fail;
    return 0;
fail : {
    int e = errno;
    shm__uring_close(u);
    errno = e;
    return -1;
}
}

/* Submits what is queued and, if `wait`, waits for one completion. */
static inline void shm__uring_enter(shm__uring *u, int wait) {
    for (;;) {
        uint32_t queued = *u->sq_tail - __atomic_load_n(u->sq_head, __ATOMIC_ACQUIRE);
        long rc = syscall(SYS_io_uring_enter, u->fd, queued, wait ? 1u : 0u,
                          wait ? SHM__URING_ENTER_GETEVENTS : 0u, (void *)NULL, 0);
        if (rc >= 0 || errno != EINTR) return;
    }
}

/* Queues one submission (a copy of `sqe`), submitting first if the queue is full. */
static inline void shm__uring_push(shm__uring *u, const shm__uring_sqe *sqe) {
    uint32_t tail = *u->sq_tail, i;
    while (tail - __atomic_load_n(u->sq_head, __ATOMIC_ACQUIRE) >= u->sq_entries) shm__uring_enter(u, 0);
    i = tail & *u->sq_mask;
    u->sqes[i] = *sqe;
    u->sq_array[i] = i;
    __atomic_store_n(u->sq_tail, tail + 1, __ATOMIC_RELEASE);
}

/* Reaps every completion: a segment's wait ended (woken, its word changed, or cancelled), or
 * the slice did (then the leases are due a probe). */
static inline void shm__ws_uring_reap(shm_waitset *ws) {
    shm__uring *u = &ws->ring;
    int round;
    for (round = 0; round < 64; round++) {
        uint32_t head = *u->cq_head, tail = __atomic_load_n(u->cq_tail, __ATOMIC_ACQUIRE);
        for (; head != tail; head++) {
            uint64_t tag = u->cqes[head & *u->cq_mask].user_data;
            if (tag == SHM__URING_TIMEOUT_TAG) {
                ws->timeout_in_flight = 0;
                ws->probe_due = 1;
            } else if (tag != SHM__URING_CANCEL_TAG) {
                shm__ws_entry *e = (shm__ws_entry *)(uintptr_t)tag;
                e->in_flight = 0;
                /* Counted as a waiter only while its FUTEX_WAIT is submitted. */
                if (e->registered) {
                    shm__unregister_waiter(e->waiters);
                    e->registered = 0;
                }
            }
        }
        __atomic_store_n(u->cq_head, head, __ATOMIC_RELEASE);
        /* Completions that found the ring full wait in the kernel (IORING_SQ_CQ_OVERFLOW)
         * until a call with IORING_ENTER_GETEVENTS moves them in. */
        if (!(__atomic_load_n(u->sq_flags, __ATOMIC_ACQUIRE) & (1u << 1))) return;
        syscall(SYS_io_uring_enter, u->fd, 0u, 0u, SHM__URING_ENTER_GETEVENTS, (void *)NULL, 0);
    }
}

/* Submits a FUTEX_WAIT for every entry without one, with the protocol of "Waiting for an
 * update": counts it as a waiter (the barrier once for all), reads its word, re-checks; and
 * the slice timeout. Writes the eventfd for an entry that changed meanwhile (no longer counted
 * then). An entry whose waiter count is at its maximum is polled. */
static inline void shm__ws_uring_arm(shm_waitset *ws) {
    shm__uring_sqe sqe;
    int k, polling = 0, changed = 0, counted = 0;
    for (k = 0; k < ws->cap; k++) {
        shm__ws_entry *e = ws->entries[k];
        if (!e || e->in_flight || e->polls || e->registered) continue;
        if (shm__register_waiter(e->waiters)) {
            e->registered = 1;
            counted = 1;
        } else {
            e->polls = 1;
        }
    }
#ifndef SHM_WAITSET_NO_BARRIER_FOR_TESTS
    if (counted) syscall(SYS_membarrier, SHM__MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0);
#else
    (void)counted;
#endif
    for (k = 0; k < ws->cap; k++) {
        shm__ws_entry *e = ws->entries[k];
        uint32_t word;
        if (!e) continue;
        polling |= e->polls;
        if (e->in_flight || e->polls) continue;
        word = __atomic_load_n(e->futex, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(e->published, __ATOMIC_SEQ_CST) > e->armed_at) {
            changed = 1;
            shm__unregister_waiter(e->waiters);
            e->registered = 0;
            continue;
        }
        memset(&sqe, 0, sizeof sqe);
        sqe.opcode = SHM__URING_OP_FUTEX_WAIT;
        sqe.fd = (int32_t)SHM__FUTEX2_SIZE_U32; /* shared: no FUTEX2_PRIVATE */
        sqe.addr = (uint64_t)(uintptr_t)e->futex;
        sqe.off = word;                /* the value to sleep on */
        sqe.addr3 = UINT64_C(0xffffffff); /* FUTEX_BITSET_MATCH_ANY */
        sqe.user_data = (uint64_t)(uintptr_t)e;
        shm__uring_push(&ws->ring, &sqe);
        e->in_flight = 1;
    }
    if (!ws->timeout_in_flight) {
        int64_t ns = (int64_t)SHM_WAIT_SLICE_MS * 1000000;
        if (polling && ns > SHM__WS_POLL_NS) ns = SHM__WS_POLL_NS;
        ws->slice_ts[0] = ns / 1000000000;
        ws->slice_ts[1] = ns % 1000000000;
        memset(&sqe, 0, sizeof sqe);
        sqe.opcode = SHM__URING_OP_TIMEOUT;
        sqe.addr = (uint64_t)(uintptr_t)ws->slice_ts;
        sqe.len = 1;
        sqe.user_data = SHM__URING_TIMEOUT_TAG;
        shm__uring_push(&ws->ring, &sqe);
        ws->timeout_in_flight = 1;
    }
    shm__uring_enter(&ws->ring, 0);
    if (changed) shm__ws_signal(ws->efd);
}

/* Cancels `e`'s FUTEX_WAIT, if it has one, and waits until it completed. */
static inline void shm__ws_uring_cancel(shm_waitset *ws, shm__ws_entry *e) {
    shm__uring_sqe sqe;
    if (!e->in_flight) return;
    memset(&sqe, 0, sizeof sqe);
    sqe.opcode = SHM__URING_OP_ASYNC_CANCEL;
    sqe.addr = (uint64_t)(uintptr_t)e;
    sqe.user_data = SHM__URING_CANCEL_TAG;
    shm__uring_push(&ws->ring, &sqe);
    while (e->in_flight) {
        shm__uring_enter(&ws->ring, 1);
        shm__ws_uring_reap(ws);
    }
    /* Other completions reaped here are the caller's to look at. */
    shm__ws_signal(ws->efd);
}

/* A new, empty wait set, or NULL with errno set: ENOSYS if SHM_WAIT_BACKEND forces a backend
 * the kernel lacks (or a sandbox forbids), EINVAL for an unknown SHM_WAIT_BACKEND, else what
 * eventfd, io_uring setup or allocation failed with. No thread runs until something is
 * attached (and none ever with io_uring). */
static inline shm_waitset *shm_waitset_new(void) {
    const char *want = getenv("SHM_WAIT_BACKEND");
    shm_waitset *ws;
    int backend = 0; /* 0: the first that works of io_uring, futex_waitv, thread */
    long efd;
    if (want && !strcmp(want, "io_uring")) {
        backend = SHM__WS_URING;
    } else if (want && !strcmp(want, "thread")) {
        backend = SHM__WS_THREAD;
    } else if (want && !strcmp(want, "futex_waitv")) {
        if (!shm__ws_has_waitv()) {
            errno = ENOSYS;
            return NULL;
        }
        backend = SHM__WS_WAITV;
    } else if (want && *want) {
        errno = EINVAL;
        return NULL;
    }
    ws = (shm_waitset *)calloc(1, sizeof *ws);
    if (!ws) return NULL;
    efd = syscall(SYS_eventfd2, 0u, O_NONBLOCK | O_CLOEXEC);
    if (efd < 0) {
        free(ws);
        return NULL;
    }
    ws->efd = (int)efd;
    if (backend == 0 || backend == SHM__WS_URING) {
        if (shm__uring_open(&ws->ring, ws->efd) == 0) {
            backend = SHM__WS_URING;
        } else if (backend == SHM__WS_URING) {
            int e = errno;
            close(ws->efd);
            free(ws);
            errno = e;
            return NULL;
        } else {
            backend = shm__ws_has_waitv() ? SHM__WS_WAITV : SHM__WS_THREAD;
        }
    }
    ws->backend = backend;
    pthread_mutex_init(&ws->lock, NULL);
    return ws;
}

/* The backend the set waits with: "io_uring", "futex_waitv" or "thread". */
static inline const char *shm_waitset_backend(const shm_waitset *ws) {
    return ws->backend == SHM__WS_URING ? "io_uring" : ws->backend == SHM__WS_WAITV ? "futex_waitv" : "thread";
}

/* The descriptor to wait on for reading (an eventfd, non-blocking, close-on-exec). It stays
 * the set's: do not close it. */
static inline int shm_waitset_fd(const shm_waitset *ws) { return ws->efd; }

/* Starts a shard's thread, on a 256 KiB stack (it needs about 10), with every signal blocked
 * but glibc's internal ones (32 and 33). */
static inline int shm__ws_start(shm__ws_shard *sh) {
    uint64_t all = ~UINT64_C(0) & ~(UINT64_C(3) << 31), old = 0;
    pthread_attr_t attr;
    int rc = pthread_attr_init(&attr);
    if (rc) return rc;
    pthread_attr_setstacksize(&attr, 256 * 1024);
    syscall(SYS_rt_sigprocmask, 2 /* SIG_SETMASK */, &all, &old, sizeof all);
    rc = pthread_create(&sh->thread, &attr, shm__ws_run, sh);
    syscall(SYS_rt_sigprocmask, 2 /* SIG_SETMASK */, &old, (uint64_t *)NULL, sizeof old);
    pthread_attr_destroy(&attr);
    return rc;
}

/* Waits until `sh`'s thread has looked at its entries since its control word became `target`,
 * waking it (and, for the thread backend, the segment word it may sleep on) until it has. */
static inline void shm__ws_await(shm_waitset *ws, shm__ws_shard *sh, uint32_t target, uint32_t *segment_word) {
    for (;;) {
        uint32_t a = __atomic_load_n(&sh->ack, __ATOMIC_SEQ_CST);
        if ((int32_t)(a - target) >= 0) return;
        shm__futex_wake(&sh->ctl);
        if (ws->backend == SHM__WS_THREAD && segment_word) shm__futex_wake(segment_word);
        shm__futex_wait(&sh->ack, a, 1000000);
    }
}

static inline int shm__ws_attach(shm_waitset *ws, const shm_reader *r, const shm_stream *s) {
    shm__ws_entry *e = (shm__ws_entry *)calloc(1, sizeof *e);
    shm__ws_shard *sh = NULL;
    int key, i, alive, ready_now = 0;
    if (!e) return -1;
    e->reader = r;
    e->stream = s;
    e->futex = (uint32_t *)(void *)(r->base + SHM_OFF_FUTEX);
    e->waiters = (uint32_t *)(void *)(r->base + SHM_OFF_WAITERS);
    e->published = (uint64_t *)(void *)(r->base + SHM_OFF_PUBLISHED);
    e->since = e->armed_at = shm_version(r);
    e->armed = 1;
    if (s && (s->pending || e->since >= s->next)) ready_now = 1;
    alive = shm_writer_alive(r);
    if (!alive) e->gone = 1;
    pthread_mutex_lock(&ws->lock);
    for (key = 0; key < ws->cap && ws->entries[key]; key++) {
    }
    if (key == ws->cap) {
        int cap = ws->cap ? ws->cap * 2 : 16;
        shm__ws_entry **grown = (shm__ws_entry **)realloc(ws->entries, sizeof(*grown) * (size_t)cap);
        if (!grown) goto fail;
        for (i = ws->cap; i < cap; i++) grown[i] = NULL;
        ws->entries = grown;
        ws->cap = cap;
    }
    if (ws->backend == SHM__WS_URING) {
        /* Counted as a waiter only while its wait is submitted (shm__ws_uring_arm). */
        if (!r->writable) e->polls = 1;
        ws->entries[key] = e;
        shm__ws_uring_arm(ws);
        pthread_mutex_unlock(&ws->lock);
        if (!alive || ready_now) shm__ws_signal(ws->efd);
        return key;
    }
    if (ws->backend == SHM__WS_WAITV) {
        for (i = 0; i < ws->nshards && !sh; i++)
            if (ws->shards[i]->n < SHM__WS_SHARD) sh = ws->shards[i];
    }
    if (!sh) {
        shm__ws_shard **grown = (shm__ws_shard **)realloc(ws->shards, sizeof(*grown) * (size_t)(ws->nshards + 1));
        if (!grown) goto fail;
        ws->shards = grown;
        sh = (shm__ws_shard *)calloc(1, sizeof *sh);
        if (!sh) goto fail;
        sh->ws = ws;
        errno = shm__ws_start(sh);
        if (errno) {
            free(sh);
            goto fail;
        }
        ws->shards[ws->nshards++] = sh;
    }
    e->shard = sh;
    sh->entries[sh->n++] = e;
    ws->entries[key] = e;
    shm__ws_poke(sh);
    pthread_mutex_unlock(&ws->lock);
    if (!alive || ready_now) shm__ws_signal(ws->efd);
    return key;
fail:
    pthread_mutex_unlock(&ws->lock);
    free(e);
    return -1;
}

/* Attaches a state reader; returns its key (the smallest free one, from 0), or -1 with errno
 * set. It is reported changed when it publishes a version above the one it has now, or (with
 * SHM_WAITSET_WRITER_GONE) when its writer is found dead, already at attach. */
static inline int shm_waitset_attach(shm_waitset *ws, const shm_reader *r) {
    return shm__ws_attach(ws, r, NULL);
}

/* Attaches a stream reader (or queue observer); returns its key, or -1 with errno set. It is
 * reported while it holds messages it did not receive (the descriptor is readable at once if
 * it holds some already), and when its writer is found dead. */
static inline int shm_waitset_attach_stream(shm_waitset *ws, const shm_stream *s) {
    return shm__ws_attach(ws, &s->reader, s);
}

/* Detaches the handle `key`: when this returns, no helper thread touches it any more and it
 * is no longer counted as a waiter, so it may be closed. 0, or -1 with errno EINVAL for a key
 * that is not attached. */
static inline int shm_waitset_detach(shm_waitset *ws, int key) {
    shm__ws_entry *e;
    shm__ws_shard *sh;
    uint32_t target;
    int i, stop;
    pthread_mutex_lock(&ws->lock);
    if (key < 0 || key >= ws->cap || !(e = ws->entries[key])) {
        pthread_mutex_unlock(&ws->lock);
        errno = EINVAL;
        return -1;
    }
    ws->entries[key] = NULL;
    if (ws->backend == SHM__WS_URING) {
        shm__ws_uring_cancel(ws, e);
        if (e->registered) shm__unregister_waiter(e->waiters);
        pthread_mutex_unlock(&ws->lock);
        free(e);
        return 0;
    }
    sh = e->shard;
    for (i = 0; sh->entries[i] != e; i++) {
    }
    sh->entries[i] = sh->entries[--sh->n];
    /* The thread backend's shard has only this entry: its thread ends. */
    stop = ws->backend == SHM__WS_THREAD;
    if (stop) {
        sh->stop = 1;
        for (i = 0; ws->shards[i] != sh; i++) {
        }
        ws->shards[i] = ws->shards[--ws->nshards];
    }
    target = shm__ws_poke(sh);
    pthread_mutex_unlock(&ws->lock);
    shm__ws_await(ws, sh, target, e->futex);
    if (stop) {
        pthread_join(sh->thread, NULL);
        free(sh);
    }
    free(e);
    return 0;
}

/* Which attached handles are ready, without blocking: fills at most `max` events and returns
 * their number (0: none). Drains the descriptor first; if more than `max` are ready it makes
 * the descriptor readable again, and the next call returns the rest. Every attached handle is
 * watched again from here on (its helper re-arms). */
static inline int shm_waitset_ready(shm_waitset *ws, shm_waitset_event *events, int max) {
    uint64_t drained;
    int n = 0, more = 0, k;
    ssize_t rc = read(ws->efd, &drained, sizeof drained);
    (void)rc; /* EAGAIN: nothing was signalled, which changes nothing below */
    pthread_mutex_lock(&ws->lock);
    if (ws->backend == SHM__WS_URING) {
        shm__ws_uring_reap(ws);
        for (k = 0; ws->probe_due && k < ws->cap; k++) {
            shm__ws_entry *e = ws->entries[k];
            if (!e) continue;
            if (shm_writer_alive(e->reader)) e->gone = 0;
            else if (e->gone == 0) e->gone = 1;
        }
        ws->probe_due = 0;
    }
    for (k = 0; k < ws->cap; k++) {
        shm__ws_entry *e = ws->entries[k];
        unsigned flags = 0;
        uint64_t v;
        if (!e) continue;
        v = shm_version(e->reader);
        if (e->stream ? (e->stream->pending || v >= e->stream->next) : v > e->since)
            flags |= SHM_WAITSET_CHANGED;
        if (e->gone == 1) flags |= SHM_WAITSET_WRITER_GONE;
        if (flags) {
            if (n >= max) {
                more = 1;
                continue;
            }
            events[n].key = k;
            events[n].flags = flags;
            events[n].version = v;
            n++;
            if (!e->stream) e->since = v;
            if (flags & SHM_WAITSET_WRITER_GONE) e->gone = 2;
        }
        if (!e->armed || e->armed_at != v) {
            e->armed = 1;
            e->armed_at = v;
            if (e->shard) e->shard->dirty = 1;
        }
    }
    if (ws->backend == SHM__WS_URING) shm__ws_uring_arm(ws);
    for (k = 0; k < ws->nshards; k++) {
        if (!ws->shards[k]->dirty) continue;
        ws->shards[k]->dirty = 0;
        shm__ws_poke(ws->shards[k]);
    }
    pthread_mutex_unlock(&ws->lock);
    if (more) shm__ws_signal(ws->efd);
    return n;
}

/* As shm_waitset_ready, first waiting at most `timeout_ns` (negative: no limit) for a handle
 * to be ready; 0 when the time ran out. */
static inline int shm_waitset_wait(shm_waitset *ws, shm_waitset_event *events, int max, int64_t timeout_ns) {
    int64_t deadline = shm__deadline(timeout_ns);
    for (;;) {
        struct pollfd p;
        int64_t left;
        int n = shm_waitset_ready(ws, events, max), ms;
        if (n) return n;
        left = deadline == INT64_MAX ? -1 : deadline - shm__now_ns();
        if (deadline != INT64_MAX && left <= 0) return 0;
        ms = left < 0 ? -1 : left / 1000000 >= INT32_MAX ? INT32_MAX : (int)((left + 999999) / 1000000);
        p.fd = ws->efd;
        p.events = POLLIN;
        p.revents = 0;
        poll(&p, 1, ms);
    }
}

/* Stops the helper threads (leaving every waiter count they were in), detaches everything and
 * frees the set; its descriptor is closed. NULL is ignored. */
static inline void shm_waitset_free(shm_waitset *ws) {
    int i, k;
    if (!ws) return;
    pthread_mutex_lock(&ws->lock);
    for (i = 0; i < ws->nshards; i++) {
        ws->shards[i]->stop = 1;
        shm__ws_poke(ws->shards[i]);
    }
    pthread_mutex_unlock(&ws->lock);
    /* Nothing else changes the control words now: each one's value is the one to await. */
    for (i = 0; i < ws->nshards; i++) {
        shm__ws_shard *sh = ws->shards[i];
        shm__ws_await(ws, sh, __atomic_load_n(&sh->ctl, __ATOMIC_SEQ_CST), sh->n ? sh->entries[0]->futex : NULL);
        pthread_join(sh->thread, NULL);
        free(sh);
    }
    for (k = 0; k < ws->cap; k++) {
        shm__ws_entry *e = ws->entries[k];
        if (!e) continue;
        if (ws->backend == SHM__WS_URING) {
            shm__ws_uring_cancel(ws, e);
            if (e->registered) shm__unregister_waiter(e->waiters);
        }
        free(e);
    }
    if (ws->backend == SHM__WS_URING) shm__uring_close(&ws->ring);
    free(ws->entries);
    free(ws->shards);
    close(ws->efd);
    pthread_mutex_destroy(&ws->lock);
    free(ws);
}

#pragma GCC diagnostic pop

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SHM_STATE_H */
