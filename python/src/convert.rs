//! Between Python and payload bytes: layouts given as arguments, [`Value`]s decoded by
//! `shm_core` turned into Python objects, and Python values (dicts, lists, ints, floats, bools,
//! strs) encoded by a layout.

use crate::InvalidFieldError;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyList, PyString};
use shm_core::layout::{KindBuf, Primitive, Value};
use shm_core::LayoutBuf;

/// A layout argument: the descriptor's bytes (a generated module's `DESCRIPTOR`), the JSON text
/// of `shm_core::export::json`, or a generated module (anything with `DESCRIPTOR`, and
/// `LAYOUT_HASH` which must then agree).
pub(crate) fn layout_arg(obj: &Bound<'_, PyAny>) -> PyResult<LayoutBuf> {
    let py = obj.py();
    let (descriptor, claimed): (Vec<u8>, Option<u64>) = if let Ok(b) = obj.cast::<PyBytes>() {
        (b.as_bytes().to_vec(), None)
    } else if let Ok(s) = obj.cast::<PyString>() {
        let doc = py.import("json")?.call_method1("loads", (s,))?;
        let hex = doc.get_item("descriptor")?;
        let bytes = py.get_type::<PyBytes>().call_method1("fromhex", (hex,))?;
        let hash: String = doc.get_item("layout_hash")?.extract()?;
        let hash = u64::from_str_radix(hash.trim_start_matches("0x"), 16)
            .map_err(|e| PyValueError::new_err(format!("the JSON's layout_hash: {e}")))?;
        (bytes.extract()?, Some(hash))
    } else if obj.hasattr("DESCRIPTOR")? {
        let claimed = match obj.getattr("LAYOUT_HASH") {
            Ok(h) => Some(h.extract()?),
            Err(_) => None,
        };
        (obj.getattr("DESCRIPTOR")?.extract()?, claimed)
    } else {
        return Err(PyValueError::new_err(
            "a layout is descriptor bytes, the layout's JSON text, or a generated module",
        ));
    };
    let layout = LayoutBuf::decode(&descriptor).map_err(|e| {
        PyValueError::new_err(format!("the layout descriptor does not decode: {e}"))
    })?;
    if let Some(claimed) = claimed {
        let hash = layout.layout_hash();
        if claimed != hash {
            return Err(PyValueError::new_err(format!(
                "the layout descriptor has hash {hash:#018x} but the layout hash given is {claimed:#018x} (regenerate the export)"
            )));
        }
    }
    Ok(layout)
}

/// The Python object of a decoded value: dicts for structs, lists for arrays and vectors.
fn to_python<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Unsigned(n, _) => n.into_pyobject(py)?.into_any(),
        Value::Signed(n, _) => n.into_pyobject(py)?.into_any(),
        Value::F32(x) => f64::from(*x).into_pyobject(py)?.into_any(),
        Value::F64(x) => x.into_pyobject(py)?.into_any(),
        Value::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
        Value::Str(s) => s.into_pyobject(py)?.into_any(),
        Value::List(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_python(py, item)?)?;
            }
            list.into_any()
        }
        Value::Struct(fields) => {
            let dict = PyDict::new(py);
            for (name, value) in fields {
                dict.set_item(name, to_python(py, value)?)?;
            }
            dict.into_any()
        }
        Value::Invalid { reason } => return Err(InvalidFieldError::new_err(reason.clone())),
        _ => {
            return Err(PyValueError::new_err(
                "a value kind this version cannot convert",
            ))
        }
    })
}

/// Decodes payload bytes by `layout` into Python objects; invalid bytes raise
/// `InvalidFieldError` naming the field.
pub(crate) fn decode<'py>(
    py: Python<'py>,
    layout: &LayoutBuf,
    bytes: &[u8],
) -> PyResult<Bound<'py, PyAny>> {
    let value = layout
        .decode_value(bytes)
        .map_err(|e| InvalidFieldError::new_err(e.to_string()))?;
    to_python(py, &value)
}

