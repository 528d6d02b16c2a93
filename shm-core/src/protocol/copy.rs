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
/// compile-time lengths, are as fast as a vector loop and need no call (except the sizes
/// `arch::SMALL` names, which inline vector moves copy).
pub(crate) const BULK_MIN: usize = 256;

/// Whether this architecture has an assembly copy; elsewhere every copy is word by word.
const HAS_BULK: bool = cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));

/// Copies the words `src` of a slot into `dst`, `src.len() * 8` bytes, as relaxed atomic loads
/// of every byte.
///
/// # Safety
/// `dst` must be valid for writes of `src.len() * 8` bytes, and must not overlap `src` or be
/// accessed by anyone else during the call.
#[inline(always)]
pub(crate) unsafe fn load_words(src: &[AtomicU64], dst: *mut u8) {
    let bytes = src.len() * 8;
    if (arch::SMALL.0..=arch::SMALL.1).contains(&bytes) {
        // SAFETY: `src` is `bytes` bytes of atomics, borrowed for the call; the caller
        // guarantees `dst` is `bytes` writable private bytes apart from `src`; `bytes` is in
        // the routine's range (checked).
        unsafe { arch::copy_small(src.as_ptr() as *const u8, dst, bytes) };
        return;
    }
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
    // `dst` is `bytes` writable private bytes apart from `src`; `bytes >= BULK_MIN`.
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
    // `src` is `bytes` readable private bytes apart from `dst`; `bytes >= BULK_MIN`.
    // Storing through a shared reference to atomics is what atomics allow (interior
    // mutability), so the cast to `*mut u8` does not write through a read-only borrow.
    unsafe { arch::copy(src, dst.as_ptr() as *mut u8, bytes) }
}

pub(crate) use arch::{describe, routines};

#[cfg(target_arch = "x86_64")]
mod arch {
    use core::arch::asm;
    use core::sync::atomic::{AtomicUsize, Ordering};

    /// A bulk copy routine: `(src, dst, n)`, with the contract of [`copy`] and an `n` at least
    /// the routine's minimum.
    pub(crate) type Routine = unsafe fn(*const u8, *mut u8, usize);

