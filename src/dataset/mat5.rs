//! MATLAB Level-5 MAT-files (what `save -v6`/`-v7` and `scipy.io.savemat` write): a reader of
//! numeric, logical, char, cell and struct arrays, uncompressed or zlib-compressed, either byte
//! order, and a writer of the same subset (uncompressed, little-endian) for synthetic data.
//!
//! Why our own: of the crates that read MAT-files, `matfile` reads numeric arrays only (no cells,
//! structs or chars, which the AgeDB protocol files are made of); `matrw` requires the header text
//! to start `MATLAB 5.0 MAT-file, ` so it rejects every file SciPy writes (`MATLAB 5.0 MAT-file
//! Platform: …`, no comma) and can panic on malformed input; `matreader` (one 0.1 release) reduces
//! numbers to f64 summaries and pulls clap and ndarray 0.15; `matio-rs` needs the C library. The
//! format (MathWorks "MAT-File Format", Level 5) is small; every error here names the byte offset.

use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;

/// Tag types (MAT-File Format, table 1-1).
const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_INT16: u32 = 3;
const MI_UINT16: u32 = 4;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_SINGLE: u32 = 7;
const MI_DOUBLE: u32 = 9;
const MI_INT64: u32 = 12;
const MI_UINT64: u32 = 13;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;
const MI_UTF8: u32 = 16;
const MI_UTF16: u32 = 17;
const MI_UTF32: u32 = 18;

/// Array classes (MAT-File Format, table 1-3).
const MX_CELL: u8 = 1;
const MX_STRUCT: u8 = 2;
const MX_CHAR: u8 = 4;
const MX_DOUBLE: u8 = 6;

/// Deeper nesting than this is refused rather than risking the stack on a hostile file.
const MAX_DEPTH: usize = 64;
/// A compressed variable that inflates beyond this is refused (protocol files are kilobytes).
const MAX_INFLATED: u64 = 1 << 30;

/// One MATLAB array. Dimensions are MATLAB's (column-major; at least two).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Numeric or logical array, real part as f64 (exact for every integer up to 2^53).
    Numeric {
        class: &'static str,
        dims: Vec<usize>,
        data: Vec<f64>,
    },
    Char {
        dims: Vec<usize>,
        chars: Vec<char>,
    },
    /// Elements in column-major order.
    Cell {
        dims: Vec<usize>,
        items: Vec<Value>,
    },
    /// `items[e][f]` is field `fields[f]` of element `e` (column-major).
    Struct {
        dims: Vec<usize>,
        fields: Vec<String>,
        items: Vec<Vec<Value>>,
    },
}

/// `2×600`.
pub fn dims_text(dims: &[usize]) -> String {
    dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("×")
}

impl Value {
    pub fn dims(&self) -> &[usize] {
        match self {
            Value::Numeric { dims, .. }
            | Value::Char { dims, .. }
            | Value::Cell { dims, .. }
            | Value::Struct { dims, .. } => dims,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.dims().iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// "a 2×600 cell array", for messages.
    pub fn describe(&self) -> String {
        let d = dims_text(self.dims());
        match self {
            Value::Numeric { class, .. } => format!("a {d} {class} array"),
            Value::Char { .. } => format!("a {d} char array"),
            Value::Cell { .. } => format!("a {d} cell array"),
            Value::Struct { fields, .. } => format!("a {d} struct (fields: {})", fields.join(", ")),
        }
    }

    /// The text of a char array with at most one row (trailing blanks, MATLAB's padding, removed).
    pub fn as_text(&self) -> Option<String> {
        match self {
            // A row or a column of characters is one string.
            Value::Char { dims, chars } if dims.len() == 2 && (dims[0] <= 1 || dims[1] <= 1) => {
                Some(chars.iter().collect::<String>().trim_end().to_string())
            }
            _ => None,
        }
    }

    /// The single number of a 1×1 numeric array.
    pub fn as_scalar(&self) -> Option<f64> {
        match self {
            Value::Numeric { data, .. } if data.len() == 1 => Some(data[0]),
            _ => None,
        }
    }

    /// A double array (the class MATLAB gives numbers by default).
    pub fn doubles(dims: Vec<usize>, data: Vec<f64>) -> Value {
        Value::Numeric { class: "double", dims, data }
    }

    /// A 1×N char array.
    pub fn text(s: &str) -> Value {
        let chars: Vec<char> = s.chars().collect();
        Value::Char { dims: vec![1, chars.len()], chars }
    }
}

/// The variables of a MAT-file, in file order.
#[derive(Debug, Clone, Default)]
pub struct MatFile {
    pub variables: Vec<(String, Value)>,
}

impl MatFile {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.variables.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    pub fn names(&self) -> Vec<&str> {
        self.variables.iter().map(|(n, _)| n.as_str()).collect()
    }
}

pub fn read(path: &Path) -> Result<MatFile> {
    let bytes = crate::io::read_input(path, crate::io::Role::MAT)?;
    parse(&bytes, path)
}

/// Where in the file a byte of the stream being parsed is, for messages.
#[derive(Clone, Copy)]
struct Origin {
    /// Offset of the miCOMPRESSED element whose inflated bytes are being read, if any.
    compressed_at: Option<usize>,
}

struct Reader<'a> {
    buf: &'a [u8],
    big: bool,
    origin: Origin,
    path: &'a Path,
}

/// One data element: its type, its data and where the data start.
struct Element<'a> {
    ty: u32,
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn err(&self, at: usize, msg: impl std::fmt::Display) -> Error {
        let place = match self.origin.compressed_at {
            Some(c) => format!("byte {at} of the variable compressed at byte {c}"),
            None => format!("byte {at}"),
        };
        Error::data(self.path, format!("{place}: {msg}"))
    }