/// A decode plan: how to turn payload bytes into Python objects, worked out once per reader
/// from its layout so that a read does no layout walking, no name lookups and no
/// intermediate [`Value`]: the field names are interned Python strings made once, numbers
/// become Python ints and floats directly.
///
/// The plan covers layouts whose every part [`LayoutBuf::decode_value`] would decode without
/// a static error (every field inside its struct, sizes matching kinds, at most 2<sup>20</sup>
/// values); for any other layout [`Plan::new`] gives `None` and reads take the general path.
/// Bytes that are invalid for a helper type (a `ShmBool` byte other than 0 or 1, a string or
/// vector length over its capacity, text that is not UTF-8) make [`decode_with`] fall back to
/// the general path too, which raises the error naming the field: both paths agree on every
/// value and every error.
pub(crate) struct Plan {
    root: Node,
}

/// One part of a [`Plan`]; offsets are from the start of the enclosing part.
enum Node {
    /// An integer or float of the primitive's width.
    Primitive { offset: usize, primitive: Primitive },
    /// A `ShmBool`: one byte.
    Bool { offset: usize },
    /// A `FixedStr`: a `u32` length, then `capacity` bytes of UTF-8.
    Str { offset: usize, capacity: usize },
    /// `len` elements `stride` bytes apart (an array).
    Array {
        offset: usize,
        len: usize,
        stride: usize,
        element: Box<Node>,
    },
    /// A `FixedVec`: a `u64` length, then up to `capacity` elements `stride` bytes apart.
    Vec {
        offset: usize,
        capacity: usize,
        stride: usize,
        element: Box<Node>,
    },
    /// A struct: a dict of its fields, in order.
    Struct {
        offset: usize,
        fields: Vec<(Py<PyString>, Node)>,
    },
}

/// Most values a [`Plan`] may decode: `shm_core`'s decoder bound (2<sup>20</sup>), which
/// layouts describing more leave to the general path.
const PLAN_MAX_VALUES: u64 = 1 << 20;

impl Plan {
    /// The plan of `layout` for payloads of `size` bytes, or `None` if reads must take the
    /// general path.
    pub(crate) fn new(py: Python<'_>, layout: &LayoutBuf, size: usize) -> Option<Plan> {
        let mut values = 0u64;
        let root = node(py, layout, 0, size as u64, 0, &mut values)?;
        (values <= PLAN_MAX_VALUES).then_some(Plan { root })
    }
}

/// The node for `l` at `offset` in a part of `room` bytes; counts into `values` the values it
/// decodes at most.
fn node(
    py: Python<'_>,
    l: &LayoutBuf,
    offset: u64,
    room: u64,
    depth: usize,
    values: &mut u64,
) -> Option<Node> {
    // Deeper than any valid descriptor nests (32 levels).
    if depth > 32 || offset.checked_add(l.size)? > room {
        return None;
    }
    *values = values.checked_add(1)?;
    let at = usize::try_from(offset).ok()?;
    let size = usize::try_from(l.size).ok()?;
    Some(match &l.kind {
        KindBuf::Primitive(p) => {
            let width = match p {
                Primitive::U8 | Primitive::I8 => 1,
                Primitive::U16 | Primitive::I16 => 2,
                Primitive::U32 | Primitive::I32 | Primitive::F32 => 4,
                Primitive::U64 | Primitive::I64 | Primitive::F64 => 8,
                Primitive::U128 | Primitive::I128 => 16,
                _ => return None,
            };
            if size != width {
                return None;
            }
            Node::Primitive {
                offset: at,
                primitive: *p,
            }
        }
        KindBuf::Bool if size == 1 => Node::Bool { offset: at },
        KindBuf::FixedStr { capacity } if size >= 4 => Node::Str {
            offset: at,
            // A length up to the capacity must also fit in the bytes there are.
            capacity: usize::try_from(*capacity).ok()?.min(size - 4),
        },
        KindBuf::Array { len, element } => {
            let (stride, element) = element_plan(py, element, *len, l.size, depth, values)?;
            Node::Array {
                offset: at,
                len: usize::try_from(*len).ok()?,
                stride,
                element,
            }
        }
        KindBuf::FixedVec { capacity, element } if size >= 8 => {
            let (stride, element) =
                element_plan(py, element, *capacity, l.size - 8, depth, values)?;
            Node::Vec {
                offset: at,
                capacity: usize::try_from(*capacity).ok()?,
                stride,
                element,
            }
        }
        KindBuf::Struct { fields, .. } => Node::Struct {
            offset: at,
            fields: fields
                .iter()
                .map(|f| {
                    let n = node(py, &f.layout, f.offset, l.size, depth + 1, values)?;
                    Some((PyString::intern(py, &f.name).unbind(), n))
                })
                .collect::<Option<_>>()?,
        },
        _ => return None,
    })
}

