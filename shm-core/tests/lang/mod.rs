//! Support for tests that run C, C++ and Python against Rust: the types they share, the
//! generated files, and compiling programs with the real `cc` and `c++` into a temporary
//! directory.
#![allow(dead_code)]

use shm_core::{FixedStr, FixedVec, SharedState, ShmBool};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A plain nested struct.
#[derive(SharedState, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct Vec3 {
    pub x: f64,
    pub y: f64,
    pub z: f64,
}

/// A struct of mixed small fields, with explicit padding.
#[derive(SharedState, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct Joint {
    pub angle: f32,
    pub id: u16,
    pub ok: ShmBool,
    pub _pad: [u8; 1],
}

/// Every kind the exports handle: nested structs, arrays of structs and of arrays, 128-bit
/// integers, the helper types, a stable name and `align(64)`.
#[derive(SharedState, Clone, Copy, Debug, PartialEq)]
#[repr(C, align(64))]
#[shm(name = "RobotState")]
pub struct Robot {
    pub big: u128,
    pub signed_big: i128,
    pub pose: Vec3,
    pub joints: [Joint; 3],
    pub grid: [[u16; 3]; 2],
    pub armed: ShmBool,
    pub _pad: [u8; 3],
    pub label: FixedStr<12>,
    pub samples: FixedVec<u32, 4>,
    pub path: FixedVec<Vec3, 2>,
}

impl Robot {
    /// A value with every field set to something recognizable.
    pub fn sample() -> Robot {
        let j = |i: u16| Joint {
            angle: 0.5 * i as f32,
            id: 100 + i,
            ok: if i % 2 == 0 {
                ShmBool::TRUE
            } else {
                ShmBool::FALSE
            },
            _pad: [0],
        };
        Robot {
            big: (1u128 << 100) + 7,
            signed_big: -((1i128 << 90) + 3),
            pose: Vec3 {
                x: 1.5,
                y: -2.25,
                z: 3.0,
            },
            joints: [j(0), j(1), j(2)],
            grid: [[1, 2, 3], [4, 5, 6]],
            armed: ShmBool::TRUE,
            _pad: [0; 3],
            label: FixedStr::try_from("hello, c").unwrap(),
            samples: FixedVec::from_slice(&[10, 20, 30]).unwrap(),
            path: FixedVec::from_slice(&[Vec3 {
                x: 7.0,
                y: 8.0,
                z: 9.0,
            }])
            .unwrap(),
        }
    }
}

/// The workspace's root directory.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("shmtest-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The flags every C program is built with.
pub const C_FLAGS: &[&str] = &["-std=c11", "-Wall", "-Wextra", "-Wpadded", "-Werror", "-O2"];
/// The flags every C++ program is built with.
pub const CXX_FLAGS: &[&str] = &["-std=c++17", "-Wall", "-Wextra", "-Werror", "-O2"];

/// Compiles `source` (already in `dir`) with `compiler` and `flags` plus `-I dir -I include`
/// and `extra`, into `dir/<out>`; panics with the compiler's output on failure.
pub fn compile(
    compiler: &str,
    flags: &[&str],
    dir: &Path,
    source: &str,
    out: &str,
    extra: &[&str],
) -> PathBuf {
    let exe = dir.join(out);
    let output = Command::new(compiler)
        .args(flags)
        .args(extra)
        .arg("-I")
        .arg(dir)
        .arg("-I")
        .arg(workspace().join("include"))
        .arg(dir.join(source))
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
    assert!(
        output.status.success(),
        "{compiler} {source} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    exe
}