    fn u32_at(&self, at: usize) -> u32 {
        let b = [self.buf[at], self.buf[at + 1], self.buf[at + 2], self.buf[at + 3]];
        if self.big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }

    /// The element whose tag starts at `at`, and the offset after it (8-byte aligned, except
    /// after compressed data, which MATLAB does not pad).
    fn element(&self, at: usize, end: usize) -> Result<(Element<'a>, usize)> {
        if at + 8 > end {
            return Err(self.err(at, format!("expected an 8-byte element tag, found {} bytes", end - at)));
        }
        let first = self.u32_at(at);
        if first >> 16 != 0 {
            // Small data element: type and size share the first word, data in the next four bytes.
            let (ty, n) = (first & 0xffff, (first >> 16) as usize);
            if n > 4 {
                return Err(self.err(at, format!("small data element claims {n} bytes (at most 4 fit)")));
            }
            return Ok((Element { ty, data: &self.buf[at + 4..at + 4 + n], at: at + 4 }, at + 8));
        }
        let n = self.u32_at(at + 4) as usize;
        let start = at + 8;
        if n > end - start {
            return Err(self.err(at, format!("element of type {first} claims {n} bytes, only {} remain", end - start)));
        }
        let next = if first == MI_COMPRESSED { start + n } else { (start + n).div_ceil(8) * 8 };
        Ok((Element { ty: first, data: &self.buf[start..start + n], at: start }, next.min(end)))
    }

    fn numbers(&self, e: &Element) -> Result<Vec<f64>> {
        let size = match e.ty {
            MI_INT8 | MI_UINT8 | MI_UTF8 => 1,
            MI_INT16 | MI_UINT16 | MI_UTF16 => 2,
            MI_INT32 | MI_UINT32 | MI_SINGLE | MI_UTF32 => 4,
            MI_DOUBLE | MI_INT64 | MI_UINT64 => 8,
            other => return Err(self.err(e.at, format!("expected numeric data, found element type {other}"))),
        };
        if e.data.len() % size != 0 {
            return Err(self.err(e.at, format!("{} bytes of {size}-byte numbers", e.data.len())));
        }
        let big = self.big;
        let word = |c: &[u8]| -> u64 {
            let mut v = 0u64;
            for k in 0..c.len() {
                let b = if big { c[k] } else { c[c.len() - 1 - k] };
                v = (v << 8) | b as u64;
            }
            v
        };
        Ok(e.data
            .chunks_exact(size)
            .map(|c| {
                let w = word(c);
                match e.ty {
                    MI_INT8 => w as u8 as i8 as f64,
                    MI_INT16 => w as u16 as i16 as f64,
                    MI_INT32 => w as u32 as i32 as f64,
                    MI_INT64 => w as i64 as f64,
                    MI_SINGLE => f32::from_bits(w as u32) as f64,
                    MI_DOUBLE => f64::from_bits(w),
                    _ => w as f64,
                }
            })
            .collect())
    }

    fn expect_type(&self, e: &Element, types: &[u32], what: &str) -> Result<()> {
        if types.contains(&e.ty) {
            Ok(())
        } else {
            Err(self.err(e.at, format!("expected {what}, found element type {}", e.ty)))
        }
    }

