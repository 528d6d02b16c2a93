// shm_state.hpp: a C++17 reader of shm-state segments over the header-only C reader.
//
//     #include "shm_state.hpp"
//     #include "telemetry.h"      // from shm_core::export::c_header::<Telemetry>()
//
//     shm::Reader<Telemetry> r{"/demo-telemetry"};   // throws shm::Error on failure
//     Telemetry t = r.read();
//
//     shm::StreamReader<Fill> rx{"/fills"};           // a broadcast stream's messages
//     try { Fill f = rx.recv(); } catch (const shm::Lagged &e) { /* e.missed() were lost */ }
//
//     shm::WaitSet set;                                // many readers, one descriptor (-pthread)
//     int key = set.attach(r);                         // for epoll/glib/libuv: set.fd()
//     for (const shm_waitset_event &e : set.wait(std::chrono::seconds(1))) { /* e.key, e.flags */ }
//
// The layout hash, size and descriptor come from the `shm::layout_of<T>` specialisation the
// generated header provides; using a type it does not describe fails to compile, and a segment
// holding another type throws an error naming the first differing field.
#ifndef SHM_STATE_HPP
#define SHM_STATE_HPP

#include "shm_state.h"

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <string>
#include <type_traits>
#include <vector>

namespace shm {

/// The layout of a generated type; specialised by each generated header.
template <typename T> struct layout_of;

/// A failure, with the reader's code (`code()`) and message (`what()`).
class Error : public std::runtime_error {
  public:
    Error(shm_status code, const std::string &message) : std::runtime_error(message), code_(code) {}
    shm_status code() const noexcept { return code_; }

  private:
    shm_status code_;
};

/// A stream reader fell behind: `missed()` messages were overwritten before it received them
/// (code SHM_LAGGED). The next receive returns the oldest message still available.
class Lagged : public Error {
  public:
    Lagged(std::uint64_t missed, const std::string &message) : Error(SHM_LAGGED, message), missed_(missed) {}
    std::uint64_t missed() const noexcept { return missed_; }

