//! Tests of the payload decoder: every kind, invalid helper bytes, hostile layouts.

use super::*;
use crate::layout::FieldBuf;
use crate::{FixedStr, FixedVec, SharedState, ShmBool};

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Inner {
    a: i16,
    ok: ShmBool,
    _pad: [u8; 13],
    big: u128,
}

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Outer {
    x: f32,
    label: FixedStr<4>,
    grid: [[u8; 2]; 2],
    inner: [Inner; 1],
    items: FixedVec<u16, 3>,
    _pad: [u8; 2],
    y: f64,
    _tail: [u8; 8],
}

fn sample() -> Outer {
    Outer {
        x: 1.5,
        label: FixedStr::try_from("hé").unwrap(),
        grid: [[1, 2], [3, 4]],
        inner: [Inner {
            a: -7,
            ok: ShmBool::TRUE,
            _pad: [0; 13],
            big: u128::MAX - 1,
        }],
        items: FixedVec::from_slice(&[9, 8]).unwrap(),
        _pad: [0; 2],
        y: 0.1,
        _tail: [0; 8],
    }
}

fn bytes_of(v: &Outer) -> Vec<u8> {
    // SAFETY: `v` is a live `Outer` of `size_of::<Outer>()` bytes; `Outer: SharedState`
    // proves it has no padding, so every byte is initialized.
    unsafe { core::slice::from_raw_parts((v as *const Outer).cast::<u8>(), size_of::<Outer>()) }
        .to_vec()
}

fn prim(p: Primitive, size: u64) -> LayoutBuf {
    LayoutBuf {
        size,
        align: size.clamp(1, 8),
        kind: KindBuf::Primitive(p),
    }
}

fn field(name: &str, offset: u64, layout: LayoutBuf) -> FieldBuf {
    FieldBuf {
        name: name.into(),
        offset,
        layout,
        alias: None,
        deprecated: false,
    }
}

fn strukt(size: u64, fields: Vec<FieldBuf>) -> LayoutBuf {
    LayoutBuf {
        size,
        align: 1,
        kind: KindBuf::Struct {
            name: "T".into(),
            stable_name: None,
            fields,
            appendable: false,
        },
    }
}

fn get<'a>(v: &'a Value, name: &str) -> &'a Value {
    let Value::Struct(fields) = v else {
        panic!("not a struct: {v:?}")
    };
    &fields.iter().find(|(k, _)| k == name).unwrap().1
}

fn reason(v: &Value) -> &str {
    match v {
        Value::Invalid { reason } => reason,
        _ => panic!("valid: {v:?}"),
    }
}

#[test]
fn every_kind_decodes_by_its_layout() {
    let l = LayoutBuf::from(Outer::LAYOUT);
    let v = l.decode_value(&bytes_of(&sample())).unwrap();
    assert_eq!(get(&v, "x"), &Value::F32(1.5));
    assert_eq!(get(&v, "y"), &Value::F64(0.1));
    assert_eq!(get(&v, "label"), &Value::Str("hé".into()));
    let u = |n| Value::Unsigned(n, Primitive::U8);
    assert_eq!(
        get(&v, "grid"),
        &Value::List(vec![
            Value::List(vec![u(1), u(2)]),
            Value::List(vec![u(3), u(4)])
        ])
    );
    let u16 = |n| Value::Unsigned(n, Primitive::U16);
    assert_eq!(get(&v, "items"), &Value::List(vec![u16(9), u16(8)]));
    let Value::List(inner) = get(&v, "inner") else {
        panic!()
    };
    assert_eq!(get(&inner[0], "a"), &Value::Signed(-7, Primitive::I16));
    assert_eq!(get(&inner[0], "ok"), &Value::Bool(true));
    assert_eq!(
        get(&inner[0], "big"),
        &Value::Unsigned(u128::MAX - 1, Primitive::U128)
    );
    assert_eq!(v.first_invalid(), None);
}

#[test]
fn invalid_helper_bytes_name_the_field() {
    let l = LayoutBuf::from(Outer::LAYOUT);
    let ok = bytes_of(&sample());
    let off = |n: &str| l.fields().iter().find(|f| f.name == n).unwrap().offset as usize;
    let mut b = ok.clone();
    b[off("inner") + 2] = 7;
    let e = l.decode_value(&b).unwrap_err();
    assert_eq!(e.field, "inner[0].ok");
    assert!(e.to_string().contains("boolean byte is 7"), "{e}");
    let mut b = ok.clone();
    b[off("label")] = 5;
    assert_eq!(l.decode_value(&b).unwrap_err().field, "label");
    let mut b = ok.clone();
    b[off("label") + 4] = 0xff;
    assert!(l.decode_value(&b).unwrap_err().reason.contains("utf-8"));
    let mut b = ok;
    b[off("items")] = 4;
    assert_eq!(l.decode_value(&b).unwrap_err().field, "items");
}