    /// The vector loop a CPU uses below its `rep movsb` threshold.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(super) enum Vector {
        Sse2 = 1,
        Avx2 = 2,
    }

    /// Which routine copies how much on this CPU: `rep movsb` from `rep_min` bytes, `vector`
    /// below.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(super) struct Plan {
        pub(super) rep_min: usize,
        pub(super) vector: Vector,
    }

    /// Never `rep movsb`: a CPU without ERMSB.
    pub(super) const NEVER: usize = usize::MAX >> 2;

    /// The plan of this CPU, `rep_min << 2 | vector`; 0 until [`plan`] first chose it.
    static PLAN: AtomicUsize = AtomicUsize::new(0);

    /// This CPU's plan: read from the CPU once (vendor and features), then one relaxed load.
    #[inline(always)]
    fn plan() -> Plan {
        let mut packed = PLAN.load(Ordering::Relaxed);
        if packed == 0 {
            packed = choose_plan();
        }
        let vector = match packed & 3 {
            2 => Vector::Avx2,
            _ => Vector::Sse2,
        };
        Plan {
            rep_min: packed >> 2,
            vector,
        }
    }

    /// Whether the CPU is AMD's (or Hygon's, a Zen licensee), from CPUID leaf 0's vendor string.
    fn is_amd() -> bool {
        #[allow(unused_unsafe)] // `__cpuid` is a safe function in newer Rust versions
        // SAFETY: CPUID leaf 0 exists on every x86-64 CPU; the instruction only reads.
        let leaf = unsafe { core::arch::x86_64::__cpuid(0) };
        let mut vendor = [0u8; 12];
        vendor[..4].copy_from_slice(&leaf.ebx.to_le_bytes());
        vendor[4..8].copy_from_slice(&leaf.edx.to_le_bytes());
        vendor[8..].copy_from_slice(&leaf.ecx.to_le_bytes());
        &vendor == b"AuthenticAMD" || &vendor == b"HygonGenuine"
    }

    /// Chooses the plan of this CPU (see the thresholds below), stores it in [`PLAN`] and
    /// returns it packed. Threads that race here all choose the same.
    #[cold]
    fn choose_plan() -> usize {
        let plan = plan_for(
            is_amd(),
            std::is_x86_feature_detected!("ermsb"),
            std::is_x86_feature_detected!("avx2"),
        );
        let packed = plan.rep_min << 2 | plan.vector as usize;
        PLAN.store(packed, Ordering::Relaxed);
        packed
    }

    /// The plan for a CPU of this vendor with these features.
    ///
    /// The thresholds were measured with `cargo bench -p shm-core --bench read_write -- copy`
    /// and an interleaved run of every routine against glibc 2.36's `memcpy`, from a shared
    /// mapping (at a cache line, as a slot's payload) into private memory at destination
    /// offsets 0, 1 and 16 modulo 64, from 256 bytes to 16 MiB:
    ///
    /// - AMD, on an EPYC of the Zen 4 generation (AVX-512F, ERMS, FSRM): the AVX2 loop, with
    ///   its destination aligned, was as fast as `memcpy` or faster at every size from 256
    ///   bytes to 16 KiB (4 KiB: 36 ns against 42-45 ns for `memcpy` and `rep movsb`; 8 KiB:
    ///   70 ns against 77-82 ns; 16 KiB: 140-145 ns against 155-160 ns), while `rep movsb`
    ///   cost 10-15 ns more than either up to 1 KiB and only matched `memcpy` (which switches
    ///   to it) from 3 KiB. From 32 KiB, the L1 data cache, which routine won depended on the
    ///   destination's alignment (10% either way), and the comparison harness's 64 KiB read
    ///   was 2% slower with the AVX2 loop than with `rep movsb`: there `rep movsb`, the CPU's
    ///   own copy, is used. An AVX-512 loop (four 64-byte moves in `zmm16`-`zmm19`, measured
    ///   the same way) was never faster than the AVX2 one (Zen 4 executes 512-bit moves as
    ///   two halves) and up to 8% slower with an unaligned destination, so there is none here
    ///   (it would also need Rust 1.89 for the `avx512f` target feature, above this crate's
    ///   minimum).
    /// - Intel (and other vendors): not measured here. `rep movsb` from 2 KiB, where glibc's
    ///   `memcpy` switches to it on CPUs with ERMSB, and the AVX2 loop below.
    pub(super) fn plan_for(amd: bool, ermsb: bool, avx2: bool) -> Plan {
        let rep_min = |min| if ermsb { min } else { NEVER };
        Plan {
            rep_min: rep_min(if amd { AMD_REP_MIN } else { REP_MIN }),
            vector: if avx2 { Vector::Avx2 } else { Vector::Sse2 },
        }
    }

    /// From this size `rep movsb` (fast on every CPU with ERMSB/FSRM, which is what `memcpy`
    /// switches to at the same size) is used instead of the vector loop: Intel and other
    /// vendors (see [`plan_for`]).
    const REP_MIN: usize = 2048;

    /// The same threshold on AMD CPUs: the aligned AVX2 loop is as fast or faster below here
    /// (see [`plan_for`]).
    pub(super) const AMD_REP_MIN: usize = 32 * 1024;

    /// Copies `n` bytes from `src` to `dst` with vector moves or `rep movsb`, as this CPU's
    /// plan says.
    ///
    /// # Safety
    /// `src` valid for reads and `dst` for writes of `n >= 256` bytes; the ranges do not
    /// overlap; the side that is not a slot is private to the caller during the call.
    #[inline]
    pub(crate) unsafe fn copy(src: *const u8, dst: *mut u8, n: usize) {
        let plan = plan();
        if n >= plan.rep_min {
            // SAFETY: as the caller guarantees; the plan has a threshold only with ERMSB.
            unsafe { rep_movsb(src, dst, n) }
        } else {
            match plan.vector {
                // SAFETY: the plan picks AVX2 only where it is detected; the ranges as the
                // caller guarantees, `n >= 256 >= 128`.
                Vector::Avx2 => unsafe { vector_avx2(src, dst, n) },
                // SAFETY: as the caller guarantees, `n >= 256 >= 64`; SSE2 is baseline on
                // x86-64.
                Vector::Sse2 => unsafe { vector_sse2(src, dst, n) },
            }
        }
    }

    /// Every routine this CPU can run, with its smallest `n`, and `copy` itself as "chosen"
    /// (for the tests and the copy benchmark).
    pub(crate) fn routines() -> Vec<(&'static str, Routine, usize)> {
        let mut all: Vec<(&'static str, Routine, usize)> = vec![
            ("chosen", copy, 256),
            ("rep_movsb", rep_movsb, 0),
            ("sse2", vector_sse2, 64),
        ];
        if std::is_x86_feature_detected!("avx2") {
            all.push(("avx2", vector_avx2, 128));
        }
        all
    }

    /// The plan of this CPU, in words (for the copy benchmark's output).
    pub(crate) fn describe() -> String {
        let plan = plan();
        let vendor = if is_amd() { "AMD" } else { "not AMD" };
        if plan.rep_min == NEVER {
            format!("{vendor}: {:?} loop at every size", plan.vector)
        } else {
            format!(
                "{vendor}: {:?} loop below {} bytes, rep movsb from there",
                plan.vector, plan.rep_min
            )
        }
    }

    /// Smallest and largest byte counts [`copy_small`] takes.
    pub(super) const SMALL: (usize, usize) = (16, 128);

    /// Copies `n` bytes, `16 <= n <= 128`, with two, four or eight 16-byte moves (the last
    /// ones may overlap the first): what the word loop's eight loads and stores of 64 bytes
    /// take in four of each. SSE2 is baseline, so this needs no feature check and inlines.
    ///
    /// Measured on a Zen 4 EPYC, a whole typed read (against a plain inlined copy: 1.54 ns
    /// for 64 bytes, 1.64 ns for 96, 2.17 ns for 128): 64 bytes in 2.75 ns with this, 3.25 ns
    /// with two 32-byte AVX2 moves (a call to a function compiled for AVX2 after the feature
    /// check, and `vzeroupper`), 3.5 ns word by word; 96 bytes in 3.7 ns against 4.5 ns word
    /// by word, 128 bytes in 3.7 ns against 5.3 ns.
    ///
    /// # Safety
    /// As [`copy`], with `16 <= n <= 128`.
    #[inline(always)]
    pub(super) unsafe fn copy_small(src: *const u8, dst: *mut u8, n: usize) {
        if n <= 32 {
            // SAFETY: (and why this is not a data race) reads bytes `0..16` and `n - 16..n`
            // of `src`, writes the same of `dst`: within the `16 <= n` valid, disjoint bytes.
            // `movdqu` takes any alignment; the slot side is accessed as relaxed atomic bytes
            // (module documentation); a destination byte written twice gets the same value.
            unsafe {
                asm!(
                    "movdqu {a}, [{src}]",
                    "movdqu {b}, [{src} + {n} - 16]",
                    "movdqu [{dst}], {a}",
                    "movdqu [{dst} + {n} - 16], {b}",
                    src = in(reg) src,
                    dst = in(reg) dst,
                    n = in(reg) n,
                    a = out(xmm_reg) _,
                    b = out(xmm_reg) _,
                    options(nostack, preserves_flags)
                );
            }
        } else if n <= 64 {
            // SAFETY: as above with bytes `0..32` and `n - 32..n`, `32 < n <= 64`.
            unsafe {
                asm!(
                    "movdqu {a}, [{src}]",
                    "movdqu {b}, [{src} + 16]",
                    "movdqu {c}, [{src} + {n} - 32]",
                    "movdqu {d}, [{src} + {n} - 16]",
                    "movdqu [{dst}], {a}",
                    "movdqu [{dst} + 16], {b}",
                    "movdqu [{dst} + {n} - 32], {c}",
                    "movdqu [{dst} + {n} - 16], {d}",
                    src = in(reg) src,
                    dst = in(reg) dst,
                    n = in(reg) n,
                    a = out(xmm_reg) _,
                    b = out(xmm_reg) _,
                    c = out(xmm_reg) _,
                    d = out(xmm_reg) _,
                    options(nostack, preserves_flags)
                );
            }
        } else {
            // SAFETY: as above with bytes `0..64` and `n - 64..n`, `64 < n <= 128`.
            unsafe {
                asm!(
                    "movdqu {a}, [{src}]",
                    "movdqu {b}, [{src} + 16]",
                    "movdqu {c}, [{src} + 32]",
                    "movdqu {d}, [{src} + 48]",
                    "movdqu {e}, [{src} + {n} - 64]",
                    "movdqu {f}, [{src} + {n} - 48]",
                    "movdqu {g}, [{src} + {n} - 32]",
                    "movdqu {h}, [{src} + {n} - 16]",
                    "movdqu [{dst}], {a}",
                    "movdqu [{dst} + 16], {b}",
                    "movdqu [{dst} + 32], {c}",
                    "movdqu [{dst} + 48], {d}",
                    "movdqu [{dst} + {n} - 64], {e}",
                    "movdqu [{dst} + {n} - 48], {f}",
                    "movdqu [{dst} + {n} - 32], {g}",
                    "movdqu [{dst} + {n} - 16], {h}",
                    src = in(reg) src,
                    dst = in(reg) dst,
                    n = in(reg) n,
                    a = out(xmm_reg) _,
                    b = out(xmm_reg) _,
                    c = out(xmm_reg) _,
                    d = out(xmm_reg) _,
                    e = out(xmm_reg) _,
                    f = out(xmm_reg) _,
                    g = out(xmm_reg) _,
                    h = out(xmm_reg) _,
                    options(nostack, preserves_flags)
                );
            }
        }
    }

    /// `rep movsb`: the CPU's own copy microcode.
    ///
    /// # Safety
    /// `src` valid for reads and `dst` for writes of `n` bytes (any `n`); the ranges do not
    /// overlap; the side that is not a slot is private to the caller during the call.
    #[inline]
    pub(crate) unsafe fn rep_movsb(src: *const u8, dst: *mut u8, n: usize) {
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
    pub(crate) unsafe fn vector_sse2(src: *const u8, dst: *mut u8, n: usize) {
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

    /// As [`vector_sse2`] with four 32-byte moves per 128 bytes, and the destination aligned
    /// first: the first 64 bytes are moved unaligned, then the copy continues from the first
    /// cache-line boundary of `dst` after them (at most 63 bytes on, moving some bytes
    /// twice), so that no store of the loop splits a cache line. Unaligned stores cost the
    /// loop 10-15% from 6 KiB on a Zen 4 EPYC, where `rep movsb` aligns by itself.
    ///
    /// # Safety
    /// As [`copy`], with `n >= 128`, on a CPU with AVX2.
    #[target_feature(enable = "avx2")]
    #[inline(never)]
    pub(crate) unsafe fn vector_avx2(src: *const u8, dst: *mut u8, n: usize) {
        // SAFETY: (and why this is not a data race) bytes `0..64` are moved first; then with
        // `skip = (-dst) & 63 < 64`, bytes `skip + k .. skip + k + 128` for `k = 0, 128, ...`
        // while they start before `n - 128`, then bytes `n - 128 .. n`: never outside the
        // `n >= 128` valid, disjoint bytes, and no gap (if the loop does not run, `n - 128 <=
        // skip < 64`, inside the head). `vmovdqu` takes any alignment, `vmovdqa` is only used
        // on `dst` moved to a cache line; AVX2 is enabled for this function and checked by the
        // caller. The slot side is accessed as relaxed atomic bytes (module documentation); a
        // destination byte written twice (the head, the last 128 bytes) is written from loads
        // between the same fences, and a copy torn by a racing writer is refused by the
        // sequence check either way. `vzeroupper` avoids the SSE transition penalty
        // afterwards; it zeroes the upper halves of every vector register, which hold nothing
        // of the caller's: the function is never inlined, and vector registers do not survive
        // a call.
        unsafe {
            asm!(
                "vmovdqu ymm0, [{src}]",
                "vmovdqu ymm1, [{src} + 32]",
                "vmovdqu [{dst}], ymm0",
                "vmovdqu [{dst} + 32], ymm1",
                // `end` = the last 128 bytes of the source, kept for the tail.
                "lea {end}, [{src} + {n} - 128]",
                // Move both pointers on by `(-dst) & 63`, to `dst`'s next cache line.
                "mov {skip}, {dst}",
                "neg {skip}",
                "and {skip}, 63",
                "add {src}, {skip}",
                "add {dst}, {skip}",
                "2:",
                "cmp {src}, {end}",
                "jae 3f",
                "vmovdqu ymm0, [{src}]",
                "vmovdqu ymm1, [{src} + 32]",
                "vmovdqu ymm2, [{src} + 64]",
                "vmovdqu ymm3, [{src} + 96]",
                "vmovdqa [{dst}], ymm0",
                "vmovdqa [{dst} + 32], ymm1",
                "vmovdqa [{dst} + 64], ymm2",
                "vmovdqa [{dst} + 96], ymm3",
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
                skip = out(reg) _,
                out("ymm0") _,
                out("ymm1") _,
                out("ymm2") _,
                out("ymm3") _,
                // `vzeroupper` clears the upper halves of every other vector register too.
                out("ymm4") _,
                out("ymm5") _,
                out("ymm6") _,
                out("ymm7") _,
                out("ymm8") _,
                out("ymm9") _,
                out("ymm10") _,
                out("ymm11") _,
                out("ymm12") _,
                out("ymm13") _,
                out("ymm14") _,
                out("ymm15") _,
                options(nostack)
            );
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod arch {
    use core::arch::asm;

    /// A bulk copy routine: `(src, dst, n)`, with the contract of [`copy`].
    pub(crate) type Routine = unsafe fn(*const u8, *mut u8, usize);

    /// The one routine, as "chosen" (for the tests and the copy benchmark).
    pub(crate) fn routines() -> Vec<(&'static str, Routine, usize)> {
        vec![("chosen", copy, 64)]
    }

    /// The plan, in words (for the copy benchmark's output).
    pub(crate) fn describe() -> String {
        "aarch64: ldp/stp loop at every size".to_string()
    }

    /// No small-copy routine here (an empty range): small payloads are copied word by word.
    pub(super) const SMALL: (usize, usize) = (usize::MAX, 0);

    /// # Safety
    /// Never called (`SMALL` is empty).
    pub(super) unsafe fn copy_small(_src: *const u8, _dst: *mut u8, _n: usize) {
        unreachable!("no size is in the empty small range")
    }

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
    /// A bulk copy routine (there is none here).
    pub(crate) type Routine = unsafe fn(*const u8, *mut u8, usize);

    /// No routines.
    pub(crate) fn routines() -> Vec<(&'static str, Routine, usize)> {
        Vec::new()
    }

    /// The plan, in words.
    pub(crate) fn describe() -> String {
        "word by word at every size".to_string()
    }

    /// No small-copy routine either (an empty range).
    pub(super) const SMALL: (usize, usize) = (usize::MAX, 0);

    /// # Safety
    /// Never called (`SMALL` is empty).
    pub(super) unsafe fn copy_small(_src: *const u8, _dst: *mut u8, _n: usize) {
        unreachable!("no size is in the empty small range")
    }

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

    /// Each x86-64 routine on its own, whichever `copy` would pick on this CPU, and `copy`
    /// itself: every length from its minimum to 1 KiB, every length around each threshold any
    /// CPU's plan uses and a few large ones, at several relative misalignments. The small
    /// routines at every length they take.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn every_x86_64_routine_copies_exactly_its_bytes() {
        let mut all = arch::routines();
        all.push(("small sse2", arch::copy_small, 16));
        let names: Vec<&str> = all.iter().map(|r| r.0).collect();
        for name in ["chosen", "rep_movsb", "sse2"] {
            assert!(names.contains(&name), "{name} missing from {names:?}");
        }
        let thresholds = [2048, arch::AMD_REP_MIN, 4096, 8192, 16384, 32768];
        let large = thresholds
            .iter()
            .flat_map(|&t| [t - 1, t, t + 1, t + 63, t + 64])
            .chain([65_536 + 5, 131_072 + 3]);
        let src: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        for (name, copy, min) in all {
            let max = match name {
                "small sse2" => arch::SMALL.1,
                _ => usize::MAX,
            };
            let lens: Vec<usize> = (min..=1024).chain(large.clone()).collect();
            for n in lens.into_iter().filter(|&n| n <= max) {
                for (s, d) in [(0, 0), (1, 0), (0, 3), (5, 9), (63, 1), (32, 0), (8, 40)] {
                    let mut dst = vec![0u8; n + 128];
                    // SAFETY: `src[s..s + n]` and `dst[d..d + n]` are in bounds (`s, d < 64`,
                    // `n + 64 <= src.len()`), distinct allocations; `min <= n <= max`; the
                    // AVX routines are only listed when detected.
                    unsafe { copy(src.as_ptr().add(s), dst.as_mut_ptr().add(d), n) };
                    assert_eq!(
                        &dst[d..d + n],
                        &src[s..s + n],
                        "{name}, {n} bytes, skew {s}/{d}"
                    );
                    assert!(
                        dst[..d].iter().chain(&dst[d + n..]).all(|&b| b == 0),
                        "{name}: {n} bytes, skew {s}/{d}: wrote outside its range"
                    );
                }
            }
        }
    }

    /// The per-vendor plans: Intel (and other vendors) keep `rep movsb` from 2 KiB and the
    /// AVX2 loop; AMD uses the AVX2 loop up to its own measured threshold;
    /// no CPU without ERMSB uses `rep movsb`, and no loop is picked that the CPU lacks.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn plans_follow_vendor_and_features() {
        use arch::{plan_for, Vector, NEVER};
        let intel = plan_for(false, true, true);
        assert_eq!((intel.rep_min, intel.vector), (2048, Vector::Avx2));
        let amd = plan_for(true, true, true);
        assert_eq!((amd.rep_min, amd.vector), (arch::AMD_REP_MIN, Vector::Avx2));
        for amd in [false, true] {
            assert_eq!(plan_for(amd, false, true).rep_min, NEVER);
            assert_eq!(plan_for(amd, true, false).vector, Vector::Sse2);
            assert_eq!(plan_for(amd, true, true).vector, Vector::Avx2);
        }
    }
}
