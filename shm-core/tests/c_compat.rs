//! The header-only C reader applies the rule of "Compatibility" as the Rust reader does: for
//! every pair of a segment's type and a program's type among versions of one appendable type
//! (appended, renamed with and without an alias, reordered, retyped, inserted, deprecated,
//! not appendable, another stable name), a C program compiled against the program type's
//! generated header opens the live segment and reports the same case, or refuses it with the
//! same message, as `T::open` in Rust.

mod common;
mod lang;

use common::Name;
use lang::{compile, TempDir, C_FLAGS};
use shm_core::SharedState;
use std::path::Path;
use std::process::Command;

macro_rules! versions {
    ($($module:ident $(#[$attr:meta])* { $($(#[$fattr:meta])* $field:ident: $ty:ty),* })*) => {
        $(
            mod $module {
                use shm_core::SharedState;
                #[derive(SharedState, Clone, Copy, Debug, PartialEq)]
                #[repr(C)]
                $(#[$attr])*
                pub struct T { $($(#[$fattr])* pub $field: $ty),* }
            }
        )*
    };
}

versions! {
    v1 #[shm(name = "P", appendable)] { a: u64, b: u32, c: u32 }
    v2 #[shm(name = "P", appendable)] { a: u64, b: u32, c: u32, d: u64 }
    aliased #[shm(name = "P", appendable)] { a: u64, #[shm(alias = "b")] bee: u32, c: u32, d: u64 }
    renamed #[shm(name = "P", appendable)] { a: u64, bee: u32, c: u32, d: u64 }
    reordered #[shm(name = "P", appendable)] { a: u64, c: u32, b: u32, d: u64 }
    retyped #[shm(name = "P", appendable)] { a: u64, b: i32, c: u32, d: u64 }
    inserted #[shm(name = "P", appendable)] { a: u64, x: u64, b: u32, c: u32 }
    deprecated #[shm(name = "P", appendable)] {
        a: u64, b: u32, #[deprecated = "unused"] #[shm(deprecated)] c: u32, d: u64, e: u64
    }
    plain #[shm(name = "P")] { a: u64, b: u32, c: u32 }
    other #[shm(name = "Q", appendable)] { a: u64, b: u32, c: u32, d: u64 }
}

/// Opens every segment named on the command line and prints, for each, `compat CASE a=A` or
/// `refused MESSAGE`.
const OPEN_ALL: &str = r#"#include "shm_state.h"
#include "p.h"
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    int i;
    for (i = 1; i < argc; i++) {
        shm_reader r;
        T_TYPE v;
        if (shm_reader_open(&r, argv[i], SHM_LAYOUT(PREFIX)) != SHM_OK) {
            printf("refused %s\n", r.message);
            continue;
        }
        memset(&v, 0xa5, sizeof v);
        if (shm_read(&r, &v) != SHM_OK) {
            printf("BAD %s\n", r.message);
            return 1;
        }
        printf("compat %s a=%llu\n", shm_compat_name(shm_reader_compat(&r)), (unsigned long long)v.a);
        shm_reader_close(&r);
    }
    return 0;
}
"#;

/// Compiles OPEN_ALL against `T`'s header in its own directory under `dir`.
fn reader_of<T: SharedState>(dir: &Path, tag: &str) -> std::path::PathBuf {
    let sub = dir.join(tag);
    std::fs::create_dir_all(&sub).unwrap();
    let header = shm_core::export::c_header::<T>();
    let line = header
        .lines()
        .find(|l| l.starts_with("#define ") && l.contains("_LAYOUT_HASH "))
        .unwrap();
    let prefix = line["#define ".len()..line.find("_LAYOUT_HASH").unwrap()].to_string();
    let ty = header
        .lines()
        .find_map(|l| l.strip_prefix("typedef struct ")?.strip_suffix(" {"))
        .unwrap()
        .to_string();
    std::fs::write(sub.join("p.h"), header).unwrap();
    let source = OPEN_ALL.replace("PREFIX", &prefix).replace("T_TYPE", &ty);
    std::fs::write(sub.join("open.c"), source).unwrap();
    compile("cc", C_FLAGS, &sub, "open.c", "open", &[])
}

/// What the Rust reader of `T` makes of the segment `name`, as the C program prints it.
fn rust_outcome<T: SharedState>(name: &str, a: impl Fn(&T) -> u64) -> String {
    match T::open(name) {
        Ok(r) => format!("compat {:?} a={}", r.compat(), a(&r.read())),
        Err(e) => format!("refused {e}"),
    }
}

#[test]
#[allow(deprecated)]
fn the_c_reader_applies_the_compatibility_rule_as_the_rust_reader_does() {
    let dir = TempDir::new("c-compat");
    let names: Vec<Name> = (0..10).map(|_| Name::new("c-compat")).collect();
    let n = |i: usize| names[i].0.as_str();
    // One segment of each version, `a` its index.
    let _w = (
        v1::T::create(n(0), &v1::T { a: 0, b: 1, c: 2 }).unwrap(),
        v2::T::create(
            n(1),
            &v2::T {
                a: 1,
                b: 1,
                c: 2,
                d: 3,
            },
        )
        .unwrap(),
        aliased::T::create(
            n(2),
            &aliased::T {
                a: 2,
                bee: 1,
                c: 2,
                d: 3,
            },
        )
        .unwrap(),
        renamed::T::create(
            n(3),
            &renamed::T {
                a: 3,
                bee: 1,
                c: 2,
                d: 3,
            },
        )
        .unwrap(),
        reordered::T::create(
            n(4),
            &reordered::T {
                a: 4,
                c: 1,
                b: 2,
                d: 3,
            },
        )
        .unwrap(),
        retyped::T::create(
            n(5),
            &retyped::T {
                a: 5,
                b: -1,
                c: 2,
                d: 3,
            },
        )
        .unwrap(),
        inserted::T::create(
            n(6),
            &inserted::T {
                a: 6,
                x: 1,
                b: 2,
                c: 3,
            },
        )
        .unwrap(),
        deprecated::T::create(
            n(7),
            &deprecated::T {
                a: 7,
                b: 1,
                c: 2,
                d: 3,
                e: 4,
            },
        )
        .unwrap(),
        plain::T::create(n(8), &plain::T { a: 8, b: 1, c: 2 }).unwrap(),
        other::T::create(
            n(9),
            &other::T {
                a: 9,
                b: 1,
                c: 2,
                d: 3,
            },
        )
        .unwrap(),
    );
    macro_rules! expected {
        ($m:ident) => {
            (0..names.len())
                .map(|i| rust_outcome::<$m::T>(n(i), |v| v.a))
                .collect::<Vec<_>>()
        };
    }
    let mut cases = 0;
    let mut kinds = std::collections::BTreeSet::new();
    for (tag, exe, want) in [
        ("v1", reader_of::<v1::T>(dir.path(), "v1"), expected!(v1)),
        ("v2", reader_of::<v2::T>(dir.path(), "v2"), expected!(v2)),
        (
            "aliased",
            reader_of::<aliased::T>(dir.path(), "aliased"),
            expected!(aliased),
        ),
        (
            "renamed",
            reader_of::<renamed::T>(dir.path(), "renamed"),
            expected!(renamed),
        ),
        (
            "reordered",
            reader_of::<reordered::T>(dir.path(), "reordered"),
            expected!(reordered),
        ),
        (
            "retyped",
            reader_of::<retyped::T>(dir.path(), "retyped"),
            expected!(retyped),
        ),
        (
            "inserted",
            reader_of::<inserted::T>(dir.path(), "inserted"),
            expected!(inserted),
        ),
        (
            "deprecated",
            reader_of::<deprecated::T>(dir.path(), "deprecated"),
            expected!(deprecated),
        ),
        (
            "plain",
            reader_of::<plain::T>(dir.path(), "plain"),
            expected!(plain),
        ),
        (
            "other",
            reader_of::<other::T>(dir.path(), "other"),
            expected!(other),
        ),
    ] {
        let out = Command::new(exe)
            .args(names.iter().map(|n| &n.0))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{tag}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let got: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(got.len(), names.len(), "{tag}: {got:?}");
        for (i, (c, rust)) in got.iter().zip(&want).enumerate() {
            assert_eq!(c, rust, "a {tag} program on segment {i}");
            kinds.insert(
                c.split(" a=")
                    .next()
                    .unwrap()
                    .split(';')
                    .next()
                    .unwrap()
                    .to_string(),
            );
            cases += 1;
        }
    }
    assert_eq!(cases, 100);
    // The pairs cover every case and every kind of refusal the rule names.
    for needle in [
        "compat Exact",
        "compat SegmentOlder",
        "compat SegmentNewer",
        "refused layout mismatch: the type is `#[shm(appendable)]` in the segment but not in this program",
        "refused layout mismatch: the type has `#[shm(name = \"P\")]` in the segment but `#[shm(name = \"Q\")]` in this program",
        "refused layout mismatch: field `b` is `u32` at offset 8 in the segment but `i32` in this program",
        "refused layout mismatch: the segment has `b: u32` where this program has `bee: u32` (offset 8)",
        "refused layout mismatch: field `c` is at offset 8 in the segment but at offset 12 in this program",
        "refused layout mismatch: field `x: u64` at offset 8 in this program is not in the segment, which has `b` there",
    ] {
        assert!(kinds.iter().any(|k| k.starts_with(needle)), "no case {needle:?} among {kinds:#?}");
    }
}

/// The C decoder treats a kind-7 descriptor as hostile input, as the Rust one does: a `marks`
/// byte with an unknown bit, or an alias flag without its string, makes the segment corrupt;
/// a deprecated mark (not hashed) is a valid descriptor of the same hash.
#[test]
fn the_c_reader_decodes_kind_7_markers_as_hostile_input() {
    let dir = TempDir::new("c-compat-hostile");
    let exe = reader_of::<v1::T>(dir.path(), "v1");
    // `marks` of field `a`: kind, size, align (17), name "T" (5), stable flag (1), stable
    // name "P" (5), count (4), field name "a" (5), offset (8).
    const MARKS: usize = 17 + 5 + 1 + 5 + 4 + 5 + 8;
    for (marks, accepted) in [(4u8, false), (2, false), (1, true), (0, true)] {
        let name = Name::new("c-compat-hostile");
        drop(v1::T::create(&name, &v1::T { a: 5, b: 1, c: 2 }).unwrap());
        let path = format!("/dev/shm{}", &*name);
        let mut bytes = std::fs::read(&path).unwrap();
        let desc = u64::from_ne_bytes(bytes[56..64].try_into().unwrap()) as usize;
        assert_eq!(bytes[desc + MARKS], 0, "not the marks byte");
        bytes[desc + MARKS] = marks;
        std::fs::write(&path, &bytes).unwrap();
        let out = Command::new(&exe).arg(&name.0).output().unwrap();
        let c = String::from_utf8(out.stdout).unwrap();
        let rust = v1::T::open(&name);
        if accepted {
            assert_eq!(c.trim(), "compat Exact a=5", "marks {marks}");
            assert!(rust.is_ok(), "marks {marks}");
        } else {
            assert_eq!(
                c.trim(),
                "refused corrupt segment: the stored layout descriptor is malformed",
                "marks {marks}"
            );
            assert!(
                matches!(rust, Err(shm_core::Error::Corrupt { .. })),
                "marks {marks}: {:?}",
                rust.map(|_| ())
            );
        }
    }
}
