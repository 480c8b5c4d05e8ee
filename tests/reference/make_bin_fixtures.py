#!/usr/bin/env python3
"""Generate the tiny insightface `.bin` fixture packs in tests/fixtures/bin/.

Every fixture holds the same logical pack, 3 pairs / 6 images, unless noted:

    image k (k = 0..5): bytes((k*37 + j*11) % 256 for j in range(n_k)),
                        n_k = 300 if k == 5 else 24 + 7*k,
                        and image 0 starts with the JPEG magic FF D8 FF E0
    issame = [True, False, True]

The Rust tests in src/dataset/insightface_bin.rs rebuild the same images with
the same formula.  Image 5 is longer than 255 bytes so the 4-byte length
opcodes (BINSTRING, BINBYTES) are exercised, and every image contains bytes
>= 0x80 so the protocol-2 `_codecs.encode(<str>, 'latin1')` path decodes
two-byte UTF-8 sequences.

Fixtures (name: content):
  p2_py2str.bin           handcrafted Python-2 style pickle, protocol 2, images
                          as py2 `str` (SHORT_BINSTRING / BINSTRING), bools
  p2_py2numpy_numpy1.bin  handcrafted Python-2 style numpy (N,1) uint8 arrays
                          (numpy.core.* names, py2 str raw data), issame ints 0/1
  p2_codecs.bin           Python 3 bytes at protocol 2 (_codecs.encode form)
  p3_bytes.bin, p4_bytes.bin
                          Python 3 bytes at protocols 3 and 4
  p5_bytes.bin            protocol 5, image 3 is a bytearray (BYTEARRAY8)
  np{2,3,4,5}_numpy2.bin  numpy (N,1) uint8 arrays as cv2.imencode returns,
                          numpy-2 global names; issame is a list of numpy bool
                          scalars at protocols 2/3 and a numpy bool array at 4/5
  np{2,3,4,5}_numpy1.bin  the same pickles rewritten to numpy-1 global names
                          (numpy.core.multiarray / numpy.core.numeric)
  np3_shared_numpy2.bin   bins[2] is the same ndarray object as bins[0]
                          (pickled as a memo reference after BUILD), so
                          images are [img0, img1, img0, img3, img4, img5];
                          issame is a numpy uint8 array [1, 0, 1]

Run from the repository root:  python3 tests/reference/make_bin_fixtures.py
Needs numpy (2.x; numpy-1 names are produced by rewriting the pickle bytes).
"""

import os
import pickle
import pickletools
import struct
import sys
import warnings

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "bin")
ISSAME = [True, False, True]


def image(k):
    n = 300 if k == 5 else 24 + 7 * k
    b = bytearray((k * 37 + j * 11) % 256 for j in range(n))
    if k == 0:
        b[:4] = b"\xff\xd8\xff\xe0"
    return bytes(b)


IMAGES = [image(k) for k in range(6)]


# --- handcrafted Python-2 pickles --------------------------------------------------------


class Emit:
    """Minimal protocol-2 pickle writer that mimics Python 2's cPickle output."""

    def __init__(self):
        self.out = bytearray(b"\x80\x02")
        self.next_memo = 0
        self.memo = {}

    def put(self, key=None):
        idx = self.next_memo
        self.next_memo += 1
        self.out += b"q" + bytes([idx])  # BINPUT
        if key is not None:
            self.memo[key] = idx

    def get_or(self, key, emit):
        if key in self.memo:
            self.out += b"h" + bytes([self.memo[key]])  # BINGET
        else:
            emit()
            self.put(key)

    def py2str(self, b):
        if len(b) < 256:
            self.out += b"U" + bytes([len(b)]) + b  # SHORT_BINSTRING
        else:
            self.out += b"T" + struct.pack("<i", len(b)) + b  # BINSTRING
        self.put()

    def glob(self, module, name):
        self.out += b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def py2_str_pack():
    e = Emit()
    e.out += b"]"  # EMPTY_LIST
    e.put()
    e.out += b"("  # MARK
    for img in IMAGES:
        e.py2str(img)
    e.out += b"e"  # APPENDS
    e.out += b"]"
    e.put()
    e.out += b"("
    for s in ISSAME:
        e.out += b"\x88" if s else b"\x89"  # NEWTRUE / NEWFALSE
    e.out += b"e"
    e.out += b"\x86"  # TUPLE2
    e.put()
    e.out += b"."
    return bytes(e.out)


def py2_numpy_pack():
    """numpy (N,1) uint8 arrays the way Python 2 + numpy 1 pickle them."""
    e = Emit()
    e.out += b"]"
    e.put()
    e.out += b"("
    for img in IMAGES:
        e.get_or("reconstruct", lambda: e.glob("numpy.core.multiarray", "_reconstruct"))
        e.get_or("ndarray", lambda: e.glob("numpy", "ndarray"))
        e.get_or("shape0", lambda: e.out.extend(b"K\x00\x85"))  # (0,)
        e.get_or("b", lambda: e.out.extend(b"U\x01b"))
        e.out += b"\x87R"  # TUPLE3 REDUCE
        e.put()
        e.out += b"("  # state: (1, shape, dtype, is_fortran, rawdata)
        e.out += b"K\x01"
        n = len(img)
        e.out += (b"K" + bytes([n])) if n < 256 else (b"M" + struct.pack("<H", n))
        e.out += b"K\x01\x86"
        e.put()

        def dtype():
            e.get_or("dtype_glob", lambda: e.glob("numpy", "dtype"))
            e.get_or("u1", lambda: e.out.extend(b"U\x02u1"))
            e.out += b"K\x00K\x01\x87R"  # ('u1', 0, 1) REDUCE
            e.put("dtype")
            e.out += b"(K\x03"
            e.get_or("pipe", lambda: e.out.extend(b"U\x01|"))
            e.out += b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t"
            e.put()
            e.out += b"b"  # BUILD (dtype state)

        if "dtype" in e.memo:
            e.out += b"h" + bytes([e.memo["dtype"]])
        else:
            dtype()
        e.out += b"\x89"  # is_fortran = False
        e.py2str(img)
        e.out += b"t"
        e.put()
        e.out += b"b"  # BUILD (array state)
    e.out += b"e"
    e.out += b"]"
    e.put()
    e.out += b"("
    for s in ISSAME:
        e.out += b"K\x01" if s else b"K\x00"
    e.out += b"e\x86"
    e.put()
    e.out += b"."
    return bytes(e.out)


