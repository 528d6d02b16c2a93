//! Runs the loom model of the seqlock (`tests/loom.rs`) as part of the ordinary test suite.
//!
//! Loom replaces the atomics under test, so the model must be compiled with `--cfg loom`; this
//! test builds and runs it with its own target directory, with a preemption bound of 3
//! (`LOOM_MAX_PREEMPTIONS` overrides it).

use std::process::Command;

#[test]
fn loom_model_of_the_seqlock_passes() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest_dir = env!("CARGO_MANIFEST_DIR");
    let target_dir = format!("{manifest_dir}/../target/loom");
    let preemptions = std::env::var("LOOM_MAX_PREEMPTIONS").unwrap_or_else(|_| "3".into());
    let out = Command::new(cargo)
        .current_dir(manifest_dir)
        .args([
            "test",
            "--release",
            "--test",
            "loom",
            "--target-dir",
            &target_dir,
        ])
        .env("RUSTFLAGS", "--cfg loom")
        .env("LOOM_MAX_PREEMPTIONS", &preemptions)
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("run cargo for the loom model");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the loom model failed:\n{stdout}\n{stderr}"
    );
    // The model really ran: three tests, none filtered out.
    assert!(
        stdout.contains("test result: ok. 3 passed"),
        "unexpected loom output:\n{stdout}"
    );
}
