//! Safe reader for insightface `.bin` verification packs (`lfw.bin`, `cfp_fp.bin`, ...).
//!
//! A pack is a Python pickle of the tuple `(bins, issame_list)`: `bins` holds 2·P encoded
//! images (pair `i` is `bins[2i]`, `bins[2i+1]`) and `issame_list` holds P booleans.
//!
//! Pickles are programs, so this is *not* a general unpickler: it is a small, restricted
//! pickle VM that knows only the opcodes and the handful of globals (numpy array/dtype/scalar
//! reconstruction, `_codecs.encode`, `bytes`, `bytearray`) that the known producers emit.
//! Nothing is ever imported or executed; any other opcode or global is an error. Every length
//! prefix is checked against the remaining input before use, so allocations are bounded by the
//! input size, and every failure is a [`BinError`] carrying the byte offset — never a panic.
//!
//! Accepted element encodings: Python 2 `str` (BINSTRING/SHORT_BINSTRING), Python 3 `bytes`
//! and `bytearray` (protocols 3–5, and the protocol-2 `_codecs.encode(<str>, 'latin1')` form),
//! and numpy `uint8` arrays as produced by `cv2.imencode` (numpy 1 or numpy 2 global names,
//! `_reconstruct` + BUILD at protocols 2–4, `_frombuffer` at protocol 5). `issame_list` may be
//! Python bools, ints 0/1, numpy bool scalars, or a 1-D numpy bool/uint8 array.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ops::Range;
use std::rc::Rc;

/// Tuples/lists may nest at most this deep. The format needs ~3 levels; the bound keeps the
/// recursive drop of hostile, deeply nested input from overflowing the stack.
const MAX_DEPTH: usize = 32;

/// Longest name or string excerpt quoted in an error message.
const MAX_QUOTE: usize = 80;

/// The encoded bytes of one image of a [`BinPack`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageBytes {
    /// Byte range inside the slice that was passed to [`parse_bin`] (zero-copy).
    Borrowed(Range<usize>),
    /// Bytes that had to be decoded, e.g. the protocol-2 `_codecs.encode(<str>, 'latin1')`
    /// form that Python 3 writes for `bytes`.
    Owned(Vec<u8>),
}

impl ImageBytes {
    /// Number of encoded bytes.
    pub fn len(&self) -> usize {
        match self {
            ImageBytes::Borrowed(r) => r.len(),
            ImageBytes::Owned(v) => v.len(),
        }
    }

    /// Whether there are no bytes (never true for an image of a parsed pack).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes; `None` only when `data` is not the slice this came from.
    pub fn get<'a>(&'a self, data: &'a [u8]) -> Option<&'a [u8]> {
        match self {
            ImageBytes::Borrowed(r) => data.get(r.clone()),
            ImageBytes::Owned(v) => Some(v),
        }
    }
}

/// A parsed insightface verification pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinPack {
    /// `2 * issame.len()` encoded images; pair `i` is `images[2i]`, `images[2i+1]`.
    pub images: Vec<ImageBytes>,
    /// One flag per pair: whether both images show the same identity.
    pub issame: Vec<bool>,
}

impl BinPack {
    /// Number of pairs (`issame.len()`).
    pub fn num_pairs(&self) -> usize {
        self.issame.len()
    }

    /// Encoded bytes of image `i`; `data` must be the slice given to [`parse_bin`].
    /// `None` if `i` is out of range or `data` is not that slice.
    pub fn get_image<'a>(&'a self, data: &'a [u8], i: usize) -> Option<&'a [u8]> {
        self.images.get(i)?.get(data)
    }

    /// Like [`BinPack::get_image`], but returns an empty slice instead of `None` (which any
    /// image decoder then rejects), so a caller mistake cannot panic.
    pub fn image<'a>(&'a self, data: &'a [u8], i: usize) -> &'a [u8] {
        self.get_image(data, i).unwrap_or(&[])
    }
}

/// Why a `.bin` pack could not be read. Every variant names the byte offset it refers to
/// (see [`BinError::offset`]); the caller adds the file path.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BinError {
    #[error("at byte 0: empty input, expected a pickled (bins, issame_list) pack")]
    Empty,
    #[error("truncated: {what} at byte {offset} needs {needed} bytes, {remaining} remain")]
    Truncated { offset: usize, what: &'static str, needed: u64, remaining: usize },
    #[error("truncated: input ends at byte {offset} before the pickle's STOP opcode")]
    MissingStop { offset: usize },
    #[error("at byte {offset}: unsupported pickle opcode {}", op_desc(.opcode))]
    UnsupportedOpcode { offset: usize, opcode: u8 },
    #[error(
        "at byte {offset}: pickle opcode {} refers to an out-of-band buffer, which a .bin file cannot carry",
        op_desc(.opcode)
    )]
    OutOfBandBuffer { offset: usize, opcode: u8 },
    #[error(
        "at byte {offset}: refused global '{module}.{name}' (opcode {}): only numpy \
         ndarray/dtype/scalar reconstruction, _codecs.encode, bytes and bytearray are allowed",
        op_desc(.opcode)
    )]
    ForbiddenGlobal { offset: usize, opcode: u8, module: String, name: String },
    #[error("at byte {offset}: {context}: expected {expected}, found {found}")]
    Unexpected { offset: usize, context: String, expected: String, found: String },
    #[error("at byte {offset}: {context}: {what} exceeds the limit of {limit}")]
    LimitExceeded { offset: usize, context: &'static str, what: &'static str, limit: u64 },
    #[error("at byte {offset}: {opcode} of memo key {key}, which was never stored")]
    MissingMemo { offset: usize, opcode: &'static str, key: u32 },
    #[error("at byte {offset}: {opcode} needs {needed} stack item(s) above the last MARK, found {available}")]
    StackUnderflow { offset: usize, opcode: &'static str, needed: usize, available: usize },
    #[error("at byte {offset}: {opcode} without a matching MARK")]
    MissingMark { offset: usize, opcode: &'static str },
    #[error("at byte {offset}: {len} trailing byte(s) after the pickle's STOP opcode")]
    TrailingData { offset: usize, len: usize },
    #[error("at byte {offset}: expected a 2-tuple (bins, issame_list), found {found}")]
    NotAPair { offset: usize, found: String },
    #[error("at byte {offset}: bins has {images} images, expected 2*len(issame_list)={expected}")]
    LengthMismatch { offset: usize, images: usize, expected: usize },
    #[error("at byte {offset}: image {index} (bins[{index}]) is empty")]
    EmptyImage { offset: usize, index: usize },
    #[error("at byte {offset}: the pack holds no pairs (bins and issame_list are empty)")]
    NoPairs { offset: usize },
}

impl BinError {
    /// Byte offset in the input that the error refers to.
    pub fn offset(&self) -> usize {
        match self {
            BinError::Empty => 0,
            BinError::Truncated { offset, .. }
            | BinError::MissingStop { offset }
            | BinError::UnsupportedOpcode { offset, .. }
            | BinError::OutOfBandBuffer { offset, .. }
            | BinError::ForbiddenGlobal { offset, .. }
            | BinError::Unexpected { offset, .. }
            | BinError::LimitExceeded { offset, .. }
            | BinError::MissingMemo { offset, .. }
            | BinError::StackUnderflow { offset, .. }
            | BinError::MissingMark { offset, .. }
            | BinError::TrailingData { offset, .. }
            | BinError::NotAPair { offset, .. }
            | BinError::LengthMismatch { offset, .. }
            | BinError::EmptyImage { offset, .. }
            | BinError::NoPairs { offset } => *offset,
        }
    }
}

/// Parse an insightface `.bin` pack held in memory.
///
/// Image bytes are returned as ranges into `data` where possible (see [`ImageBytes`]).
pub fn parse_bin(data: &[u8]) -> Result<BinPack, BinError> {
    if data.is_empty() {
        return Err(BinError::Empty);
    }
    let mut vm = Vm::new(data);
    let top = vm.run()?;
    let end = vm.pos;
    if end < data.len() {
        return Err(BinError::TrailingData { offset: end, len: data.len() - end });
    }
    // Release the memo so that decoded (owned) image bytes can be moved out, not copied.
    drop(vm);
    extract_pack(data, top)
}

// ---------------------------------------------------------------------------------------
// Opcode names (for error messages only).

fn op_name(op: u8) -> &'static str {
    match op {
        b'(' => "MARK",
        b'.' => "STOP",
        b'0' => "POP",
        b'1' => "POP_MARK",
        b'2' => "DUP",
        b'F' => "FLOAT",
        b'I' => "INT",
        b'J' => "BININT",
        b'K' => "BININT1",
        b'L' => "LONG",
        b'M' => "BININT2",
        b'N' => "NONE",
        b'P' => "PERSID",
        b'Q' => "BINPERSID",
        b'R' => "REDUCE",
        b'S' => "STRING",
        b'T' => "BINSTRING",
        b'U' => "SHORT_BINSTRING",
        b'V' => "UNICODE",
        b'X' => "BINUNICODE",
        b'a' => "APPEND",
        b'b' => "BUILD",
        b'c' => "GLOBAL",
        b'd' => "DICT",
        b'}' => "EMPTY_DICT",
        b'e' => "APPENDS",
        b'g' => "GET",
        b'h' => "BINGET",
        b'i' => "INST",
        b'j' => "LONG_BINGET",
        b'l' => "LIST",
        b']' => "EMPTY_LIST",
        b'o' => "OBJ",
        b'p' => "PUT",
        b'q' => "BINPUT",
        b'r' => "LONG_BINPUT",
        b's' => "SETITEM",
        b't' => "TUPLE",
        b')' => "EMPTY_TUPLE",
        b'u' => "SETITEMS",
        b'G' => "BINFLOAT",
        b'B' => "BINBYTES",
        b'C' => "SHORT_BINBYTES",
        0x80 => "PROTO",
        0x81 => "NEWOBJ",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x85 => "TUPLE1",
        0x86 => "TUPLE2",
        0x87 => "TUPLE3",
        0x88 => "NEWTRUE",
        0x89 => "NEWFALSE",
        0x8a => "LONG1",
        0x8b => "LONG4",
        0x8c => "SHORT_BINUNICODE",
        0x8d => "BINUNICODE8",
        0x8e => "BINBYTES8",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x92 => "NEWOBJ_EX",
        0x93 => "STACK_GLOBAL",
        0x94 => "MEMOIZE",
        0x95 => "FRAME",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => "not a pickle opcode",
    }
}

/// `0x63 ('c' GLOBAL)` or `0x97 (NEXT_BUFFER)`.
fn op_desc(op: &u8) -> String {
    let op = *op;
    if op.is_ascii_graphic() {
        format!("0x{op:02x} ('{}' {})", char::from(op), op_name(op))
    } else {
        format!("0x{op:02x} ({})", op_name(op))
    }
}

/// Untrusted text for an error message: shortened, with control characters escaped so a
/// hostile name cannot break a log line.
fn quote(s: &str) -> String {
    let mut out: String = s.chars().take(MAX_QUOTE).flat_map(char::escape_debug).collect();
    if s.chars().nth(MAX_QUOTE).is_some() {
        out.push_str("...");
    }
    out
}

/// A shape for an error message; hostile shapes can have any number of dimensions.
fn shape_str(shape: &[u64]) -> String {
    if shape.len() <= 8 {
        format!("{shape:?}")
    } else {
        format!("with {} dimensions", shape.len())
    }
}

// ---------------------------------------------------------------------------------------
// Values of the restricted VM.

/// Byte-string data: a range of the input, or bytes decoded from a latin-1 string.
#[derive(Debug, Clone)]
enum Blob {
    Borrowed(Range<usize>),
    Owned(Rc<Vec<u8>>),
}

impl Blob {
    fn len(&self) -> usize {
        match self {
            Blob::Borrowed(r) => r.len(),
            Blob::Owned(v) => v.len(),
        }
    }

    fn bytes<'a>(&'a self, data: &'a [u8]) -> &'a [u8] {
        match self {
            // Borrowed ranges are bounds-checked when created; `get` keeps this panic-free.
            Blob::Borrowed(r) => data.get(r.clone()).unwrap_or(&[]),
            Blob::Owned(v) => v,
        }
    }
}

/// The only callables a pack may reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Global {
    Reconstruct,
    NdArray,
    Dtype,
    Scalar,
    FromBuffer,
    CodecsEncode,
    Bytes,
    ByteArray,
}

