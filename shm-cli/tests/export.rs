//! `shm export` of a live segment in every language: the text is what `shm_core::export`
//! generates from the Rust type; the C header compiles as C11 and C++17 with its static
//! assertions holding, the Python module imports and its checks pass, and a stored layout no
//! Rust type has is refused.

mod common;

use common::*;
use shm_core::layout::{FieldBuf, KindBuf, Primitive};
use shm_core::{LayoutBuf, Options, SharedState};
use std::path::PathBuf;
use std::process::Command;

#[test]
#[ignore = "child-process entry point: runs only when a test spawns it"]
fn child_process_entry_point() {
    child_main();
}

/// A fresh temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &Name) -> TempDir {
        let dir = std::env::temp_dir().join(name.trim_start_matches('/'));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temporary directory");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `shm export NAME --lang LANG`, which must succeed.
fn export(name: &str, lang: &str) -> String {
    let out = shm(&["export", name, "--lang", lang]);
    assert_code(&out, 0);
    stdout(&out)
}

/// Runs `cmd`, which must succeed.
fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Static assertions on `Sample`'s size, every field offset and the layout macros.
fn assertions(assert: &str) -> String {
    let mut s = format!(
        "{assert}(sizeof(Sample) == {size}, \"size\");\n\
         {assert}(SAMPLE_SIZE == {size}, \"SIZE\");\n\
         {assert}(SAMPLE_LAYOUT_HASH == UINT64_C({hash:#018x}), \"hash\");\n\
         {assert}(SAMPLE_DESCRIPTOR_LEN == {len}, \"descriptor\");\n",
        size = size_of::<Sample>(),
        hash = Sample::LAYOUT_HASH,
        len = LayoutBuf::from(Sample::LAYOUT).encode().len(),
    );
    for f in Sample::LAYOUT.fields() {
        s.push_str(&format!(
            "{assert}(offsetof(Sample, {n}) == {o}, \"{n}\");\n",
            n = f.name,
            o = f.offset
        ));
    }
    s
}

#[test]
fn export_json_is_the_json_export_of_the_rust_type() {
    let name = Name::new("export-json");
    let _writer = LiveWriter::start(&name, 0);
    let text = export(&name, "json");
    let rust = shm_core::export::json::<Sample>();
    assert_eq!(text, rust);
    let parsed: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(
        parsed,
        serde_json::from_str::<serde_json::Value>(&rust).unwrap()
    );
    assert_eq!(parsed["layout"]["name"], "Sample");
    assert_eq!(
        parsed["layout_hash"],
        format!("{:#018x}", Sample::LAYOUT_HASH)
    );
    // `json` is the default language.
    let out = shm(&["export", &name]);
    assert_code(&out, 0);
    assert_eq!(stdout(&out), rust);
}

#[test]
fn export_c_and_cpp_give_one_header_that_compiles_in_both() {
    let name = Name::new("export-c");
    let _writer = LiveWriter::start(&name, 0);
    let dir = TempDir::new(&name);
    let header = export(&name, "c");
    assert_eq!(header, shm_core::export::c_header::<Sample>());
    assert_eq!(export(&name, "cpp"), header);
    std::fs::write(dir.0.join("sample.h"), &header).unwrap();
    let c = format!(
        "#include \"sample.h\"\n{}int main(void) {{ return SAMPLE_DESCRIPTOR[0] == 0 ? 1 : 0; }}\n",
        assertions("_Static_assert")
    );
    std::fs::write(dir.0.join("main.c"), c).unwrap();
    let flags = ["-Wall", "-Wextra", "-Wpadded", "-Werror"];
    run(
        Command::new("cc")
            .arg("-std=c11")
            .args(flags)
            .arg(dir.0.join("main.c"))
            .arg("-o")
            .arg(dir.0.join("c")),
        "cc",
    );
    run(&mut Command::new(dir.0.join("c")), "the C program");
    let cpp = format!(
        "#include \"sample.h\"\n{}static_assert(shm::layout_of<Sample>::size == {}, \"layout_of\");\n\
         int main() {{ return shm::layout_of<Sample>::descriptor()[0] == 0 ? 1 : 0; }}\n",
        assertions("static_assert"),
        size_of::<Sample>()
    );
    std::fs::write(dir.0.join("main.cpp"), cpp).unwrap();
    run(
        Command::new("c++")
            .arg("-std=c++17")
            .args(flags)
            .arg(dir.0.join("main.cpp"))
            .arg("-o")
            .arg(dir.0.join("cpp")),
        "c++",
    );
    run(&mut Command::new(dir.0.join("cpp")), "the C++ program");
}

