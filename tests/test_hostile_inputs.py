"""Hostile and odd inputs (issue 14): exit 2 with one sentence, bounded memory, inputs never changed.

Each case builds its files in a temporary folder and runs the CLI. Most run in
this process through `whylow.cli.run` (a fresh interpreter costs 1-2 s of
imports); the cases that need a fresh process run as subprocesses: one batch
under an address-space limit (memory bombs, FIFOs, links to /dev/zero, 20,000
classes; each case with an alarm, the batch with a timeout), and single runs
for the interrupt, /dev/stdout and /dev/null cases. Every case asserts the exit
code, one ``whylow: error:`` line on stderr with no traceback, and that every
input file is byte-for-byte unchanged (sha256 before and after).

Nothing here writes outside ``tmp_path``; the only device nodes touched are
/dev/zero (read through a link, and refused unread) and /dev/null (written by
a subprocess, then checked to still be a character device).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import signal
import stat
import struct
import subprocess
import sys
import textwrap
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import whylow
from whylow import InvalidInputError, Split

PY = sys.executable
#: Address-space limit of the subprocess batch: the "under 2 GB" of the issue.
AS_LIMIT = 2 * 2**30


# -- harness -------------------------------------------------------------------------------------


@dataclass
class Result:
    code: int
    out: str
    err: str


def cli(*args) -> Result:
    """Run ``whylow ARGS`` in this process and capture its exit code, stdout and stderr."""
    from whylow.cli import run

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = run([str(a) for a in args])
        except SystemExit as exc:  # pragma: no cover - run() never exits; this would be a bug
            code = f"SystemExit({exc.code})"
    return Result(code, out.getvalue(), err.getvalue())


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every regular file under ``root`` (links and special files are not followed or opened)."""
    digests = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + dirnames:
            p = Path(dirpath) / name
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                digests[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                digests[str(p)] = "link -> " + os.readlink(p)
            elif not stat.S_ISDIR(st.st_mode):
                digests[str(p)] = f"special {stat.S_IFMT(st.st_mode)}"
    return digests


def assert_one_sentence(res: Result, words=(), code: int = 2) -> str:
    """Exit ``code``, exactly one ``whylow: error:`` line on stderr, no traceback, ``words`` in it."""
    assert res.code == code, (res.code, res.err, res.out[-500:])
    assert "Traceback" not in res.err + res.out
    err = res.err.strip()
    lines = err.splitlines()
    assert len(lines) == 1, lines
    assert err.startswith("whylow: error: "), err
    for w in words:
        assert w.lower() in err.lower(), (w, err)
    return err


# -- file makers -----------------------------------------------------------------------------------


def preds(n=60, k=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    p = rng.dirichlet(np.ones(k), n)
    p[np.arange(n), y] += 1.0
    return y, p / p.sum(1, keepdims=True)


def npy_bytes(arr) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=True)
    return buf.getvalue()


def npy_header(shape, dtype="<f8") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue()


def write_zip(path: Path, members: dict[str, bytes], compress=zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compress) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def good_npz(d: Path, name="test.npz", **extra) -> Path:
    y, p = preds()
    arrays = {"y": y, "probs": p, **extra}
    np.savez(d / name, **{k: v for k, v in arrays.items() if v is not None})
    return d / name


def png_bytes(w=8, h=8, seed=0, mode="RGB") -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (h, w, 3) if mode == "RGB" else (h, w), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def png_bomb(width=20_000, height=20_000) -> bytes:
    """A valid 1-bit PNG of width×height black pixels: a few KB that decode to 400 megapixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" * (1 + (width + 7) // 8)
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def image_folder(d: Path, name="imgs", classes=("cat", "dog"), per_class=4) -> Path:
    root = d / name
    for ci, c in enumerate(classes):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            (root / c / f"{i}.png").write_bytes(png_bytes(seed=ci * 10 + i))
    return root


def csv_file(d: Path, text, name="t.csv", encoding="utf-8") -> Path:
    data = text if isinstance(text, bytes) else text.encode(encoding)
    (d / name).write_bytes(data)
    return d / name


def good_csv_text(n=40, k=3, label_first=True) -> str:
    y, p = preds(n, k)
    cols = [f"prob_{j}" for j in range(k)]
    header = ["label", *cols] if label_first else [*cols, "label"]
    rows = []
    for i in range(n):
        vals = [f"{v:.6f}" for v in p[i]]
        rows.append(",".join([str(y[i]), *vals] if label_first else [*vals, str(y[i])]))
    return ",".join(header) + "\n" + "\n".join(rows) + "\n"


# -- the in-process corpus ---------------------------------------------------------------------------
#
# A case is (id, build, code, words, check): ``build(d)`` makes the files in ``d`` and returns the CLI
# arguments; the run must exit ``code`` (2: one sentence containing every word of ``words``);
# ``check(result, d)`` adds assertions. Files listed by the case as outputs may change; nothing else.

CASES: list[tuple] = []


def case(id, code=2, words=(), check=None):
    def register(build):
        CASES.append((id, build, code, tuple(words), check))
        return build

    return register


def add(id, build, code=2, words=(), check=None):
    CASES.append((id, build, code, tuple(words), check))


# .npz: structure ---------------------------------------------------------------------------------

for field in ("x", "y", "probs", "logits"):
    def _zero_d(d, field=field):
        y, p = preds()
        arrays = {"y": y, "probs": p}
        if field == "logits":
            arrays.pop("probs")
        arrays[field] = np.array(3.0)
        np.savez(d / "t.npz", **arrays)
        return ["diagnose", "--test", d / "t.npz"]

    add(f"npz-0d-{field}", _zero_d, words=("single value", field))

for field in ("x", "y", "probs"):
    def _objects(d, field=field):
        y, p = preds()
        arrays = {"y": npy_bytes(y), "probs": npy_bytes(p)}
        arrays[field] = npy_bytes(np.array([{"__reduce__": "os.system"}, 1], dtype=object))
        write_zip(d / "t.npz", {f"{k}.npy": v for k, v in arrays.items()})
        return ["diagnose", "--test", d / "t.npz"]

    add(f"npz-pickle-{field}", _objects, words=("never unpickles",))


@case("npz-header-claims-30TB", words=("claims", "holds only"))
def _(d):
    y, p = preds()
    write_zip(d / "t.npz", {"y.npy": npy_bytes(y), "probs.npy": npy_header((4 * 10**12, 1))[:] + b"\0" * 64})
    return ["diagnose", "--test", d / "t.npz"]


@case("npz-header-claims-30TB-compressed", words=("claims",))
def _(d):
    y, p = preds()
    write_zip(d / "t.npz", {"y.npy": npy_bytes(y), "probs.npy": npy_header((60, 6 * 10**10))}, zipfile.ZIP_DEFLATED)
    return ["diagnose", "--test", d / "t.npz"]


@case("npz-truncated-member", words=("holds only",))
def _(d):
    y, p = preds()
    write_zip(d / "t.npz", {"y.npy": npy_bytes(y), "probs.npy": npy_bytes(p)[:-100]})
    return ["diagnose", "--test", d / "t.npz"]


@case("npz-bad-npy-magic", words=("not a valid .npy",))
def _(d):
    y, _ = preds()
    write_zip(d / "t.npz", {"y.npy": npy_bytes(y), "probs.npy": b"\x93NUMPX" + b"\0" * 100})
    return ["diagnose", "--test", d / "t.npz"]


@case("npz-header-garbage", words=("not a valid .npy",))
def _(d):
    y, _ = preds()
    write_zip(d / "t.npz", {"y.npy": npy_bytes(y), "probs.npy": b"\x93NUMPY\x01\x00\x20\x00{'descr': os.system('x')}  \n"})
    return ["diagnose", "--test", d / "t.npz"]


@case("npz-not-a-zip", words=("not a readable .npz",))
def _(d):
    (d / "t.npz").write_bytes(b"this is plain text, not a zip archive\n" * 10)
    return ["diagnose", "--test", d / "t.npz"]


@case("npz-empty-file", words=("not a readable .npz",))
def _(d):
    (d / "t.npz").write_bytes(b"")
    return ["diagnose", "--test", d / "t.npz"]


@case("npz-zip-truncated", words=("not a readable .npz",))
def _(d):
    good_npz(d, "full.npz")
    (d / "t.npz").write_bytes((d / "full.npz").read_bytes()[:300])
    return ["diagnose", "--test", d / "t.npz"]


@case("npz-many-members", words=("members",))
def _(d):
    write_zip(d / "t.npz", {f"a{i}.npy": npy_bytes(np.zeros(1)) for i in range(200)})
    return ["diagnose", "--test", d / "t.npz"]


@case("npz-unknown-keys", words=("unexpected keys",))
def _(d):
    return ["diagnose", "--test", good_npz(d, weights=np.ones(60))]


@case("npz-probs-and-logits", words=("both 'probs' and 'logits'",))
def _(d):
    return ["diagnose", "--test", good_npz(d, logits=np.zeros((60, 3)))]


@case("npz-no-arrays", words=("no arrays",))
def _(d):
    write_zip(d / "t.npz", {})
    return ["diagnose", "--test", d / "t.npz"]


@case("npz-deflate-bomb-ratio", words=("inflates", "fold", "limits.max_compression_ratio"))
def _(d):
    body = npy_header((60 * 2**20,), "|u1") + bytes(60 * 2**20)
    write_zip(d / "t.npz", {"x.npy": body, "y.npy": npy_bytes(preds()[0])}, zipfile.ZIP_DEFLATED)
    return ["diagnose", "--test", d / "t.npz"]


@case("npz-inflated-size-over-limit", words=("inflates to", "limits.max_decompressed_bytes"))
def _(d):
    y, p = preds(n=2000, k=10)
    np.savez_compressed(d / "t.npz", y=y, probs=p)
    return ["diagnose", "--test", d / "t.npz", "--option", "limits.max_decompressed_bytes=4KiB"]


@case("npz-array-over-memory-budget", words=("memory", "limits.max_array_bytes"))
def _(d):
    return ["diagnose", "--test", good_npz(d), "--option", "limits.max_array_bytes=500"]


@case("npz-inflated-size-raised-limit-ok", code=0)
def _(d):
    y, p = preds(n=2000, k=10)
    np.savez_compressed(d / "t.npz", y=y, probs=p)
    return ["diagnose", "--test", d / "t.npz", "--option", "limits.max_decompressed_bytes=1GiB", "-q"]


for dtype, words in (("complex128", ("complex",)), ("<U3", ("numeric",)), ("datetime64[s]", ("numeric",)),
                     ("V8", ("numeric",)), ("<M8[D]", ("numeric",))):
    def _bad_dtype_x(d, dtype=dtype):
        y, p = preds()
        x = np.zeros((60, 4), dtype=dtype)
        np.savez(d / "t.npz", x=x, y=y, probs=p)
        return ["diagnose", "--test", d / "t.npz"]

    add(f"npz-x-dtype-{dtype}", _bad_dtype_x, words=words)

for dtype in ("complex64", "<U5", "datetime64[s]"):
    def _bad_dtype_probs(d, dtype=dtype):
        y, p = preds()
        np.savez(d / "t.npz", y=y, probs=p.astype(dtype) if dtype == "complex64" else np.zeros((60, 3), dtype=dtype))
        return ["diagnose", "--test", d / "t.npz"]

    add(f"npz-probs-dtype-{dtype}", _bad_dtype_probs)

for shape, words in (((60, 2, 2, 2, 2), ("axes",)), ((60,), ("axes",)), ((60, 0), ()), ((60, 3, 5, 3), ("--layout",))):
    def _bad_x_shape(d, shape=shape):
        y, p = preds()
        np.savez(d / "t.npz", x=np.zeros(shape, dtype=np.uint8), y=y, probs=p)
        return ["diagnose", "--test", d / "t.npz", "-q"]

    add(f"npz-x-shape-{'x'.join(map(str, shape))}", _bad_x_shape, code=0 if shape == (60, 0) else 2, words=words)


# .npz: values -----------------------------------------------------------------------------------

_LABEL_CASES = {
    "negative": (np.array([0, 1, -1] * 20), ("-1", "start at 0")),
    "fraction": (np.array([0, 1, 1.5] * 20), ("integer class ids",)),
    "nan": (np.array([0, 1, np.nan] * 20), ("NaN",)),
    "inf": (np.array([0, 1, np.inf] * 20), ("NaN or infinite",)),
    "huge-float": (np.array([0, 1, 1e300] * 20), ("far beyond",)),
    "out-of-range": (np.array([0, 1, 7] * 20), ("out of range",)),
    "uint64-max": (np.array([0, 1, 2**64 - 1] * 20, dtype=np.uint64), ("18446744073709551615",)),
    "int64-max": (np.array([0, 1, 2**63 - 1] * 20, dtype=np.int64), ("out of range",)),
    "2d": (np.zeros((60, 3)) + np.arange(3), ("one id per sample",)),
    "3d": (np.zeros((60, 1, 1)), ("one id per sample",)),
    "strings-not-in-classes": (np.array(["a", "b", "c", "d"] * 15), ("4 class names come from", "label values")),
}
for label, (y, words) in _LABEL_CASES.items():
    def _labels(d, y=y):
        _, p = preds()
        np.savez(d / "t.npz", y=y, probs=p)
        return ["diagnose", "--test", d / "t.npz"]

    add(f"labels-{label}", _labels, words=words)

for label, (y, words) in {
    "2**40-without-predictions": (np.array([0, 1, 2**40]), ("1099511627776", "renumber")),
    "10**6-without-predictions": (np.array([0, 1, 10**6]), ("1000000",)),
    "uint64-max-without-predictions": (np.array([0, 1, 2**64 - 1], dtype=np.uint64), ("18446744073709551615",)),
}.items():
    def _labels_only(d, y=y):
        np.savez(d / "t.npz", y=y)
        return ["diagnose", "--test", d / "t.npz"]

    add(f"labels-{label}", _labels_only, words=words)


@case("labels-many-classes-within-limit", code=0)
def _(d):
    np.savez(d / "t.npz", y=np.array([0, 1, 5000] * 10))
    return ["diagnose", "--test", d / "t.npz", "-q"]


_PROB_CASES = {
    "nan": lambda p: np.where(np.arange(p.size).reshape(p.shape) == 4, np.nan, p),
    "inf": lambda p: np.where(np.arange(p.size).reshape(p.shape) == 4, np.inf, p),
    "negative": lambda p: p - 0.5,
    "rows-not-summing": lambda p: p * 0.5,
    "3d": lambda p: p[:, :, None],
    "empty-columns": lambda p: p[:, :0],
    "wrong-rows": lambda p: p[:-1],
    "huge": lambda p: p * 1e308 * 10,
}
for label, fn in _PROB_CASES.items():
    def _probs(d, fn=fn):
        y, p = preds()
        with np.errstate(all="ignore"):
            np.savez(d / "t.npz", y=y, probs=fn(p))
        return ["diagnose", "--test", d / "t.npz"]

    add(f"probs-{label}", _probs)

for label, fn in {"nan": lambda z: z * np.nan, "inf": lambda z: z + np.inf, "3d": lambda z: z[:, None]}.items():
    def _logits(d, fn=fn):
        y, p = preds()
        np.savez(d / "t.npz", y=y, logits=fn(np.log(p)))
        return ["diagnose", "--test", d / "t.npz"]

    add(f"logits-{label}", _logits)


@case("splits-different-k", words=("different numbers of classes",))
def _(d):
    y, p = preds(k=3)
    y4, p4 = preds(k=4)
    np.savez(d / "t.npz", y=y, probs=p)
    np.savez(d / "v.npz", y=y4, probs=p4)
    return ["diagnose", "--test", d / "t.npz", "--val", d / "v.npz"]


@case("lengths-mismatch", words=("different numbers of samples",))
def _(d):
    y, p = preds()
    np.savez(d / "t.npz", y=y[:-3], probs=p)
    return ["diagnose", "--test", d / "t.npz"]


@case("empty-split", words=("empty",))
def _(d):
    np.savez(d / "t.npz", y=np.zeros(0, dtype=int), probs=np.zeros((0, 3)))
    return ["diagnose", "--test", d / "t.npz"]


@case("x-all-nan", words=("only NaN",))
def _(d):
    y, p = preds()
    np.savez(d / "t.npz", x=np.full((60, 4, 4), np.nan), y=y, probs=p)
    return ["diagnose", "--test", d / "t.npz"]


@case("fortran-order-ok", code=0)
def _(d):
    y, p = preds()
    np.savez(d / "t.npz", y=y, probs=np.asfortranarray(p))
    return ["diagnose", "--test", d / "t.npz", "-q"]


@case("big-endian-ok", code=0)
def _(d):
    y, p = preds()
    np.savez(d / "t.npz", y=y.astype(">i4"), probs=p.astype(">f8"))
    return ["diagnose", "--test", d / "t.npz", "-q"]


# paths ------------------------------------------------------------------------------------------


@case("missing-file", words=("does not exist",))
def _(d):
    return ["diagnose", "--test", d / "missing.npz"]


@case("broken-link", words=("broken link",))
def _(d):
    (d / "t.npz").symlink_to(d / "gone.npz")
    return ["diagnose", "--test", d / "t.npz"]


@case("link-loop", words=("cannot",))
def _(d):
    (d / "a.npz").symlink_to(d / "b.npz")
    (d / "b.npz").symlink_to(d / "a.npz")
    return ["diagnose", "--test", d / "a.npz"]


@case("path-under-a-file", words=("does not exist",))
def _(d):
    good_npz(d)
    return ["diagnose", "--test", d / "test.npz" / "t.npz"]


@case("newline-in-file-name", words=("\\n",))
def _(d):
    return ["diagnose", "--test", d / "bad\nname.npz"]


@case("escape-sequence-in-file-name", words=("\\x1b",))
def _(d):
    return ["diagnose", "--test", d / "bad\x1b[2Jname.npz"]


@case("unknown-extension", words=("unknown file type",))
def _(d):
    (d / "t.pkl").write_bytes(b"\x80\x04K\x01.")
    return ["diagnose", "--test", d / "t.pkl"]


@case("directory-named-npz", words=("no class subfolders",))
def _(d):
    (d / "t.npz").mkdir()
    return ["diagnose", "--test", d / "t.npz"]


@case("link-to-dev-zero-npz", words=("character device", "not a regular file"))
def _(d):
    (d / "t.npz").symlink_to("/dev/zero")
    return ["diagnose", "--test", d / "t.npz"]


@case("link-to-dev-zero-csv", words=("character device",))
def _(d):
    (d / "t.csv").symlink_to("/dev/zero")
    return ["diagnose", "--test", d / "t.csv"]


@case("link-to-dev-zero-parquet", words=("character device",))
def _(d):
    (d / "t.parquet").symlink_to("/dev/zero")
    return ["diagnose", "--test", d / "t.parquet"]


@case("link-to-dev-zero-history", words=("history", "character device"))
def _(d):
    (d / "h.json").symlink_to("/dev/zero")
    return ["diagnose", "--test", good_npz(d), "--history", d / "h.json"]


@case("link-to-dev-zero-class-names", words=("class-names", "character device"))
def _(d):
    (d / "c.txt").symlink_to("/dev/zero")
    return ["diagnose", "--test", good_npz(d), "--class-names", d / "c.txt"]


@case("link-to-dev-zero-model", words=("model", "character device"))
def _(d):
    (d / "m.onnx").symlink_to("/dev/zero")
    return ["diagnose", "--test", good_npz(d), "--model", d / "m.onnx"]


@case("history-is-a-directory", words=("history", "directory"))
def _(d):
    (d / "h.json").mkdir()
    return ["diagnose", "--test", good_npz(d), "--history", d / "h.json"]


@case("class-names-is-a-directory", words=("class-names", "directory"))
def _(d):
    (d / "c.txt").mkdir()
    return ["diagnose", "--test", good_npz(d), "--class-names", d / "c.txt"]


@case("model-is-a-directory", words=("model", "directory"))
def _(d):
    (d / "m.onnx").mkdir()
    return ["diagnose", "--test", good_npz(d), "--model", d / "m.onnx"]


# CSV --------------------------------------------------------------------------------------------


def _accuracy_reported(res, d):
    report = json.loads((d / "r.json").read_text())
    assert report["summary"]["accuracy"] is not None and report["inputs"]["splits"]["test"]["has_labels"]


@case("csv-utf8-bom-label-first", code=0, check=_accuracy_reported)
def _(d):
    csv_file(d, "\ufeff" + good_csv_text(label_first=True))
    return ["diagnose", "--test", d / "t.csv", "--json", d / "r.json", "-q"]


@case("csv-utf8-bom-label-last", code=0, check=_accuracy_reported)
def _(d):
    csv_file(d, "\ufeff" + good_csv_text(label_first=False))
    return ["diagnose", "--test", d / "t.csv", "--json", d / "r.json", "-q"]


@case("csv-crlf", code=0, check=_accuracy_reported)
def _(d):
    csv_file(d, good_csv_text().replace("\n", "\r\n"))
    return ["diagnose", "--test", d / "t.csv", "--json", d / "r.json", "-q"]


@case("csv-utf16", words=("UTF-16",))
def _(d):
    csv_file(d, good_csv_text(), encoding="utf-16")
    return ["diagnose", "--test", d / "t.csv"]


@case("csv-latin1-line-3", words=("not UTF-8", "line 3"))
def _(d):
    text = good_csv_text().splitlines()
    text[2] = text[2] + ",caf\xe9"
    csv_file(d, ("\n".join(text[:2]) + "\n" + text[2] + "\n").encode("latin-1"))
    return ["diagnose", "--test", d / "t.csv"]


@case("csv-latin1-deep-line", words=("not UTF-8", "line 35"))
def _(d):
    lines = good_csv_text().splitlines()
    lines[34] = lines[34].replace("0.", "\xb10.", 1)
    csv_file(d, "\n".join(lines).encode("latin-1"))
    return ["diagnose", "--test", d / "t.csv"]


@case("csv-field-over-131072", words=("longer than 131,072", "limits.max_csv_field"))
def _(d):
    csv_file(d, "label,prob_0,prob_1\n0,0.5,0." + "5" * 200_000 + "\n")
    return ["diagnose", "--test", d / "t.csv"]


@case("csv-field-limit-raised", code=0)
def _(d):
    lines = good_csv_text(k=2).splitlines()
    lines[1] = lines[1] + "0" * 200_000
    csv_file(d, "\n".join(lines) + "\n")
    return ["diagnose", "--test", d / "t.csv", "--option", "limits.max_csv_field=1000000", "-q"]


@case("csv-unterminated-quote", words=("longer than",))
def _(d):
    csv_file(d, 'label,prob_0,prob_1\n0,"0.5' + "x" * 140_000 + "\n")
    return ["diagnose", "--test", d / "t.csv"]


@case("csv-empty", words=("empty",))
def _(d):
    csv_file(d, "")
    return ["diagnose", "--test", d / "t.csv"]


@case("csv-header-only", words=("empty",))
def _(d):
    csv_file(d, "label,prob_0,prob_1\n")
    return ["diagnose", "--test", d / "t.csv"]


@case("csv-ragged", words=("fields on data row",))
def _(d):
    csv_file(d, "label,prob_0,prob_1\n0,0.9,0.1\n1,0.3\n")
    return ["diagnose", "--test", d / "t.csv"]


@case("csv-no-prediction-columns", words=("no prediction columns",))
def _(d):
    csv_file(d, "label,score\n0,0.9\n")
    return ["diagnose", "--test", d / "t.csv"]


@case("csv-mixed-kinds", words=("mixes",))
def _(d):
    csv_file(d, "label,prob_0,logit_1\n0,0.9,0.1\n")
    return ["diagnose", "--test", d / "t.csv"]


@case("csv-non-numeric", words=("non-numeric", "'abc'", "data row 2"))
def _(d):
    csv_file(d, "label,prob_0,prob_1\n0,0.9,0.1\n1,abc,0.5\n")
    return ["diagnose", "--test", d / "t.csv"]


@case("csv-columns-with-gap", words=("expected one each for 0 to 1",))
def _(d):
    csv_file(d, "label,prob_0,prob_2\n0,0.9,0.1\n")
    return ["diagnose", "--test", d / "t.csv"]


@case("csv-duplicate-column", words=("more than once",))
def _(d):
    csv_file(d, "label,prob_0,prob_1,label\n0,0.9,0.1,1\n")
    return ["diagnose", "--test", d / "t.csv"]


@case("csv-empty-label", words=("empty label", "data row 2"))
def _(d):
    csv_file(d, "label,prob_0,prob_1\n0,0.9,0.1\n,0.2,0.8\n")
    return ["diagnose", "--test", d / "t.csv"]


@case("csv-label-400-digits", words=("too large to be a class id", "data row 2"))
def _(d):
    csv_file(d, f"label,prob_0,prob_1\n0,0.9,0.1\n{'9' * 400},0.2,0.8\n")
    return ["diagnose", "--test", d / "t.csv"]


@case("csv-label-1e400", words=("too large",))
def _(d):
    csv_file(d, "label,prob_0,prob_1\n0,0.9,0.1\n1e400,0.2,0.8\n")
    return ["diagnose", "--test", d / "t.csv"]


@case("csv-prob-nan", words=("NaN",))
def _(d):
    csv_file(d, "label,prob_0,prob_1\n0,0.9,0.1\n1,nan,0.8\n")
    return ["diagnose", "--test", d / "t.csv"]


@case("csv-prob-5000-digits", words=("NaN or infinite",))
def _(d):
    csv_file(d, f"label,prob_0,prob_1\n0,0.9,0.1\n1,{'9' * 5000},0.8\n")
    return ["diagnose", "--test", d / "t.csv"]


@case("csv-column-index-5000-digits", code=0)
def _(d):
    csv_file(d, f"label,prob_0,prob_{'9' * 5000}\n0,0.9,0.1\n")
    return ["diagnose", "--test", d / "t.csv", "-q"]


@case("csv-nul-bytes", words=("non-numeric", "\\x00"))
def _(d):
    csv_file(d, b"label,prob_0,prob_1\n0,0.9\x00,0.1\n")
    return ["diagnose", "--test", d / "t.csv"]


@case("csv-labels-names-mismatch", words=("3 columns", "come from"))
def _(d):
    csv_file(d, "label,prob_0,prob_1,prob_2\ncat,0.9,0.05,0.05\ndog,0.1,0.8,0.1\ncow,0.1,0.1,0.8\nemu,0.2,0.2,0.6\n")
    return ["diagnose", "--test", d / "t.csv"]


@case("parquet-garbage", words=("not a readable parquet",))
def _(d):
    (d / "t.parquet").write_bytes(b"PAR1" + os.urandom(200) + b"PAR1")
    return ["diagnose", "--test", d / "t.parquet"]


@case("parquet-empty", words=("not a readable parquet",))
def _(d):
    (d / "t.parquet").write_bytes(b"")
    return ["diagnose", "--test", d / "t.parquet"]


# image folders -------------------------------------------------------------------------------------


def _data_quality_names(name):
    def check(res, d):
        report = json.loads((d / "r.json").read_text())
        dq = [f for f in report["findings"] if f["code"] == "data-quality"]
        assert dq, report["findings"]
        assert name in json.dumps(dq), dq

    return check


@case("image-bomb-20000x20000-in-folder", code=0, check=_data_quality_names("bomb.png"))
def _(d):
    root = image_folder(d, per_class=6)
    (root / "dog" / "bomb.png").write_bytes(png_bomb())
    return ["diagnose", "--test", root, "--json", d / "r.json", "-q"]


@case("image-over-lowered-pixel-limit", code=0, check=_data_quality_names("big.png"))
def _(d):
    root = image_folder(d, per_class=6)
    (root / "cat" / "big.png").write_bytes(png_bytes(w=64, h=64))
    return ["diagnose", "--test", root, "--json", d / "r.json", "-q", "--option", "limits.max_image_pixels=1000"]


@case("image-link-to-dev-zero-in-folder", code=0, check=_data_quality_names("zero.png"))
def _(d):
    root = image_folder(d, per_class=6)
    (root / "cat" / "zero.png").symlink_to("/dev/zero")
    return ["diagnose", "--test", root, "--json", d / "r.json", "-q"]


@case("image-broken-link-in-folder", code=0, check=_data_quality_names("gone.png"))
def _(d):
    root = image_folder(d, per_class=6)
    (root / "cat" / "gone.png").symlink_to(d / "nowhere.png")
    return ["diagnose", "--test", root, "--json", d / "r.json", "-q"]


for label, data in {
    "truncated": png_bytes(w=32, h=32)[:60],
    "zero-bytes": b"",
    "text": b"hello, not an image",
    "jpeg-header-only": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
    "gif-garbage": b"GIF89a" + os.urandom(40),
}.items():
    def _bad_image(d, data=data):
        root = image_folder(d, per_class=6)
        (root / "dog" / "bad.png").write_bytes(data)
        return ["diagnose", "--test", root, "--json", d / "r.json", "-q"]

    add(f"image-{label}-in-folder", _bad_image, code=0, check=_data_quality_names("bad.png"))


@case("image-folder-all-bombs", words=("None of the", "pixels"))
def _(d):
    root = d / "imgs"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        (root / c / "x.png").write_bytes(png_bomb(15_000, 15_000))
    return ["diagnose", "--test", root]


@case("image-folder-no-subfolders", words=("no class subfolders",))
def _(d):
    (d / "imgs").mkdir()
    (d / "imgs" / "a.png").write_bytes(png_bytes())
    return ["diagnose", "--test", d / "imgs"]


@case("image-folder-empty-classes", words=("no image files",))
def _(d):
    for c in ("a", "b"):
        (d / "imgs" / c).mkdir(parents=True)
    return ["diagnose", "--test", d / "imgs"]


@case("image-folder-dir-named-png", words=("no image files",))
def _(d):
    (d / "imgs" / "a" / "x.png").mkdir(parents=True)
    (d / "imgs" / "b").mkdir(parents=True)
    return ["diagnose", "--test", d / "imgs"]


@case("image-folder-mixed-modes", code=0)
def _(d):
    from PIL import Image

    root = image_folder(d, per_class=5)
    for mode, name in (("RGBA", "rgba.png"), ("L", "grey.png"), ("P", "pal.png"), ("I;16", "deep.png"), ("CMYK", "cmyk.jpg")):
        Image.new(mode, (8, 8)).save(root / "cat" / name)
    return ["diagnose", "--test", root, "-q"]


def _markdown_and_html_escaped(res, d):
    md = (d / "r.md").read_text()
    assert "<img" not in md and "&lt;img src=x onerror=alert(1)&gt;" in md
    assert "\\*bold\\* \\[x\\](javascript:y) \\|" in md and "\\`code\\` &amp;amp; \\#h" in md
    html = (d / "r.html").read_text()
    assert "<img src=x onerror" not in html


@case("class-name-html-in-markdown-and-html", code=0, check=_markdown_and_html_escaped)
def _(d):
    names = ["<img src=x onerror=alert(1)>", "*bold* [x](javascript:y) |", "`code` &amp; #h"]
    y, p = preds(n=60, k=3)
    rows = [",".join([names[y[i]], *(f"{v:.5f}" for v in p[i])]) for i in range(60)]
    csv_file(d, ",".join(["label", *(f"prob_{n}" for n in names)]) + "\n" + "\n".join(rows) + "\n")
    return ["diagnose", "--test", d / "t.csv", "--markdown", d / "r.md", "--html", d / "r.html", "-q"]


# history and class names ----------------------------------------------------------------------------


def _history(d, data, name="h.json"):
    raw = data if isinstance(data, bytes) else data.encode("utf-8")
    (d / name).write_bytes(raw)
    return ["diagnose", "--test", good_npz(d), "--history", d / name, "-q"]


for label, text, words in (
    ("nested-100000", "[" * 100_000 + "]" * 100_000, ("nests 100000 levels",)),
    ("nested-dicts-1000", '{"a":' * 1000 + "1" + "}" * 1000, ("nests 1000 levels",)),
    ("number-400-digits", '{"loss": [' + "9" * 400 + "]}", ("400 characters", "limits.max_json_number_length")),
    ("number-5000-digits", '{"loss": [' + "9" * 5000 + "]}", ("5000 characters",)),
    ("float-5000-digits", '{"loss": [0.' + "9" * 5000 + "]}", ("characters",)),
    ("not-json", "loss: [1, 2]", ("not valid JSON",)),
    ("list", "[1, 2, 3]", ("dict of per-epoch lists",)),
    ("string-values", '{"loss": "abc"}', ("list of per-epoch numbers",)),
    ("nested-lists", '{"loss": [[1, 2]]}', ("not a number",)),
    ("bool-values", '{"loss": [true, false]}', ("not a number",)),
    ("empty", "{}", ("empty",)),
    ("empty-lists", '{"loss": []}', ("empty",)),
    ("empty-file", "", ("not valid JSON",)),
    ("dict-values", '{"loss": {"a": 1}}', ("list of per-epoch numbers",)),
):
    add(f"history-{label}", lambda d, text=text: _history(d, text), words=words)

add("history-latin1", lambda d: _history(d, '{"loss": [1, 2],\n "l\xe9": [1]}'.encode("latin-1")), words=("not UTF-8", "line 2"))
add("history-utf16", lambda d: _history(d, '{"loss": [1]}'.encode("utf-16")), words=("UTF-16",))
add("history-bom-ok", lambda d: _history(d, "\ufeff" + '{"loss": [1.0, 0.5, 0.4], "val_loss": [1.1, 0.7, 0.6]}'), code=0)
add("history-nan-inf-ok", lambda d: _history(d, '{"loss": [1.0, NaN, Infinity, 1e400, null]}'), code=0)
add("history-over-size-limit", lambda d: _history(d, '{"loss": [' + ", ".join(["0.5"] * 100) + "]}")
    + ["--option", "limits.max_text_bytes=100"], words=("larger than", "limits.max_text_bytes"))
add("history-huge-int-raised-limit", lambda d: _history(d, '{"loss": [' + "9" * 400 + "]}")
    + ["--option", "limits.max_json_number_length=1000"], words=("too large for a float",))
add("history-depth-limit-lowered", lambda d: _history(d, '{"loss": [1, 2]}') + ["--option", "limits.max_json_depth=1"],
    words=("nests 2 levels",))


def _names(d, data, name="c.txt", k=3):
    raw = data if isinstance(data, bytes) else data.encode("utf-8")
    (d / name).write_bytes(raw)
    y, p = preds(k=k)
    np.savez(d / "t.npz", y=y, probs=p)
    return ["diagnose", "--test", d / "t.npz", "--class-names", d / name, "-q"]


for label, data, name, words, code in (
    ("latin1", "cat\ndog\nh\xe9ron\n".encode("latin-1"), "c.txt", ("not UTF-8", "line 3"), 2),
    ("bom-ok", "\ufeffcat\ndog\nbird\n", "c.txt", (), 0),
    ("json-bom-ok", '\ufeff["cat", "dog", "bird"]', "c.json", (), 0),
    ("duplicates", "cat\ndog\ncat\n", "c.txt", ("twice",), 2),
    ("json-duplicates", '["cat", "dog", "cat"]', "c.json", ("twice",), 2),
    ("one-name", "cat\n", "c.txt", ("at least 2",), 2),
    ("empty", "", "c.txt", ("0 class",), 2),
    ("too-few-for-predictions", "cat\ndog\n", "c.txt", ("3 columns but 2 class names were given",), 2),
    ("json-not-list", '{"a": 1}', "c.json", ("JSON list",), 2),
    ("json-nested-deep", "[" * 50_000 + "]" * 50_000, "c.json", ("nests",), 2),
    ("json-invalid", '["cat", "dog"', "c.json", ("not valid JSON",), 2),
    ("json-objects", '[{"a": 1}, "b", "c"]', "c.json", ("JSON list of strings",), 2),
    ("json-bools", "[true, false, true]", "c.json", ("JSON list of strings",), 2),
    ("json-number-5000-digits", "[" + "1" * 5000 + ', "b", "c"]', "c.json", ("5000 characters",), 2),
    ("html-names-ok", "<script>alert(1)</script>\n**b**\n`c`\n", "c.txt", (), 0),
    ("utf16", "cat\ndog\nbird\n".encode("utf-16"), "c.txt", ("UTF-16",), 2),
):
    add(f"class-names-{label}", lambda d, data=data, name=name: _names(d, data, name), code=code, words=words)


# outputs ----------------------------------------------------------------------------------------


@case("output-equals-test-input", words=("--json", "--test input", "overwritten"))
def _(d):
    return ["diagnose", "--test", good_npz(d), "--json", d / "test.npz"]


@case("output-equals-test-input-via-other-spelling", words=("--test input",))
def _(d):
    good_npz(d)
    return ["diagnose", "--test", d / "test.npz", "--markdown", d / "." / "sub" / ".." / "test.npz"]


@case("output-link-to-input", words=("--test input",))
def _(d):
    good_npz(d)
    (d / "out.json").symlink_to(d / "test.npz")
    return ["diagnose", "--test", d / "test.npz", "--json", d / "out.json"]


@case("output-equals-history-input", words=("--history input",))
def _(d):
    (d / "h.json").write_text('{"loss": [1, 0.5]}')
    return ["diagnose", "--test", good_npz(d), "--history", d / "h.json", "--json", d / "h.json"]


@case("output-equals-class-names-input", words=("--class-names input",))
def _(d):
    (d / "c.txt").write_text("a\nb\nc\n")
    return ["diagnose", "--test", good_npz(d), "--class-names", d / "c.txt", "--html", d / "c.txt"]


@case("output-inside-input-folder", words=("inside the --test input folder",))
def _(d):
    root = image_folder(d)
    return ["diagnose", "--test", root, "--json", root / "cat" / "r.json"]


@case("outputs-json-equals-html", words=("--json and --html name the same file",))
def _(d):
    return ["diagnose", "--test", good_npz(d), "--json", d / "r.out", "--html", d / "r.out"]


@case("outputs-json-equals-markdown-other-spelling", words=("name the same file",))
def _(d):
    return ["diagnose", "--test", good_npz(d), "--json", d / "r.out", "--markdown", d / "x" / ".." / "r.out"]


@case("output-is-a-directory", words=("is a directory",))
def _(d):
    (d / "out").mkdir()
    return ["diagnose", "--test", good_npz(d), "--json", d / "out"]


@case("output-under-a-file", words=("not a folder",))
def _(d):
    (d / "file.txt").write_text("x")
    return ["diagnose", "--test", good_npz(d), "--html", d / "file.txt" / "r.html"]


@case("output-in-read-only-folder", words=("not writable",))
def _(d):
    (d / "ro").mkdir()
    os.chmod(d / "ro", 0o555)
    if os.access(d / "ro", os.W_OK):
        os.chmod(d / "ro", 0o755)
        pytest.skip("running as root: a read-only folder is still writable")
    return ["diagnose", "--test", good_npz(d), "--json", d / "ro" / "r.json"]


@case("output-checked-before-the-input-is-read", words=("is a directory",))
def _(d):
    (d / "out").mkdir()
    (d / "t.npz").write_bytes(b"garbage")  # would be "not a readable .npz" if it were read first
    return ["diagnose", "--test", d / "t.npz", "--markdown", d / "out"]


def _link_kept(res, d):
    assert (d / "link.json").is_symlink() and json.loads((d / "target.json").read_text())["schema"] == "whylow.report/1"


@case("output-link-to-other-file-keeps-link", code=0, check=_link_kept)
def _(d):
    (d / "target.json").write_text("old")
    (d / "link.json").symlink_to(d / "target.json")
    return ["diagnose", "--test", good_npz(d), "--json", d / "link.json", "-q"]


@case("output-missing-folders-created", code=0, check=lambda res, d: (d / "a" / "b" / "r.json").is_file())
def _(d):
    return ["diagnose", "--test", good_npz(d), "--json", d / "a" / "b" / "r.json", "-q"]


@case("calibrate-out-equals-input", words=("overwritten",))
def _(d):
    return ["calibrate", "--val", good_npz(d), "--out", d / "test.npz"]


@case("calibrate-out-directory", words=("directory",))
def _(d):
    (d / "o").mkdir()
    return ["calibrate", "--val", good_npz(d), "--out", d / "o"]


@case("compare-json-equals-preds", words=("overwritten",))
def _(d):
    a = good_npz(d, "a.npz")
    return ["compare", "--preds", a, "--preds", good_npz(d, "b.npz"), "--json", a]


@case("demo-out-is-a-file", words=("regular file",))
def _(d):
    (d / "f").write_text("x")
    return ["demo", "--out", d / "f"]


# usage ------------------------------------------------------------------------------------------

for label, args, words in (
    ("unknown-flag", ["diagnose", "--tset", "x"], ("No such option", "--help")),
    ("missing-test", ["diagnose"], ("Missing option '--test'",)),
    ("bad-fail-on", ["diagnose", "--test", "t.npz", "--fail-on", "sometimes"], ("--fail-on", "sometimes")),
    ("seed-abc", ["diagnose", "--test", "t.npz", "--seed", "abc"], ("--seed",)),
    ("seed-negative", ["diagnose", "--test", "t.npz", "--seed", "-1"], ("--seed", "0 to 4294967295", "-1")),
    ("seed-2**32", ["diagnose", "--test", "t.npz", "--seed", str(2**32)], ("--seed",)),
    ("seed-huge", ["diagnose", "--test", "t.npz", "--seed", "9" * 500], ("--seed",)),
    ("unknown-command", ["diagnoze"], ("No such command",)),
    ("calibrate-method-magic", ["calibrate", "--val", "v.npz", "--out", "o.json", "--method", "magic"], ("--method", "magic")),
    ("calibrate-seed-negative", ["calibrate", "--val", "v.npz", "--out", "o.json", "--seed", "-5"], ("--seed",)),
    ("compare-bins-zero", ["compare", "--preds", "a.npz", "--preds", "b.npz", "--bins", "0"], ("--bins",)),
    ("compare-option-not-limits", ["compare", "--preds", "a", "--preds", "b", "--option", "calibration.alpha=0.1"], ("only limits",)),
    ("demo-unknown-scenario", ["demo", "lightning"], ("did you mean 'lighting'",)),
    ("option-without-equals", ["diagnose", "--test", "t.npz", "--option", "calibration.min_gap"], ("CHECK.THRESHOLD=VALUE",)),
    ("option-without-dot", ["diagnose", "--test", "t.npz", "--option", "alpha=0.1"], ("CHECK.THRESHOLD=VALUE",)),
    ("option-typo", ["diagnose", "--test", "t.npz", "--option", "calibraton.min_gap=0.1"], ("did you mean 'calibration.min_gap'",)),
    ("option-unknown-threshold", ["diagnose", "--test", "t.npz", "--option", "calibration.min_gpa=0.1"], ("did you mean",)),
    ("option-unknown-check", ["diagnose", "--test", "t.npz", "--option", "xyzzy.alpha=0.1"], ("not a check",)),
    ("option-code-not-check", ["diagnose", "--test", "t.npz", "--option", "overconfidence.min_gap=0.1"], ("'calibration.min_gap'",)),
    ("option-bad-number", ["diagnose", "--test", "t.npz", "--option", "calibration.min_gap=abc"], ("must be a number",)),
    ("option-nan", ["diagnose", "--test", "t.npz", "--option", "calibration.min_gap=nan"], ("must be a number",)),
    ("option-alpha-over-1", ["diagnose", "--test", "t.npz", "--option", "calibration.alpha=2"], ("below 1",)),
    ("option-negative", ["diagnose", "--test", "t.npz", "--option", "overfitting.warn_gap=-1"], ("at least 0",)),
    ("option-int-fraction", ["diagnose", "--test", "t.npz", "--option", "small-sample.n_boot=2.5"], ("integer",)),
    ("option-bad-choice", ["diagnose", "--test", "t.npz", "--option", "decision-threshold.metric=auc"], ("one of",)),
    ("option-twice", ["diagnose", "--test", "t.npz", "--option", "calibration.alpha=0.1", "--option", "calibration.alpha=0.2"], ("twice",)),
    ("option-limit-bad-size", ["diagnose", "--test", "t.npz", "--option", "limits.max_text_bytes=lots"], ("size in bytes",)),
    ("option-limit-zero", ["diagnose", "--test", "t.npz", "--option", "limits.max_image_pixels=0"], ("at least 1",)),
    ("option-limit-typo", ["diagnose", "--test", "t.npz", "--option", "limits.max_image_pixel=5"], ("did you mean 'limits.max_image_pixels'",)),
    ("layout-bogus", ["diagnose", "--test", "t.npz", "--layout", "HWCN"], ("layout",)),
):
    def _usage(d, args=args):
        good_npz(d, "t.npz")
        os.chdir(d)
        return args

    add(f"usage-{label}", _usage, words=words)


@case("help-still-shows-options", code=0, check=lambda res, d: "--option" in res.out and "--json" in res.out)
def _(d):
    return ["diagnose", "--help"]


@case("option-valid-runs", code=0)
def _(d):
    return ["diagnose", "--test", good_npz(d), "-q", "--option", "calibration.min_gap=0.05", "--option", "small-sample.n_boot=50",
            "--option", "decision-threshold.metric=f1", "--option", "limits.max_text_bytes=1MiB"]


# models ------------------------------------------------------------------------------------------


@case("model-garbage-onnx", words=("ONNX",))
def _(d):
    (d / "m.onnx").write_bytes(os.urandom(300))
    return ["diagnose", "--test", good_npz(d), "--model", d / "m.onnx"]


@case("model-garbage-pt", words=("model",))
def _(d):
    (d / "m.pt").write_bytes(os.urandom(300))
    return ["diagnose", "--test", good_npz(d), "--model", d / "m.pt"]


@case("model-garbage-keras", words=("Keras",))
def _(d):
    (d / "m.keras").write_bytes(b"PK\x03\x04" + os.urandom(300))
    return ["diagnose", "--test", good_npz(d), "--model", d / "m.keras"]


@case("model-unknown-extension", words=("extension",))
def _(d):
    (d / "m.pkl").write_bytes(b"\x80\x04K\x01.")
    return ["diagnose", "--test", good_npz(d), "--model", d / "m.pkl"]


@case("model-pickle-refused", words=("model",))
def _(d):
    torch = pytest.importorskip("torch")
    torch.save(torch.nn.Linear(4, 3), d / "m.pt")
    return ["diagnose", "--test", good_npz(d), "--model", d / "m.pt"]


def _short_model_error(res, d):
    err = res.err.strip()
    assert len(err) < 600 and "Traceback of TorchScript" not in err and "File " not in err, err


@case("model-torchscript-fails-on-input", words=("failed on a batch", "float32"), check=_short_model_error)
def _(d):
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(17, 3)

        def forward(self, x):
            return self.fc(x.reshape(x.shape[0], -1))

    torch.jit.save(torch.jit.script(Net()), d / "m.pt")
    y = np.random.default_rng(0).integers(0, 3, 40)
    np.savez(d / "t.npz", x=np.zeros((40, 6, 6, 3), dtype=np.uint8), y=y)
    return ["diagnose", "--test", d / "t.npz", "--model", d / "m.pt", "-q"]


# the in-process test ------------------------------------------------------------------------------


@pytest.fixture
def workdir(tmp_path):
    cwd = os.getcwd()
    yield tmp_path
    os.chdir(cwd)


@pytest.mark.parametrize("build, code, words, check", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_input_in_process(workdir, build, code, words, check):
    d = workdir
    args = build(d)
    before = snapshot(d)
    t0 = time.perf_counter()
    res = cli(*args)
    elapsed = time.perf_counter() - t0
    if code == 2:
        assert_one_sentence(res, words)
    else:
        assert res.code == code, (res.code, res.err[-2000:])
        assert "Traceback" not in res.err + res.out
    after = snapshot(d)
    changed = {p for p in before if before[p] != after.get(p)}
    allowed = {str(d / n) for n in ("r.json", "r.md", "r.html", "target.json")}
    assert not changed - allowed, f"inputs changed: {changed - allowed}"
    assert elapsed < 30, elapsed
    if check is not None:
        check(res, d)


def test_corpus_is_large():
    assert len({c[0] for c in CASES}) == len(CASES)
    assert len(CASES) + len(API_CASES) + len(BATCH) >= 200


# -- the Python API ------------------------------------------------------------------------------------


def _api_y_p():
    return preds()


API_CASES = {
    "0d-y": (lambda d: whylow.diagnose(test=Split(y=np.array(1), probs=_api_y_p()[1])), ("y", "single value")),
    "dict-unknown-key": (lambda d: whylow.diagnose(test={"labels": _api_y_p()[0], "probs": _api_y_p()[1]}), ("unknown key 'labels'",)),
    "dict-typo-key": (lambda d: whylow.diagnose(test={"y": _api_y_p()[0], "prob": _api_y_p()[1]}), ("did you mean 'probs'",)),
    "class-names-int": (lambda d: whylow.diagnose(test=Split(y=_api_y_p()[0], probs=_api_y_p()[1]), class_names=5), ("class_names",)),
    "class-names-duplicate": (lambda d: whylow.diagnose(test=Split(y=_api_y_p()[0], probs=_api_y_p()[1]), class_names=["a", "b", "a"]), ("twice",)),
    "class-names-dict": (lambda d: whylow.diagnose(test=Split(y=_api_y_p()[0], probs=_api_y_p()[1]), class_names={"a": 0}), ("class_names",)),
    "class-names-mixed": (lambda d: whylow.diagnose(test=Split(y=_api_y_p()[0], probs=_api_y_p()[1]), class_names=["a", None, "c"]), ("class_names[1]",)),
    "seed-str": (lambda d: whylow.diagnose(test=Split(y=_api_y_p()[0], probs=_api_y_p()[1]), seed="a"), ("seed",)),
    "seed-negative": (lambda d: whylow.diagnose(test=Split(y=_api_y_p()[0], probs=_api_y_p()[1]), seed=-1), ("seed", "-1")),
    "seed-float": (lambda d: whylow.diagnose(test=Split(y=_api_y_p()[0], probs=_api_y_p()[1]), seed=1.5), ("seed",)),
    "seed-bool": (lambda d: whylow.diagnose(test=Split(y=_api_y_p()[0], probs=_api_y_p()[1]), seed=True), ("seed",)),
    "seed-huge": (lambda d: whylow.diagnose(test=Split(y=_api_y_p()[0], probs=_api_y_p()[1]), seed=2**70), ("seed",)),
    "options-list": (lambda d: whylow.diagnose(test=Split(y=_api_y_p()[0], probs=_api_y_p()[1]), options=["calibration.alpha"]), ("options", "dict")),
    "options-unknown": (lambda d: whylow.diagnose(test=Split(y=_api_y_p()[0], probs=_api_y_p()[1]), options={"calibration.alpah": 0.1}), ("did you mean 'calibration.alpha'",)),
    "options-bad-value": (lambda d: whylow.diagnose(test=Split(y=_api_y_p()[0], probs=_api_y_p()[1]), options={"calibration.alpha": "x"}), ("calibration.alpha",)),
    "options-non-str-key": (lambda d: whylow.diagnose(test=Split(y=_api_y_p()[0], probs=_api_y_p()[1]), options={1: 2}), ("strings",)),
    "ragged-x": (lambda d: whylow.diagnose(test=Split(x=[[1, 2], [3]], y=[0, 1])), ("ragged",)),
    "ragged-y": (lambda d: whylow.diagnose(test=Split(y=[[0], [1, 2]])), ("ragged",)),
    "layout-int": (lambda d: whylow.diagnose(test=Split(y=_api_y_p()[0], probs=_api_y_p()[1]), layout=4), ("layout",)),
    "layout-bogus": (lambda d: whylow.diagnose(test=Split(x=np.zeros((60, 4, 4)), y=_api_y_p()[0]), layout="WHC"), ("layout",)),
    "split-layout-int": (lambda d: whylow.diagnose(test=Split(x=np.zeros((60, 4, 4)), y=_api_y_p()[0], layout=3)), ("layout",)),
    "history-huge-int": (lambda d: whylow.diagnose(test=Split(y=_api_y_p()[0], probs=_api_y_p()[1]), history={"loss": [10**400]}), ("too large",)),
    "history-list": (lambda d: whylow.diagnose(test=Split(y=_api_y_p()[0], probs=_api_y_p()[1]), history=[0.5, 0.4]), ("history",)),
    "history-str-values": (lambda d: whylow.diagnose(test=Split(y=_api_y_p()[0], probs=_api_y_p()[1]), history={"loss": "abc"}), ("'loss'",)),
    "history-missing-file": (lambda d: whylow.diagnose(test=Split(y=_api_y_p()[0], probs=_api_y_p()[1]), history=str(d / "h.json")), ("does not exist",)),
    "history-2d-array": (lambda d: whylow.diagnose(test=Split(y=_api_y_p()[0], probs=_api_y_p()[1]), history={"loss": np.zeros((2, 2))}), ("flat list",)),
    "progress-str": (lambda d: whylow.diagnose(test=Split(y=_api_y_p()[0], probs=_api_y_p()[1]), progress="yes"), ("progress",)),
    "model-int": (lambda d: whylow.diagnose(test=Split(y=_api_y_p()[0], probs=_api_y_p()[1]), model=42), ("model",)),
    "test-int": (lambda d: whylow.diagnose(test=42), ("test split",)),
    "test-tuple-3": (lambda d: whylow.diagnose(test=(1, 2, 3)), ("tuple of 3",)),
    "test-bare-array": (lambda d: whylow.diagnose(test=np.zeros(3)), ("bare array",)),
    "test-none": (lambda d: whylow.diagnose(test=None), ("test split is required",)),
    "bytes-missing-path": (lambda d: whylow.diagnose(test=os.fsencode(d / "missing.npz")), ("does not exist",)),
    "probs-complex": (lambda d: whylow.diagnose(test=Split(y=_api_y_p()[0], probs=_api_y_p()[1] + 1j)), ("complex",)),
    "probs-and-logits": (lambda d: whylow.diagnose(test=Split(y=_api_y_p()[0], probs=_api_y_p()[1], logits=_api_y_p()[1])), ("both",)),
    "probs-objects": (lambda d: whylow.diagnose(test=Split(y=_api_y_p()[0], probs=np.array([None] * 60))), ("objects",)),
    "labels-uint64-max": (lambda d: whylow.diagnose(test=Split(y=np.array([0, 1, 2**64 - 1], dtype=np.uint64))), ("18446744073709551615",)),
    "labels-2**40": (lambda d: whylow.diagnose(test=Split(y=np.array([0, 1, 2**40]))), ("1099511627776",)),
    "split-class-names-duplicate": (lambda d: whylow.diagnose(test=Split(y=np.array([0, 1]), class_names=["a", "a"])), ("twice",)),
}


@pytest.mark.parametrize("name", list(API_CASES))
def test_python_api_raises_invalid_input_error(tmp_path, name):
    call, words = API_CASES[name]
    with pytest.raises(InvalidInputError) as info:
        call(tmp_path)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert "\n" not in message
    for w in words:
        assert w in message, (w, message)


def test_python_api_bytes_path_works(tmp_path):
    report = whylow.diagnose(test=os.fsencode(good_npz(tmp_path)))
    assert report.summary["n_test"] == 60


def test_python_api_options_are_typed_and_used(tmp_path):
    y, p = preds()
    report = whylow.diagnose(test=Split(y=y, probs=p), options={"small-sample.n_boot": "50", "limits.max_json_depth": 8})
    assert report.summary["n_test"] == 60


def test_save_refuses_the_reports_own_input(tmp_path):
    path = good_npz(tmp_path)
    before = path.read_bytes()
    report = whylow.diagnose(test=path)
    for save in (report.save_json, report.save_markdown, report.save_html):
        with pytest.raises(InvalidInputError, match="overwritten"):
            save(path)
    with pytest.raises(InvalidInputError, match="directory"):
        report.save_json(tmp_path)
    assert path.read_bytes() == before


def test_markdown_escapes_user_strings():
    from whylow.report.markdown import escape_markdown

    y, p = preds()
    names = ["<img src=x onerror=alert(1)>", "[click](javascript:alert(1))", "a|b\nc"]
    md = whylow.diagnose(test=Split(y=y, probs=p), class_names=names).to_markdown()
    assert "<img" not in md and "\\[click\\](javascript" in md and "a|b" not in md and "a\\|b c" in md
    assert escape_markdown("&lt;") == "&amp;lt;"


# -- Hypothesis: generated .npz and CSV inputs -----------------------------------------------------------

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

_DTYPES = st.sampled_from(["u1", "i4", "i8", "u8", "f4", "f8", "b1", "f2"])
#: Bounded and reproducible: 40 examples each, derandomized, no example database written outside tmp_path.
_SETTINGS = settings(
    max_examples=40,
    deadline=3000,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@st.composite
def npz_members(draw):
    members = {}
    keys = draw(st.lists(st.sampled_from(["x", "y", "probs", "logits", "junk"]), min_size=0, max_size=4, unique=True))
    n = draw(st.integers(0, 12))
    for key in keys:
        shape = draw(st.sampled_from([(), (n,), (n, 2), (n, 3), (n, 1), (n, 2, 2), (n + 1, 3), (0, 3)]))
        arr = draw(hnp.arrays(draw(_DTYPES), shape, elements=None))
        data = npy_bytes(arr)
        if draw(st.booleans()):  # corrupt it
            cut = draw(st.integers(0, len(data)))
            data = data[:cut] + draw(st.binary(max_size=8))
        members[f"{key}.npy"] = data
    return members, draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))


@_SETTINGS
@given(npz_members())
def test_generated_npz_never_crashes(tmp_path, generated):
    members, compression = generated
    path = write_zip(tmp_path / "g.npz", members, compression)
    before = path.read_bytes()
    res = cli("diagnose", "--test", path, "-q")
    assert res.code in (0, 2), (res.code, res.err)
    assert "Traceback" not in res.err
    if res.code == 2:
        assert len(res.err.strip().splitlines()) == 1 and res.err.startswith("whylow: error: ")
    assert path.read_bytes() == before


_CELL = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**30), 10**30).map(str),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=6),
    st.sampled_from(["", "nan", "inf", "-1", "0", "1", "1e400", '"', "\ufeff", ",", "\r"]),
)


@st.composite
def csv_bytes(draw):
    k = draw(st.integers(1, 4))
    header = draw(st.permutations(["label", *[f"{draw(st.sampled_from(['prob', 'logit', 'p']))}_{j}" for j in range(k)]]))
    rows = draw(st.lists(st.lists(_CELL, min_size=len(header) - 1, max_size=len(header) + 1), max_size=8))
    text = "\n".join([",".join(header), *(",".join(r) for r in rows)])
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16"]))
    return text.encode(encoding, errors="replace")


@_SETTINGS
@given(csv_bytes())
def test_generated_csv_never_crashes(tmp_path, data):
    path = tmp_path / "g.csv"
    path.write_bytes(data)
    res = cli("diagnose", "--test", path, "-q")
    assert res.code in (0, 2), (res.code, res.err)
    assert "Traceback" not in res.err
    if res.code == 2:
        assert len(res.err.strip().splitlines()) == 1 and res.err.startswith("whylow: error: ")
    assert path.read_bytes() == data


@_SETTINGS
@given(st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=4),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                    max_leaves=12))
def test_generated_history_never_crashes(tmp_path, value):
    y, p = preds()
    try:
        whylow.diagnose(test=Split(y=y, probs=p), history=value if isinstance(value, dict) else {"loss": value})
    except InvalidInputError as exc:
        assert "\n" not in str(exc)


# -- subprocesses: memory bombs, FIFOs and devices under an address-space limit ------------------------------

#: name -> (setup code run in the batch's folder D, CLI args, expected exit code, words in the message)
BATCH: dict[str, tuple[str, list[str], int, tuple[str, ...]]] = {
    "npz-header-30TB": (
        "write_zip(D / 't.npz', {'y.npy': npy_bytes(np.arange(3)), 'x.npy': npy_header((30 * 10**12,), '|u1')})",
        ["diagnose", "--test", "{D}/t.npz"], 2, ("claims",)),
    "npz-deflate-bomb-3GB": ("make_bomb(D / 'bomb.npz')", ["diagnose", "--test", "{D}/bomb.npz"], 2, ("inflates",)),
    "npz-fifo": ("os.mkfifo(D / 'f.npz')", ["diagnose", "--test", "{D}/f.npz"], 2, ("named pipe",)),
    "csv-fifo": ("os.mkfifo(D / 'f.csv')", ["diagnose", "--test", "{D}/f.csv"], 2, ("named pipe",)),
    "history-fifo": ("os.mkfifo(D / 'h.json'); np.savez(D / 'ok.npz', y=np.arange(4) % 2, probs=np.full((4, 2), 0.5))",
                     ["diagnose", "--test", "{D}/ok.npz", "--history", "{D}/h.json"], 2, ("history", "named pipe")),
    "class-names-fifo": ("os.mkfifo(D / 'c.txt'); np.savez(D / 'ok2.npz', y=np.arange(4) % 2, probs=np.full((4, 2), 0.5))",
                         ["diagnose", "--test", "{D}/ok2.npz", "--class-names", "{D}/c.txt"], 2, ("named pipe",)),
    "model-fifo": ("os.mkfifo(D / 'm.onnx'); np.savez(D / 'ok3.npz', y=np.arange(4) % 2, probs=np.full((4, 2), 0.5))",
                   ["diagnose", "--test", "{D}/ok3.npz", "--model", "{D}/m.onnx"], 2, ("named pipe",)),
    "image-fifo-in-folder": ("make_folder(D / 'imgs'); os.mkfifo(D / 'imgs' / 'a' / 'fifo.png')",
                             ["diagnose", "--test", "{D}/imgs", "-q", "--json", "{D}/fifo-report.json"], 0, ()),
    "npz-link-dev-zero": ("os.symlink('/dev/zero', D / 'z.npz')", ["diagnose", "--test", "{D}/z.npz"], 2, ("character device",)),
    "csv-link-dev-zero": ("os.symlink('/dev/zero', D / 'z.csv')", ["diagnose", "--test", "{D}/z.csv"], 2, ("character device",)),
    "history-link-dev-zero": ("os.symlink('/dev/zero', D / 'hz.json'); np.savez(D / 'ok4.npz', y=np.arange(4) % 2, probs=np.full((4, 2), 0.5))",
                              ["diagnose", "--test", "{D}/ok4.npz", "--history", "{D}/hz.json"], 2, ("character device",)),
    "labels-2**40-no-predictions": ("np.savez(D / 'l.npz', y=np.array([0, 1, 2**40]))", ["diagnose", "--test", "{D}/l.npz"], 2, ("1099511627776",)),
    "classes-20000-x-100-rows": ("make_many_classes(D / 'k.npz')", ["diagnose", "--test", "{D}/k.npz", "-q", "--json", "{D}/k-report.json"], 0, ()),
    "json-nested-100000": ("(D / 'deep.json').write_text('[' * 100000 + ']' * 100000); np.savez(D / 'ok5.npz', y=np.arange(4) % 2, probs=np.full((4, 2), 0.5))",
                           ["diagnose", "--test", "{D}/ok5.npz", "--history", "{D}/deep.json"], 2, ("nests",)),
}

_DRIVER = textwrap.dedent(
    """
    import io, json, os, resource, signal, sys, time, zipfile, zlib, contextlib
    from pathlib import Path
    import numpy as np
    sys.path.insert(0, {tests!r})
    from test_hostile_inputs import write_zip, npy_bytes, npy_header, png_bytes, make_bomb, make_folder, make_many_classes, BATCH
    from whylow.cli import run

    D = Path(sys.argv[1])
    results = {{}}

    def alarm(signum, frame):
        raise TimeoutError("case timed out")

    signal.signal(signal.SIGALRM, alarm)
    for name, (setup, args, code, words) in BATCH.items():
        exec(setup)
        args = [a.replace("{{D}}", str(D)) for a in args]
        out, err = io.StringIO(), io.StringIO()
        t0 = time.perf_counter()
        signal.alarm(30)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                rc = run(args)
        except BaseException as exc:
            rc = "raised " + type(exc).__name__ + ": " + str(exc)
        finally:
            signal.alarm(0)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        results[name] = {{"rc": rc, "err": err.getvalue(), "out": out.getvalue()[-500:], "seconds": time.perf_counter() - t0, "peak_rss": rss}}
    print(json.dumps(results))
    """
)


def make_bomb(path: Path) -> Path:
    """An .npz whose x member deflates 3 MB into 3 GiB of zeros (valid: right CRC and sizes), built without 3 GiB of work."""
    n = 3 * 2**30
    header = npy_header((n,), "|u1")
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = co.compress(header) + co.flush(zlib.Z_FULL_FLUSH)
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = co.compress(bytes(2**20)) + co.flush(zlib.Z_FULL_FLUSH)
    tail = zlib.compressobj(9, zlib.DEFLATED, -15).flush()
    size = len(header) + n
    crc = zlib.crc32(header)
    crc = _crc32_zeros(crc, n)
    data_len = len(head) + len(block) * (n // 2**20) + len(tail)
    name = b"x.npy"
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, data_len, size, len(name), 0) + name
    central = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc, data_len, size, len(name), 0, 0, 0, 0, 0, 0) + name
    with open(path, "wb") as fh:
        fh.write(local + head)
        for _ in range(n // 2**20):
            fh.write(block)
        fh.write(tail)
        cd_offset = fh.tell()
        fh.write(central)
        fh.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(central), cd_offset, 0))
    return path


def _crc32_zeros(crc: int, n: int) -> int:
    """``zlib.crc32(bytes(n), crc)`` in O(log n) steps (zlib's crc32_combine: zero bytes act linearly on the register)."""

    def times(mat, vec):
        out, i = 0, 0
        while vec:
            if vec & 1:
                out ^= mat[i]
            vec >>= 1
            i += 1
        return out

    def square(mat):
        return [times(mat, mat[i]) for i in range(32)]

    def shift(reg, length):  # the register after ``length`` zero bytes, without pre/post conditioning
        odd = [0xEDB88320] + [1 << i for i in range(31)]  # one zero bit
        even = square(odd)  # two zero bits
        odd = square(even)  # four zero bits
        while length:
            even = square(odd)  # first pass: eight zero bits, one byte
            if length & 1:
                reg = times(even, reg)
            length >>= 1
            if not length:
                break
            odd = square(even)
            if length & 1:
                reg = times(odd, reg)
            length >>= 1
        return reg

    # crc32(data, prev) = ~raw(~prev): for zeros, raw is linear, so the conditioning terms separate
    return shift(crc, n) ^ shift(0xFFFFFFFF, n) ^ 0xFFFFFFFF


def make_folder(root: Path) -> Path:
    for c in ("a", "b"):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(5):
            (root / c / f"{i}.png").write_bytes(png_bytes(seed=i + (10 if c == "b" else 0)))
    return root


def make_many_classes(path: Path, k: int = 20_000, n: int = 100) -> Path:
    rng = np.random.default_rng(0)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)).astype(np.float32)
    logits[np.arange(n), y] += 5
    np.savez(path, y=y, logits=logits)
    return path