impl Global {
    fn resolve(module: &str, name: &str) -> Option<Global> {
        let multiarray = matches!(module, "numpy.core.multiarray" | "numpy._core.multiarray");
        let numeric = matches!(module, "numpy.core.numeric" | "numpy._core.numeric");
        let builtins = matches!(module, "__builtin__" | "builtins");
        match name {
            "_reconstruct" if multiarray => Some(Global::Reconstruct),
            "scalar" if multiarray => Some(Global::Scalar),
            "_frombuffer" if numeric => Some(Global::FromBuffer),
            "ndarray" if module == "numpy" => Some(Global::NdArray),
            "dtype" if module == "numpy" => Some(Global::Dtype),
            "encode" if module == "_codecs" => Some(Global::CodecsEncode),
            "bytes" if builtins => Some(Global::Bytes),
            "bytearray" if builtins => Some(Global::ByteArray),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Global::Reconstruct => "numpy multiarray._reconstruct",
            Global::NdArray => "numpy.ndarray",
            Global::Dtype => "numpy.dtype",
            Global::Scalar => "numpy multiarray.scalar",
            Global::FromBuffer => "numpy numeric._frombuffer",
            Global::CodecsEncode => "_codecs.encode",
            Global::Bytes => "bytes",
            Global::ByteArray => "bytearray",
        }
    }
}

/// The numpy dtypes that can occur in a pack (all have itemsize 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dtype {
    U1,
    B1,
}

impl Dtype {
    fn name(self) -> &'static str {
        match self {
            Dtype::U1 => "uint8",
            Dtype::B1 => "bool",
        }
    }
}

#[derive(Debug)]
struct ArrayData {
    dtype: Dtype,
    shape: Vec<u64>,
    data: Blob,
}

/// A numpy array; `None` between `_reconstruct` and the BUILD that sets its state. Shared
/// (`Rc`) so that a memo reference taken before BUILD sees the built array, as in Python.
type ArrayCell = Rc<RefCell<Option<ArrayData>>>;

#[derive(Debug)]
struct TupleVal {
    items: Vec<Obj>,
    depth: usize,
}

/// A list, shared with the memo as in Python (appends made after BINPUT are visible through
/// BINGET). Once placed inside another container it is frozen: Python's pickler always
/// finishes a list before nesting it, and freezing makes cycles impossible and keeps the
/// recorded nesting depth exact.
#[derive(Debug)]
struct ListVal {
    items: RefCell<Vec<Obj>>,
    frozen: Cell<bool>,
    depth: Cell<usize>,
}

#[derive(Debug, Clone)]
enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Bytes(Blob),
    /// A unicode string: a range of the input, already validated as UTF-8.
    Str(Range<usize>),
    Tuple(Rc<TupleVal>),
    List(Rc<ListVal>),
    Global(Global),
    Dtype(Dtype),
    Array(ArrayCell),
}

/// A value and the offset of the opcode that created it (for error messages).
#[derive(Debug, Clone)]
struct Obj {
    v: Value,
    at: usize,
}

impl Value {
    fn depth(&self) -> usize {
        match self {
            Value::Tuple(t) => t.depth,
            Value::List(l) => l.depth.get(),
            _ => 0,
        }
    }

    fn describe(&self, data: &[u8]) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(b) => format!("bool {}", if *b { "True" } else { "False" }),
            Value::Int(i) => format!("int {i}"),
            Value::Float(f) => format!("float {f}"),
            Value::Bytes(b) => format!("bytes of length {}", b.len()),
            Value::Str(r) => match data.get(r.clone()).and_then(|s| std::str::from_utf8(s).ok()) {
                Some(s) => format!("str \"{}\"", quote(s)),
                None => "str".into(),
            },
            Value::Tuple(t) => format!("tuple of {} items", t.items.len()),
            Value::List(l) => match l.items.try_borrow() {
                Ok(l) => format!("list of {} items", l.len()),
                Err(_) => "list".into(),
            },
            Value::Global(g) => format!("global {}", g.name()),
            Value::Dtype(d) => format!("numpy dtype {}", d.name()),
            Value::Array(a) => match a.try_borrow() {
                Ok(a) => match &*a {
                    Some(a) => format!("numpy {} array of shape {}", a.dtype.name(), shape_str(&a.shape)),
                    None => "numpy array without state (no BUILD)".into(),
                },
                Err(_) => "numpy array".into(),
            },
        }
    }
}

fn unexpected(
    at: usize,
    context: impl Into<String>,
    expected: impl Into<String>,
    found: impl Into<String>,
) -> BinError {
    BinError::Unexpected { offset: at, context: context.into(), expected: expected.into(), found: found.into() }
}

/// Python's `str.encode('latin1')`: every code point must be below 256.
fn latin1_encode(s: &str) -> Result<Vec<u8>, char> {
    s.chars().map(|c| u8::try_from(u32::from(c)).map_err(|_| c)).collect()
}

// ---------------------------------------------------------------------------------------
// The VM.

struct Vm<'d> {
    data: &'d [u8],
    pos: usize,
    stack: Vec<Obj>,
    /// Stack lengths at each open MARK (Python's "metastack").
    marks: Vec<usize>,
    /// Keyed by index, not a Vec, so a huge LONG_BINPUT index cannot force an allocation.
    memo: HashMap<u32, Obj>,
}

impl<'d> Vm<'d> {
    fn new(data: &'d [u8]) -> Self {
        Vm { data, pos: 0, stack: Vec::new(), marks: Vec::new(), memo: HashMap::new() }
    }

    fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    /// Consume `n` bytes of argument, checking `n` against the remaining input first.
    fn take(&mut self, n: u64, what: &'static str, at: usize) -> Result<Range<usize>, BinError> {
        let remaining = self.remaining();
        let truncated = BinError::Truncated { offset: at, what, needed: n, remaining };
        let n = match usize::try_from(n) {
            Ok(n) if n <= remaining => n,
            _ => return Err(truncated),
        };
        let start = self.pos;
        self.pos = start + n;
        Ok(start..self.pos)
    }

    fn fixed<const N: usize>(&mut self, what: &'static str, at: usize) -> Result<[u8; N], BinError> {
        let remaining = self.remaining();
        let r = self.take(N as u64, what, at)?;
        self.data.get(r).and_then(|s| <[u8; N]>::try_from(s).ok()).ok_or(BinError::Truncated {
            offset: at,
            what,
            needed: N as u64,
            remaining,
        })
    }

    fn u8_arg(&mut self, what: &'static str, at: usize) -> Result<u8, BinError> {
        Ok(self.fixed::<1>(what, at)?[0])
    }

    fn u32_arg(&mut self, what: &'static str, at: usize) -> Result<u32, BinError> {
        Ok(u32::from_le_bytes(self.fixed(what, at)?))
    }

    fn u64_arg(&mut self, what: &'static str, at: usize) -> Result<u64, BinError> {
        Ok(u64::from_le_bytes(self.fixed(what, at)?))
    }

    /// A newline-terminated line (GLOBAL's module and name).
    fn line(&mut self, what: &'static str, at: usize) -> Result<String, BinError> {
        let rest = self.data.get(self.pos..).unwrap_or(&[]);
        let Some(n) = rest.iter().position(|&b| b == b'\n') else {
            return Err(unexpected(
                at,
                what,
                "a newline-terminated module/name line",
                format!("end of input after {} bytes", rest.len()),
            ));
        };
        let text = String::from_utf8_lossy(rest.get(..n).unwrap_or(&[])).into_owned();
        self.pos += n + 1;
        Ok(text)
    }

