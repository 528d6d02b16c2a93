//! The C and C++ writer examples of `docs/languages.md`, extracted as they are, built against
//! this build's library and the generated `telemetry.h`, and run: a Rust reader sees what they
//! wrote.

#[path = "../../shm-core/tests/common/mod.rs"]
mod common;
#[path = "../../shm-core/tests/lang/mod.rs"]
mod lang;
mod support;

use common::Name;
use examples::Telemetry;
use lang::{workspace, TempDir};
use shm_core::SharedState;
use std::process::Command;

/// The first fenced block of language `lang` in the section "Writers in C and C++" of
/// `docs/languages.md`.
fn example(lang: &str) -> String {
    let doc = std::fs::read_to_string(workspace().join("docs/languages.md")).unwrap();
    let fence = format!("\n```{lang}\n");
    let at = doc
        .find("\n## Writers in C and C++")
        .expect("no writers section");
    let start = at + doc[at..].find(&fence).unwrap() + fence.len();
    let len = doc[start..].find("\n```\n").unwrap();
    doc[start..start + len + 1].to_string()
}

#[test]
fn the_c_and_cpp_writer_examples_of_the_docs_write_what_rust_reads() {
    let dir = TempDir::new("ffidocs");
    let name = Name::new("ffidocs");
    shm_core::export::write_all::<Telemetry>(dir.path(), "telemetry").unwrap();
    let c = example("c");
    assert!(c.contains("shm_ffi_writer_open_or_create"), "{c}");
    let cpp = example("cpp");
    assert!(cpp.contains("shm::Writer<Telemetry>"), "{cpp}");
    std::fs::write(dir.path().join("writer.c"), c).unwrap();
    std::fs::write(dir.path().join("writer.cpp"), cpp).unwrap();
    let warn = ["-Wall", "-Wextra", "-Werror", "-O2"];
    let c_exe = support::build(
        "cc",
        &[&["-std=c11"][..], &warn].concat(),
        dir.path(),
        "writer.c",
        "writer_c",
        false,
    );
    let cpp_exe = support::build(
        "c++",
        &[&["-std=c++17"][..], &warn].concat(),
        dir.path(),
        "writer.cpp",
        "writer_cpp",
        true,
    );
    for (exe, tick) in [(c_exe, 1), (cpp_exe, 2)] {
        let out = Command::new(&exe).arg(&*name).output().unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            exe.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let r = Telemetry::open(&name).unwrap();
        assert_eq!(r.read().tick, tick, "{}", exe.display());
        assert!(!r.info().writer().alive());
    }
}
