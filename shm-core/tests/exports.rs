//! The Python and JSON exports of a type that uses every kind of field: the module imports and
//! its ctypes checks pass (and fail when the layout is wrong), it decodes a value's bytes
//! exactly, and the JSON validates against `docs/layout.schema.json`. The exports of a stored
//! layout: the same text as the type's, refused for layouts no Rust type has, and valid C,
//! C++ and Python when names clash with what the generated files use.

mod lang;

use lang::{workspace, Robot, TempDir};
use shm_core::layout::{FieldBuf, KindBuf, Primitive};
use shm_core::{LayoutBuf, SharedState};
use std::path::Path;
use std::process::{Command, Output};

fn python(dir: &Path, script: &str) -> Output {
    Command::new("python3")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("python3 runs")
}

fn robot_bytes(v: &Robot) -> Vec<u8> {
    // SAFETY: `Robot: SharedState`, so it has no padding: all `size_of::<Robot>()` bytes of a
    // value are initialized; the slice borrows `v` and does not outlive it.
    unsafe {
        std::slice::from_raw_parts(v as *const Robot as *const u8, size_of::<Robot>()).to_vec()
    }
}

#[test]
fn python_module_imports_checks_its_layout_and_decodes_a_value() {
    let dir = TempDir::new("py");
    std::fs::write(
        dir.path().join("robot.py"),
        shm_core::export::python::<Robot>(),
    )
    .unwrap();
    let v = Robot::sample();
    std::fs::write(dir.path().join("value.bin"), robot_bytes(&v)).unwrap();
    let script = format!(
        r#"
import ctypes, robot
assert robot.LAYOUT_HASH == {hash}, hex(robot.LAYOUT_HASH)
assert robot.STABLE_NAME == "RobotState"
assert robot.SIZE == ctypes.sizeof(robot.RobotState) == 192
v = robot.RobotState.from_buffer_copy(open("value.bin", "rb").read())
assert robot.int128(v.big) == {big}, robot.int128(v.big)
assert robot.int128(v.signed_big, signed=True) == {signed_big}
assert (v.pose.x, v.pose.y, v.pose.z) == (1.5, -2.25, 3.0)
assert [j.id for j in v.joints] == [100, 101, 102]
assert [j.ok for j in v.joints] == [1, 0, 1]
assert [list(row) for row in v.grid] == [[1, 2, 3], [4, 5, 6]]
assert v.armed == 1
assert v.label.value() == "hello, c"
assert v.samples.value() == [10, 20, 30]
assert [(p.x, p.y, p.z) for p in v.path.value()] == [(7.0, 8.0, 9.0)]
assert robot.DESCRIPTOR[0] == 3
print("ok")
"#,
        hash = Robot::LAYOUT_HASH,
        big = v.big,
        signed_big = v.signed_big,
    );
    let out = python(dir.path(), &script);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}

#[test]
fn python_module_refuses_to_import_when_an_offset_is_wrong() {
    let dir = TempDir::new("pybad");
    let module = shm_core::export::python::<Robot>();
    let bad = module.replace("(\"path\", 136)", "(\"path\", 144)");
    assert_ne!(module, bad, "the offset check is where the test expects it");
    std::fs::write(dir.path().join("robot.py"), bad).unwrap();
    let out = python(dir.path(), "import robot");
    assert!(
        !out.status.success(),
        "a wrong offset passed the import checks"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "ImportError: RobotState.path: ctypes offset 136 differs from the Rust offset 144"
        ),
        "{err}"
    );
}

