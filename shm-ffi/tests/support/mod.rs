//! Building C and C++ programs against this crate's library, from the same cargo build as the
//! test: `shm_ffi.h` and `libshm_ffi.{so,a}` next to the test binary's directory.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The directory holding this build's libraries, found from the test binary
/// (`target/<profile>/deps/<test>`), so that it follows `--release` and `CARGO_TARGET_DIR`:
/// `deps/` itself, where `cargo test` leaves them, or `target/<profile>`, where `cargo build`
/// copies them.
pub fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    [deps, deps.parent().unwrap()]
        .iter()
        .find(|d| d.join("libshm_ffi.so").exists() && d.join("libshm_ffi.a").exists())
        .unwrap_or_else(|| {
            panic!(
                "libshm_ffi.so and libshm_ffi.a are not in {}",
                deps.display()
            )
        })
        .to_path_buf()
}

/// Compiles `source` (already in `dir`) into `dir/<out>` with `compiler` and `flags`, the
/// include directories (`dir`, `include/`, `shm-ffi/include/`), linking the library
/// dynamically (`static_link` false) or statically; panics with the compiler's output on
/// failure.
pub fn build(
    compiler: &str,
    flags: &[&str],
    dir: &Path,
    source: &str,
    out: &str,
    static_link: bool,
) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let libs = lib_dir();
    let exe = dir.join(out);
    let mut cmd = Command::new(compiler);
    cmd.args(flags)
        .arg("-I")
        .arg(dir)
        .arg("-I")
        .arg(root.join("include"))
        .arg("-I")
        .arg(root.join("shm-ffi/include"))
        .arg(dir.join(source))
        .arg("-o")
        .arg(&exe);
    if static_link {
        cmd.arg(libs.join("libshm_ffi.a"))
            .args(["-lpthread", "-ldl", "-lm", "-lgcc_s"]);
    } else {
        cmd.arg("-L")
            .arg(&libs)
            .arg("-lshm_ffi")
            .arg(format!("-Wl,-rpath,{}", libs.display()));
    }
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
    assert!(
        output.status.success(),
        "{compiler} {source} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    exe
}