  private:
    std::uint64_t missed_;
};

namespace detail {
template <typename T> shm_layout layout() {
    static_assert(std::is_trivially_copyable<T>::value, "a shared type is plain bytes");
    static_assert(sizeof(T) == layout_of<T>::size, "the generated header disagrees with the type");
    static_assert(alignof(T) == layout_of<T>::align, "the generated header disagrees with the type");
    return shm_layout_make(layout_of<T>::hash, layout_of<T>::size, layout_of<T>::align, layout_of<T>::descriptor(),
                           layout_of<T>::descriptor_len);
}
} // namespace detail

/// An open segment holding a `T`. Not to be used from two threads at once.
template <typename T> class Reader {
    static_assert(std::is_trivially_copyable<T>::value, "a shared type is plain bytes");
    static_assert(sizeof(T) == layout_of<T>::size, "the generated header disagrees with the type");
    static_assert(alignof(T) == layout_of<T>::align, "the generated header disagrees with the type");

  public:
    /// Opens the segment `name`, waiting at most `ready_wait` for its creator to finish.
    explicit Reader(const std::string &name,
                    std::chrono::nanoseconds ready_wait = std::chrono::seconds(1)) {
        shm_layout l = shm_layout_make(layout_of<T>::hash, layout_of<T>::size, layout_of<T>::align,
                                       layout_of<T>::descriptor(), layout_of<T>::descriptor_len);
        if (shm_reader_open_wait(&r_, name.c_str(), l, ready_wait.count()) != SHM_OK)
            throw Error(r_.status, r_.message);
    }
    ~Reader() { shm_reader_close(&r_); }
    Reader(const Reader &) = delete;
    Reader &operator=(const Reader &) = delete;
    Reader(Reader &&other) noexcept : r_(other.r_) {
        other.r_.base = nullptr;
        other.r_.buffer = nullptr;
        other.r_.fd = -1;
    }
    Reader &operator=(Reader &&) = delete;

    /// A consistent snapshot; blocks while none is available, throws if the writer died
    /// leaving none.
    T read() {
        T out{};
        check(shm_read(&r_, &out));
        return out;
    }
    /// As `read`, into `out`.
    void read_into(T &out) { check(shm_read(&r_, &out)); }
    /// As `read`, throwing `Error` with `SHM_ERR_TIMEOUT` after `timeout`.
    T read_timeout(std::chrono::nanoseconds timeout) {
        T out{};
        check(shm_read_timeout(&r_, &out, timeout.count()));
        return out;
    }
    /// A bounded number of attempts without sleeping.
    T try_read() {
        T out{};
        check(shm_try_read(&r_, &out));
        return out;
    }
    /// The publish counter.
    std::uint64_t version() const { return shm_version(&r_); }
    /// Blocks until the version exceeds `since`; returns it, or throws on timeout.
    std::uint64_t wait_for_update(std::uint64_t since, std::chrono::nanoseconds timeout) {
        std::uint64_t v = 0;
        check(shm_wait_for_update(&r_, since, timeout.count(), &v));
        return v;
    }
    /// Whether a writer holds the segment's writer lease.
    bool writer_alive() const { return shm_writer_alive(&r_) != 0; }
    /// How the segment's stored layout relates to `T`'s: another version of an
    /// `#[shm(appendable)]` type is read as its common prefix, the rest of `T` zero.
    shm_compat compat() const { return shm_reader_compat(&r_); }
    /// The C handle.
    const shm_reader &handle() const { return r_; }

  private:
    void check(shm_status s) {
        if (s != SHM_OK) throw Error(s, r_.message);
    }
    shm_reader r_;
};

/// Where a new stream reader starts.
enum class Start {
    Newest, ///< with the next message sent after opening
    Oldest, ///< with the oldest message the stream still holds
};

/// A reader of a broadcast stream of `T` messages with its own position (`shm_stream`), or an
/// observer of a queue (`observe_queue`), which takes nothing from the queue's consumer.
/// Failures throw `Error`; a reader that fell behind gets `Lagged` once, with the exact number
/// of messages lost, and the next receive returns the oldest message still available. Move-only;
/// not to be used from two threads at once.
template <typename T> class StreamReader {
  public:
    /// Opens the broadcast stream `name`, waiting at most `ready_wait` for its creator to finish.
    explicit StreamReader(const std::string &name, Start start = Start::Newest,
                          std::chrono::nanoseconds ready_wait = std::chrono::seconds(1))
        : StreamReader(name, start, ready_wait, SHM_KIND_STREAM) {}
    /// Opens the queue `name` as an observer (see `shm_queue_observe` in shm_state.h).
    static StreamReader observe_queue(const std::string &name, Start start = Start::Newest,
                                      std::chrono::nanoseconds ready_wait = std::chrono::seconds(1)) {
        return StreamReader(name, start, ready_wait, SHM_KIND_QUEUE);
    }
    ~StreamReader() { shm_stream_close(&s_); }
    StreamReader(const StreamReader &) = delete;
    StreamReader &operator=(const StreamReader &) = delete;
    StreamReader(StreamReader &&other) noexcept : s_(other.s_) {
        other.s_.reader.base = nullptr;
        other.s_.reader.buffer = nullptr;
        other.s_.reader.fd = -1;
        other.s_.pending = 0;
    }
    StreamReader &operator=(StreamReader &&) = delete;

    /// The next message if one was sent, without waiting; `std::nullopt` if none.
    std::optional<T> try_recv() {
        T out{};
        if (!check(shm_stream_try_recv(&s_, &out, &number_))) return std::nullopt;
        return out;
    }
    /// The next message, waiting as long as it takes.
    T recv() {
        T out{};
        check(shm_stream_recv(&s_, &out, &number_));
        return out;
    }
    /// The next message, waiting at most `timeout` (then throws `Error` with SHM_ERR_TIMEOUT).
    T recv_timeout(std::chrono::nanoseconds timeout) {
        T out{};
        check(shm_stream_recv_timeout(&s_, &out, &number_, timeout.count()));
        return out;
    }
    /// The number of the message the last receive returned (messages are numbered from 1).
    std::uint64_t last_number() const noexcept { return number_; }
    /// The number of the next message this reader receives.
    std::uint64_t position() const noexcept { return shm_stream_position(&s_); }
    /// The number of messages sent so far.
    std::uint64_t sent() const { return shm_stream_sent(&s_); }
    /// The capacity in messages.
    std::uint64_t capacity() const noexcept { return shm_stream_capacity(&s_); }
    /// Queues: the number of the last message the consumer took.
    std::uint64_t consumed() const { return shm_stream_consumed(&s_); }
    /// Whether a writer holds the writer lease.
    bool writer_alive() const { return shm_stream_writer_alive(&s_) != 0; }
    /// The writer epoch: 1 for the creator, incremented by every takeover.
    std::uint64_t writer_epoch() const { return shm_stream_writer_epoch(&s_); }
    /// How the stream's stored message layout relates to `T`'s (see `Reader::compat`).
    shm_compat compat() const { return shm_stream_compat(&s_); }
    /// The C handle.
    const shm_stream &handle() const noexcept { return s_; }

  private:
    StreamReader(const std::string &name, Start start, std::chrono::nanoseconds ready_wait, std::uint32_t kind) {
        if (shm__stream_open(&s_, name.c_str(), detail::layout<T>(), kind, start == Start::Oldest,
                             ready_wait.count()) != SHM_OK)
            throw Error(s_.reader.status, s_.reader.message);
    }
    /// True for a message, false for none; throws for anything else.
    bool check(shm_status s) {
        if (s == SHM_OK) return true;
        if (s == SHM_EMPTY) return false;
        if (s == SHM_LAGGED) throw Lagged(shm_stream_missed(&s_), s_.reader.message);
        throw Error(s, s_.reader.message);
    }
    shm_stream s_;
    std::uint64_t number_ = 0;
};

/// Many readers behind one descriptor, for event loops (`shm_waitset` in shm_state.h: its
/// helper threads need `-pthread`). `fd()` becomes readable when an attached segment
/// published since the last `ready()` or its writer was found dead; `ready()` says which,
/// without blocking; `wait(timeout)` blocks until something is ready. Attached readers must
/// stay alive and in place (not moved) until detached or the set is destroyed. Not copyable,
/// not movable; one thread at a time.
class WaitSet {
  public:
    /// A new, empty set; throws `std::system_error` if it cannot be made.
    WaitSet() : ws_(shm_waitset_new()) {
        if (!ws_) throw std::system_error(errno, std::generic_category(), "shm_waitset_new");
    }
    ~WaitSet() { shm_waitset_free(ws_); }
    WaitSet(const WaitSet &) = delete;
    WaitSet &operator=(const WaitSet &) = delete;