    fn push(&mut self, v: Value, at: usize) {
        self.stack.push(Obj { v, at });
    }

    fn fence(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    /// Items above the last MARK; opcodes other than the MARK-consuming ones may not reach
    /// below it (as in CPython's unpickler).
    fn available(&self) -> usize {
        self.stack.len().saturating_sub(self.fence())
    }

    fn underflow(&self, opcode: &'static str, needed: usize, at: usize) -> BinError {
        BinError::StackUnderflow { offset: at, opcode, needed, available: self.available() }
    }

    fn pop(&mut self, opcode: &'static str, at: usize) -> Result<Obj, BinError> {
        if self.available() == 0 {
            return Err(self.underflow(opcode, 1, at));
        }
        self.stack.pop().ok_or_else(|| self.underflow(opcode, 1, at))
    }

    fn pop_n(&mut self, n: usize, opcode: &'static str, at: usize) -> Result<Vec<Obj>, BinError> {
        if self.available() < n {
            return Err(self.underflow(opcode, n, at));
        }
        let split = self.stack.len() - n;
        Ok(self.stack.split_off(split))
    }

    fn pop_mark(&mut self, opcode: &'static str, at: usize) -> Result<Vec<Obj>, BinError> {
        let mark = self.marks.pop().ok_or(BinError::MissingMark { offset: at, opcode })?;
        if mark > self.stack.len() {
            // Unreachable (nothing pops below the fence), but never panic in split_off.
            return Err(BinError::MissingMark { offset: at, opcode });
        }
        Ok(self.stack.split_off(mark))
    }

    fn top(&self, opcode: &'static str, at: usize) -> Result<&Obj, BinError> {
        if self.available() == 0 {
            return Err(self.underflow(opcode, 1, at));
        }
        self.stack.last().ok_or_else(|| self.underflow(opcode, 1, at))
    }

    fn text<'a>(&'a self, o: &'a Obj, context: &str, at: usize) -> Result<Cow<'a, str>, BinError> {
        match &o.v {
            Value::Str(r) => self
                .data
                .get(r.clone())
                .and_then(|s| std::str::from_utf8(s).ok())
                .map(Cow::Borrowed)
                .ok_or_else(|| unexpected(at, context, "a str", "invalid str")),
            // Python 2 `str` (names, dtype codes and byte-order chars in py2 pickles).
            Value::Bytes(b) => std::str::from_utf8(b.bytes(self.data))
                .map(Cow::Borrowed)
                .map_err(|_| unexpected(at, context, "an ASCII str", "non-ASCII bytes")),
            v => Err(unexpected(at, context, "a str", v.describe(self.data))),
        }
    }

    fn push_str(&mut self, n: u64, what: &'static str, at: usize) -> Result<(), BinError> {
        let r = self.take(n, what, at)?;
        let valid = self.data.get(r.clone()).is_some_and(|s| std::str::from_utf8(s).is_ok());
        if !valid {
            return Err(unexpected(at, what, "UTF-8 text", "invalid UTF-8"));
        }
        self.push(Value::Str(r), at);
        Ok(())
    }

    fn push_bytes(&mut self, n: u64, what: &'static str, at: usize) -> Result<(), BinError> {
        let r = self.take(n, what, at)?;
        self.push(Value::Bytes(Blob::Borrowed(r)), at);
        Ok(())
    }

    /// Depth of a container holding `items`, checked against [`MAX_DEPTH`].
    fn nested_depth(items: &[Obj], opcode: &'static str, at: usize) -> Result<usize, BinError> {
        let depth = 1 + items.iter().map(|o| o.v.depth()).max().unwrap_or(0);
        if depth > MAX_DEPTH {
            return Err(BinError::LimitExceeded {
                offset: at,
                context: opcode,
                what: "container nesting depth",
                limit: MAX_DEPTH as u64,
            });
        }
        Ok(depth)
    }

    /// Lists placed inside a container can no longer change (see [`ListVal`]).
    fn freeze(items: &[Obj]) {
        for o in items {
            if let Value::List(l) = &o.v {
                l.frozen.set(true);
            }
        }
    }

    fn make_tuple(&mut self, items: Vec<Obj>, opcode: &'static str, at: usize) -> Result<(), BinError> {
        let depth = Self::nested_depth(&items, opcode, at)?;
        Self::freeze(&items);
        self.push(Value::Tuple(Rc::new(TupleVal { items, depth })), at);
        Ok(())
    }

    fn append(&mut self, items: Vec<Obj>, opcode: &'static str, at: usize) -> Result<(), BinError> {
        let target = self.top(opcode, at)?;
        let Value::List(list) = &target.v else {
            return Err(unexpected(at, opcode, "a list", target.v.describe(self.data)));
        };
        if list.frozen.get() {
            return Err(unexpected(
                at,
                opcode,
                "a list still being built",
                "a list already placed inside another container",
            ));
        }
        if items.iter().any(|o| matches!(&o.v, Value::List(l) if Rc::ptr_eq(l, list))) {
            return Err(unexpected(at, opcode, "a non-recursive list", "a list appended to itself"));
        }
        // The target is not inside any container, so raising its depth affects nothing else.
        let depth = Self::nested_depth(&items, opcode, at)?.max(list.depth.get());
        Self::freeze(&items);
        let mut vec =
            list.items.try_borrow_mut().map_err(|_| unexpected(at, opcode, "a list not in use", "a list in use"))?;
        list.depth.set(depth);
        vec.extend(items);
        Ok(())
    }

    fn memo_put(&mut self, key: u32, opcode: &'static str, at: usize) -> Result<(), BinError> {
        let top = self.top(opcode, at)?.clone();
        self.memo.insert(key, top);
        Ok(())
    }

    fn memo_get(&mut self, key: u32, opcode: &'static str, at: usize) -> Result<(), BinError> {
        let obj = self.memo.get(&key).cloned().ok_or(BinError::MissingMemo { offset: at, opcode, key })?;
        self.stack.push(obj);
        Ok(())
    }

    fn global(&mut self, module: String, name: String, opcode: u8, at: usize) -> Result<(), BinError> {
        match Global::resolve(&module, &name) {
            Some(g) => {
                self.push(Value::Global(g), at);
                Ok(())
            }
            None => Err(BinError::ForbiddenGlobal { offset: at, opcode, module: quote(&module), name: quote(&name) }),
        }
    }

    /// Run opcodes until STOP; returns the single top-level object.
    fn run(&mut self) -> Result<Obj, BinError> {
        loop {
            let at = self.pos;
            let Some(&op) = self.data.get(at) else {
                return Err(BinError::MissingStop { offset: at });
            };
            self.pos += 1;
            match op {
                0x80 => {
                    let proto = self.u8_arg("PROTO", at)?;
                    if proto > 5 {
                        return Err(unexpected(at, "PROTO", "pickle protocol 0..=5", format!("protocol {proto}")));
                    }
                }
                0x95 => {
                    // Frames are only a buffering hint; just check the length is plausible.
                    let n = self.u64_arg("FRAME", at)?;
                    let remaining = self.remaining();
                    if n > remaining as u64 {
                        return Err(BinError::Truncated { offset: at, what: "FRAME", needed: n, remaining });
                    }
                }
                b'.' => return self.stop(at),
                b'(' => self.marks.push(self.stack.len()),
                b'N' => self.push(Value::None, at),
                0x88 => self.push(Value::Bool(true), at),
                0x89 => self.push(Value::Bool(false), at),
                b'K' => {
                    let v = self.u8_arg("BININT1", at)?;
                    self.push(Value::Int(i64::from(v)), at);
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.fixed("BININT2", at)?);
                    self.push(Value::Int(i64::from(v)), at);
                }
                b'J' => {
                    let v = i32::from_le_bytes(self.fixed("BININT", at)?);
                    self.push(Value::Int(i64::from(v)), at);
                }
                0x8a => {
                    let n = self.u8_arg("LONG1", at)?;
                    let r = self.take(u64::from(n), "LONG1", at)?;
                    let bytes = self.data.get(r).unwrap_or(&[]);
                    if bytes.len() > 8 {
                        return Err(BinError::LimitExceeded {
                            offset: at,
                            context: "LONG1",
                            what: "integer width in bytes",
                            limit: 8,
                        });
                    }
                    // Little-endian two's complement, sign-extended from its top byte.
                    let fill = if bytes.last().is_some_and(|&b| b >= 0x80) { 0xff } else { 0 };
                    let mut buf = [fill; 8];
                    for (dst, src) in buf.iter_mut().zip(bytes) {
                        *dst = *src;
                    }
                    self.push(Value::Int(i64::from_le_bytes(buf)), at);
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.fixed("BINFLOAT", at)?);
                    self.push(Value::Float(v), at);
                }
                b'T' => {
                    let n = i32::from_le_bytes(self.fixed("BINSTRING", at)?);
                    let n = u64::try_from(n)
                        .map_err(|_| unexpected(at, "BINSTRING", "a non-negative length", format!("length {n}")))?;
                    self.push_bytes(n, "BINSTRING", at)?;
                }
                b'U' => {
                    let n = self.u8_arg("SHORT_BINSTRING", at)?;
                    self.push_bytes(u64::from(n), "SHORT_BINSTRING", at)?;
                }
                b'B' => {
                    let n = self.u32_arg("BINBYTES", at)?;
                    self.push_bytes(u64::from(n), "BINBYTES", at)?;
                }
                b'C' => {
                    let n = self.u8_arg("SHORT_BINBYTES", at)?;
                    self.push_bytes(u64::from(n), "SHORT_BINBYTES", at)?;
                }
                0x8e => {
                    let n = self.u64_arg("BINBYTES8", at)?;
                    self.push_bytes(n, "BINBYTES8", at)?;
                }
                0x96 => {
                    let n = self.u64_arg("BYTEARRAY8", at)?;
                    self.push_bytes(n, "BYTEARRAY8", at)?;
                }
                b'X' => {
                    let n = self.u32_arg("BINUNICODE", at)?;
                    self.push_str(u64::from(n), "BINUNICODE", at)?;
                }
                0x8c => {
                    let n = self.u8_arg("SHORT_BINUNICODE", at)?;
                    self.push_str(u64::from(n), "SHORT_BINUNICODE", at)?;
                }
                0x8d => {
                    let n = self.u64_arg("BINUNICODE8", at)?;
                    self.push_str(n, "BINUNICODE8", at)?;
                }
                b')' => self.make_tuple(Vec::new(), "EMPTY_TUPLE", at)?,
                b't' => {
                    let items = self.pop_mark("TUPLE", at)?;
                    self.make_tuple(items, "TUPLE", at)?;
                }
                0x85..=0x87 => {
                    let (n, name) = match op {
                        0x85 => (1, "TUPLE1"),
                        0x86 => (2, "TUPLE2"),
                        _ => (3, "TUPLE3"),
                    };
                    let items = self.pop_n(n, name, at)?;
                    self.make_tuple(items, name, at)?;
                }
                b']' => {
                    let list =
                        ListVal { items: RefCell::new(Vec::new()), frozen: Cell::new(false), depth: Cell::new(1) };
                    self.push(Value::List(Rc::new(list)), at);
                }
                b'a' => {
                    let item = self.pop("APPEND", at)?;
                    self.append(vec![item], "APPEND", at)?;
                }
                b'e' => {
                    let items = self.pop_mark("APPENDS", at)?;
                    self.append(items, "APPENDS", at)?;
                }
                b'q' => {
                    let key = self.u8_arg("BINPUT", at)?;
                    self.memo_put(u32::from(key), "BINPUT", at)?;
                }
                b'r' => {
                    let key = self.u32_arg("LONG_BINPUT", at)?;
                    self.memo_put(key, "LONG_BINPUT", at)?;
                }
                0x94 => {
                    let key = u32::try_from(self.memo.len()).map_err(|_| BinError::LimitExceeded {
                        offset: at,
                        context: "MEMOIZE",
                        what: "memo size",
                        limit: u64::from(u32::MAX),
                    })?;
                    self.memo_put(key, "MEMOIZE", at)?;
                }
                b'h' => {
                    let key = self.u8_arg("BINGET", at)?;
                    self.memo_get(u32::from(key), "BINGET", at)?;
                }
                b'j' => {
                    let key = self.u32_arg("LONG_BINGET", at)?;
                    self.memo_get(key, "LONG_BINGET", at)?;
                }
                b'c' => {
                    let module = self.line("GLOBAL", at)?;
                    let name = self.line("GLOBAL", at)?;
                    self.global(module, name, op, at)?;
                }
                0x93 => {
                    let name = self.pop("STACK_GLOBAL", at)?;
                    let module = self.pop("STACK_GLOBAL", at)?;
                    let (Value::Str(_), Value::Str(_)) = (&module.v, &name.v) else {
                        return Err(unexpected(
                            at,
                            "STACK_GLOBAL",
                            "module and name as str",
                            format!("{} and {}", module.v.describe(self.data), name.v.describe(self.data)),
                        ));
                    };
                    let m = self.text(&module, "STACK_GLOBAL module", at)?.into_owned();
                    let n = self.text(&name, "STACK_GLOBAL name", at)?.into_owned();
                    self.global(m, n, op, at)?;
                }
                b'R' => {
                    let args = self.pop("REDUCE", at)?;
                    let callable = self.pop("REDUCE", at)?;
                    let Value::Global(g) = callable.v else {
                        return Err(unexpected(
                            at,
                            "REDUCE",
                            "an allowed global as the callable",
                            callable.v.describe(self.data),
                        ));
                    };
                    let Value::Tuple(args) = &args.v else {
                        return Err(unexpected(
                            at,
                            format!("REDUCE {}", g.name()),
                            "an argument tuple",
                            args.v.describe(self.data),
                        ));
                    };
                    let v = self.call(g, &args.items, at)?;
                    self.push(v, at);
                }
                b'b' => {
                    let state = self.pop("BUILD", at)?;
                    self.build(state, at)?;
                }
                0x97 | 0x98 => return Err(BinError::OutOfBandBuffer { offset: at, opcode: op }),
                _ => return Err(BinError::UnsupportedOpcode { offset: at, opcode: op }),
            }
        }
    }

    fn stop(&mut self, at: usize) -> Result<Obj, BinError> {
        if !self.marks.is_empty() || self.stack.len() != 1 {
            return Err(unexpected(
                at,
                "STOP",
                "exactly one object on the stack and no open MARK",
                format!("{} object(s) and {} open MARK(s)", self.stack.len(), self.marks.len()),
            ));
        }
        self.pop("STOP", at)
    }

    fn bytes_arg(&self, o: &Obj, context: &str, at: usize) -> Result<Blob, BinError> {
        match &o.v {
            Value::Bytes(b) => Ok(b.clone()),
            v => Err(unexpected(at, context, "bytes", v.describe(self.data))),
        }
    }

    fn shape_arg(&self, o: &Obj, context: &str, at: usize) -> Result<Vec<u64>, BinError> {
        let expected = "a shape tuple of non-negative ints";
        let Value::Tuple(t) = &o.v else {
            return Err(unexpected(at, context, expected, o.v.describe(self.data)));
        };
        t.items
            .iter()
            .map(|d| match d.v {
                Value::Int(n) => {
                    u64::try_from(n).map_err(|_| unexpected(at, context, expected, format!("dimension {n}")))
                }
                ref v => Err(unexpected(at, context, expected, v.describe(self.data))),
            })
            .collect()
    }

    fn dtype_arg(&self, o: &Obj, context: &str, at: usize) -> Result<Dtype, BinError> {
        match o.v {
            Value::Dtype(d) => Ok(d),
            ref v => Err(unexpected(at, context, "a numpy dtype", v.describe(self.data))),
        }
    }

    /// `bytes` from a latin-1 encoded str (`_codecs.encode(s, 'latin1')`).
    fn latin1_arg(&self, s: &Obj, enc: &Obj, context: &str, at: usize) -> Result<Blob, BinError> {
        if !matches!(s.v, Value::Str(_)) {
            return Err(unexpected(at, context, "a str to encode", s.v.describe(self.data)));
        }
        let enc = self.text(enc, context, at)?;
        if !matches!(enc.as_ref(), "latin1" | "latin-1" | "latin_1" | "iso-8859-1" | "iso8859-1") {
            return Err(unexpected(at, context, "encoding 'latin1'", format!("encoding \"{}\"", quote(&enc))));
        }
        let s = self.text(s, context, at)?;
        let bytes = latin1_encode(&s).map_err(|c| {
            unexpected(at, context, "a str of code points below 256", format!("code point U+{:04X}", u32::from(c)))
        })?;
        Ok(Blob::Owned(Rc::new(bytes)))
    }

    /// REDUCE: apply one of the allowed callables. Nothing is executed; each case builds the
    /// value the real callable would have returned, after checking its arguments.
    fn call(&self, g: Global, args: &[Obj], at: usize) -> Result<Value, BinError> {
        let context = format!("REDUCE {}", g.name());
        let arity = |expected: &str| unexpected(at, &context, expected, format!("{} arguments", args.len()));
        match g {
            Global::CodecsEncode => {
                let [s, enc] = args else {
                    return Err(arity("2 arguments (str, encoding)"));
                };
                Ok(Value::Bytes(self.latin1_arg(s, enc, &context, at)?))
            }
            Global::Bytes | Global::ByteArray => match args {
                [] => Ok(Value::Bytes(Blob::Owned(Rc::new(Vec::new())))),
                [b] => Ok(Value::Bytes(self.bytes_arg(b, &context, at)?)),
                [s, enc] => Ok(Value::Bytes(self.latin1_arg(s, enc, &context, at)?)),
                _ => Err(arity("0 to 2 arguments")),
            },
            Global::Dtype => {
                let [name, align, copy] = args else {
                    return Err(arity("3 arguments (code, align, copy)"));
                };
                for flag in [align, copy] {
                    if !matches!(flag.v, Value::Bool(_) | Value::Int(_)) {
                        return Err(unexpected(at, &context, "a bool flag", flag.v.describe(self.data)));
                    }
                }
                let code = self.text(name, &context, at)?;
                let bare = code.strip_prefix(['|', '<', '>', '=']).unwrap_or(&code);
                match bare {
                    "u1" => Ok(Value::Dtype(Dtype::U1)),
                    "b1" | "?" => Ok(Value::Dtype(Dtype::B1)),
                    _ => Err(unexpected(
                        at,
                        &context,
                        "dtype uint8 ('u1') or bool ('b1')",
                        format!("dtype \"{}\"", quote(&code)),
                    )),
                }
            }
            Global::Reconstruct => {
                let [cls, shape, typecode] = args else {
                    return Err(arity("3 arguments (ndarray, shape, typecode)"));
                };
                if !matches!(cls.v, Value::Global(Global::NdArray)) {
                    return Err(unexpected(at, &context, "numpy.ndarray", cls.v.describe(self.data)));
                }
                // numpy accepts an int or a tuple here; BUILD sets the real shape.
                if !matches!(shape.v, Value::Int(_)) {
                    self.shape_arg(shape, &context, at)?;
                }
                // numpy always passes the placeholder typecode b'b'.
                let typecode = self.bytes_arg(typecode, &context, at)?;
                let code = typecode.bytes(self.data);
                if code != b"b" {
                    let head = code.get(..8).unwrap_or(code);
                    return Err(unexpected(at, &context, "typecode b'b'", format!("bytes {head:02x?}")));
                }
                Ok(Value::Array(Rc::new(RefCell::new(None))))
            }
            Global::Scalar => {
                let [dtype, data] = args else {
                    return Err(arity("2 arguments (dtype, data)"));
                };
                let dtype = self.dtype_arg(dtype, &context, at)?;
                let blob = self.bytes_arg(data, &context, at)?;
                match (dtype, blob.bytes(self.data)) {
                    (Dtype::B1, [0]) => Ok(Value::Bool(false)),
                    (Dtype::B1, [1]) => Ok(Value::Bool(true)),
                    (Dtype::U1, [v]) => Ok(Value::Int(i64::from(*v))),
                    (_, bytes) => Err(unexpected(
                        at,
                        &context,
                        "one byte (0 or 1 for bool)",
                        format!("{} byte(s) {:02x?}", bytes.len(), bytes.get(..8).unwrap_or(bytes)),
                    )),
                }
            }
            Global::FromBuffer => {
                let [buf, dtype, shape, order] = args else {
                    return Err(arity("4 arguments (buffer, dtype, shape, order)"));
                };
                let data = self.bytes_arg(buf, &context, at)?;
                let dtype = self.dtype_arg(dtype, &context, at)?;
                let shape = self.shape_arg(shape, &context, at)?;
                let order = self.text(order, &context, at)?;
                if !matches!(order.as_ref(), "C" | "F") {
                    return Err(unexpected(at, &context, "order 'C' or 'F'", format!("\"{}\"", quote(&order))));
                }
                let array = self.array_data(dtype, shape, data, &context, at)?;
                Ok(Value::Array(Rc::new(RefCell::new(Some(array)))))
            }
            Global::NdArray => Err(unexpected(at, "REDUCE", "a callable", "numpy.ndarray called directly")),
        }
    }

    fn array_data(
        &self,
        dtype: Dtype,
        shape: Vec<u64>,
        data: Blob,
        context: &str,
        at: usize,
    ) -> Result<ArrayData, BinError> {
        // All accepted dtypes have itemsize 1, so the element count is the byte count.
        let count = shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
        if count != Some(data.len() as u64) {
            return Err(unexpected(
                at,
                context,
                format!("raw data of prod(shape {}) bytes", shape_str(&shape)),
                format!("{} bytes", data.len()),
            ));
        }
        Ok(ArrayData { dtype, shape, data })
    }

    /// The dtype is fully determined by its code, so its BUILD state only has to look like
    /// numpy's for a builtin 1-byte type: `(3, '|', None, None, None, -1, -1, 0)` (version 4
    /// adds metadata; versions < 3 are older layouts). numpy writes elsize = alignment = -1
    /// and flags = 0 for these types and interprets other flag bits (e.g. "pickles as a
    /// list"), so anything else is a corrupted pack and is rejected rather than misread.
    fn check_dtype_state(&self, state: &Obj, at: usize) -> Result<(), BinError> {
        let context = "BUILD numpy.dtype";
        let expected = "a state like (3, '|', None, None, None, -1, -1, 0)";
        let bad = |found: String| unexpected(at, context, expected, found);
        let Value::Tuple(t) = &state.v else {
            return Err(bad(state.v.describe(self.data)));
        };
        let items = t.items.as_slice();
        let (Some(version), Some(endian)) = (items.first(), items.get(1)) else {
            return Err(bad(format!("a tuple of {} items", items.len())));
        };
        let version = match version.v {
            Value::Int(v @ 0..=4) => v,
            ref v => return Err(bad(format!("version {}", v.describe(self.data)))),
        };
        let endian = self.text(endian, context, at)?;
        if !matches!(endian.as_ref(), "|" | "<" | ">" | "=") {
            return Err(bad(format!("byte order \"{}\"", quote(&endian))));
        }
        if version >= 3 {
            let [_, _, sub, names, fields, elsize, align, flags, rest @ ..] = items else {
                return Err(bad(format!("a version-{version} tuple of {} items", items.len())));
            };
            if rest.len() > 1 {
                return Err(bad(format!("a version-{version} tuple of {} items", items.len())));
            }
            for (what, o) in [("subarray", sub), ("names", names), ("fields", fields)] {
                if !matches!(o.v, Value::None) {
                    return Err(bad(format!("{what} {}", o.v.describe(self.data))));
                }
            }
            for (what, o, want) in [("elsize", elsize, -1), ("alignment", align, -1), ("flags", flags, 0)] {
                if !matches!(o.v, Value::Int(v) if v == want) {
                    return Err(bad(format!("{what} {}", o.v.describe(self.data))));
                }
            }
        }
        Ok(())
    }

    /// BUILD: set the state of a numpy array (from `_reconstruct`) or dtype.
    fn build(&mut self, state: Obj, at: usize) -> Result<(), BinError> {
        let target = self.top("BUILD", at)?;
        match &target.v {
            Value::Dtype(_) => self.check_dtype_state(&state, at),
            Value::Array(cell) => {
                let context = "BUILD numpy.ndarray";
                let Value::Tuple(t) = &state.v else {
                    return Err(unexpected(at, context, "a state tuple", state.v.describe(self.data)));
                };
                // (version, shape, dtype, is_fortran, rawdata) or the older form without version.
                let (shape, dtype, fortran, raw) = match t.items.as_slice() {
                    [version, shape, dtype, fortran, raw] => {
                        if !matches!(version.v, Value::Int(1)) {
                            return Err(unexpected(at, context, "state version 1", version.v.describe(self.data)));
                        }
                        (shape, dtype, fortran, raw)
                    }
                    [shape, dtype, fortran, raw] => (shape, dtype, fortran, raw),
                    items => {
                        return Err(unexpected(
                            at,
                            context,
                            "a 5-item state (1, shape, dtype, is_fortran, rawdata)",
                            format!("{} items", items.len()),
                        ))
                    }
                };
                if !matches!(fortran.v, Value::Bool(_) | Value::Int(_)) {
                    return Err(unexpected(at, context, "an is_fortran bool", fortran.v.describe(self.data)));
                }
                let shape = self.shape_arg(shape, context, at)?;
                let dtype = self.dtype_arg(dtype, context, at)?;
                let raw = self.bytes_arg(raw, context, at)?;
                let array = self.array_data(dtype, shape, raw, context, at)?;
                let mut slot = cell
                    .try_borrow_mut()
                    .map_err(|_| unexpected(at, context, "an array not in use", "an array in use"))?;
                if slot.is_some() {
                    return Err(unexpected(at, context, "an array without state", "an array built twice"));
                }
                *slot = Some(array);
                Ok(())
            }
            v => Err(unexpected(at, "BUILD", "a numpy ndarray or dtype to set state on", v.describe(self.data))),
        }
    }
}

