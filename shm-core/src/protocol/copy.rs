//! Bulk copies between a slot's payload words and private memory at `memcpy` speed, whose every
//! access to the slot is atomic at byte granularity at least.
//!
//! # Why inline assembly is sound here, and `copy_nonoverlapping` is not
//!
//! Inside the seqlock a reader's payload loads race with the writer's stores by design; the
//! sequence check afterwards throws a torn copy away. In Rust's memory model a racing access is
//! only defined when both sides are atomic, so a plain (or volatile) copy of shared bytes is
//! undefined behaviour even when the result is discarded. Word-by-word `AtomicU64` loads are
//! defined but cannot use the wide vector moves or `rep movsb` that make `memcpy` fast.
//!
//! An `asm!` block is opaque to the abstract machine: the reference specifies its effect only as
//! "some operations the Rust code could have performed" on the memory reachable through its
//! pointer operands. Every load and store the blocks below perform on a slot is of the same
//! bytes, through the same pointer, that a sequence of relaxed atomic byte accesses
//! (`AtomicU8::load/store(Relaxed)`) would touch, and that sequence is a valid Rust program with
//! no data race: every other access to slot memory (the writer's stores, other readers' loads)
//! is atomic too, as long as only this process's Rust code touches the slot. So within Rust
//! each block is relaxed atomic byte loads (or stores), the semantics of the per-byte atomic
//! `memcpy` proposed for C++ (P1478, `atomic_load_per_byte_memcpy`), and the seqlock's fences
//! order them as they order the word-by-word copy.
//!
//! Other processes access the same words with 8-byte atomic loads and stores (the word path,
//! and C readers, which have no bulk copy). Byte accesses racing with word accesses are a
//! mixed-size race, which neither the Rust nor the C++ memory model defines; what holds is the
//! hardware's guarantee: on x86-64 and aarch64 every vector or string move is a set of
//! single-copy-atomic accesses of at least one byte each, so every byte a racing access sees
//! is one that was written whole, and a copy torn between values fails the sequence check as a
//! torn word copy does. The fences are the same instructions the compiler emits for the word
//! path.
//!
//! The private side (the reader's destination, the writer's source) is memory nothing else
//! touches during the copy, so accessing it from assembly is an ordinary access. No block
//! leaves the two ranges, which the callers guarantee are valid, and none overlap.

use core::sync::atomic::{AtomicU64, Ordering};

/// Below this many bytes word-by-word atomic accesses, which the compiler unrolls for
/// compile-time lengths, are as fast as a vector loop and need no call.
pub(crate) const BULK_MIN: usize = 256;

/// Whether this architecture has an assembly copy; elsewhere every copy is word by word.
const HAS_BULK: bool = cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));

/// Copies the words `src` of a slot into `dst`, `src.len() * 8` bytes, as relaxed atomic loads
/// of every byte.
///
/// # Safety
/// `dst` must be valid for writes of `src.len() * 8` bytes, and must not overlap `src` or be
/// accessed by anyone else during the call.
#[inline]
pub(crate) unsafe fn load_words(src: &[AtomicU64], dst: *mut u8) {
    let bytes = src.len() * 8;
    if !HAS_BULK || bytes < BULK_MIN {
        for (i, w) in src.iter().enumerate() {
            // SAFETY: word `i < src.len()` lies within the `src.len() * 8` bytes the caller
            // says `dst` is valid for; the write tolerates any alignment.
            unsafe {
                (dst as *mut u64)
                    .add(i)
                    .write_unaligned(w.load(Ordering::Relaxed))
            };
        }
        return;
    }
    // SAFETY: `src` is `bytes` bytes of atomics, borrowed for the call; the caller guarantees
    // `dst` is `bytes` writable private bytes apart from `src`; `bytes >= BULK_MIN >= 128`.
    unsafe { arch::copy(src.as_ptr() as *const u8, dst, bytes) }
}

