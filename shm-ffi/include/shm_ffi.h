/* shm_ffi.h: the C ABI of the shared-state runtime (library `shm_ffi`, built by the `shm-ffi`
 * crate as libshm_ffi.so and libshm_ffi.a). C11; usable from C++ (the declarations are
 * `extern "C"`).
 *
 * The header-only reader in include/shm_state.h needs no library; this one links the Rust
 * runtime itself and adds what that reader cannot do: writers (create, takeover,
 * open-or-create), removal, and readers that use the runtime's own protocol code.
 *
 *     #include "shm_ffi.h"
 *     #include "telemetry.h"   // generated: shm_core::export::c_header::<Telemetry>()
 *
 *     Telemetry t = {0};
 *     shm_ffi_writer *w;
 *     if (shm_ffi_writer_create("/demo", SHM_FFI_LAYOUT(TELEMETRY), &t, sizeof t, &w) != SHM_FFI_OK) {
 *         fprintf(stderr, "%s\n", shm_ffi_last_error());
 *         return 1;
 *     }
 *     t.tick = 1;
 *     shm_ffi_writer_write(w, &t, sizeof t);
 *     shm_ffi_writer_close(w);
 *
 * Link with  -lshm_ffi  (the shared library; add -Wl,-rpath,DIR or set LD_LIBRARY_PATH), or
 * with  libshm_ffi.a -lpthread -ldl -lm -lgcc_s  (the static one).
 *
 * Conventions, for every function:
 * - It returns a shm_ffi_status. SHM_FFI_OK clears the calling thread's last-error message,
 *   any other status sets it: shm_ffi_last_error() returns it (thread-local, never NULL, valid
 *   until the next call into the library on the same thread). The messages are the Rust
 *   runtime's, e.g. "layout mismatch: field `pos` is `[f64; 3]` at offset 8 in the segment but
 *   `[f32; 3]` at offset 8 in this program (...)".
 * - Nothing unwinds out of the library: an internal panic is caught and returned as
 *   SHM_FFI_ERR_PANIC.
 * - NULL handles, names, buffers and required out pointers, buffers whose size is not the
 *   payload size, names that are not UTF-8 and handles of the wrong kind are refused with
 *   SHM_FFI_ERR_INVALID_ARGUMENT. Optional out pointers (documented as such) may be NULL.
 *   Dangling pointers cannot be detected.
 * - Layouts are passed as a generated header's descriptor bytes and length, and optionally its
 *   layout hash (0 = do not check): the library decodes the descriptor and computes its hash;
 *   a hash passed must equal it, else SHM_FFI_ERR_INVALID_ARGUMENT (the header's macros were
 *   edited apart). SHM_FFI_LAYOUT(NAME) expands to the three arguments.
 * - Timeouts are in nanoseconds; a negative timeout waits forever.
 * - A handle is used by one thread at a time; distinct handles are independent.
 */
#ifndef SHM_FFI_H
#define SHM_FFI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What every function returns; mirrors the Rust runtime's errors. */
typedef enum shm_ffi_status {
    SHM_FFI_OK = 0,
    SHM_FFI_ERR_NOT_FOUND = 1,         /* no segment has this name */
    SHM_FFI_ERR_ALREADY_EXISTS = 2,    /* create: the name is taken */
    SHM_FFI_ERR_INVALID_NAME = 3,      /* not a valid segment name ("/name") */
    SHM_FFI_ERR_PERMISSION_DENIED = 4,
    SHM_FFI_ERR_NOT_A_SEGMENT = 5,     /* bad magic: not one of ours */
    SHM_FFI_ERR_CORRUPT = 6,           /* inconsistent header or stored layout */
    SHM_FFI_ERR_FORMAT_VERSION = 7,
    SHM_FFI_ERR_LAYOUT_MISMATCH = 8,   /* another type; the message names the first differing field */
    SHM_FFI_ERR_TRUNCATED = 9,
    SHM_FFI_ERR_WRITER_BUSY = 10,      /* another live process holds the writer lease */
    SHM_FFI_ERR_WRITER_DIED = 11,      /* the writer died mid-write; no consistent value */
    SHM_FFI_ERR_NOT_READY = 12,        /* its creator did not finish initializing it in time */
    SHM_FFI_ERR_TIMEOUT = 13,
    SHM_FFI_ERR_INVALID_LAYOUT = 14,   /* the layout cannot describe a payload */
    SHM_FFI_ERR_INVALID_VALUE = 15,    /* a helper value holds invalid bytes */
    SHM_FFI_ERR_IO = 16,               /* another operating-system error */
    SHM_FFI_ERR_INVALID_ARGUMENT = 17, /* see the conventions above */
    SHM_FFI_ERR_PANIC = 18,            /* a bug in the library, caught at the boundary */
    SHM_FFI_ERR_OTHER = 19             /* an error this header version does not name */
} shm_ffi_status;

/* Opaque handles. */
typedef struct shm_ffi_writer shm_ffi_writer;
typedef struct shm_ffi_reader shm_ffi_reader;

/* The layout arguments of a generated header's type: descriptor, length, hash. */
#define SHM_FFI_LAYOUT(PREFIX) PREFIX##_DESCRIPTOR, (size_t)PREFIX##_DESCRIPTOR_LEN, PREFIX##_LAYOUT_HASH