// ---------------------------------------------------------------------------------------
// From the unpickled object to a BinPack.

fn extract_pack(data: &[u8], top: Obj) -> Result<BinPack, BinError> {
    let pair = match &top.v {
        Value::Tuple(t) => match t.items.as_slice() {
            [a, b] => Some((a.clone(), b.clone())),
            _ => None,
        },
        Value::List(l) => match l.items.try_borrow().as_deref().map(Vec::as_slice) {
            Ok([a, b]) => Some((a.clone(), b.clone())),
            _ => None,
        },
        _ => None,
    };
    let Some((bins, issame)) = pair else {
        return Err(BinError::NotAPair { offset: top.at, found: top.v.describe(data) });
    };
    drop(top);

    let issame_flags = issame_values(data, &issame)?;
    let blobs = image_blobs(data, &bins)?;
    let bins_at = bins.at;
    // Drop every other reference so decoded images can usually be moved out of their Rc.
    drop(bins);
    drop(issame);

    if issame_flags.is_empty() && blobs.is_empty() {
        return Err(BinError::NoPairs { offset: bins_at });
    }
    let expected = issame_flags.len().saturating_mul(2);
    if blobs.len() != expected {
        return Err(BinError::LengthMismatch { offset: bins_at, images: blobs.len(), expected });
    }
    let images = blobs
        .into_iter()
        .map(|b| match b {
            Blob::Borrowed(r) => ImageBytes::Borrowed(r),
            Blob::Owned(rc) => ImageBytes::Owned(Rc::try_unwrap(rc).unwrap_or_else(|rc| rc.as_ref().clone())),
        })
        .collect();
    Ok(BinPack { images, issame: issame_flags })
}