/// Copies `dst.len() * 8` bytes from `src` into the words `dst` of a slot, as relaxed atomic
/// stores of every byte.
///
/// # Safety
/// `src` must be valid for reads of `dst.len() * 8` initialized bytes, and must not overlap
/// `dst` or be written by anyone else during the call.
#[inline]
pub(crate) unsafe fn store_words(src: *const u8, dst: &[AtomicU64]) {
    let bytes = dst.len() * 8;
    if !HAS_BULK || bytes < BULK_MIN {
        for (i, w) in dst.iter().enumerate() {
            // SAFETY: word `i < dst.len()` lies within the `dst.len() * 8` readable bytes the
            // caller guarantees; the read tolerates any alignment.
            w.store(
                unsafe { (src as *const u64).add(i).read_unaligned() },
                Ordering::Relaxed,
            );
        }
        return;
    }
    // SAFETY: `dst` is `bytes` bytes of atomics, borrowed for the call; the caller guarantees
    // `src` is `bytes` readable private bytes apart from `dst`; `bytes >= BULK_MIN >= 128`.
    // Storing through a shared reference to atomics is what atomics allow (interior
    // mutability), so the cast to `*mut u8` does not write through a read-only borrow.
    unsafe { arch::copy(src, dst.as_ptr() as *mut u8, bytes) }
}

#[cfg(target_arch = "x86_64")]
mod arch {
    use core::arch::asm;

    /// From this size `rep movsb` (fast on every CPU with ERMSB/FSRM, which is what `memcpy`
    /// switches to at the same size) beats the vector loop.
    const REP_MIN: usize = 2048;