    /// Attaches a state reader; returns its key.
    template <typename T> int attach(const Reader<T> &r) { return check(shm_waitset_attach(ws_, &r.handle())); }
    /// Attaches a stream reader (or queue observer); returns its key.
    template <typename T> int attach(const StreamReader<T> &s) {
        return check(shm_waitset_attach_stream(ws_, &s.handle()));
    }
    /// Detaches the handle `key` (then it may be destroyed).
    void detach(int key) { check(shm_waitset_detach(ws_, key)); }
    /// The descriptor to poll for reading; it stays the set's.
    int fd() const noexcept { return shm_waitset_fd(ws_); }
    /// The backend: "io_uring", "futex_waitv" or "thread".
    const char *backend() const noexcept { return shm_waitset_backend(ws_); }
    /// The handles ready now (never blocks); drains the descriptor.
    std::vector<shm_waitset_event> ready() { return collect(0, false); }
    /// As `ready`, first waiting at most `timeout` for something to be ready (empty if none).
    std::vector<shm_waitset_event> wait(std::chrono::nanoseconds timeout) { return collect(timeout.count(), true); }
    /// The C handle.
    shm_waitset *handle() noexcept { return ws_; }

  private:
    int check(int rc) {
        if (rc < 0) throw std::system_error(errno, std::generic_category(), "shm_waitset");
        return rc;
    }
    std::vector<shm_waitset_event> collect(std::int64_t timeout_ns, bool block) {
        std::vector<shm_waitset_event> out(64);
        int n = block ? shm_waitset_wait(ws_, out.data(), (int)out.size(), timeout_ns)
                      : shm_waitset_ready(ws_, out.data(), (int)out.size());
        out.resize((std::size_t)n);
        // More than fit: the descriptor was signalled again; take the rest now.
        while (n == 64) {
            std::size_t at = out.size();
            out.resize(at + 64);
            n = shm_waitset_ready(ws_, out.data() + at, 64);
            out.resize(at + (std::size_t)n);
        }
        return out;
    }
    shm_waitset *ws_;
};

} // namespace shm

#endif // SHM_STATE_HPP