fn list_items(list: &ListVal, at: usize, what: &str) -> Result<Vec<Obj>, BinError> {
    list.items.try_borrow().map(|l| l.clone()).map_err(|_| unexpected(at, what, "a list", "a list in use"))
}

fn image_blobs(data: &[u8], bins: &Obj) -> Result<Vec<Blob>, BinError> {
    let Value::List(list) = &bins.v else {
        return Err(unexpected(bins.at, "bins", "a list of encoded images", bins.v.describe(data)));
    };
    let items = list_items(list, bins.at, "bins")?;
    let mut out = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let blob = match &item.v {
            Value::Bytes(b) => b.clone(),
            Value::Array(cell) => {
                let arr = cell
                    .try_borrow()
                    .map_err(|_| unexpected(item.at, format!("bins[{index}]"), "an array", "an array in use"))?;
                let Some(arr) = arr.as_ref() else {
                    return Err(unexpected(
                        item.at,
                        format!("bins[{index}]"),
                        "an encoded image",
                        item.v.describe(data),
                    ));
                };
                // Only one non-unit dimension, so C/Fortran order cannot change the byte order.
                let vector_like = arr.shape.iter().filter(|&&d| d != 1).count() <= 1;
                if arr.dtype != Dtype::U1 || !vector_like {
                    return Err(unexpected(
                        item.at,
                        format!("bins[{index}]"),
                        "a uint8 array of shape (N, 1) or (N,)",
                        item.v.describe(data),
                    ));
                }
                arr.data.clone()
            }
            v => {
                return Err(unexpected(
                    item.at,
                    format!("bins[{index}]"),
                    "bytes or a numpy uint8 array",
                    v.describe(data),
                ))
            }
        };
        if blob.len() == 0 {
            return Err(BinError::EmptyImage { offset: item.at, index });
        }
        out.push(blob);
    }
    Ok(out)
}

