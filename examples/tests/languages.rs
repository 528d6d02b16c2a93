//! The C and C++ examples of `docs/languages.md`, extracted from the document as they are,
//! compiled with the real compilers against the generated `telemetry.h`, and run against a
//! live Rust writer.

use examples::Telemetry;
use shm_core::SharedState;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The first fenced block of language `lang` in `docs/languages.md`.
fn example(lang: &str) -> String {
    first_block(
        &std::fs::read_to_string(workspace().join("docs/languages.md")).unwrap(),
        lang,
    )
}

/// The first fenced block of language `lang` in the markdown text `doc`.
fn first_block(doc: &str, lang: &str) -> String {
    let start = doc
        .find(&format!("\n```{lang}\n"))
        .unwrap_or_else(|| panic!("no {lang} example"))
        + lang.len()
        + 5;
    let len = doc[start..].find("\n```\n").unwrap();
    doc[start..start + len + 1].to_string()
}

/// Removes the segment name and the temporary directory on drop.
struct Cleanup(String, PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = shm_core::remove(&self.0);
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

fn run_example(lang: &str, compiler: &str, flags: &[&str], file: &str) {
    let tag = format!("lang{lang}-{}", std::process::id());
    let dir = std::env::temp_dir().join(format!("shmtest-{tag}"));
    let name = format!("/shmtest-{tag}-0");
    let _cleanup = Cleanup(name.clone(), dir.clone());
    let _ = std::fs::remove_dir_all(&dir);
    shm_core::export::write_all::<Telemetry>(&dir, "telemetry").unwrap();
    std::fs::write(dir.join(file), example(lang)).unwrap();
    let exe = dir.join("reader");
    let out = Command::new(compiler)
        .args(flags)
        .args(["-Wall", "-Wextra", "-Werror", "-O2", "-I"])
        .arg(workspace().join("include"))
        .arg("-I")
        .arg(&dir)
        .arg(dir.join(file))
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{compiler}: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut w = Telemetry::create(&name, &Telemetry::initial()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                w.update(Telemetry::step);
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let out = Command::new(&exe).arg(&name).output().unwrap();
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{file}: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ticks: Vec<u64> = stdout
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(ticks.len(), 3, "{stdout}");
    assert!(ticks.windows(2).all(|w| w[0] < w[1]), "{stdout}");
}

#[test]
fn c_example_of_the_docs_reads_a_live_writer() {
    run_example("c", "cc", &["-std=c11", "-Wpadded"], "reader.c");
}

#[test]
fn cpp_example_of_the_docs_reads_a_live_writer() {
    run_example("cpp", "c++", &["-std=c++17"], "reader.cpp");
}

/// The C, C++ and Python examples in README.md are the ones these tests (and the Python
/// package's) compile and run: the first block of each language in both documents is the same.
#[test]
fn the_readme_examples_are_the_tested_ones() {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    for lang in ["c", "cpp", "python"] {
        assert_eq!(
            first_block(&readme, lang),
            example(lang),
            "the README's {lang} example differs from docs/languages.md's"
        );
    }
}