    /// Parses the miMATRIX whose data are `e`.
    fn matrix(&self, e: &Element, depth: usize) -> Result<(String, Value)> {
        if depth > MAX_DEPTH {
            return Err(self.err(e.at, format!("arrays nested more than {MAX_DEPTH} deep")));
        }
        let end = e.at + e.data.len();
        if e.data.is_empty() {
            // MATLAB writes an empty cell element as a zero-length miMATRIX.
            return Ok((String::new(), Value::doubles(vec![0, 0], Vec::new())));
        }
        let (flags, pos) = self.element(e.at, end)?;
        self.expect_type(&flags, &[MI_UINT32], "the array flags (miUINT32)")?;
        if flags.data.len() < 8 {
            return Err(self.err(flags.at, "array flags need 8 bytes"));
        }
        let word = self.u32_at(flags.at);
        let class = (word & 0xff) as u8;
        let (complex, logical) = (word & 0x800 != 0, word & 0x200 != 0);
        let (dims_el, pos) = self.element(pos, end)?;
        self.expect_type(&dims_el, &[MI_INT32], "the dimensions (miINT32)")?;
        let dims: Vec<usize> =
            self.numbers(&dims_el)?
                .into_iter()
                .map(|d| {
                    if d >= 0.0 {
                        Ok(d as usize)
                    } else {
                        Err(self.err(dims_el.at, format!("negative dimension {d}")))
                    }
                })
                .collect::<Result<_>>()?;
        if dims.len() < 2 {
            return Err(self.err(dims_el.at, format!("an array needs at least 2 dimensions, found {}", dims.len())));
        }
        let n = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        let n = n.ok_or_else(|| self.err(dims_el.at, format!("dimensions {} overflow", dims_text(&dims))))?;
        let (name_el, mut pos) = self.element(pos, end)?;
        self.expect_type(&name_el, &[MI_INT8, MI_UINT8], "the array name (miINT8)")?;
        let name = String::from_utf8_lossy(name_el.data).trim_end_matches('\0').to_string();
        // Every element of a cell or struct takes at least one 8-byte tag: refuse sizes the
        // remaining bytes cannot hold before allocating for them.
        let room = |per: usize, pos: usize| n.checked_mul(per).is_some_and(|b| b <= end - pos);
        let value = match class {
            MX_CELL => {
                if !room(8, pos) {
                    return Err(
                        self.err(dims_el.at, format!("{} cells cannot fit in the array's bytes", dims_text(&dims)))
                    );
                }
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    let (item, next) = self.element(pos, end)?;
                    items.push(self.child(&item, depth)?);
                    pos = next;
                }
                Value::Cell { dims, items }
            }
            MX_STRUCT => {
                let (len_el, next) = self.element(pos, end)?;
                self.expect_type(&len_el, &[MI_INT32], "the field-name length (miINT32)")?;
                let len = self.numbers(&len_el)?.first().copied().unwrap_or(0.0);
                if !(1.0..=4096.0).contains(&len) {
                    return Err(self.err(len_el.at, format!("field-name length {len} is not in 1..4096")));
                }
                let (names_el, next) = self.element(next, end)?;
                self.expect_type(&names_el, &[MI_INT8, MI_UINT8], "the field names (miINT8)")?;
                let fields: Vec<String> = names_el
                    .data
                    .chunks(len as usize)
                    .map(|c| String::from_utf8_lossy(c).trim_end_matches('\0').to_string())
                    .collect();
                pos = next;
                if (fields.is_empty() && n > 1 << 20) || (!fields.is_empty() && !room(8 * fields.len(), pos)) {
                    return Err(
                        self.err(dims_el.at, format!("{} structs cannot fit in the array's bytes", dims_text(&dims)))
                    );
                }
                let mut items = Vec::with_capacity(if fields.is_empty() { 0 } else { n });
                for _ in 0..n {
                    let mut row = Vec::with_capacity(fields.len());
                    for _ in &fields {
                        let (item, next) = self.element(pos, end)?;
                        row.push(self.child(&item, depth)?);
                        pos = next;
                    }
                    items.push(row);
                }
                Value::Struct { dims, fields, items }
            }
            MX_CHAR => {
                let chars = if n == 0 && pos >= end {
                    Vec::new()
                } else {
                    let (data, _) = self.element(pos, end)?;
                    self.chars(&data, n)?
                };
                Value::Char { dims, chars }
            }
            MX_DOUBLE..=15 => {
                if complex {
                    return Err(self.err(flags.at, "complex numbers are not expected in a protocol file"));
                }
                let data = if n == 0 && pos >= end {
                    Vec::new()
                } else {
                    let (data, _) = self.element(pos, end)?;
                    self.numbers(&data)?
                };
                if data.len() != n {
                    return Err(self.err(
                        e.at,
                        format!("a {} array needs {n} numbers, its data hold {}", dims_text(&dims), data.len()),
                    ));
                }
                let classes =
                    ["double", "single", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"];
                let class = if logical { "logical" } else { classes[(class - MX_DOUBLE) as usize] };
                Value::Numeric { class, dims, data }
            }
            3 => return Err(self.err(flags.at, "MATLAB objects are not supported")),
            5 => return Err(self.err(flags.at, "sparse arrays are not supported")),
            other => return Err(self.err(flags.at, format!("unknown array class {other}"))),
        };
        Ok((name, value))
    }