fn issame_values(data: &[u8], issame: &Obj) -> Result<Vec<bool>, BinError> {
    match &issame.v {
        Value::List(list) => {
            let items = list_items(list, issame.at, "issame_list")?;
            items
                .iter()
                .enumerate()
                .map(|(i, o)| match o.v {
                    Value::Bool(b) => Ok(b),
                    Value::Int(0) => Ok(false),
                    Value::Int(1) => Ok(true),
                    ref v => Err(unexpected(
                        o.at,
                        format!("issame_list[{i}]"),
                        "a bool, 0/1 or a numpy bool",
                        v.describe(data),
                    )),
                })
                .collect()
        }
        Value::Array(cell) => {
            let arr =
                cell.try_borrow().map_err(|_| unexpected(issame.at, "issame_list", "an array", "an array in use"))?;
            let bytes = match arr.as_ref() {
                Some(a) if a.shape.len() == 1 => a.data.bytes(data),
                _ => {
                    return Err(unexpected(
                        issame.at,
                        "issame_list",
                        "a 1-D numpy bool or uint8 array",
                        issame.v.describe(data),
                    ))
                }
            };
            bytes
                .iter()
                .enumerate()
                .map(|(i, &b)| match b {
                    0 => Ok(false),
                    1 => Ok(true),
                    _ => Err(unexpected(issame.at, format!("issame_list[{i}]"), "0 or 1", format!("{b}"))),
                })
                .collect()
        }
        v => Err(unexpected(issame.at, "issame_list", "a list of bools or a numpy bool array", v.describe(data))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/bin");
    const SMALL_LFW: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/small_lfw.bin");

    /// Every fixture written by tests/reference/make_bin_fixtures.py, and whether its images
    /// are decoded (owned) rather than borrowed from the input.
    const FIXTURES: &[(&str, bool)] = &[
        ("p2_py2str.bin", false),
        ("p2_py2numpy_numpy1.bin", false),
        ("p2_codecs.bin", true),
        ("p3_bytes.bin", false),
        ("p4_bytes.bin", false),
        ("p5_bytes.bin", false),
        ("np2_numpy2.bin", true),
        ("np3_numpy2.bin", false),
        ("np4_numpy2.bin", false),
        ("np5_numpy2.bin", false),
        ("np2_numpy1.bin", true),
        ("np3_numpy1.bin", false),
        ("np4_numpy1.bin", false),
        ("np5_numpy1.bin", false),
        ("np3_shared_numpy2.bin", false),
    ];

    const ISSAME: [bool; 3] = [true, false, true];

    /// Same formula as make_bin_fixtures.py.
    fn expected_image(k: usize) -> Vec<u8> {
        let n = if k == 5 { 300 } else { 24 + 7 * k };
        let mut v: Vec<u8> = (0..n).map(|j| ((k * 37 + j * 11) % 256) as u8).collect();
        if k == 0 {
            v[..4].copy_from_slice(&[0xff, 0xd8, 0xff, 0xe0]);
        }
        v
    }

    fn expected_images(fixture: &str) -> Vec<Vec<u8>> {
        let order: [usize; 6] =
            if fixture == "np3_shared_numpy2.bin" { [0, 1, 0, 3, 4, 5] } else { [0, 1, 2, 3, 4, 5] };
        order.iter().map(|&k| expected_image(k)).collect()
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{FIXTURE_DIR}/{name}");
        std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
    }

    /// Tiny xorshift64 so the corruption test needs no rand crate and is reproducible.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    // --- tiny pickle writer for hand-made cases ----------------------------------------

    fn short_binbytes(b: &[u8]) -> Vec<u8> {
        let mut v = vec![b'C', b.len() as u8];
        v.extend_from_slice(b);
        v
    }

    fn binunicode(s: &str) -> Vec<u8> {
        let mut v = vec![b'X'];
        v.extend_from_slice(&(s.len() as u32).to_le_bytes());
        v.extend_from_slice(s.as_bytes());
        v
    }

    /// Protocol-3 pickle of `(images, issame)` with bytes images and bool flags.
    fn bytes_pack(images: &[&[u8]], issame: &[bool]) -> Vec<u8> {
        let mut v = vec![0x80, 3, b']', b'('];
        for img in images {
            v.extend(short_binbytes(img));
        }
        v.extend_from_slice(b"e](");
        for &s in issame {
            v.push(if s { 0x88 } else { 0x89 });
        }
        v.extend_from_slice(b"e\x86.");
        v
    }

    fn check_invariants(pack: &BinPack, data: &[u8]) {
        assert_eq!(pack.images.len(), 2 * pack.issame.len());
        assert!(!pack.issame.is_empty());
        for i in 0..pack.images.len() {
            let img = pack.get_image(data, i).expect("image in range");
            assert!(!img.is_empty());
            assert_eq!(img.len(), pack.images[i].len());
        }
    }

    // --- fixtures ------------------------------------------------------------------------

    #[test]
    fn all_fixtures_parse_to_the_expected_pack() {
        for &(name, owned) in FIXTURES {
            let data = fixture(name);
            let pack = parse_bin(&data).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(pack.issame, ISSAME, "{name}");
            assert_eq!(pack.num_pairs(), 3, "{name}");
            let want = expected_images(name);
            assert_eq!(pack.images.len(), want.len(), "{name}");
            for (i, w) in want.iter().enumerate() {
                assert_eq!(pack.image(&data, i), w.as_slice(), "{name} image {i}");
                assert_eq!(matches!(pack.images[i], ImageBytes::Owned(_)), owned, "{name} image {i} owned/borrowed");
            }
            assert_eq!(&pack.image(&data, 0)[..3], &[0xff, 0xd8, 0xff], "{name} JPEG magic");
            check_invariants(&pack, &data);
        }
    }

    #[test]
    fn numpy1_fixtures_really_use_numpy1_names() {
        for &(name, _) in FIXTURES {
            let data = fixture(name);
            let has = |needle: &[u8]| data.windows(needle.len()).any(|w| w == needle);
            if name.contains("numpy1") {
                assert!(has(b"numpy.core."), "{name}");
                assert!(!has(b"numpy._core"), "{name}");
            } else if name.contains("numpy2") {
                assert!(has(b"numpy._core."), "{name}");
            }
        }
    }

    #[test]
    fn real_small_lfw_pack() {
        let data = std::fs::read(SMALL_LFW).expect("tests/data/small_lfw.bin is part of the repository");
        let pack = parse_bin(&data).expect("small_lfw.bin parses");
        assert_eq!(pack.images.len(), 20);
        assert_eq!(pack.issame, vec![true; 10]);
        for i in 0..20 {
            assert!(matches!(pack.images[i], ImageBytes::Borrowed(_)));
            assert_eq!(&pack.image(&data, i)[..2], &[0xff, 0xd8], "image {i}");
        }
        // Truncations of a real pack are errors, never panics. Every fixture is cut at every
        // offset elsewhere; here every offset of the opcode-dense head and tail is tried,
        // and a stride through the JPEG payloads keeps the debug-build test fast.
        let n = data.len();
        for cut in (0..n).filter(|&c| c < 4096 || c + 4096 > n || c % 37 == 0) {
            assert!(parse_bin(&data[..cut]).is_err(), "cut at {cut}");
        }
    }

    // --- robustness ---------------------------------------------------------------------

    #[test]
    fn truncation_at_every_offset_is_an_error() {
        for &(name, _) in FIXTURES {
            let data = fixture(name);
            for cut in 0..data.len() {
                match parse_bin(&data[..cut]) {
                    Ok(_) => panic!("{name}: prefix of {cut} bytes parsed"),
                    Err(e) => assert!(!e.to_string().is_empty()),
                }
            }
        }
    }

    #[test]
    fn random_corruption_never_panics() {
        let packs: Vec<Vec<u8>> = FIXTURES.iter().map(|(n, _)| fixture(n)).collect();
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let (mut ok, mut err) = (0usize, 0usize);
        for iter in 0..4000 {
            let mut data = packs[rng.below(packs.len())].clone();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(data.len());
                match rng.below(6) {
                    0 => data[i] ^= 1 << rng.below(8),
                    1 => data[i] = rng.next() as u8,
                    2 => data[i] = [0x00, 0x7f, 0x80, 0xff][rng.below(4)],
                    3 => {
                        data.remove(i);
                    }
                    4 => data.insert(i, rng.next() as u8),
                    // Opcode-shaped damage: a random valid opcode byte.
                    _ => {
                        let ops = b"(.NK]aeqhtRbcXC\x85\x86\x87\x88\x93\x94\x95\x96";
                        data[i] = ops[rng.below(ops.len())];
                    }
                }
                if data.is_empty() {
                    break;
                }
            }
            let result = std::panic::catch_unwind(|| parse_bin(&data));
            match result {
                Ok(Ok(pack)) => {
                    check_invariants(&pack, &data);
                    ok += 1;
                }
                Ok(Err(e)) => {
                    assert!(e.offset() <= data.len(), "iteration {iter}: offset past end: {e}");
                    assert!(!e.to_string().is_empty());
                    err += 1;
                }
                Err(_) => panic!("iteration {iter}: parse_bin panicked on {data:02x?}"),
            }
        }
        assert_eq!(ok + err, 4000);
        assert!(err > 1000, "mutations should mostly be rejected ({err} errors)");
    }

    #[test]
    fn empty_input() {
        assert_eq!(parse_bin(&[]), Err(BinError::Empty));
        assert_eq!(BinError::Empty.offset(), 0);
    }

    #[test]
    fn refuses_os_system() {
        // pickle.dumps(os.system-call) at protocols 2 (GLOBAL) and 4 (STACK_GLOBAL).
        let global = b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85q\x02Rq\x03.";
        let e = parse_bin(global).unwrap_err();
        assert!(matches!(e, BinError::ForbiddenGlobal { offset: 2, opcode: b'c', .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "at byte 2: refused global 'os.system' (opcode 0x63 ('c' GLOBAL)): only numpy \
             ndarray/dtype/scalar reconstruction, _codecs.encode, bytes and bytearray are allowed"
        );

        let stack = b"\x80\x04\x8c\x05posix\x94\x8c\x06system\x94\x93\x94\x8c\x02ls\x94\x85\x94R\x94.";
        let e = parse_bin(stack).unwrap_err();
        assert!(matches!(e, BinError::ForbiddenGlobal { offset: 19, opcode: 0x93, .. }), "{e:?}");
        assert!(e.to_string().contains("'posix.system'"), "{e}");

        for (module, name) in [
            ("builtins", "eval"),
            ("__builtin__", "getattr"),
            ("numpy", "load"),
            ("numpy.core.multiarray", "fromstring"),
            ("numpy._core.numeric", "frombuffer_not"),
            ("_codecs", "decode"),
        ] {
            let p = [b"\x80\x02c", module.as_bytes(), b"\n", name.as_bytes(), b"\n)R."].concat();
            let e = parse_bin(&p).unwrap_err();
            assert!(matches!(e, BinError::ForbiddenGlobal { .. }), "{module}.{name}: {e:?}");
        }
    }

    #[test]
    fn refuses_other_opcodes() {
        for (bytes, opcode) in [
            (&b"\x80\x02S'ls'\n."[..], b'S'),
            (b"\x80\x02(ios\nsystem\nS'ls'\n.", b'i'),
            (b"\x80\x02)\x81.", 0x81),
            (b"\x80\x02\x82\x01.", 0x82),
            (b"\x80\x02P1\n.", b'P'),
            (b"\x80\x02N\x85Q.", b'Q'),
            (b"\x80\x02}.", b'}'),
            (b"\x80\x02N0.", b'0'),
            (b"\x80\x02I1\n.", b'I'),
            (b"\x80\x02\xff.", 0xff),
        ] {
            match parse_bin(bytes) {
                Err(BinError::UnsupportedOpcode { opcode: o, .. }) => assert_eq!(o, opcode),
                other => panic!("{bytes:?}: {other:?}"),
            }
        }
        let e = parse_bin(b"\x80\x05\x97.").unwrap_err();
        assert!(matches!(e, BinError::OutOfBandBuffer { offset: 2, opcode: 0x97 }), "{e:?}");
        assert!(e.to_string().contains("NEXT_BUFFER"), "{e}");
        let e = parse_bin(b"\x80\x05C\x01a\x98.").unwrap_err();
        assert!(matches!(e, BinError::OutOfBandBuffer { offset: 5, opcode: 0x98 }), "{e:?}");
        let e = parse_bin(b"\x80\x02cos\nsystem").unwrap_err();
        assert!(e.to_string().contains("GLOBAL"), "{e}");
        let e = parse_bin(b"\x80\x02(ios\nsystem\n.").unwrap_err();
        assert_eq!(e.to_string(), "at byte 3: unsupported pickle opcode 0x69 ('i' INST)");
    }

    #[test]
    fn length_mismatch() {
        let data = bytes_pack(&[b"a1", b"b2", b"c3"], &[true]);
        let e = parse_bin(&data).unwrap_err();
        assert_eq!(e, BinError::LengthMismatch { offset: 2, images: 3, expected: 2 });
        assert_eq!(e.to_string(), "at byte 2: bins has 3 images, expected 2*len(issame_list)=2");
        let data = bytes_pack(&[b"a1", b"b2"], &[true, false]);
        assert!(matches!(parse_bin(&data), Err(BinError::LengthMismatch { images: 2, expected: 4, .. })));
        let data = bytes_pack(&[], &[]);
        assert!(matches!(parse_bin(&data), Err(BinError::NoPairs { .. })));
    }

    #[test]
    fn hand_made_pack_and_accessors() {
        let data = bytes_pack(&[b"\xff\xd8\xffA", b"BB", b"CCC", b"D"], &[true, false]);
        let pack = parse_bin(&data).expect("valid");
        assert_eq!(pack.issame, vec![true, false]);
        assert_eq!(pack.image(&data, 2), b"CCC");
        assert_eq!(pack.images[1], ImageBytes::Borrowed(12..14));
        assert_eq!(pack.get_image(&data, 4), None);
        assert_eq!(pack.image(&data, 99), b"");
        assert_eq!(pack.image(&data[..5], 3), b"", "wrong data slice must not panic");
        check_invariants(&pack, &data);
        // A 2-list top level is accepted as well as a 2-tuple: [bins, issame].
        let mut as_list = vec![0x80, 3, b']', b'('];
        as_list.extend_from_slice(&data[2..data.len() - 2]);
        as_list.extend_from_slice(b"e.");
        let pack = parse_bin(&as_list).expect("2-list top level");
        assert_eq!(pack.issame, vec![true, false]);
        assert_eq!(pack.image(&as_list, 3), b"D");
    }

    #[test]
    fn top_level_must_be_a_pair() {
        let e = parse_bin(b"\x80\x03K\x05.").unwrap_err();
        assert_eq!(e.to_string(), "at byte 2: expected a 2-tuple (bins, issame_list), found int 5");
        let e = parse_bin(b"\x80\x03]].").unwrap_err();
        assert!(matches!(e, BinError::Unexpected { .. }), "two objects on the stack: {e:?}");
        let e = parse_bin(b"\x80\x03]q\x00.").unwrap_err();
        assert_eq!(e.to_string(), "at byte 2: expected a 2-tuple (bins, issame_list), found list of 0 items");
        let e = parse_bin(b"\x80\x03]]]\x87.").unwrap_err();
        assert!(matches!(e, BinError::NotAPair { .. }), "{e:?}");
        let e = parse_bin(b"\x80\x03K\x01]\x86.").unwrap_err();
        assert!(e.to_string().contains("bins: expected a list of encoded images, found int 1"), "{e}");
        let e = parse_bin(b"\x80\x03]K\x01\x86.").unwrap_err();
        assert!(e.to_string().contains("issame_list"), "{e}");
    }

    #[test]
    fn element_validation() {
        // issame entries: ints 0/1 are fine, 2 is not; a str is not.
        let mut ok = vec![0x80, 3, b']', b'('];
        ok.extend(short_binbytes(b"x"));
        ok.extend(short_binbytes(b"y"));
        ok.extend_from_slice(b"e](K\x01e\x86.");
        assert_eq!(parse_bin(&ok).map(|p| p.issame), Ok(vec![true]));
        let mut bad = ok.clone();
        let n = bad.len();
        assert_eq!(&bad[n - 6..n - 4], b"(K");
        bad[n - 4] = 2;
        let e = parse_bin(&bad).unwrap_err();
        assert!(e.to_string().contains("issame_list[0]: expected a bool, 0/1 or a numpy bool, found int 2"), "{e}");

        // An empty image.
        let data = bytes_pack(&[b"x", b""], &[true]);
        let e = parse_bin(&data).unwrap_err();
        assert!(matches!(e, BinError::EmptyImage { index: 1, .. }), "{e:?}");

        // A str image is not an image.
        let mut s = vec![0x80, 3, b']', b'('];
        s.extend(short_binbytes(b"x"));
        s.extend(binunicode("y"));
        s.extend_from_slice(b"e](\x88e\x86.");
        let e = parse_bin(&s).unwrap_err();
        assert!(e.to_string().contains("bins[1]: expected bytes or a numpy uint8 array, found str \"y\""), "{e}");

        // A numpy bool scalar with a byte other than 0/1.
        let mut scalar = vec![0x80, 3];
        scalar.extend_from_slice(b"cnumpy.core.multiarray\nscalar\ncnumpy\ndtype\n");
        scalar.extend(binunicode("b1"));
        scalar.extend_from_slice(b"\x89\x88\x87R");
        scalar.extend(short_binbytes(b"\x02"));
        scalar.extend_from_slice(b"\x86R.");
        let e = parse_bin(&scalar).unwrap_err();
        assert!(e.to_string().contains("REDUCE numpy multiarray.scalar: expected one byte"), "{e}");
    }

    #[test]
    fn trailing_data_is_rejected() {
        let mut data = bytes_pack(&[b"x", b"y"], &[true]);
        let n = data.len();
        data.extend_from_slice(b"junk");
        assert_eq!(parse_bin(&data), Err(BinError::TrailingData { offset: n, len: 4 }));
    }

    #[test]
    fn huge_length_prefixes_are_truncation_errors() {
        let e = parse_bin(b"\x80\x04\x8e\x00\x00\x00\x00\x00\x00\x00\x40abc.").unwrap_err();
        assert_eq!(e.to_string(), "truncated: BINBYTES8 at byte 2 needs 4611686018427387904 bytes, 4 remain");
        for data in [
            &b"\x80\x05\x96\xff\xff\xff\xff\xff\xff\xff\xffabc."[..],
            b"\x80\x04\x8d\x00\x00\x00\x00\x00\x01\x00\x00abc.",
            b"\x80\x03B\xff\xff\xff\xffabc.",
            b"\x80\x03X\xff\xff\xff\x7fabc.",
            b"\x80\x04\x95\xff\xff\xff\xff\xff\xff\xff\x7fN.",
            b"\x80\x02T\x00\x00\x00\x01abc.",
        ] {
            assert!(matches!(parse_bin(data), Err(BinError::Truncated { .. })), "{data:?}");
        }
        let e = parse_bin(b"\x80\x02T\xff\xff\xff\xffabc.").unwrap_err();
        assert!(e.to_string().contains("non-negative length"), "{e}");
        let e = parse_bin(b"\x80\x03C\x28abcdefghijkl").unwrap_err();
        assert_eq!(e.to_string(), "truncated: SHORT_BINBYTES at byte 2 needs 40 bytes, 12 remain");
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let mut data = vec![0x80, 2, b'N'];
        data.resize(data.len() + 200_000, 0x85);
        data.push(b'.');
        let e = parse_bin(&data).unwrap_err();
        assert!(matches!(e, BinError::LimitExceeded { offset: 35, .. }), "{e:?}");
        // Many open MARKs / stack entries are bounded by the input and simply rejected.
        let mut marks = vec![0x80, 2];
        marks.resize(marks.len() + 100_000, b'(');
        marks.push(b'.');
        assert!(parse_bin(&marks).is_err());
        let mut nones = vec![0x80, 2];
        nones.resize(nones.len() + 100_000, b'N');
        nones.push(b'.');
        assert!(parse_bin(&nones).is_err());
    }

    #[test]
    fn memo_edge_cases() {
        // A huge LONG_BINPUT key allocates nothing; the value round-trips through LONG_BINGET.
        let mut data = vec![0x80, 3];
        data.extend_from_slice(b"]r\xff\xff\xff\xff(");
        data.extend(short_binbytes(b"img0"));
        data.extend(short_binbytes(b"img1"));
        data.extend_from_slice(b"e](\x88e\x86.");
        assert_eq!(parse_bin(&data).map(|p| p.issame), Ok(vec![true]));

        let e = parse_bin(b"\x80\x03h\x07.").unwrap_err();
        assert_eq!(e, BinError::MissingMemo { offset: 2, opcode: "BINGET", key: 7 });
        let e = parse_bin(b"\x80\x03q\x00.").unwrap_err();
        assert!(matches!(e, BinError::StackUnderflow { .. }), "{e:?}");
        let e = parse_bin(b"\x80\x03N(q\x00.").unwrap_err();
        assert!(matches!(e, BinError::StackUnderflow { .. }), "BINPUT may not reach below MARK: {e:?}");
        let e = parse_bin(b"\x80\x03N(\x85.").unwrap_err();
        assert!(matches!(e, BinError::StackUnderflow { .. }), "TUPLE1 may not reach below MARK: {e:?}");
        let e = parse_bin(b"\x80\x03Nt.").unwrap_err();
        assert!(matches!(e, BinError::MissingMark { .. }), "{e:?}");
    }

    #[test]
    fn memo_shares_lists_like_python() {
        // `bins` is memoized while empty and fetched back after APPENDS; as in CPython the
        // fetched object is the same list, so it sees the appended items. The pair is
        // (bins, bins), so issame_list[0] must be the appended bytes, not missing.
        let mut data = vec![0x80, 3, b']', b'q', 0, b'('];
        data.extend(short_binbytes(b"x"));
        data.extend(short_binbytes(b"y"));
        data.extend_from_slice(b"eh\x00\x86.");
        let e = parse_bin(&data).unwrap_err();
        assert!(
            e.to_string().contains("issame_list[0]: expected a bool, 0/1 or a numpy bool, found bytes of length 1"),
            "{e}"
        );
        // A list cannot be appended to itself, nor changed once nested in a container.
        let e = parse_bin(b"\x80\x03]q\x00h\x00a.").unwrap_err();
        assert!(e.to_string().contains("a list appended to itself"), "{e}");
        let e = parse_bin(b"\x80\x03]q\x00\x85h\x00Na.").unwrap_err();
        assert!(e.to_string().contains("already placed inside another container"), "{e}");
        // Nested lists are depth-limited too.
        let mut deep = vec![0x80, 3];
        for _ in 0..100_000 {
            deep.extend_from_slice(b"](");
        }
        deep.resize(deep.len() + 100_000, b'e');
        deep.push(b'.');
        assert!(matches!(parse_bin(&deep), Err(BinError::LimitExceeded { .. })));
    }

    #[test]
    fn wide_opcodes_and_codecs_forms() {
        // Images via BINBYTES8, BYTEARRAY8, _codecs.encode(BINUNICODE8 str, 'latin1') and
        // bytearray(str, 'latin-1'); flags via LONG1 and BININT.
        let mut d = vec![0x80, 4, 0x95];
        d.extend_from_slice(&0u64.to_le_bytes()); // a FRAME hint (empty is fine)
        d.extend_from_slice(b"](");
        d.push(0x8e);
        d.extend_from_slice(&3u64.to_le_bytes());
        d.extend_from_slice(b"\xff\xd8\xff");
        d.push(0x96);
        d.extend_from_slice(&2u64.to_le_bytes());
        d.extend_from_slice(b"ba");
        d.extend_from_slice(b"c_codecs\nencode\n");
        let s = "\u{ff}\u{d8}\u{80}z";
        d.push(0x8d);
        d.extend_from_slice(&(s.len() as u64).to_le_bytes());
        d.extend_from_slice(s.as_bytes());
        d.extend(binunicode("latin1"));
        d.extend_from_slice(b"\x86R");
        d.extend_from_slice(b"cbuiltins\nbytearray\n");
        d.extend(binunicode("\u{e9}t\u{e9}"));
        d.extend(binunicode("latin-1"));
        d.extend_from_slice(b"\x86R");
        d.extend_from_slice(b"e](\x8a\x01\x01J\x00\x00\x00\x00e\x86.");
        let pack = parse_bin(&d).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(pack.issame, vec![true, false]);
        assert_eq!(pack.image(&d, 0), b"\xff\xd8\xff");
        assert_eq!(pack.image(&d, 1), b"ba");
        assert_eq!(pack.images[2], ImageBytes::Owned(vec![0xff, 0xd8, 0x80, b'z']));
        assert_eq!(pack.image(&d, 3), b"\xe9t\xe9");

        // A code point above 255 cannot be latin-1.
        let mut bad = b"\x80\x02](c_codecs\nencode\n".to_vec();
        bad.extend(binunicode("\u{100}"));
        bad.extend(binunicode("latin1"));
        bad.extend_from_slice(b"\x86Re.");
        let e = parse_bin(&bad).unwrap_err();
        assert!(e.to_string().contains("U+0100"), "{e}");
        // Other encodings are refused.
        let mut bad = b"\x80\x02c_codecs\nencode\n".to_vec();
        bad.extend(binunicode("x"));
        bad.extend(binunicode("utf-16"));
        bad.extend_from_slice(b"\x86R.");
        assert!(parse_bin(&bad).unwrap_err().to_string().contains("encoding 'latin1'"));
        // LONG1 wider than 8 bytes is refused, negative LONG1 sign-extends.
        assert!(matches!(
            parse_bin(b"\x80\x02\x8a\x09\x01\x02\x03\x04\x05\x06\x07\x08\x09."),
            Err(BinError::LimitExceeded { .. })
        ));
        let e = parse_bin(b"\x80\x02\x8a\x01\xff.").unwrap_err();
        assert!(e.to_string().contains("found int -1"), "{e}");
        // Invalid UTF-8 in a unicode opcode.
        assert!(parse_bin(b"\x80\x03X\x01\x00\x00\x00\xff.").is_err());
        // Unsupported protocol.
        assert!(parse_bin(b"\x80\x06N.").unwrap_err().to_string().contains("protocol 6"));
    }

    /// Patch the dtype code of every array in a numpy fixture (same length, so no prefixes
    /// change) and check it is refused.
    #[test]
    fn numpy_dtype_and_shape_validation() {
        let data = fixture("np3_numpy2.bin");
        let pos = data.windows(3).position(|w| w == b"\x02\x00\x00").expect("u1 prefix");
        assert_eq!(&data[pos + 4..pos + 6], b"u1");
        let mut f4 = data.clone();
        f4[pos + 4..pos + 6].copy_from_slice(b"f4");
        let e = parse_bin(&f4).unwrap_err();
        assert!(e.to_string().contains("dtype uint8 ('u1') or bool ('b1'), found dtype \"f4\""), "{e}");
        // A bool array is not an image.
        let mut b1 = data.clone();
        b1[pos + 4..pos + 6].copy_from_slice(b"b1");
        let e = parse_bin(&b1).unwrap_err();
        assert!(e.to_string().contains("bins[0]: expected a uint8 array"), "{e}");
        // Shape (24, 1) -> (12, 1): raw data no longer matches.
        let shape_at = data.windows(6).position(|w| w == b"K\x18K\x01\x86q").expect("shape");
        let mut short = data.clone();
        short[shape_at + 1] = 12;
        let e = parse_bin(&short).unwrap_err();
        assert!(e.to_string().contains("raw data of prod(shape [12, 1]) bytes, found 24 bytes"), "{e}");
        // Shape (12, 2): right size but not vector-like.
        short[shape_at + 3] = 2;
        let e = parse_bin(&short).unwrap_err();
        assert!(e.to_string().contains("shape (N, 1) or (N,)"), "{e}");
        // numpy reads flag bits of a dtype state (e.g. "pickles as a list"): only the
        // builtin (-1, -1, 0) is accepted for 1-byte types.
        let flags_at =
            data.windows(12).position(|w| w == b"J\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00").expect("dtype state");
        let mut flags = data.clone();
        flags[flags_at + 11] = 50;
        let e = parse_bin(&flags).unwrap_err();
        assert!(e.to_string().contains("BUILD numpy.dtype: expected a state like"), "{e}");
        assert!(e.to_string().ends_with("found flags int 50"), "{e}");
        // _reconstruct's placeholder typecode is always b'b'.
        let tc_at = data.windows(3).position(|w| w == b"C\x01b").expect("typecode");
        let mut tc = data.clone();
        tc[tc_at + 2] = b'"';
        let e = parse_bin(&tc).unwrap_err();
        assert!(e.to_string().contains("expected typecode b'b', found bytes [22]"), "{e}");
    }
}