#[test]
fn python_numpy_dtypes_have_the_rust_offsets() {
    // With numpy, the real dtypes; without, a stand-in `numpy` that records the specification,
    // so the generated dtype code still runs and is checked.
    let dir = TempDir::new("pynp");
    std::fs::write(
        dir.path().join("robot.py"),
        shm_core::export::python::<Robot>(),
    )
    .unwrap();
    let has_numpy = python(dir.path(), "import numpy").status.success();
    if !has_numpy {
        std::fs::write(
            dir.path().join("numpy.py"),
            "class dtype:\n    def __init__(self, spec):\n        self.spec = spec\n        self.itemsize = spec['itemsize']\n        self.names = tuple(spec['names'])\n        self.fields = {n: (f, o) for n, f, o in zip(spec['names'], spec['formats'], spec['offsets'])}\n",
        )
        .unwrap();
    }
    let out = python(
        dir.path(),
        r#"
import robot
d = robot.RobotState_dtype
assert d.itemsize == 192
assert d.names == ("big", "signed_big", "pose", "joints", "grid", "armed", "_pad", "label", "samples", "path"), d.names
assert [d.fields[n][1] for n in d.names] == [0, 16, 32, 56, 80, 92, 93, 96, 112, 136]
assert robot.Vec3_dtype.itemsize == 24 and robot.ShmFixedVec_Vec3_2_dtype.itemsize == 56
print("ok")
"#,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Validates `doc` against the schema with the `jsonschema` package if python3 has it, else
/// with a structural check of every required key; prints which.
const VALIDATE: &str = r#"
import json, sys
schema = json.load(open(sys.argv[1]))
doc = json.load(open(sys.argv[2]))
try:
    import jsonschema
except ImportError:
    jsonschema = None
if jsonschema is not None:
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(doc)
    print("validated with jsonschema")
else:
    def node(n):
        assert n["kind"] in ("primitive", "array", "struct", "fixed_str", "fixed_vec", "bool"), n
        assert isinstance(n["size"], int) and isinstance(n["align"], int) and n["align"] >= 1
        extra = {"primitive": {"primitive"}, "array": {"len", "element"},
                 "struct": {"name", "stable_name", "fields"}, "fixed_str": {"capacity"},
                 "fixed_vec": {"capacity", "element"}, "bool": set()}[n["kind"]]
        assert set(n) - {"appendable"} == {"kind", "size", "align"} | extra, sorted(n)
        assert n.get("appendable", True) is True and (n["kind"] == "struct" or "appendable" not in n)
        if "element" in n:
            node(n["element"])
        for f in n.get("fields", []):
            marks = {"alias", "deprecated"} if n.get("appendable") else set()
            assert set(f) == {"name", "offset", "layout"} | marks, sorted(f)
            node(f["layout"])
    assert set(doc) == set(schema["required"]), sorted(doc)
    assert doc["schema"] == "shm-state/layout" and doc["schema_version"] == 1
    assert len(doc["layout_hash"]) == 18 and doc["layout_hash"].startswith("0x")
    node(doc["layout"])
    print("validated structurally")
"#;

fn validate(dir: &Path, doc: &str) -> Output {
    std::fs::write(dir.join("doc.json"), doc).unwrap();
    std::fs::write(dir.join("validate.py"), VALIDATE).unwrap();
    Command::new("python3")
        .arg(dir.join("validate.py"))
        .arg(workspace().join("docs/layout.schema.json"))
        .arg(dir.join("doc.json"))
        .output()
        .expect("python3 runs")
}

#[test]
fn json_export_validates_against_the_schema() {
    let dir = TempDir::new("json");
    let doc = shm_core::export::json::<Robot>();
    let out = validate(dir.path(), &doc);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{}", String::from_utf8_lossy(&out.stdout).trim());
    assert!(doc.contains(&format!(
        "\"layout_hash\": \"{:#018x}\"",
        Robot::LAYOUT_HASH
    )));

    // A document missing a required key is refused: the validation can fail.
    let broken = doc.replacen("\"align\": 64,", "", 1);
    assert_ne!(broken, doc);
    assert!(!validate(dir.path(), &broken).status.success());
}

#[test]
fn write_all_writes_the_three_files() {
    let dir = TempDir::new("writeall");
    shm_core::export::write_all::<Robot>(dir.path().join("out"), "robot").unwrap();
    for ext in ["h", "py", "json"] {
        let text = std::fs::read_to_string(dir.path().join(format!("out/robot.{ext}"))).unwrap();
        assert!(text.contains("RobotState"), "robot.{ext}");
    }
}

#[test]
fn exports_of_a_stored_layout_are_the_exports_of_the_type() {
    use shm_core::export::{c_header_of, json_of, python_of};
    let stored = shm_core::LayoutBuf::decode(&shm_core::LayoutBuf::from(Robot::LAYOUT).encode())
        .expect("the descriptor decodes");
    assert_eq!(
        c_header_of(&stored).unwrap(),
        shm_core::export::c_header::<Robot>()
    );
    assert_eq!(
        python_of(&stored).unwrap(),
        shm_core::export::python::<Robot>()
    );
    assert_eq!(json_of(&stored).unwrap(), shm_core::export::json::<Robot>());
}

/// Fields of the root struct of `l`, to damage.
fn root_fields(l: &mut LayoutBuf) -> &mut Vec<FieldBuf> {
    match &mut l.kind {
        KindBuf::Struct { fields, .. } => fields,
        _ => unreachable!("Robot is a struct"),
    }
}

#[test]
fn exports_refuse_a_layout_no_rust_type_has() {
    let robot = || LayoutBuf::from(Robot::LAYOUT);
    let mut cases: Vec<(LayoutBuf, &str)> = Vec::new();
    let mut l = robot();
    root_fields(&mut l)[1].name = "signed big".into();
    cases.push((l, "field named \"signed big\", which is not an identifier"));
    let mut l = robot();
    root_fields(&mut l)[1].name = "big".into();
    cases.push((l, "two fields named `big`"));
    let mut l = robot();
    if let KindBuf::Struct { name, .. } = &mut l.kind {
        *name = "Robot*/".into();
    }
    cases.push((l, "struct name \"Robot*/\" is not an identifier"));
    let mut l = robot();
    let last = root_fields(&mut l).pop().unwrap();
    root_fields(&mut l).push(FieldBuf {
        name: "_pad2".into(),
        offset: last.offset,
        layout: LayoutBuf {
            size: 8,
            align: 1,
            kind: KindBuf::Array {
                len: 8,
                element: Box::new(LayoutBuf {
                    size: 1,
                    align: 1,
                    kind: KindBuf::Primitive(Primitive::U8),
                }),
            },
        },
        alias: None,
        deprecated: false,
    });
    cases.push((l, "exported structs have no padding"));
    let mut l = robot();
    root_fields(&mut l)[0].layout.align = 8;
    cases.push((l, "a `u128` has alignment 8"));
    let mut l = robot();
    l.size += 1;
    cases.push((l, "no padding"));
    let mut l = robot();
    root_fields(&mut l).clear();
    cases.push((l, "has no fields"));
    cases.push((
        LayoutBuf::from(<[u32; 2]>::LAYOUT),
        "exports declare structs",
    ));
    let mut deep = LayoutBuf::from(Robot::LAYOUT);
    for _ in 0..100 {
        deep = LayoutBuf {
            size: deep.size,
            align: deep.align,
            kind: KindBuf::Array {
                len: 1,
                element: Box::new(deep),
            },
        };
    }
    let mut l = robot();
    root_fields(&mut l)[2].layout = deep;
    cases.push((l, "nests deeper than 64 levels"));
    for (layout, needle) in &cases {
        for export in [
            shm_core::export::c_header_of,
            shm_core::export::python_of,
            shm_core::export::json_of,
        ] {
            match export(layout) {
                Err(e @ shm_core::Error::InvalidLayout { .. }) => {
                    assert!(e.to_string().contains(needle), "{e} lacks {needle:?}")
                }
                other => panic!("{needle}: {other:?}"),
            }
        }
    }
}

#[test]
fn type_names_the_generated_files_use_are_renamed_and_still_compile() {
    let u8_at = |name: &str, offset| FieldBuf {
        name: name.into(),
        offset,
        layout: LayoutBuf {
            size: 1,
            align: 1,
            kind: KindBuf::Primitive(Primitive::U8),
        },
        alias: None,
        deprecated: false,
    };
    let inner = LayoutBuf {
        size: 5,
        align: 1,
        kind: KindBuf::Struct {
            name: "double".into(),
            stable_name: None,
            fields: vec![
                u8_at("int", 0),
                u8_at("int_", 1),
                u8_at("NULL", 2),
                u8_at("SHM_EXPORT_PORTABILITY", 3),
                u8_at("linux", 4),
            ],
            appendable: false,
        },
    };
    let root = LayoutBuf {
        size: 6,
        align: 1,
        kind: KindBuf::Struct {
            name: "Root".into(),
            stable_name: Some("ShmBool".into()),
            fields: vec![
                FieldBuf {
                    name: "class".into(),
                    offset: 0,
                    layout: inner,
                    alias: None,
                    deprecated: false,
                },
                u8_at("None", 5),
            ],
            appendable: false,
        },
    };
    let header = shm_core::export::c_header_of(&root).unwrap();
    assert!(header.contains("typedef struct double_2 {"), "{header}");
    assert!(header.contains("typedef struct ShmBool_2 {"), "{header}");
    assert!(header.contains("uint8_t int__;"), "{header}");
    assert!(header.contains("uint8_t NULL_;"), "{header}");
    let dir = TempDir::new("renamed");
    std::fs::write(dir.path().join("root.h"), &header).unwrap();
    std::fs::write(
        dir.path().join("main.c"),
        "#include \"root.h\"\nint main(void) { ShmBool_2 r = {{0, 1, 2, 3, 4}, 5}; return r.class_.int__ == 1 \
         && r.class_.NULL_ == 2 && r.class_.linux_ == 4 ? 0 : 1; }\n",
    )
    .unwrap();
    let exe = lang::compile("cc", lang::C_FLAGS, dir.path(), "main.c", "c", &[]);
    assert!(Command::new(exe).status().unwrap().success());
    std::fs::copy(dir.path().join("main.c"), dir.path().join("main.cpp")).unwrap();
    let exe = lang::compile("c++", lang::CXX_FLAGS, dir.path(), "main.cpp", "cpp", &[]);
    assert!(Command::new(exe).status().unwrap().success());
    let module = shm_core::export::python_of(&root).unwrap();
    std::fs::write(dir.path().join("root.py"), module).unwrap();
    let out = python(
        dir.path(),
        "import root\n\
         r = root.ShmBool_2.from_buffer_copy(bytes([0, 1, 2, 3, 4, 5]))\n\
         assert getattr(r, 'class').int_ == 1 and getattr(r, 'None') == 5\n\
         assert root.STABLE_NAME == 'ShmBool' and root.SIZE == 6\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The JSON of an appendable type has its flag and its fields' markers, and validates.
#[test]
fn json_export_of_an_appendable_type_validates_against_the_schema() {
    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    #[shm(name = "Pose", appendable)]
    struct Pose {
        #[shm(alias = "t")]
        tick: u64,
        #[deprecated]
        #[shm(deprecated)]
        heading: f64,
    }
    let dir = TempDir::new("json-appendable");
    let doc = shm_core::export::json::<Pose>();
    assert!(doc.contains("\"appendable\": true"), "{doc}");
    assert!(doc.contains("\"alias\": \"t\""), "{doc}");
    assert!(doc.contains("\"deprecated\": true"), "{doc}");
    let out = validate(dir.path(), &doc);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