    /// A cell or field element: a (possibly compressed) miMATRIX.
    fn child(&self, e: &Element, depth: usize) -> Result<Value> {
        match e.ty {
            MI_MATRIX => Ok(self.matrix(e, depth + 1)?.1),
            other => Err(self.err(e.at, format!("expected an array (miMATRIX) element, found type {other}"))),
        }
    }

    fn chars(&self, e: &Element, n: usize) -> Result<Vec<char>> {
        let chars: Vec<char> = match e.ty {
            MI_UTF8 | MI_UINT8 | MI_INT8 => match std::str::from_utf8(e.data) {
                Ok(s) => s.chars().collect(),
                Err(_) => e.data.iter().map(|&b| b as char).collect(),
            },
            MI_UTF16 | MI_UINT16 | MI_INT16 => {
                let units: Vec<u16> = self.numbers(e)?.into_iter().map(|u| u as u16).collect();
                char::decode_utf16(units.iter().copied()).map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER)).collect()
            }
            MI_UTF32 | MI_UINT32 | MI_INT32 => self
                .numbers(e)?
                .into_iter()
                .map(|u| char::from_u32(u as u32).unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect(),
            other => return Err(self.err(e.at, format!("expected character data, found element type {other}"))),
        };
        // MATLAB counts UTF-16 units; a character outside the BMP decodes to one char from two.
        if chars.len() > n {
            return Err(self.err(e.at, format!("char array of {n} characters holds {}", chars.len())));
        }
        Ok(chars)
    }
}

/// Parses a whole MAT-file.
pub fn parse(bytes: &[u8], path: &Path) -> Result<MatFile> {
    if bytes.len() < 128 {
        return Err(Error::data(path, format!("{} bytes: too short for a MAT-file (128-byte header)", bytes.len())));
    }
    let big = match &bytes[126..128] {
        b"IM" => false,
        b"MI" => true,
        _ if bytes.starts_with(b"\x89HDF") => {
            return Err(Error::data(path, "an HDF5 file (MATLAB v7.3): save it with `save -v7` or scipy.io.savemat"));
        }
        _ => {
            return Err(Error::data(
                path,
                "byte 126: no 'IM'/'MI' endian indicator: not a MATLAB Level-5 (v5/v6/v7) MAT-file",
            ))
        }
    };
    let version =
        if big { u16::from_be_bytes([bytes[124], bytes[125]]) } else { u16::from_le_bytes([bytes[124], bytes[125]]) };
    if version == 0x0200 {
        return Err(Error::data(path, "byte 124: version 0x0200 (MATLAB v7.3, HDF5): save it with `save -v7`"));
    }
    if version != 0x0100 {
        return Err(Error::data(path, format!("byte 124: version 0x{version:04x}, expected 0x0100 (Level 5)")));
    }
    // A subsystem-data offset (objects) marks where the variables end.
    let sub = u64::from_le_bytes(bytes[116..124].try_into().unwrap_or([0; 8]));
    let end = if sub != 0 && sub != 0x2020_2020_2020_2020 && (sub as usize) > 128 && (sub as usize) < bytes.len() {
        sub as usize
    } else {
        bytes.len()
    };
    let top = Reader { buf: bytes, big, origin: Origin { compressed_at: None }, path };
    let mut file = MatFile::default();
    let mut pos = 128;
    while pos < end {
        // Trailing padding is allowed.
        if bytes[pos..end].iter().all(|&b| b == 0) {
            break;
        }
        let (e, next) = top.element(pos, end)?;
        let (name, value) = match e.ty {
            MI_MATRIX => top.matrix(&e, 0)?,
            MI_COMPRESSED => {
                let mut inflated = Vec::new();
                flate2::read::ZlibDecoder::new(e.data)
                    .take(MAX_INFLATED + 1)
                    .read_to_end(&mut inflated)
                    .map_err(|err| top.err(e.at, format!("compressed variable does not inflate: {err}")))?;
                if inflated.len() as u64 > MAX_INFLATED {
                    return Err(top.err(e.at, format!("compressed variable inflates beyond {MAX_INFLATED} bytes")));
                }
                let inner = Reader { buf: &inflated, big, origin: Origin { compressed_at: Some(pos) }, path };
                let (m, _) = inner.element(0, inflated.len())?;
                if m.ty != MI_MATRIX {
                    return Err(inner.err(0, format!("expected an array (miMATRIX), found element type {}", m.ty)));
                }
                inner.matrix(&m, 0)?
            }
            other => {
                return Err(top.err(pos, format!("expected a variable (miMATRIX or miCOMPRESSED), found type {other}")))
            }
        };
        file.variables.push((name, value));
        pos = next;
    }
    Ok(file)
}

