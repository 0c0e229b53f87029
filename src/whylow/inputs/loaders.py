"""Read splits from files: ``.npz``, class-per-subfolder image folders, prediction tables.

Files are opened read-only and never changed. Nothing is unpickled.
"""

from __future__ import annotations

import csv
import os
import re
import zipfile
from pathlib import Path

import numpy as np

from whylow.errors import InvalidInputError, require
from whylow.inputs.split import Split

__all__ = ["load_split", "load_npz", "load_image_folder", "load_prediction_table", "load_class_names", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
_NPZ_KEYS = ("x", "y", "probs", "logits")


def load_split(path, name: str = "split") -> Split:
    """Load a split from a path, choosing the reader by its type.

    Parameters
    ----------
    path : str or path-like
        An ``.npz`` file, an image folder (``root/<class>/*.png``), or a
        ``.csv`` / ``.parquet`` prediction table.
    name : str
        Name of the split, for error messages.

    Returns
    -------
    Split
    """
    p = Path(path)
    if not p.exists():
        raise InvalidInputError(f"The {name} split {str(p)!r} does not exist.")
    if p.is_dir():
        return load_image_folder(p, name)
    suffix = p.suffix.lower()
    if suffix == ".npz":
        return load_npz(p, name)
    if suffix in (".csv", ".parquet"):
        return load_prediction_table(p, name)
    raise InvalidInputError(
        f"The {name} split {str(p)!r} has an unknown file type {suffix or '(none)'!r}; "
        "use an .npz file, an image folder, or a .csv/.parquet prediction table."
    )


def _npz_member_memmap(zf: zipfile.ZipFile, fh, info: zipfile.ZipInfo):
    """Memory-map an uncompressed ``.npy`` member of an ``.npz`` file, or return None."""
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    fh.seek(info.header_offset)
    header = fh.read(30)
    if header[:4] != b"PK\x03\x04":
        return None
    name_len = int.from_bytes(header[26:28], "little")
    extra_len = int.from_bytes(header[28:30], "little")
    start = info.header_offset + 30 + name_len + extra_len
    fh.seek(start)
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    else:
        return None
    if dtype.hasobject:
        return None
    offset = fh.tell()
    return np.memmap(fh.name, dtype=dtype, mode="r", shape=shape, order="F" if fortran else "C", offset=offset)


def load_npz(path, name: str = "split", mmap_threshold: int = 64 * 2**20) -> Split:
    """Read an ``.npz`` file with keys ``x``, ``y`` and optionally ``probs`` or ``logits``.

    Large uncompressed ``x`` arrays are memory-mapped, not read whole.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf, open(path, "rb") as fh:
            infos = {i.filename[:-4] if i.filename.endswith(".npy") else i.filename: i for i in zf.infolist()}
            unknown = sorted(set(infos) - set(_NPZ_KEYS))
            if unknown:
                raise InvalidInputError(
                    f"The {name} file {str(path)!r} has unexpected keys {unknown}; expected some of {list(_NPZ_KEYS)}."
                )
            if not infos:
                raise InvalidInputError(f"The {name} file {str(path)!r} holds no arrays; expected keys x, y, probs or logits.")
            arrays = {}
            for key, info in infos.items():
                arr = None
                if key == "x" and info.file_size >= mmap_threshold:
                    arr = _npz_member_memmap(zf, fh, info)
                if arr is None:
                    with zf.open(info) as member:
                        arr = np.lib.format.read_array(member, allow_pickle=False)
                arrays[key] = arr
    except InvalidInputError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise InvalidInputError(f"The {name} file {str(path)!r} is not a readable .npz file ({exc}).") from None
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise InvalidInputError(
                f"The {name} file {str(path)!r} holds Python objects, which whylow never unpickles; save plain numeric arrays."
            ) from None
        raise InvalidInputError(f"The {name} file {str(path)!r} could not be read ({exc}).") from None
    if "probs" in arrays and "logits" in arrays:
        raise InvalidInputError(f"The {name} file {str(path)!r} has both 'probs' and 'logits'; keep one of them.")
    return Split(**arrays, source=str(path))


def _class_sort_key(name: str):
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def load_image_folder(root, name: str = "split") -> Split:
    """Read a class-per-subfolder image folder: ``root/<class>/*.png|jpg|...``.

    Unreadable or corrupt files are listed in ``Split.corrupt_files`` and
    left out; they do not stop the load. Images are converted to RGB when
    any image is in colour, else to grayscale; images whose size differs
    from the most common size are resized to it.
    """
    from PIL import Image, UnidentifiedImageError

    root = Path(root)
    class_dirs = sorted((d for d in root.iterdir() if d.is_dir()), key=lambda d: _class_sort_key(d.name))
    if not class_dirs:
        raise InvalidInputError(
            f"The {name} folder {str(root)!r} has no class subfolders; expected {str(root)}/<class>/<image files>."
        )
    class_names = [d.name for d in class_dirs]
    files, labels = [], []
    for k, d in enumerate(class_dirs):
        for f in sorted(d.iterdir()):
            if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS:
                files.append(f)
                labels.append(k)
    if not files:
        raise InvalidInputError(f"The {name} folder {str(root)!r} has class subfolders but no image files in them.")
    images, kept, kept_labels, corrupt = [], [], [], []
    for f, label in zip(files, labels):
        try:
            with Image.open(f) as im:
                im.load()
                images.append(im.copy())
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            corrupt.append((str(f), f"cannot be read as an image ({type(exc).__name__}: {exc})"))
            continue
        kept.append(str(f))
        kept_labels.append(label)
    if not images:
        raise InvalidInputError(f"None of the {len(files)} image files in the {name} folder {str(root)!r} could be read.")
    colour = any(im.mode not in ("L", "1", "I", "I;16", "F") for im in images)
    mode = "RGB" if colour else "L"
    sizes = [im.size for im in images]
    values, counts = np.unique(np.array(sizes), axis=0, return_counts=True)
    size = tuple(int(v) for v in values[np.argmax(counts)])
    arr = np.empty((len(images), size[1], size[0]) + ((3,) if colour else ()), dtype=np.uint8)
    for i, im in enumerate(images):
        im = im.convert(mode)
        if im.size != size:
            im = im.resize(size, Image.BILINEAR)
        arr[i] = np.asarray(im, dtype=np.uint8)
    return Split(
        x=arr,
        y=np.asarray(kept_labels, dtype=np.int64),
        layout="NHWC" if colour else "NHW",
        source=str(root),
        files=kept,
        corrupt_files=corrupt,
        class_names=class_names,
    )


_COLUMN = re.compile(r"^(prob|logit)_(.+)$")


def load_prediction_table(path, name: str = "split") -> Split:
    """Read a ``.csv`` or ``.parquet`` table with a ``label`` column and ``prob_<k>`` or ``logit_<k>`` columns.

    ``<k>`` is a class index (0, 1, ...) or a class name; with names, the
    column order gives the class order.
    """
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        pq = require("pyarrow.parquet", "parquet")
        try:
            table = pq.read_table(path)
        except Exception as exc:  # noqa: BLE001 - any reader error is a bad file
            raise InvalidInputError(f"The {name} file {str(path)!r} is not a readable parquet file ({exc}).") from None
        columns = {c: table.column(c).to_numpy(zero_copy_only=False) for c in table.column_names}
        header = list(table.column_names)
    else:
        try:
            with open(path, newline="", encoding="utf-8") as fh:
                rows = list(csv.reader(fh))
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"The {name} file {str(path)!r} is not a readable CSV file ({exc}).") from None
        if not rows:
            raise InvalidInputError(f"The {name} file {str(path)!r} is empty.")
        header, body = [h.strip() for h in rows[0]], rows[1:]
        if any(len(r) != len(header) for r in body):
            bad = next(i for i, r in enumerate(body) if len(r) != len(header))
            raise InvalidInputError(
                f"The {name} file {str(path)!r} has {len(body[bad])} fields on data row {bad + 1} but {len(header)} columns in its header."
            )
        columns = {h: np.array([r[j] for r in body], dtype=object) for j, h in enumerate(header)}
    matches = [(c, _COLUMN.match(c)) for c in header]
    pred_cols = [(c, m.group(1), m.group(2)) for c, m in matches if m]
    kinds = {k for _, k, _ in pred_cols}
    if not pred_cols:
        raise InvalidInputError(
            f"The {name} file {str(path)!r} has no prediction columns; expected prob_0, prob_1, ... or logit_0, logit_1, ..."
        )
    if len(kinds) > 1:
        raise InvalidInputError(f"The {name} file {str(path)!r} mixes prob_ and logit_ columns; keep one kind.")
    keys = [key for _, _, key in pred_cols]
    class_names = None
    if all(k.isdigit() for k in keys):
        order = np.argsort([int(k) for k in keys])
        if sorted(int(k) for k in keys) != list(range(len(keys))):
            raise InvalidInputError(
                f"The {name} file {str(path)!r} has prediction columns for classes {sorted(int(k) for k in keys)}; expected 0 to {len(keys) - 1}."
            )
        pred_cols = [pred_cols[i] for i in order]
    else:
        class_names = keys
    try:
        values = np.column_stack([np.asarray(columns[c], dtype=np.float64) for c, _, _ in pred_cols])
    except ValueError:
        raise InvalidInputError(f"The {name} file {str(path)!r} has non-numeric values in its prediction columns.") from None
    y = None
    if "label" in columns:
        y = np.asarray(columns["label"])
        if y.dtype == object:
            try:
                y = y.astype(np.float64)
            except ValueError:
                y = y.astype(str)
    kind = kinds.pop()
    return Split(
        y=y,
        probs=values if kind == "prob" else None,
        logits=values if kind == "logit" else None,
        source=str(path),
        class_names=class_names,
    )


def load_class_names(path) -> list[str]:
    """Read class names: a JSON list, or a text file with one name a line."""
    import json

    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"The class-names file {str(p)!r} does not exist.")
    text = p.read_text(encoding="utf-8")
    if p.suffix.lower() == ".json":
        try:
            names = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"The class-names file {str(p)!r} is not valid JSON ({exc}).") from None
        if not isinstance(names, list) or not all(isinstance(n, (str, int)) for n in names):
            raise InvalidInputError(f"The class-names file {str(p)!r} must hold a JSON list of strings.")
        names = [str(n) for n in names]
    else:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    if len(names) < 2:
        raise InvalidInputError(f"The class-names file {str(p)!r} names {len(names)} class(es); at least 2 are needed.")
    if len(set(names)) != len(names):
        raise InvalidInputError(f"The class-names file {str(p)!r} repeats a class name.")
    return names
