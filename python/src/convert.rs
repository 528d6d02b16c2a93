//! Between Python and payload bytes: layouts given as arguments, [`Value`]s decoded by
//! `shm_core` turned into Python objects, and Python values (dicts, lists, ints, floats, bools,
//! strs) encoded by a layout.

use crate::InvalidFieldError;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};
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