/// Writes a Level-5 MAT-file (little-endian, uncompressed, a fixed header text so the bytes
/// depend on the content only). Numbers are written as double.
pub fn write(variables: &[(&str, &Value)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    let mut text = b"MATLAB 5.0 MAT-file, Platform: any, written by aifr-eval".to_vec();
    text.resize(116, b' ');
    out.extend_from_slice(&text);
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&0x0100u16.to_le_bytes());
    out.extend_from_slice(b"IM");
    for (name, value) in variables {
        out.extend_from_slice(&matrix_bytes(name, value));
    }
    out
}

fn push_element(out: &mut Vec<u8>, ty: u32, data: &[u8]) {
    out.extend_from_slice(&ty.to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(8) * 8, 0);
}

fn matrix_bytes(name: &str, value: &Value) -> Vec<u8> {
    let mut body = Vec::new();
    let class = match value {
        Value::Numeric { .. } => MX_DOUBLE,
        Value::Char { .. } => MX_CHAR,
        Value::Cell { .. } => MX_CELL,
        Value::Struct { .. } => MX_STRUCT,
    };
    push_element(&mut body, MI_UINT32, &[&(class as u32).to_le_bytes()[..], &[0; 4]].concat());
    let dims: Vec<u8> = value.dims().iter().flat_map(|&d| (d as i32).to_le_bytes()).collect();
    push_element(&mut body, MI_INT32, &dims);
    push_element(&mut body, MI_INT8, name.as_bytes());
    match value {
        Value::Numeric { data, .. } => {
            let bytes: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
            push_element(&mut body, MI_DOUBLE, &bytes);
        }
        Value::Char { chars, .. } => {
            let units: Vec<u8> =
                chars.iter().flat_map(|c| c.encode_utf16(&mut [0; 2]).to_vec()).flat_map(|u| u.to_le_bytes()).collect();
            push_element(&mut body, MI_UINT16, &units);
        }
        Value::Cell { items, .. } => {
            for item in items {
                body.extend_from_slice(&matrix_bytes("", item));
            }
        }
        Value::Struct { fields, items, .. } => {
            let len = fields.iter().map(|f| f.len() + 1).max().unwrap_or(1).max(32);
            push_element(&mut body, MI_INT32, &(len as i32).to_le_bytes());
            let mut names = Vec::with_capacity(len * fields.len());
            for f in fields {
                let mut b = f.as_bytes().to_vec();
                b.resize(len, 0);
                names.extend_from_slice(&b);
            }
            push_element(&mut body, MI_INT8, &names);
            for row in items {
                for item in row {
                    body.extend_from_slice(&matrix_bytes("", item));
                }
            }
        }
    }
    let mut out = Vec::with_capacity(body.len() + 8);
    push_element(&mut out, MI_MATRIX, &body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        let item = |n: &str, age: f64| Value::Struct {
            dims: vec![1, 1],
            fields: vec!["name".into(), "age".into()],
            items: vec![vec![Value::text(n), Value::doubles(vec![1, 1], vec![age])]],
        };
        Value::Cell { dims: vec![2, 1], items: vec![item("a_1", 30.0), item("b_2", 60.0)] }
    }

    #[test]
    fn written_files_read_back() {
        let v = sample();
        let bytes = write(&[("splits", &v), ("x", &Value::doubles(vec![1, 3], vec![1.0, -1.0, 2.5]))]);
        let f = parse(&bytes, Path::new("t.mat")).unwrap();
        assert_eq!(f.names(), ["splits", "x"]);
        assert_eq!(f.get("splits"), Some(&v));
        assert_eq!(f.get("x").unwrap().describe(), "a 1×3 double array");
        // Same content, same bytes.
        assert_eq!(bytes, write(&[("splits", &v), ("x", &Value::doubles(vec![1, 3], vec![1.0, -1.0, 2.5]))]));
    }

    #[test]
    fn big_endian_files_read() {
        // A 1×2 double 'x' = [1.5, -2] and a 1×2 char 'c' = "hi", written big-endian by hand.
        let el = |ty: u32, data: &[u8]| -> Vec<u8> {
            let mut v = [ty.to_be_bytes(), (data.len() as u32).to_be_bytes()].concat();
            v.extend_from_slice(data);
            v.resize(v.len().div_ceil(8) * 8, 0);
            v
        };
        let matrix = |class: u32, name: &[u8], data: Vec<u8>| -> Vec<u8> {
            let body = [
                el(MI_UINT32, &[class.to_be_bytes(), [0; 4]].concat()),
                el(MI_INT32, &[1i32.to_be_bytes(), 2i32.to_be_bytes()].concat()),
                el(MI_INT8, name),
                data,
            ]
            .concat();
            el(MI_MATRIX, &body)
        };
        let mut bytes = vec![b' '; 124];
        bytes.extend_from_slice(&0x0100u16.to_be_bytes());
        bytes.extend_from_slice(b"MI");
        bytes.extend(matrix(6, b"x", el(MI_DOUBLE, &[1.5f64.to_be_bytes(), (-2f64).to_be_bytes()].concat())));
        bytes.extend(matrix(
            4,
            b"c",
            el(MI_UINT16, &[u16::from(b'h').to_be_bytes(), u16::from(b'i').to_be_bytes()].concat()),
        ));
        let f = parse(&bytes, Path::new("be.mat")).unwrap();
        assert_eq!(f.get("x"), Some(&Value::doubles(vec![1, 2], vec![1.5, -2.0])));
        assert_eq!(f.get("c").and_then(Value::as_text).as_deref(), Some("hi"));
    }

    #[test]
    fn corruption_never_panics() {
        use rand::{Rng, SeedableRng};
        let good = write(&[("splits", &sample())]);
        let packed = std::fs::read(
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/agedb/bad_label.mat"),
        )
        .unwrap();
        let p = Path::new("t.mat");
        assert!(parse(&packed, p).is_ok(), "the SciPy-compressed fixture reads");
        for bytes in [&good, &packed] {
            for cut in 0..bytes.len().min(600) {
                let _ = parse(&bytes[..cut], p);
            }
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
            for _ in 0..2000 {
                let mut b = bytes.to_vec();
                for _ in 0..rng.gen_range(1..4) {
                    let i = rng.gen_range(128..b.len());
                    b[i] = rng.gen();
                }
                let _ = parse(&b, p);
            }
        }
    }

    #[test]
    fn bad_files_name_the_offset() {
        let p = Path::new("t.mat");
        assert!(parse(b"short", p).unwrap_err().to_string().contains("too short"));
        let mut bytes = write(&[("x", &Value::doubles(vec![1, 1], vec![1.0]))]);
        let mut v4 = bytes.clone();
        v4[126..128].copy_from_slice(b"XX");
        assert!(parse(&v4, p).unwrap_err().to_string().contains("byte 126"));
        let mut v73 = bytes.clone();
        v73[124..126].copy_from_slice(&0x0200u16.to_le_bytes());
        assert!(parse(&v73, p).unwrap_err().to_string().contains("v7.3"));
        // Truncated: the matrix claims more bytes than remain.
        bytes.truncate(bytes.len() - 8);
        let e = parse(&bytes, p).unwrap_err().to_string();
        assert!(e.starts_with("t.mat: byte 128: element of type 14 claims"), "{e}");
        // A cell claiming far more elements than its bytes can hold is refused before allocating.
        let mut huge = write(&[("c", &Value::Cell { dims: vec![1, 1], items: vec![Value::text("a")] })]);
        let dims_at = 128 + 8 + 16 + 8; // tag, flags element, dims tag
        huge[dims_at + 4..dims_at + 8].copy_from_slice(&1_000_000_000i32.to_le_bytes());
        let e = parse(&huge, p).unwrap_err().to_string();
        assert!(e.contains("cannot fit"), "{e}");
    }
}
