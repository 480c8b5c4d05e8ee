"""Fixtures: the CLI binary `cargo test` built, and one `aifr-eval demo` run whose results.json
files are what the Python results must equal byte for byte."""

import os
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def cli_path() -> Path:
    p = Path(os.environ.get("AIFR_EVAL_BIN", ROOT / "target" / "debug" / "aifr-eval"))
    if not p.exists():
        pytest.fail(f"the CLI binary {p} does not exist: run `cargo test` (or `cargo build`) first, "
                    "or set AIFR_EVAL_BIN")
    return p


def run_cli(*args, cwd=None, env=None):
    e = dict(os.environ)
    e.update(env or {})
    r = subprocess.run([str(cli_path()), *map(str, args)], cwd=cwd, env=e, capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"aifr-eval {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stderr}")
    return r


def read_store(path):
    """An .aifrstore's rows (and mirrored rows) and keys, read with NumPy from its documented
    layout (src/store/format.rs): a 4 KiB header, rows view-major, then the keys."""
    raw = Path(path).read_bytes()
    dtype_code, dim, views, count, data_off, keys_off, keys_len = struct.unpack_from("<IIIQQQQ", raw, 12)
    dt = {1: "<f4", 2: "<f2"}[dtype_code]
    rows = np.frombuffer(raw, dtype=dt, count=views * count * dim, offset=data_off).reshape(views, count, dim)
    keys = raw[keys_off:keys_off + keys_len].decode().split("\n")[:-1]
    return np.ascontiguousarray(rows[0]), (np.ascontiguousarray(rows[1]) if views == 2 else None), keys


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """`aifr-eval demo` once: synthetic LFW, .bin pack, FG-NET, MegaFace, AgeDB, CACD-VS and IJB-C
    in their real layouts, each evaluated by the CLI into its own run directory."""
    out = tmp_path_factory.mktemp("demo")
    run_cli("demo", "--out", out, env={"AIFR_CACHE_DIR": str(out / "cli-cache")})
    return out