/// The stride and node of `count` elements `element` back to back in `room` bytes.
fn element_plan(
    py: Python<'_>,
    element: &LayoutBuf,
    count: u64,
    room: u64,
    depth: usize,
    values: &mut u64,
) -> Option<(usize, Box<Node>)> {
    if count == 0 {
        // Nothing to decode; the element's node is never used, but must exist.
        let mut none = 0;
        let n = node(py, element, 0, element.size, depth + 1, &mut none)?;
        return Some((usize::try_from(element.size).ok()?, Box::new(n)));
    }
    if element.size == 0 || element.size.checked_mul(count)? > room {
        return None;
    }
    let mut each = 0;
    let n = node(py, element, 0, element.size, depth + 1, &mut each)?;
    *values = values.checked_add(each.checked_mul(count)?)?;
    if *values > PLAN_MAX_VALUES {
        return None;
    }
    Some((usize::try_from(element.size).ok()?, Box::new(n)))
}

/// Why [`decode_node`] stopped: bytes a helper type cannot hold (the general path names the
/// field), or a Python error.
enum Stop {
    Invalid,
    Py(PyErr),
}

impl From<PyErr> for Stop {
    fn from(e: PyErr) -> Stop {
        Stop::Py(e)
    }
}

impl From<std::convert::Infallible> for Stop {
    fn from(e: std::convert::Infallible) -> Stop {
        match e {}
    }
}

/// The `N` bytes at `at` of `bytes`.
#[inline(always)]
fn take<const N: usize>(bytes: &[u8], at: usize) -> Result<[u8; N], Stop> {
    bytes
        .get(at..at.wrapping_add(N))
        .and_then(|b| b.try_into().ok())
        .ok_or(Stop::Invalid)
}

/// Decodes `n` from the part of `bytes` that starts at `base`.
fn decode_node<'py>(
    py: Python<'py>,
    n: &Node,
    bytes: &[u8],
    base: usize,
) -> Result<Bound<'py, PyAny>, Stop> {
    Ok(match n {
        Node::Primitive { offset, primitive } => {
            let at = base + offset;
            match primitive {
                Primitive::U8 => u8::from_ne_bytes(take(bytes, at)?)
                    .into_pyobject(py)?
                    .into_any(),
                Primitive::U16 => u16::from_ne_bytes(take(bytes, at)?)
                    .into_pyobject(py)?
                    .into_any(),
                Primitive::U32 => u32::from_ne_bytes(take(bytes, at)?)
                    .into_pyobject(py)?
                    .into_any(),
                Primitive::U64 => u64::from_ne_bytes(take(bytes, at)?)
                    .into_pyobject(py)?
                    .into_any(),
                Primitive::U128 => u128::from_ne_bytes(take(bytes, at)?)
                    .into_pyobject(py)?
                    .into_any(),
                Primitive::I8 => i8::from_ne_bytes(take(bytes, at)?)
                    .into_pyobject(py)?
                    .into_any(),
                Primitive::I16 => i16::from_ne_bytes(take(bytes, at)?)
                    .into_pyobject(py)?
                    .into_any(),
                Primitive::I32 => i32::from_ne_bytes(take(bytes, at)?)
                    .into_pyobject(py)?
                    .into_any(),
                Primitive::I64 => i64::from_ne_bytes(take(bytes, at)?)
                    .into_pyobject(py)?
                    .into_any(),
                Primitive::I128 => i128::from_ne_bytes(take(bytes, at)?)
                    .into_pyobject(py)?
                    .into_any(),
                Primitive::F32 => {
                    PyFloat::new(py, f64::from(f32::from_ne_bytes(take(bytes, at)?))).into_any()
                }
                Primitive::F64 => PyFloat::new(py, f64::from_ne_bytes(take(bytes, at)?)).into_any(),
                _ => return Err(Stop::Invalid),
            }
        }
        Node::Bool { offset } => match take::<1>(bytes, base + offset)? {
            [0] => PyBool::new(py, false).to_owned().into_any(),
            [1] => PyBool::new(py, true).to_owned().into_any(),
            _ => return Err(Stop::Invalid),
        },
        Node::Str { offset, capacity } => {
            let at = base + offset;
            let len = u32::from_ne_bytes(take(bytes, at)?) as usize;
            if len > *capacity {
                return Err(Stop::Invalid);
            }
            let text = bytes.get(at + 4..at + 4 + len).ok_or(Stop::Invalid)?;
            let text = core::str::from_utf8(text).map_err(|_| Stop::Invalid)?;
            PyString::new(py, text).into_any()
        }
        Node::Array {
            offset,
            len,
            stride,
            element,
        } => list(py, element, bytes, base + offset, *len, *stride)?,
        Node::Vec {
            offset,
            capacity,
            stride,
            element,
        } => {
            let at = base + offset;
            let len = u64::from_ne_bytes(take(bytes, at)?);
            match usize::try_from(len) {
                Ok(len) if len <= *capacity => list(py, element, bytes, at + 8, len, *stride)?,
                _ => return Err(Stop::Invalid),
            }
        }
        Node::Struct { offset, fields } => {
            let at = base + offset;
            let dict = PyDict::new(py);
            for (name, field) in fields {
                dict.set_item(name.bind(py), decode_node(py, field, bytes, at)?)?;
            }
            dict.into_any()
        }
    })
}