    /// Copies `n` bytes from `src` to `dst` with vector moves or `rep movsb`.
    ///
    /// # Safety
    /// `src` valid for reads and `dst` for writes of `n >= 128` bytes; the ranges do not
    /// overlap; the side that is not a slot is private to the caller during the call.
    #[inline]
    pub(super) unsafe fn copy(src: *const u8, dst: *mut u8, n: usize) {
        if n >= REP_MIN && std::is_x86_feature_detected!("ermsb") {
            // SAFETY: as the caller guarantees.
            unsafe { rep_movsb(src, dst, n) }
        } else if std::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 is available (checked above); the ranges as the caller guarantees,
            // `n >= 128`.
            unsafe { vector_avx2(src, dst, n) }
        } else {
            // SAFETY: as the caller guarantees, `n >= 128 >= 64`; SSE2 is baseline on x86-64.
            unsafe { vector_sse2(src, dst, n) }
        }
    }

    /// `rep movsb`: the CPU's own copy microcode.
    ///
    /// # Safety
    /// `src` valid for reads and `dst` for writes of `n` bytes (any `n`); the ranges do not
    /// overlap; the side that is not a slot is private to the caller during the call.
    #[inline]
    pub(super) unsafe fn rep_movsb(src: *const u8, dst: *mut u8, n: usize) {
        // SAFETY: (and why this is not a data race) the instruction reads exactly bytes
        // `src..src + n` and writes exactly `dst..dst + n` (the direction flag is clear, as
        // the inline-assembly rules guarantee on entry), which the caller guarantees are valid
        // and disjoint. Byte moves need no alignment. Its accesses to the slot side are
        // atomic at byte granularity at least (see the module documentation); the
        // private side is the caller's alone. It touches no stack and leaves flags alone.
        unsafe {
            asm!(
                "rep movsb",
                inout("rcx") n => _,
                inout("rsi") src => _,
                inout("rdi") dst => _,
                options(nostack, preserves_flags)
            );
        }
    }

    /// A loop of four 16-byte unaligned moves per 64 bytes, then the last 64 bytes (which may
    /// overlap the loop's last ones).
    ///
    /// # Safety
    /// As [`copy`], with `n >= 64`.
    #[inline]
    pub(super) unsafe fn vector_sse2(src: *const u8, dst: *mut u8, n: usize) {
        // SAFETY: (and why this is not a data race) the loop reads bytes `src + k .. src + k +
        // 64` and writes `dst + k ..` for `k = 0, 64, ...` while `k + 64 <= n`, then bytes
        // `n - 64 .. n`: never outside the `n >= 64` bytes the caller guarantees valid and
        // disjoint. `movdqu` takes any alignment. The slot side is accessed as relaxed atomic
        // bytes (module documentation); a destination byte written twice by the overlapping
        // tail gets the same value. Only the declared registers and flags change; no stack.
        unsafe {
            asm!(
                "lea {end}, [{src} + {n} - 64]",
                "2:",
                "cmp {src}, {end}",
                "jae 3f",
                "movdqu xmm0, [{src}]",
                "movdqu xmm1, [{src} + 16]",
                "movdqu xmm2, [{src} + 32]",
                "movdqu xmm3, [{src} + 48]",
                "movdqu [{dst}], xmm0",
                "movdqu [{dst} + 16], xmm1",
                "movdqu [{dst} + 32], xmm2",
                "movdqu [{dst} + 48], xmm3",
                "add {src}, 64",
                "add {dst}, 64",
                "jmp 2b",
                "3:",
                // The last 64 bytes: `end` is `src_start + n - 64`; move `dst` by the same.
                "sub {dst}, {src}",
                "add {dst}, {end}",
                "movdqu xmm0, [{end}]",
                "movdqu xmm1, [{end} + 16]",
                "movdqu xmm2, [{end} + 32]",
                "movdqu xmm3, [{end} + 48]",
                "movdqu [{dst}], xmm0",
                "movdqu [{dst} + 16], xmm1",
                "movdqu [{dst} + 32], xmm2",
                "movdqu [{dst} + 48], xmm3",
                src = inout(reg) src => _,
                dst = inout(reg) dst => _,
                n = in(reg) n,
                end = out(reg) _,
                out("xmm0") _,
                out("xmm1") _,
                out("xmm2") _,
                out("xmm3") _,
                options(nostack)
            );
        }
    }

    /// As [`vector_sse2`] with four 32-byte moves per 128 bytes.
    ///
    /// # Safety
    /// As [`copy`], with `n >= 128`, on a CPU with AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn vector_avx2(src: *const u8, dst: *mut u8, n: usize) {
        // SAFETY: (and why this is not a data race) as in `vector_sse2`, with 128-byte steps
        // and a last, possibly overlapping, 128 bytes: never outside the `n >= 128` valid,
        // disjoint bytes. `vmovdqu` takes any alignment; AVX2 is enabled for this function and
        // checked by the caller. `vzeroupper` avoids the SSE transition penalty afterwards.
        unsafe {
            asm!(
                "lea {end}, [{src} + {n} - 128]",
                "2:",
                "cmp {src}, {end}",
                "jae 3f",
                "vmovdqu ymm0, [{src}]",
                "vmovdqu ymm1, [{src} + 32]",
                "vmovdqu ymm2, [{src} + 64]",
                "vmovdqu ymm3, [{src} + 96]",
                "vmovdqu [{dst}], ymm0",
                "vmovdqu [{dst} + 32], ymm1",
                "vmovdqu [{dst} + 64], ymm2",
                "vmovdqu [{dst} + 96], ymm3",
                "add {src}, 128",
                "add {dst}, 128",
                "jmp 2b",
                "3:",
                "sub {dst}, {src}",
                "add {dst}, {end}",
                "vmovdqu ymm0, [{end}]",
                "vmovdqu ymm1, [{end} + 32]",
                "vmovdqu ymm2, [{end} + 64]",
                "vmovdqu ymm3, [{end} + 96]",
                "vmovdqu [{dst}], ymm0",
                "vmovdqu [{dst} + 32], ymm1",
                "vmovdqu [{dst} + 64], ymm2",
                "vmovdqu [{dst} + 96], ymm3",
                "vzeroupper",
                src = inout(reg) src => _,
                dst = inout(reg) dst => _,
                n = in(reg) n,
                end = out(reg) _,
                out("ymm0") _,
                out("ymm1") _,
                out("ymm2") _,
                out("ymm3") _,
                options(nostack)
            );
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod arch {
    use core::arch::asm;

    /// Copies `n` bytes from `src` to `dst` with 64-byte steps of `ldp`/`stp` pairs of 128-bit
    /// registers, then the last 64 bytes.
    ///
    /// # Safety
    /// `src` valid for reads and `dst` for writes of `n >= 64` bytes; the ranges do not
    /// overlap; the side that is not a slot is private to the caller during the call.
    #[inline]
    pub(super) unsafe fn copy(src: *const u8, dst: *mut u8, n: usize) {
        // SAFETY: (and why this is not a data race) reads bytes `src + k .. src + k + 64` and
        // writes `dst + k ..` while `k + 64 <= n`, then bytes `n - 64 .. n`: never outside the
        // valid, disjoint ranges. `ldp`/`stp` of q registers take any alignment on normal
        // memory. The slot side is accessed atomically at byte granularity at least (module
        // documentation).
        unsafe {
            asm!(
                "add {end}, {src}, {n}",
                "sub {end}, {end}, #64",
                "2:",
                "cmp {src}, {end}",
                "b.hs 3f",
                "ldp q0, q1, [{src}]",
                "ldp q2, q3, [{src}, #32]",
                "stp q0, q1, [{dst}]",
                "stp q2, q3, [{dst}, #32]",
                "add {src}, {src}, #64",
                "add {dst}, {dst}, #64",
                "b 2b",
                "3:",
                "sub {dst}, {dst}, {src}",
                "add {dst}, {dst}, {end}",
                "ldp q0, q1, [{end}]",
                "ldp q2, q3, [{end}, #32]",
                "stp q0, q1, [{dst}]",
                "stp q2, q3, [{dst}, #32]",
                src = inout(reg) src => _,
                dst = inout(reg) dst => _,
                n = in(reg) n,
                end = out(reg) _,
                out("v0") _,
                out("v1") _,
                out("v2") _,
                out("v3") _,
                options(nostack)
            );
        }
    }
}

/// Other architectures have no assembly copy: `HAS_BULK` is false and every copy takes the
/// word path, so this is never called.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
mod arch {
    /// # Safety
    /// Never called (see above).
    pub(super) unsafe fn copy(_src: *const u8, _dst: *mut u8, _n: usize) {
        unreachable!("callers use the word path on this architecture")
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// Every length from 0 to 1 KiB (in words) and a few large ones, at every destination
    /// misalignment: exactly the bytes are copied, nothing outside them is touched.
    #[test]
    fn copies_exactly_the_words_in_both_directions() {
        let lens = (0..=128).chain([255, 256, 257, 511, 512, 8191, 8192, 131_072 + 3]);
        for words in lens {
            let src: Vec<AtomicU64> = (0..words as u64)
                .map(|i| AtomicU64::new(i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x0102))
                .collect();
            let expected: Vec<u8> = src
                .iter()
                .flat_map(|w| w.load(Ordering::Relaxed).to_ne_bytes())
                .collect();
            for skew in [0, 1, 7, 8, 13] {
                let mut buf = vec![0xeeu8; words * 8 + 32];
                // SAFETY: `buf` has `skew + words * 8 + (32 - skew)` bytes, private to the test.
                unsafe { load_words(&src, buf.as_mut_ptr().add(skew)) };
                assert!(
                    buf[..skew].iter().all(|&b| b == 0xee),
                    "{words} words, skew {skew}"
                );
                assert_eq!(&buf[skew..skew + words * 8], &expected[..]);
                assert!(buf[skew + words * 8..].iter().all(|&b| b == 0xee));

                let slot: Vec<AtomicU64> = (0..words + 2).map(|_| AtomicU64::new(!0)).collect();
                // SAFETY: `buf[skew..]` holds `words * 8` initialized bytes, private.
                unsafe { store_words(buf.as_ptr().add(skew), &slot[1..=words]) };
                let got: Vec<u64> = slot.iter().map(|w| w.load(Ordering::Relaxed)).collect();
                assert_eq!(got[0], !0);
                assert_eq!(got[words + 1], !0);
                let want: Vec<u64> = src.iter().map(|w| w.load(Ordering::Relaxed)).collect();
                assert_eq!(&got[1..=words], &want[..], "{words} words, skew {skew}");
            }
        }
    }

    /// Each x86-64 routine on its own, whichever `copy` would pick on this CPU: every length
    /// from its minimum to 1 KiB and a few large ones, at every relative misalignment.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn every_x86_64_routine_copies_exactly_its_bytes() {
        type Routine = unsafe fn(*const u8, *mut u8, usize);
        let mut routines: Vec<(&str, Routine, usize)> = vec![
            ("rep movsb", arch::rep_movsb, 1),
            ("sse2", arch::vector_sse2, 64),
        ];
        if std::is_x86_feature_detected!("avx2") {
            routines.push(("avx2", arch::vector_avx2, 128));
        }
        let src: Vec<u8> = (0..70_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        for (name, copy, min) in routines {
            for n in (min..=1024).chain([4095, 4096, 65_536 + 5]) {
                for (s, d) in [(0, 0), (1, 0), (0, 3), (5, 9)] {
                    let mut dst = vec![0u8; n + 32];
                    // SAFETY: `src[s..s + n]` and `dst[d..d + n]` are in bounds (`s, d < 16`,
                    // `n + 16 <= src.len()`), distinct allocations; `n >= min`; AVX2 is only
                    // run when detected.
                    unsafe { copy(src.as_ptr().add(s), dst.as_mut_ptr().add(d), n) };
                    assert_eq!(
                        &dst[d..d + n],
                        &src[s..s + n],
                        "{name}, {n} bytes, skew {s}/{d}"
                    );
                    assert!(
                        dst[..d].iter().chain(&dst[d + n..]).all(|&b| b == 0),
                        "{name}: {n}"
                    );
                }
            }
        }
    }
}
