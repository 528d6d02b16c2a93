//! The C and C++ examples of `docs/languages.md`, extracted from the document as they are,
//! compiled with the real compilers against the generated `telemetry.h`, and run against a
//! live Rust writer (of state, or of a stream for the examples of "Streams in C and C++").

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

/// The first fenced block of language `lang` in the section "Streams in C and C++" of
/// `docs/languages.md`.
fn stream_example(lang: &str) -> String {
    let doc = std::fs::read_to_string(workspace().join("docs/languages.md")).unwrap();
    let section = doc
        .find("\n## Streams in C and C++\n")
        .expect("no stream section");
    first_block(&doc[section..], lang)
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

/// Writes `source` as `dir/file` beside the generated `telemetry.h` and compiles it into
/// `dir/reader` with the warnings the documentation promises are clean.
fn build(dir: &Path, source: &str, compiler: &str, flags: &[&str], file: &str) -> PathBuf {
    let _ = std::fs::remove_dir_all(dir);
    shm_core::export::write_all::<Telemetry>(dir, "telemetry").unwrap();
    std::fs::write(dir.join(file), source).unwrap();
    let exe = dir.join("reader");
    let out = Command::new(compiler)
        .args(flags)
        .args(["-Wall", "-Wextra", "-Werror", "-O2", "-I"])
        .arg(workspace().join("include"))
        .arg("-I")
        .arg(dir)
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
    exe
}

fn run_example(lang: &str, compiler: &str, flags: &[&str], file: &str) {
    let tag = format!("lang{lang}-{}", std::process::id());
    let dir = std::env::temp_dir().join(format!("shmtest-{tag}"));
    let name = format!("/shmtest-{tag}-0");
    let _cleanup = Cleanup(name.clone(), dir.clone());
    let exe = build(&dir, &example(lang), compiler, flags, file);

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

/// Runs the stream example of `lang` against a stream of `Telemetry` a Rust writer sent three
/// messages to (the example starts from the oldest), then sends a fourth.
fn run_stream_example(lang: &str, compiler: &str, flags: &[&str], file: &str) {
    let tag = format!("langstream{lang}-{}", std::process::id());
    let dir = std::env::temp_dir().join(format!("shmtest-{tag}"));
    let name = format!("/shmtest-{tag}-0");
    let _cleanup = Cleanup(name.clone(), dir.clone());
    let exe = build(&dir, &stream_example(lang), compiler, flags, file);

    let mut tx = Telemetry::create_stream(&name, 64).unwrap();
    let mut t = Telemetry::initial();
    for _ in 0..3 {
        t.step();
        tx.send(&t);
    }
    let out = Command::new(&exe).arg(&name).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{file}: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout, "message 1 tick 1\nmessage 2 tick 2\nmessage 3 tick 3\n",
        "{file}"
    );
    // A state segment is refused, naming the call that reads it.
    let state = format!("/shmtest-{tag}-1");
    let _state_cleanup = Cleanup(state.clone(), dir.join("none"));
    let _w = Telemetry::create(&state, &Telemetry::initial()).unwrap();
    let out = Command::new(&exe).arg(&state).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("this segment holds shared state (read it with `shm_reader_open`)"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn c_stream_example_of_the_docs_receives_a_live_stream() {
    run_stream_example("c", "cc", &["-std=c11", "-Wpadded"], "stream.c");
}

#[test]
fn cpp_stream_example_of_the_docs_receives_a_live_stream() {
    run_stream_example("cpp", "c++", &["-std=c++17"], "stream.cpp");
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