/// A list of `len` elements `element`, `stride` bytes apart from `base`.
fn list<'py>(
    py: Python<'py>,
    element: &Node,
    bytes: &[u8],
    base: usize,
    len: usize,
    stride: usize,
) -> Result<Bound<'py, PyAny>, Stop> {
    let mut items = Vec::with_capacity(len);
    for i in 0..len {
        items.push(decode_node(py, element, bytes, base + i * stride)?);
    }
    Ok(PyList::new(py, items)?.into_any())
}

/// Decodes payload bytes by `plan` if there is one, else (or where the bytes are invalid for
/// a helper type) by `layout` as [`decode`] does: the same values and the same errors.
pub(crate) fn decode_with<'py>(
    py: Python<'py>,
    plan: Option<&Plan>,
    layout: &LayoutBuf,
    bytes: &[u8],
) -> PyResult<Bound<'py, PyAny>> {
    if let Some(plan) = plan {
        match decode_node(py, &plan.root, bytes, 0) {
            Ok(v) => return Ok(v),
            Err(Stop::Py(e)) => return Err(e),
            Err(Stop::Invalid) => {}
        }
    }
    decode(py, layout, bytes)
}

/// The payload bytes of `value`: a dict (or, for non-struct layouts, the matching Python
/// value) encoded by `layout` over `base` (fields the dict leaves out keep their bytes in
/// `base`), or any object `bytes()` accepts (bytes, bytearray, a ctypes structure) of exactly
/// the payload size.
pub(crate) fn value_bytes(
    layout: &LayoutBuf,
    value: &Bound<'_, PyAny>,
    base: Vec<u8>,
) -> PyResult<Vec<u8>> {
    let size = base.len();
    if value.cast::<PyDict>().is_ok() || !matches!(layout.kind, KindBuf::Struct { .. }) {
        let mut out = base;
        encode(layout, value, &mut out, &mut String::new())?;
        return Ok(out);
    }
    let bytes: Vec<u8> = value
        .py()
        .get_type::<PyBytes>()
        .call1((value,))?
        .extract()?;
    if bytes.len() != size {
        return Err(PyValueError::new_err(format!(
            "the value is {} bytes but the payload is {size} bytes",
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// An `InvalidFieldError` for the field at `path`.
fn field_error(path: &str, what: impl std::fmt::Display) -> PyErr {
    let path = if path.is_empty() { "(root)" } else { path };
    InvalidFieldError::new_err(format!("field `{path}` cannot hold the value: {what}"))
}

/// The `len` bytes at `offset` of `out`, or an error naming `path`.
fn window<'a>(out: &'a mut [u8], offset: u64, len: u64, path: &str) -> PyResult<&'a mut [u8]> {
    let start = usize::try_from(offset).ok();
    let end = start
        .zip(usize::try_from(len).ok())
        .and_then(|(s, l)| s.checked_add(l));
    match (start, end) {
        (Some(s), Some(e)) if e <= out.len() => Ok(&mut out[s..e]),
        _ => Err(field_error(
            path,
            "the layout places it outside the payload",
        )),
    }
}

/// Encodes `v` by `l` into `out` (exactly `l.size` bytes).
fn encode(l: &LayoutBuf, v: &Bound<'_, PyAny>, out: &mut [u8], path: &mut String) -> PyResult<()> {
    let out = window(out, 0, l.size, path)?;
    match &l.kind {
        KindBuf::Primitive(p) => primitive(*p, v, out, path),
        KindBuf::Bool => {
            let b: bool = v.extract().map_err(|e| field_error(path, e))?;
            out.copy_from_slice(&[u8::from(b)]);
            Ok(())
        }
        KindBuf::FixedStr { capacity } => {
            let s: String = v.extract().map_err(|e| field_error(path, e))?;
            if s.len() as u64 > *capacity || out.len() < 4 + s.len() {
                return Err(field_error(
                    path,
                    format_args!("{} bytes do not fit in a capacity of {capacity}", s.len()),
                ));
            }
            out.fill(0);
            out[..4].copy_from_slice(&(s.len() as u32).to_ne_bytes());
            out[4..4 + s.len()].copy_from_slice(s.as_bytes());
            Ok(())
        }
        KindBuf::FixedVec { capacity, element } => {
            let items: Vec<Bound<'_, PyAny>> = v.extract().map_err(|e| field_error(path, e))?;
            if items.len() as u64 > *capacity || out.len() < 8 {
                return Err(field_error(
                    path,
                    format_args!(
                        "{} items do not fit in a capacity of {capacity}",
                        items.len()
                    ),
                ));
            }
            out.fill(0);
            out[..8].copy_from_slice(&(items.len() as u64).to_ne_bytes());
            elements(element, &items, &mut out[8..], path)
        }
        KindBuf::Array { len, element } => {
            let items: Vec<Bound<'_, PyAny>> = v.extract().map_err(|e| field_error(path, e))?;
            if items.len() as u64 != *len {
                return Err(field_error(
                    path,
                    format_args!("{} items for an array of {len}", items.len()),
                ));
            }
            elements(element, &items, out, path)
        }
        KindBuf::Struct { fields, .. } => {
            let dict = v
                .cast::<PyDict>()
                .map_err(|_| field_error(path, "a struct is given as a dict"))?;
            for key in dict.keys() {
                let key: String = key.extract()?;
                if !fields.iter().any(|f| f.name == key) {
                    let at = if path.is_empty() {
                        String::new()
                    } else {
                        format!("{path}.")
                    };
                    return Err(field_error(
                        &format!("{at}{key}"),
                        "the layout has no such field",
                    ));
                }
            }
            for f in fields {
                let Some(fv) = dict.get_item(&f.name)? else {
                    continue;
                };
                let at = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&f.name);
                let dst = window(out, f.offset, f.layout.size, path)?;
                encode(&f.layout, &fv, dst, path)?;
                path.truncate(at);
            }
            Ok(())
        }
        _ => Err(field_error(path, "a kind this version cannot encode")),
    }
}

/// Encodes `items` back to back as `element`s from the start of `out`.
fn elements(
    element: &LayoutBuf,
    items: &[Bound<'_, PyAny>],
    out: &mut [u8],
    path: &mut String,
) -> PyResult<()> {
    for (i, item) in items.iter().enumerate() {
        let at = path.len();
        path.push_str(&format!("[{i}]"));
        let offset = (i as u64).checked_mul(element.size);
        let dst = window(out, offset.unwrap_or(u64::MAX), element.size, path)?;
        encode(element, item, dst, path)?;
        path.truncate(at);
    }
    Ok(())
}

fn primitive(p: Primitive, v: &Bound<'_, PyAny>, out: &mut [u8], path: &str) -> PyResult<()> {
    macro_rules! put {
        ($t:ty) => {{
            let x: $t = v.extract().map_err(|e| field_error(path, e))?;
            let b = x.to_ne_bytes();
            if out.len() != b.len() {
                return Err(field_error(path, "the layout gives it the wrong size"));
            }
            out.copy_from_slice(&b);
            Ok(())
        }};
    }
    match p {
        Primitive::U8 => put!(u8),
        Primitive::U16 => put!(u16),
        Primitive::U32 => put!(u32),
        Primitive::U64 => put!(u64),
        Primitive::U128 => put!(u128),
        Primitive::I8 => put!(i8),
        Primitive::I16 => put!(i16),
        Primitive::I32 => put!(i32),
        Primitive::I64 => put!(i64),
        Primitive::I128 => put!(i128),
        Primitive::F32 => put!(f32),
        Primitive::F64 => put!(f64),
        _ => Err(field_error(path, "a primitive this version cannot encode")),
    }
}
