// shm_ffi.hpp: C++17 writers of shm-state segments, over the C ABI library (shm_ffi.h, link
// with -lshm_ffi or libshm_ffi.a).
//
//     #include "shm_ffi.hpp"
//     #include "telemetry.h"      // from shm_core::export::c_header::<Telemetry>()
//
//     auto w = shm::Writer<Telemetry>::create("/demo-telemetry", Telemetry{});   // throws shm::Error
//     Telemetry t = w.get();
//     t.tick++;
//     w.write(t);
//
// The layout (descriptor and hash) comes from the `shm::layout_of<T>` specialisation the
// generated header provides: a type without a generated header does not compile. Failures
// throw shm::FfiError, a shm::Error (from shm_state.hpp) that also carries the library's
// shm_ffi_status (`ffi_code()`); `code()` is the nearest shm_status.
#ifndef SHM_FFI_HPP
#define SHM_FFI_HPP

#include "shm_ffi.h"
#include "shm_state.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>

namespace shm {

/// A failure of the ABI library: `ffi_code()` is its status, `what()` its message.
class FfiError : public Error {
  public:
    FfiError(shm_ffi_status code, const std::string &message)
        : Error(nearest(code), message), ffi_code_(code) {}
    shm_ffi_status ffi_code() const noexcept { return ffi_code_; }

    /// The shm_status that means the same, or SHM_ERR_IO for failures only writers have.
    static shm_status nearest(shm_ffi_status code) noexcept {
        switch (code) {
        case SHM_FFI_OK: return SHM_OK;
        case SHM_FFI_ERR_NOT_FOUND: return SHM_ERR_NOT_FOUND;
        case SHM_FFI_ERR_PERMISSION_DENIED: return SHM_ERR_PERMISSION_DENIED;
        case SHM_FFI_ERR_INVALID_NAME: return SHM_ERR_INVALID_NAME;
        case SHM_FFI_ERR_NOT_A_SEGMENT: return SHM_ERR_NOT_A_SEGMENT;
        case SHM_FFI_ERR_FORMAT_VERSION: return SHM_ERR_FORMAT_VERSION;
        case SHM_FFI_ERR_TRUNCATED: return SHM_ERR_TRUNCATED;
        case SHM_FFI_ERR_CORRUPT: return SHM_ERR_CORRUPT;
        case SHM_FFI_ERR_LAYOUT_MISMATCH: return SHM_ERR_LAYOUT_MISMATCH;
        case SHM_FFI_ERR_NOT_READY: return SHM_ERR_NOT_READY;
        case SHM_FFI_ERR_TIMEOUT: return SHM_ERR_TIMEOUT;
        case SHM_FFI_ERR_WRITER_DIED: return SHM_ERR_WRITER_DIED;
        default: return SHM_ERR_IO;
        }
    }

  private:
    shm_ffi_status ffi_code_;
};

namespace detail {
inline void check(shm_ffi_status s) {
    if (s != SHM_FFI_OK) throw FfiError(s, shm_ffi_last_error());
}
} // namespace detail

/// The writer of a segment holding a `T`: holds the writer lease until destroyed (the segment
/// stays; see `remove`). Move-only; one thread at a time.
template <typename T> class Writer {
    static_assert(std::is_trivially_copyable<T>::value, "a shared type is plain bytes");
    static_assert(sizeof(T) == layout_of<T>::size, "the generated header disagrees with the type");

  public:
    /// Creates the segment `name` holding `initial`; throws (SHM_FFI_ERR_ALREADY_EXISTS) if the
    /// name is taken.
    static Writer create(const std::string &name, const T &initial) {
        shm_ffi_writer *w = nullptr;
        detail::check(shm_ffi_writer_create(name.c_str(), layout_of<T>::descriptor(), layout_of<T>::descriptor_len,
                                            layout_of<T>::hash, &initial, sizeof(T), &w));
        return Writer(w);
    }
    /// Takes over the existing segment `name` (a new epoch); throws SHM_FFI_ERR_WRITER_BUSY
    /// while another live writer holds it, SHM_FFI_ERR_LAYOUT_MISMATCH if it holds another type.
    static Writer open_writer(const std::string &name) {
        shm_ffi_writer *w = nullptr;
        detail::check(shm_ffi_writer_open(name.c_str(), layout_of<T>::descriptor(), layout_of<T>::descriptor_len,
                                          layout_of<T>::hash, &w));
        return Writer(w);
    }
    /// Creates `name` holding `initial`, or takes it over (keeping its value) if it exists.
    static Writer open_or_create(const std::string &name, const T &initial) {
        shm_ffi_writer *w = nullptr;
        detail::check(shm_ffi_writer_open_or_create(name.c_str(), layout_of<T>::descriptor(),
                                                    layout_of<T>::descriptor_len, layout_of<T>::hash, &initial,
                                                    sizeof(T), &w));
        return Writer(w);
    }

    ~Writer() { shm_ffi_writer_close(w_); }
    Writer(const Writer &) = delete;
    Writer &operator=(const Writer &) = delete;
    Writer(Writer &&other) noexcept : w_(std::exchange(other.w_, nullptr)) {}
    Writer &operator=(Writer &&other) noexcept {
        if (this != &other) {
            shm_ffi_writer_close(w_);
            w_ = std::exchange(other.w_, nullptr);
        }
        return *this;
    }

    /// Publishes `value`: readers see it from now on.
    void write(const T &value) { detail::check(shm_ffi_writer_write(w_, &value, sizeof(T))); }
    /// The newest complete value (after a takeover, the previous writer's).
    T get() const {
        T out{};
        detail::check(shm_ffi_writer_get(w_, &out, sizeof(T)));
        return out;
    }
    /// The version last written.
    std::uint64_t version() const {
        std::uint64_t v = 0;
        detail::check(shm_ffi_writer_info(w_, &v, nullptr, nullptr));
        return v;
    }
    /// 1 for the creator, one more per takeover.
    std::uint64_t epoch() const {
        std::uint64_t e = 0;
        detail::check(shm_ffi_writer_info(w_, nullptr, &e, nullptr));
        return e;
    }
    /// Whether this handle created the segment (rather than taking it over).
    bool created() const {
        std::int32_t c = 0;
        detail::check(shm_ffi_writer_info(w_, nullptr, nullptr, &c));
        return c != 0;
    }
    /// The C handle.
    shm_ffi_writer *handle() const noexcept { return w_; }

  private:
    explicit Writer(shm_ffi_writer *w) : w_(w) {}
    shm_ffi_writer *w_;
};

/// Removes the segment `name`; throws on failure (SHM_FFI_ERR_NOT_FOUND if there is none).
inline void remove(const std::string &name) { detail::check(shm_ffi_remove(name.c_str())); }

} // namespace shm

#endif // SHM_FFI_HPP