#[test]
fn lossy_decoding_marks_invalid_fields_and_keeps_the_rest() {
    let l = strukt(
        40,
        vec![
            field(
                "s",
                0,
                LayoutBuf {
                    size: 8,
                    align: 1,
                    kind: KindBuf::FixedStr { capacity: 4 },
                },
            ),
            field(
                "b",
                8,
                LayoutBuf {
                    size: 1,
                    align: 1,
                    kind: KindBuf::Bool,
                },
            ),
            field(
                "v",
                16,
                LayoutBuf {
                    size: 16,
                    align: 8,
                    kind: KindBuf::FixedVec {
                        capacity: 2,
                        element: Box::new(prim(Primitive::U32, 4)),
                    },
                },
            ),
            field("n", 32, prim(Primitive::U64, 8)),
        ],
    );
    let mut bytes = [0u8; 40];
    bytes[..4].copy_from_slice(&9u32.to_ne_bytes());
    bytes[8] = 7;
    bytes[16..24].copy_from_slice(&3u64.to_ne_bytes());
    bytes[32..].copy_from_slice(&42u64.to_ne_bytes());
    let v = l.decode_value_lossy(&bytes);
    assert_eq!(
        reason(get(&v, "s")),
        "stored length 9 exceeds the capacity of 4"
    );
    assert_eq!(
        reason(get(&v, "b")),
        "boolean byte is 7, expected 0 (false) or 1 (true)"
    );
    assert_eq!(
        reason(get(&v, "v")),
        "stored length 3 exceeds the capacity of 2"
    );
    assert_eq!(get(&v, "n"), &Value::Unsigned(42, Primitive::U64));
    assert_eq!(v.first_invalid().unwrap().field, "s");
    assert_eq!(
        l.decode_value(&bytes).unwrap_err(),
        v.first_invalid().unwrap()
    );
    bytes[..4].copy_from_slice(&2u32.to_ne_bytes());
    bytes[4..6].copy_from_slice(&[0xff, 0xfe]);
    let v = l.decode_value_lossy(&bytes);
    assert_eq!(
        reason(get(&v, "s")),
        "string bytes are not utf-8 (valid up to byte 0)"
    );
}

#[test]
fn hostile_layouts_are_invalid_values_not_panics() {
    let l = LayoutBuf::from(Outer::LAYOUT);
    let b = bytes_of(&sample());
    assert_eq!(l.decode_value(&b[..10]).unwrap_err().field, "(root)");
    let mut bad = l.clone();
    if let KindBuf::Struct { fields, .. } = &mut bad.kind {
        fields[1].offset = u64::MAX - 2;
    }
    assert_eq!(bad.decode_value(&b).unwrap_err().field, "label");
    let v = bad.decode_value_lossy(&b);
    assert_eq!(
        get(&v, "x"),
        &Value::F32(1.5),
        "the other fields still decode"
    );
    let huge = LayoutBuf {
        size: 8,
        align: 8,
        kind: KindBuf::Array {
            len: u64::MAX,
            element: Box::new(prim(Primitive::U8, 0)),
        },
    };
    assert!(matches!(huge.decode_value_lossy(&b), Value::Invalid { .. }));
    let wrong_size = strukt(8, vec![field("a", 0, prim(Primitive::U32, 8))]);
    assert_eq!(
        wrong_size.decode_value(&[0; 8]).unwrap_err().reason,
        "a `u32` must be 4 bytes"
    );
}

#[test]
fn overlapping_fields_cannot_make_decoding_unbounded() {
    // 300 fields each over the same 4096 bytes: 1.2 million values, past the bound for 4096
    // bytes, and a layout whose encoding is only a few kilobytes.
    let page = LayoutBuf {
        size: 4096,
        align: 1,
        kind: KindBuf::Array {
            len: 4096,
            element: Box::new(prim(Primitive::U8, 1)),
        },
    };
    let fields = (0..300)
        .map(|i| field(&format!("f{i}"), 0, page.clone()))
        .collect();
    let v = strukt(4096, fields).decode_value_lossy(&[0; 4096]);
    let e = v.first_invalid().expect("cut short");
    assert!(e.reason.contains("too many values"), "{e}");
    let Value::Struct(fields) = &v else { panic!() };
    let decoded: usize = fields
        .iter()
        .map(|(_, v)| match v {
            Value::List(items) => items.len() + 1,
            _ => 1,
        })
        .sum();
    assert!(decoded <= MAX_VALUES + 2 * 4096, "{decoded} values");
    assert_eq!(fields.len(), 300);
}

#[test]
fn nesting_deeper_than_the_limit_is_invalid() {
    let mut l = prim(Primitive::U8, 1);
    for _ in 0..MAX_DEPTH + 2 {
        l = LayoutBuf {
            size: 1,
            align: 1,
            kind: KindBuf::Array {
                len: 1,
                element: Box::new(l),
            },
        };
    }
    let e = l.decode_value(&[0]).unwrap_err();
    assert!(e.reason.contains("nested deeper than 64"), "{e}");
    assert!(e.field.starts_with("[0][0]"), "{e}");
}

#[test]
fn first_invalid_names_the_first_in_declaration_order() {
    let v = Value::Struct(vec![
        ("a".into(), Value::Bool(true)),
        (
            "b".into(),
            Value::List(vec![
                Value::Bool(false),
                Value::Struct(vec![(
                    "c".into(),
                    Value::Invalid {
                        reason: "why".into(),
                    },
                )]),
            ]),
        ),
        (
            "d".into(),
            Value::Invalid {
                reason: "later".into(),
            },
        ),
    ]);
    let e = v.first_invalid().unwrap();
    assert_eq!((e.field.as_str(), e.reason.as_str()), ("b[1].c", "why"));
    assert_eq!(e.to_string(), "field `b[1].c` is invalid: why");
}