def _limit_address_space():
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    d = tmp_path_factory.mktemp("batch")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "COLUMNS": "120",
           "PYTHONDONTWRITEBYTECODE": "1"}
    script = _DRIVER.format(tests=str(Path(__file__).parent))
    t0 = time.perf_counter()
    proc = subprocess.run([PY, "-c", script, str(d)], capture_output=True, text=True, timeout=240, env=env,
                          preexec_fn=_limit_address_space)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    results["_seconds"] = time.perf_counter() - t0
    results["_dir"] = str(d)
    return results


def test_crc32_of_zeros_matches_zlib():
    for n in (0, 1, 7, 1000, 2**20 + 3):
        assert _crc32_zeros(zlib.crc32(b"abc"), n) == zlib.crc32(bytes(n), zlib.crc32(b"abc"))


def test_bomb_is_a_valid_zip(tmp_path):
    path = make_bomb(tmp_path / "bomb.npz")
    assert path.stat().st_size < 4 * 2**20
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("x.npy")
        assert info.file_size == 3 * 2**30 + len(npy_header((3 * 2**30,), "|u1"))
        with zf.open(info) as member:
            assert member.read(2**20)[:6] == b"\x93NUMPY"


@pytest.mark.parametrize("name", list(BATCH))
def test_hostile_input_in_a_memory_limited_process(batch, name):
    r = batch[name]
    _, _, code, words = BATCH[name]
    res = Result(r["rc"], r["out"], r["err"])
    if code == 2:
        assert_one_sentence(res, words)
    else:
        assert res.code == code, (res.code, res.err)
    assert r["seconds"] < 30, r["seconds"]
    assert r["peak_rss"] < AS_LIMIT, r["peak_rss"]
    if name == "classes-20000-x-100-rows":
        assert r["peak_rss"] < 2**30
        report = json.loads((Path(batch["_dir"]) / "k-report.json").read_text())
        assert report["inputs"]["n_classes"] == 20_000
    if name == "image-fifo-in-folder":
        report = json.loads((Path(batch["_dir"]) / "fifo-report.json").read_text())
        assert "fifo.png" in json.dumps(report["findings"])
        assert stat.S_ISFIFO(os.lstat(Path(batch["_dir"]) / "imgs" / "a" / "fifo.png").st_mode)


