// shm_state.hpp: a C++17 reader of shm-state segments over the header-only C reader.
//
//     #include "shm_state.hpp"
//     #include "telemetry.h"      // from shm_core::export::c_header::<Telemetry>()
//
//     shm::Reader<Telemetry> r{"/demo-telemetry"};   // throws shm::Error on failure
//     Telemetry t = r.read();
//
// The layout hash, size and descriptor come from the `shm::layout_of<T>` specialisation the
// generated header provides; using a type it does not describe fails to compile, and a segment
// holding another type throws an error naming the first differing field.
#ifndef SHM_STATE_HPP
#define SHM_STATE_HPP

#include "shm_state.h"

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

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
    /// The C handle.
    const shm_reader &handle() const { return r_; }

  private:
    void check(shm_status s) {
        if (s != SHM_OK) throw Error(s, r_.message);
    }
    shm_reader r_;
};

} // namespace shm

#endif // SHM_STATE_HPP