# --- numpy-1 rewrite ---------------------------------------------------------------------

RENAME = {
    "numpy._core.multiarray": "numpy.core.multiarray",
    "numpy._core.numeric": "numpy.core.numeric",
}


def to_numpy1(data):
    """Rename numpy-2 module names to numpy-1 ones, fixing length prefixes and FRAMEs."""
    ops = list(pickletools.genops(data))
    chunks = []
    for i, (op, arg, pos) in enumerate(ops):
        end = ops[i + 1][2] if i + 1 < len(ops) else len(data)
        raw = data[pos:end]
        if op.name == "GLOBAL":
            mod, name = arg.split(" ", 1)
            raw = b"c" + RENAME.get(mod, mod).encode() + b"\n" + name.encode() + b"\n"
        elif op.name == "SHORT_BINUNICODE" and arg in RENAME:
            s = RENAME[arg].encode()
            raw = b"\x8c" + bytes([len(s)]) + s
        elif op.name == "BINUNICODE" and arg in RENAME:
            s = RENAME[arg].encode()
            raw = b"X" + struct.pack("<I", len(s)) + s
        chunks.append((op.name, raw))
    # A FRAME covers every opcode up to the next FRAME (that is how pickle's framer
    # writes them); check that on the input, then recompute the lengths.
    out = bytearray()
    i = 0
    while i < len(chunks):
        name, raw = chunks[i]
        if name != "FRAME":
            out += raw
            i += 1
            continue
        j = i + 1
        body = bytearray()
        orig = 0
        while j < len(chunks) and chunks[j][0] != "FRAME":
            body += chunks[j][1]
            j += 1
        orig = struct.unpack("<Q", raw[1:9])[0]
        assert orig == sum(
            (ops[k + 1][2] if k + 1 < len(ops) else len(data)) - ops[k][2] for k in range(i + 1, j)
        ), "unexpected frame layout"
        out += b"\x95" + struct.pack("<Q", len(body)) + body
        i = j
    return bytes(out)


# --- checks ------------------------------------------------------------------------------


def as_bytes(x):
    if isinstance(x, np.ndarray):
        assert x.dtype == np.uint8, x.dtype
        return x.tobytes()
    return bytes(x)


def check(data, images, issame, encoding="ASCII"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        bins, same = pickle.loads(data, encoding=encoding)
    assert [as_bytes(b) for b in bins] == images, "images differ"
    assert [bool(s) for s in same] == issame, "issame differs"
    assert len(bins) == 2 * len(same)


def main():
    os.makedirs(OUT, exist_ok=True)
    fixtures = {}

    fixtures["p2_py2str.bin"] = (py2_str_pack(), IMAGES, "bytes")
    fixtures["p2_py2numpy_numpy1.bin"] = (py2_numpy_pack(), IMAGES, "latin1")

    for p in (2, 3, 4):
        name = "p2_codecs.bin" if p == 2 else f"p{p}_bytes.bin"
        fixtures[name] = (pickle.dumps((list(IMAGES), list(ISSAME)), protocol=p), IMAGES, "ASCII")
    bins5 = list(IMAGES)
    bins5[3] = bytearray(bins5[3])
    fixtures["p5_bytes.bin"] = (pickle.dumps((bins5, list(ISSAME)), protocol=5), IMAGES, "ASCII")

    arrays = [np.frombuffer(img, dtype=np.uint8).reshape(-1, 1).copy() for img in IMAGES]
    for p in (2, 3, 4, 5):
        if p in (2, 3):
            same = [np.bool_(s) for s in ISSAME]
        else:
            same = np.array(ISSAME, dtype=bool)
        data = pickle.dumps((arrays, same), protocol=p)
        fixtures[f"np{p}_numpy2.bin"] = (data, IMAGES, "ASCII")
        data1 = to_numpy1(data)
        assert b"numpy._core" not in data1
        fixtures[f"np{p}_numpy1.bin"] = (data1, IMAGES, "ASCII")

    shared = list(arrays)
    shared[2] = shared[0]
    shared_images = [IMAGES[0], IMAGES[1], IMAGES[0], IMAGES[3], IMAGES[4], IMAGES[5]]
    data = pickle.dumps((shared, np.array(ISSAME, dtype=np.uint8)), protocol=3)
    fixtures["np3_shared_numpy2.bin"] = (data, shared_images, "ASCII")

    for name, (data, images, encoding) in sorted(fixtures.items()):
        check(data, images, ISSAME, encoding)
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
        print(f"{name:26s} {len(data):5d} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