# -- subprocesses: interrupts, /dev/stdout, /dev/null ------------------------------------------------------

_IMPORT_HOOK = textwrap.dedent(
    """
    import sys, time, os
    class Hook:
        def find_spec(self, name, path=None, target=None):
            if name == {module!r}:
                {action}
            return None
    sys.meta_path.insert(0, Hook())
    sys.argv = ["whylow"] + {args!r}
    from whylow.cli import main
    main()
    """
)


def _whylow_with_hook(module: str, action: str, args: list[str], **kw):
    code = _IMPORT_HOOK.format(module=module, action=action, args=args)
    return subprocess.Popen([PY, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_keyboard_interrupt_during_the_first_imports(tmp_path):
    proc = _whylow_with_hook("typer", "raise KeyboardInterrupt", ["diagnose", "--test", str(good_npz(tmp_path))])
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip() == "whylow: interrupted" and "Traceback" not in err


def test_sigint_while_importing(tmp_path):
    action = "sys.stderr.write('importing numpy\\n'); sys.stderr.flush(); time.sleep(20)"
    proc = _whylow_with_hook("numpy", action, ["diagnose", "--test", str(good_npz(tmp_path))])
    import threading

    watchdog = threading.Timer(60, proc.kill)  # never hang the suite
    watchdog.start()
    try:
        line = proc.stderr.readline()
    finally:
        watchdog.cancel()
    assert "importing numpy" in line, line
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip() == "whylow: interrupted" and "Traceback" not in err


def test_interrupt_while_writing_leaves_no_partial_output(tmp_path):
    path = good_npz(tmp_path)
    code = textwrap.dedent(
        f"""
        import os, sys
        def interrupted(*args, **kwargs):  # Ctrl-C after the report was written to its temporary file
            raise KeyboardInterrupt
        os.replace = interrupted
        sys.argv = ["whylow", "diagnose", "--test", {str(path)!r}, "--html", {str(tmp_path / 'r.html')!r}, "-q"]
        from whylow.cli import main
        main()
        """
    )
    proc = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 130 and proc.stderr.strip() == "whylow: interrupted", proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test.npz"]


@pytest.mark.parametrize("target", ["/dev/stdout", "/proc/self/fd/1"])
def test_json_to_stdout_is_written_in_place(tmp_path, whylow_exe, target):
    path = good_npz(tmp_path)
    before = path.read_bytes()
    proc = subprocess.run([whylow_exe, "diagnose", "--test", str(path), "--json", target, "-q"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["schema"] == "whylow.report/1"
    assert path.read_bytes() == before


def test_html_to_dev_null_keeps_the_device(tmp_path, whylow_exe):
    proc = subprocess.run([whylow_exe, "diagnose", "--test", str(good_npz(tmp_path)), "--html", "/dev/null", "-q"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_json_to_a_fifo_with_a_reader(tmp_path, whylow_exe):
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE, text=True)
    try:
        proc = subprocess.run([whylow_exe, "diagnose", "--test", str(good_npz(tmp_path)), "--json", str(fifo), "-q"],
                              capture_output=True, text=True, timeout=120)
        out, _ = reader.communicate(timeout=60)
    finally:
        if reader.poll() is None:
            reader.kill()
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out)["schema"] == "whylow.report/1"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