#[test]
fn export_python_imports_and_reads_the_payload() {
    let name = Name::new("export-py");
    let _writer = LiveWriter::start(&name, 0);
    let dir = TempDir::new(&name);
    let module = export(&name, "python");
    assert_eq!(module, shm_core::export::python::<Sample>());
    std::fs::write(dir.0.join("sample.py"), &module).unwrap();
    let raw = json(&shm(&["inspect", "--json", "--raw", &name]))["raw"]
        .as_str()
        .expect("raw bytes")
        .to_string();
    let script = format!(
        "import ctypes, sample\n\
         assert sample.SIZE == {size} and ctypes.sizeof(sample.Sample) == {size}\n\
         assert sample.LAYOUT_HASH == {hash:#x}\n\
         v = sample.Sample.from_buffer_copy(bytes.fromhex('{raw}'))\n\
         assert v.tick == 1, v.tick\n\
         assert v.label.value() == 'tick-1', v.label.value()\n\
         assert v.readings.value() == [10, 11], v.readings.value()\n\
         assert sample.int128(v.big) == {big}\n\
         print('ok')\n",
        size = size_of::<Sample>(),
        hash = Sample::LAYOUT_HASH,
        big = u128::MAX - 1,
    );
    run(
        Command::new("python3")
            .arg("-c")
            .arg(script)
            .current_dir(&dir.0)
            .env("PYTHONDONTWRITEBYTECODE", "1"),
        "python3",
    );
}

/// A layout that passes `LayoutBuf::check`, so a segment can store it, but is no Rust
/// type's: with `gap`, `T` has padding between its fields; without, a field name that is not
/// an identifier (and would end a C comment).
fn foreign_layout(gap: bool) -> LayoutBuf {
    let prim = |p, size| LayoutBuf {
        size,
        align: size,
        kind: KindBuf::Primitive(p),
    };
    let field = |name: &str, offset, layout| FieldBuf {
        name: name.into(),
        offset,
        layout,
        alias: None,
        deprecated: false,
    };
    let fields = if gap {
        vec![
            field("a", 0, prim(Primitive::U8, 1)),
            field("b", 4, prim(Primitive::U32, 4)),
        ]
    } else {
        vec![
            field("a", 0, prim(Primitive::U8, 1)),
            field("b*/", 1, prim(Primitive::U8, 1)),
            field("c", 2, prim(Primitive::U16, 2)),
            field("d", 4, prim(Primitive::U32, 4)),
        ]
    };
    LayoutBuf {
        size: 8,
        align: 4,
        kind: KindBuf::Struct {
            name: "T".into(),
            stable_name: None,
            fields,
            appendable: false,
        },
    }
}

#[test]
fn export_refuses_a_stored_layout_no_rust_type_has() {
    for (gap, needle) in [(true, "no padding"), (false, "not an identifier")] {
        let name = Name::new("export-foreign");
        let layout = foreign_layout(gap);
        let _w = Options::new()
            .create_raw(&name, &layout, &[0; 8])
            .unwrap_or_else(|e| panic!("the layout is one a segment can store: {e}"));
        for lang in ["json", "c", "cpp", "python"] {
            let out = shm(&["export", &name, "--lang", lang]);
            assert_code(&out, 4);
            let err = stderr(&out);
            assert!(err.starts_with("shm: cannot export segment"), "{err}");
            assert!(err.contains(needle), "{lang}: {err}");
            assert!(stdout(&out).is_empty(), "nothing is emitted");
        }
    }
}