/* The calling thread's last-error message ("" after a success). */
const char *shm_ffi_last_error(void);

/* ---- writers ---------------------------------------------------------------------------- */

/* Creates segment `name` holding `initial` (`size` bytes, the layout's size); *out receives
 * the writer. SHM_FFI_ERR_ALREADY_EXISTS if the name is taken. */
shm_ffi_status shm_ffi_writer_create(const char *name, const uint8_t *descriptor, size_t descriptor_len,
                                     uint64_t layout_hash, const void *initial, size_t size,
                                     shm_ffi_writer **out);

/* Opens existing segment `name` as its writer (a takeover: a new epoch), checking that it
 * holds the layout. SHM_FFI_ERR_WRITER_BUSY while another live writer holds it. */
shm_ffi_status shm_ffi_writer_open(const char *name, const uint8_t *descriptor, size_t descriptor_len,
                                   uint64_t layout_hash, shm_ffi_writer **out);

/* Creates `name` holding `initial`, or opens it as its writer if it exists (keeping its
 * value). Of many processes starting at once, one creates it and the others attach. */
shm_ffi_status shm_ffi_writer_open_or_create(const char *name, const uint8_t *descriptor,
                                             size_t descriptor_len, uint64_t layout_hash,
                                             const void *initial, size_t size, shm_ffi_writer **out);

/* Publishes `value` (`size` bytes): readers see it from now on. No syscall unless a reader
 * waits for an update. */
shm_ffi_status shm_ffi_writer_write(shm_ffi_writer *w, const void *value, size_t size);

/* Copies the newest complete value (after a takeover: the newest the previous writer
 * completed) into `out` (`size` bytes). */
shm_ffi_status shm_ffi_writer_get(const shm_ffi_writer *w, void *out, size_t size);

/* Optional outs: the version last written, the writer epoch (1 for the creator, +1 per
 * takeover), and 1 if this handle created the segment, 0 if it took it over. */
shm_ffi_status shm_ffi_writer_info(const shm_ffi_writer *w, uint64_t *version, uint64_t *epoch,
                                   int32_t *created);

/* The payload size in bytes (optional out). */
shm_ffi_status shm_ffi_writer_payload_size(const shm_ffi_writer *w, size_t *size);

/* Releases the writer lease and frees the handle (NULL is accepted). The segment stays. */
shm_ffi_status shm_ffi_writer_close(shm_ffi_writer *w);

/* Removes segment `name`; processes that have it open keep using it. */
shm_ffi_status shm_ffi_remove(const char *name);

/* ---- readers ---------------------------------------------------------------------------- */

/* Opens segment `name` for reading; *out receives the reader. With a descriptor, a segment
 * holding another type is refused with SHM_FFI_ERR_LAYOUT_MISMATCH naming the first differing
 * field; with descriptor NULL (length and hash ignored) any segment of this format opens. */
shm_ffi_status shm_ffi_reader_open(const char *name, const uint8_t *descriptor, size_t descriptor_len,
                                   uint64_t layout_hash, shm_ffi_reader **out);

/* Copies a consistent snapshot into `out` (`size` bytes, the payload size), waiting at most
 * `timeout_ns`; *version (optional) receives the version of those bytes (with one slot
 * possibly newer than shm_ffi_reader_version read before). SHM_FFI_ERR_TIMEOUT, or
 * SHM_FFI_ERR_WRITER_DIED if the writer died mid-write leaving nothing consistent. */
shm_ffi_status shm_ffi_reader_read_timeout(const shm_ffi_reader *r, void *out, size_t size,
                                           int64_t timeout_ns, uint64_t *version);

/* As shm_ffi_reader_read_timeout, but a bounded number of attempts without sleeping. */
shm_ffi_status shm_ffi_reader_try_read(const shm_ffi_reader *r, void *out, size_t size,
                                       uint64_t *version);

/* Blocks (on a futex) until the version exceeds `since`, or SHM_FFI_ERR_TIMEOUT;
 * *version (optional) receives the new version. */
shm_ffi_status shm_ffi_reader_wait_for_update(const shm_ffi_reader *r, uint64_t since,
                                              int64_t timeout_ns, uint64_t *version);

/* Header facts, each into an optional out. */
shm_ffi_status shm_ffi_reader_version(const shm_ffi_reader *r, uint64_t *out);      /* publish counter */
shm_ffi_status shm_ffi_reader_writer_alive(const shm_ffi_reader *r, int32_t *out);  /* 1 or 0 */
shm_ffi_status shm_ffi_reader_writer_pid(const shm_ffi_reader *r, uint32_t *out);
shm_ffi_status shm_ffi_reader_writer_epoch(const shm_ffi_reader *r, uint64_t *out);
shm_ffi_status shm_ffi_reader_layout_hash(const shm_ffi_reader *r, uint64_t *out);
shm_ffi_status shm_ffi_reader_payload_size(const shm_ffi_reader *r, size_t *out);

/* Frees the reader (NULL is accepted). */
shm_ffi_status shm_ffi_reader_close(shm_ffi_reader *r);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SHM_FFI_H */
