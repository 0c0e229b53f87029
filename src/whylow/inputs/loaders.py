"""Read splits from files: ``.npz``, class-per-subfolder image folders, prediction tables.

Files are opened read-only and never changed. Nothing is unpickled.
"""

from __future__ import annotations

import csv
import io
import os
import re
import stat
import struct
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np

from whylow.errors import InvalidInputError, require
from whylow.inputs.files import (
    Limits,
    as_path,
    current_limits,
    file_kind,
    format_bytes,
    open_regular,
    parse_json,
    raise_hint,
    read_text,
)
from whylow.inputs.split import Split

__all__ = ["load_split", "load_npz", "load_image_folder", "load_prediction_table", "load_class_names", "distinct_class_names", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
_NPZ_KEYS = ("x", "y", "probs", "logits")


def load_split(path, name: str = "split") -> Split:
    """Load a split from a path, choosing the reader by its type.

    Parameters
    ----------
    path : str, bytes or path-like
        An ``.npz`` file, an image folder (``root/<class>/*.png``), or a
        ``.csv`` / ``.parquet`` prediction table. Only folders and regular
        files are read (after following links): a FIFO or a device is refused
        whatever its name.
    name : str
        Name of the split, for error messages.

    Returns
    -------
    Split
    """
    what = f"The {name} split"
    p = as_path(path, f"{what} path")
    try:
        st = os.stat(p)
    except FileNotFoundError:
        if os.path.islink(p):
            raise InvalidInputError(f"{what} {str(p)!r} is a broken link to {os.readlink(p)!r}, which does not exist.") from None
        raise InvalidInputError(f"{what} {str(p)!r} does not exist.") from None
    except NotADirectoryError:
        raise InvalidInputError(f"{what} {str(p)!r} does not exist: a part of its path is a file, not a folder.") from None
    except OSError as exc:
        raise InvalidInputError(f"{what} {str(p)!r} cannot be read ({exc.strerror or exc}).") from None
    if stat.S_ISDIR(st.st_mode):
        return load_image_folder(p, name)
    suffix = p.suffix.lower()
    if suffix not in (".npz", ".csv", ".parquet"):
        raise InvalidInputError(
            f"{what} {str(p)!r} has an unknown file type {suffix or '(none)'!r}; "
            "use an .npz file, an image folder, or a .csv/.parquet prediction table."
        )
    if not stat.S_ISREG(st.st_mode):
        raise InvalidInputError(
            f"{what} {str(p)!r} is {file_kind(st.st_mode)}{_link_words(p)}, not a regular file; whylow reads only regular files."
        )
    if suffix == ".npz":
        return load_npz(p, name)
    return load_prediction_table(p, name)


def _link_words(p: Path) -> str:
    return f" (a link to {os.path.realpath(p)!r})" if os.path.islink(p) else ""


#: An .npz split holds at most x, y, probs and logits; a zip with more members is refused before it is indexed.
_MAX_NPZ_MEMBERS = 16
#: Compressed members below this decompressed size are never refused for their compression ratio.
_RATIO_FLOOR = 16 * 2**20


def _npz_member_count(fh) -> int | None:
    """Number of members the zip's end record declares, read before the central directory is parsed."""
    try:
        end = zipfile._EndRecData(fh)  # noqa: SLF001 - the one stable way to read the count without indexing
    except (OSError, AttributeError, ValueError, struct.error):
        return None
    finally:
        fh.seek(0)
    if not end:
        return None
    return int(end[zipfile._ECD_ENTRIES_TOTAL])  # noqa: SLF001


def _read_npy_header(stream, what: str, key: str):
    """(shape, fortran_order, dtype, header_bytes) of an ``.npy`` stream, or an InvalidInputError."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(stream)
        elif version == (3, 0) and hasattr(fmt, "_read_array_header"):
            shape, fortran, dtype = fmt._read_array_header(stream, version)  # noqa: SLF001 - the only reader of 3.0
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except (ValueError, EOFError, OSError, SyntaxError, TypeError, zipfile.BadZipFile) as exc:
        text = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise InvalidInputError(f"{what} has a member {key!r} that is not a valid .npy array ({text}).") from None
    return shape, fortran, dtype, stream.tell()


def _check_member(info: zipfile.ZipInfo, what: str, key: str, limits: Limits) -> None:
    """Refuse a compressed member whose declared inflated size is over the limits (a zip bomb)."""
    if info.compress_type == zipfile.ZIP_STORED:
        return
    size, packed = info.file_size, max(info.compress_size, 1)
    if size > limits.max_decompressed_bytes:
        raise InvalidInputError(
            f"{what} has a compressed member {key!r} that inflates to {format_bytes(size)}, more than the "
            f"{format_bytes(limits.max_decompressed_bytes)} whylow inflates; {raise_hint('max_decompressed_bytes')}, "
            "or save the file with np.savez (uncompressed) so it can be memory-mapped."
        )
    if size > _RATIO_FLOOR and size / packed > limits.max_compression_ratio:
        raise InvalidInputError(
            f"{what} has a compressed member {key!r} that inflates {size / packed:,.0f}-fold "
            f"({format_bytes(packed)} to {format_bytes(size)}), more than the {limits.max_compression_ratio:g}-fold "
            f"whylow accepts (a decompression bomb?); {raise_hint('max_compression_ratio')}."
        )


def _stored_offset(fh, info: zipfile.ZipInfo) -> int | None:
    """File offset of an uncompressed member's data, or None."""
    fh.seek(info.header_offset)
    header = fh.read(30)
    if len(header) < 30 or header[:4] != b"PK\x03\x04":
        return None
    name_len = int.from_bytes(header[26:28], "little")
    extra_len = int.from_bytes(header[28:30], "little")
    return info.header_offset + 30 + name_len + extra_len


def _read_member(zf: zipfile.ZipFile, fh, info: zipfile.ZipInfo, key: str, what: str, limits: Limits, mmap: bool):
    _check_member(info, what, key, limits)
    with zf.open(info) as member:
        shape, fortran, dtype, header_len = _read_npy_header(member, what, key)
    if dtype.hasobject:
        raise InvalidInputError(
            f"{what} holds Python objects in {key!r}, which whylow never unpickles; save plain numeric arrays."
        )
    count = 1
    for d in shape:
        count *= int(d)
    nbytes = count * dtype.itemsize
    held = info.file_size - header_len
    if nbytes > held:
        raise InvalidInputError(
            f"{what} has a member {key!r} whose header claims shape {tuple(shape)} {dtype} ({format_bytes(nbytes)}) "
            f"but holds only {format_bytes(max(held, 0))}; the file is truncated or corrupt."
        )
    if mmap and info.compress_type == zipfile.ZIP_STORED and nbytes > 0:
        start = _stored_offset(fh, info)
        if start is not None:
            return np.memmap(fh, dtype=dtype, mode="r", shape=tuple(shape), order="F" if fortran else "C", offset=start + header_len)
    budget = limits.array_budget()
    if nbytes > budget:
        raise InvalidInputError(
            f"{what} has a member {key!r} of shape {tuple(shape)} {dtype} that needs {format_bytes(nbytes)} of memory, "
            f"more than the {format_bytes(budget)} available to whylow; {raise_hint('max_array_bytes')}, or save "
            "x uncompressed (np.savez) so it is memory-mapped."
        )
    with zf.open(info) as member:
        return np.lib.format.read_array(member, allow_pickle=False)


def load_npz(path, name: str = "split", mmap_threshold: int = 64 * 2**20) -> Split:
    """Read an ``.npz`` file with keys ``x``, ``y`` and optionally ``probs`` or ``logits``.

    Large uncompressed ``x`` arrays are memory-mapped, not read whole. Reading
    is bounded (`whylow.inputs.files.Limits`): an array's size is checked
    from its header against the bytes the member holds and the memory
    available before anything is allocated, and compressed members are
    checked for their inflated size and compression ratio.
    """
    path = as_path(path, f"The {name} split file")
    what = f"The {name} file {str(path)!r}"
    limits = current_limits()
    with open_regular(path, f"The {name} split file") as fh:
        try:
            members = _npz_member_count(fh)
            if members is not None and members > _MAX_NPZ_MEMBERS:
                raise InvalidInputError(
                    f"{what} holds {members:,} members; an .npz split holds at most x, y and probs or logits."
                )
            with zipfile.ZipFile(fh) as zf:
                infos = {i.filename[:-4] if i.filename.endswith(".npy") else i.filename: i for i in zf.infolist()}
                unknown = sorted(set(infos) - set(_NPZ_KEYS))
                if unknown:
                    raise InvalidInputError(f"{what} has unexpected keys {unknown}; expected some of {list(_NPZ_KEYS)}.")
                if not infos:
                    raise InvalidInputError(f"{what} holds no arrays; expected keys x, y, probs or logits.")
                if "probs" in infos and "logits" in infos:
                    raise InvalidInputError(f"{what} has both 'probs' and 'logits'; keep one of them.")
                arrays = {}
                for key, info in infos.items():
                    mmap = key == "x" and info.file_size >= mmap_threshold
                    arrays[key] = _read_member(zf, fh, info, key, what, limits, mmap)
        except InvalidInputError:
            raise
        except MemoryError:
            raise InvalidInputError(f"{what} does not fit in the memory available to whylow.") from None
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, NotImplementedError, struct.error) as exc:
            raise InvalidInputError(f"{what} is not a readable .npz file ({_first_line(exc)}).") from None
        except ValueError as exc:
            if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
                raise InvalidInputError(
                    f"{what} holds Python objects, which whylow never unpickles; save plain numeric arrays."
                ) from None
            raise InvalidInputError(f"{what} could not be read ({_first_line(exc)}).") from None
    return Split(**arrays, source=str(path))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _class_sort_key(name: str):
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def _open_image(f: Path, limits: Limits):
    """Decode one image file; returns (image, None) or (None, reason it cannot be used)."""
    from PIL import Image, UnidentifiedImageError

    try:
        st = os.stat(f)
    except FileNotFoundError:
        return None, "is a broken link" if os.path.islink(f) else "disappeared while the folder was read"
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    if not stat.S_ISREG(st.st_mode):
        return None, f"is {file_kind(st.st_mode)}{_link_words(f)}, not a regular file"
    try:
        with open_regular(f, "The image file") as fh, Image.open(fh) as im:
            w, h = im.size
            if w * h > limits.max_image_pixels:
                return None, (
                    f"has {w * h:,} pixels ({w}×{h}), more than the {limits.max_image_pixels:,} whylow decodes per image "
                    f"({raise_hint('max_image_pixels')})"
                )
            im.load()
            return im.copy(), None
    except InvalidInputError as exc:
        return None, str(exc)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, MemoryError,
            Image.DecompressionBombError, struct.error, IndexError, TypeError) as exc:
        text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        return None, f"cannot be read as an image ({type(exc).__name__}{': ' + text if text else ''})"


def load_image_folder(root, name: str = "split") -> Split:
    """Read a class-per-subfolder image folder: ``root/<class>/*.png|jpg|...``.

    Unreadable or corrupt files are listed in ``Split.corrupt_files`` and
    left out; they do not stop the load. So are files that are not regular
    files (a FIFO or a device under an image name) and images of more than
    ``limits.max_image_pixels`` pixels (a decompression bomb), which are never
    decoded. Images are converted to RGB when any image is in colour, else to
    grayscale; images whose size differs from the most common size are
    resized to it.
    """
    import warnings

    from PIL import Image

    root = as_path(root, f"The {name} folder")
    limits = current_limits()
    try:
        class_dirs = sorted((d for d in root.iterdir() if d.is_dir()), key=lambda d: _class_sort_key(d.name))
    except OSError as exc:
        raise InvalidInputError(f"The {name} folder {str(root)!r} cannot be listed ({exc.strerror or exc}).") from None
    if not class_dirs:
        raise InvalidInputError(
            f"The {name} folder {str(root)!r} has no class subfolders; expected {str(root)}/<class>/<image files>."
        )
    class_names = [d.name for d in class_dirs]
    files, labels = [], []
    for k, d in enumerate(class_dirs):
        try:
            entries = sorted(d.iterdir())
        except OSError as exc:
            raise InvalidInputError(f"The {name} folder's class folder {str(d)!r} cannot be listed ({exc.strerror or exc}).") from None
        for f in entries:
            if f.suffix.lower() in IMAGE_EXTENSIONS and not f.is_dir():
                files.append(f)
                labels.append(k)
    if not files:
        raise InvalidInputError(f"The {name} folder {str(root)!r} has class subfolders but no image files in them.")
    images, kept, kept_labels, corrupt = [], [], [], []
    saved_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # whylow checks the pixel count itself, against limits.max_image_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            for f, label in zip(files, labels):
                im, reason = _open_image(f, limits)
                if im is None:
                    corrupt.append((str(f), reason))
                    continue
                images.append(im)
                kept.append(str(f))
                kept_labels.append(label)
    finally:
        Image.MAX_IMAGE_PIXELS = saved_limit
    if not images:
        reasons = "; ".join(f"{os.path.basename(f)!r} {r}" for f, r in corrupt[:2])
        raise InvalidInputError(
            f"None of the {len(files)} image files in the {name} folder {str(root)!r} could be read ({reasons})."
        )
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


_INF_WORDS = ("inf", "+inf", "-inf", "infinity", "+infinity", "-infinity")
_COLUMN = re.compile(r"^(prob|logit)_(.+)$")


def load_prediction_table(path, name: str = "split") -> Split:
    """Read a ``.csv`` or ``.parquet`` table with a ``label`` column and ``prob_<k>`` or ``logit_<k>`` columns.

    ``<k>`` is a class index (0, 1, ...) or a class name; with names, the
    column order gives the class order.
    """
    path = as_path(path, f"The {name} split file")
    what = f"The {name} file {str(path)!r}"
    if path.suffix.lower() == ".parquet":
        pq = require("pyarrow.parquet", "parquet")
        with open_regular(path, f"The {name} split file") as fh:
            try:
                table = pq.read_table(fh)
                header = [str(c) for c in table.column_names]
                columns = {str(c): table.column(i).to_numpy(zero_copy_only=False) for i, c in enumerate(table.column_names)}
            except MemoryError:
                raise InvalidInputError(f"{what} does not fit in the memory available to whylow.") from None
            except Exception as exc:  # noqa: BLE001 - any reader error is a bad file
                raise InvalidInputError(f"{what} is not a readable parquet file ({_first_line(exc)}).") from None
    else:
        header, body = _read_csv(path, what, f"The {name} split file")
        columns = {h: np.array([r[j] for r in body], dtype=object) for j, h in enumerate(header)}
    dupes = sorted(h for h, c in Counter(header).items() if c > 1)
    if dupes:
        raise InvalidInputError(f"{what} has the column {dupes[0]!r} more than once; column names must be unique.")
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
    if all(k.isascii() and k.isdigit() and len(k) < 12 for k in keys):
        order = np.argsort([int(k) for k in keys])
        if sorted(int(k) for k in keys) != list(range(len(keys))):
            got = sorted(int(k) for k in keys)
            shown = f"{got[:5]}"[:-1] + ", ...]" if len(got) > 5 else f"{got}"
            raise InvalidInputError(
                f"{what} has prediction columns for classes {shown}; expected one each for 0 to {len(keys) - 1}."
            )
        pred_cols = [pred_cols[i] for i in order]
    else:
        class_names = keys
    try:
        values = np.column_stack([np.asarray(columns[c], dtype=np.float64) for c, _, _ in pred_cols])
    except (ValueError, TypeError):
        for c, _, _ in pred_cols:
            for row, v in enumerate(columns[c]):
                try:
                    float(v)
                except (ValueError, TypeError):
                    shown = str(v) if len(str(v)) <= 40 else str(v)[:37] + "..."
                    raise InvalidInputError(
                        f"{what} has a non-numeric value {shown!r} in column {c!r} on data row {row + 1}; "
                        "prediction columns hold numbers."
                    ) from None
        raise InvalidInputError(f"{what} has non-numeric values in its prediction columns.") from None
    y = None
    if "label" in columns:
        y = np.asarray(columns["label"])
        if y.dtype == object:
            text = np.array([str(v).strip() for v in y.tolist()], dtype=object)
            empty = np.flatnonzero(text == "")
            if empty.size:
                raise InvalidInputError(
                    f"{what} has an empty label on data row {int(empty[0]) + 1}; every row needs a label "
                    "(leave the label column out when there are no labels)."
                )
            try:
                y = text.astype(np.float64)
            except (ValueError, OverflowError):
                y = text.astype(str)
            else:
                overflow = np.flatnonzero(np.isinf(y) & ~np.isin(np.char.lower(text.astype(str)), _INF_WORDS))
                if overflow.size:
                    row = int(overflow[0])
                    shown = text[row] if len(text[row]) <= 20 else text[row][:17] + "..."
                    raise InvalidInputError(
                        f"{what} has the label {shown!r} on data row {row + 1}, too large to be a class id; "
                        "class ids run from 0 to n_classes - 1."
                    )
    kind = kinds.pop()
    return Split(
        y=y,
        probs=values if kind == "prob" else None,
        logits=values if kind == "logit" else None,
        source=str(path),
        class_names=class_names,
    )


def load_json_text(text: str, what: str, path: Path):
    """Parse JSON text read from ``path`` within the current limits."""
    return parse_json(text, what, path)


def _read_csv(path: Path, what: str, file_what: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV file: UTF-8 (a byte-order mark is dropped), fields within ``limits.max_csv_field``."""
    limits = current_limits()
    with open_regular(path, file_what) as fh:
        head = fh.read(4)
        fh.seek(0)
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise InvalidInputError(f"{what} is UTF-16 text (it starts with a UTF-16 byte-order mark); save it as UTF-8.")
        text = io.TextIOWrapper(fh, encoding="utf-8-sig", newline="")
        saved = csv.field_size_limit()
        csv.field_size_limit(int(min(limits.max_csv_field, 2**31 - 1)))
        reader = csv.reader(text)
        try:
            rows = list(reader)
        except csv.Error as exc:
            if "field larger than field limit" in str(exc):
                raise InvalidInputError(
                    f"{what} has a field longer than {limits.max_csv_field:,} characters on line {reader.line_num}; "
                    f"{raise_hint('max_csv_field')}."
                ) from None
            raise InvalidInputError(f"{what} is not a readable CSV file: {exc} on line {reader.line_num}.") from None
        except UnicodeDecodeError:
            line, byte = _first_bad_utf8(path)
            raise InvalidInputError(
                f"{what} is not UTF-8 text: byte 0x{byte:02x} on line {line} cannot be decoded; save it as UTF-8 "
                "(Excel: CSV UTF-8)."
            ) from None
        except MemoryError:
            raise InvalidInputError(f"{what} does not fit in the memory available to whylow.") from None
        finally:
            csv.field_size_limit(saved)
    if not rows:
        raise InvalidInputError(f"{what} is empty.")
    header, body = [h.strip() for h in rows[0]], rows[1:]
    if any(len(r) != len(header) for r in body):
        bad = next(i for i, r in enumerate(body) if len(r) != len(header))
        raise InvalidInputError(
            f"{what} has {len(body[bad])} fields on data row {bad + 1} but {len(header)} columns in its header."
        )
    return header, body


def _first_bad_utf8(path: Path) -> tuple[int, int]:
    """(line, byte value) of the first byte of ``path`` that is not valid UTF-8, read in chunks."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with open_regular(path, "The file") as fh:
        while True:
            chunk = fh.read(1 << 20)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                # bytes held back from the previous chunk are never newlines, so counting in exc.object is exact
                return line + exc.object.count(b"\n", 0, exc.start), exc.object[exc.start]
            if not chunk:
                return line, 0
            line += chunk.count(b"\n")


def load_class_names(path) -> list[str]:
    """Read class names: a JSON list, or a text file with one name a line (UTF-8, a byte-order mark is dropped)."""
    what = "The class-names file"
    p = as_path(path, what)
    text = read_text(p, what)
    if p.suffix.lower() == ".json":
        names = load_json_text(text, what, p)
        if not isinstance(names, list) or not all(isinstance(n, (str, int)) and not isinstance(n, bool) for n in names):
            raise InvalidInputError(f"The class-names file {str(p)!r} must hold a JSON list of strings.")
        names = [str(n) for n in names]
    else:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    return distinct_class_names(names, f"The class-names file {str(p)!r}")


def distinct_class_names(names: list[str], what: str) -> list[str]:
    """``names`` when there are at least two and none repeats; else an `InvalidInputError` naming ``what``."""
    if len(names) < 2:
        raise InvalidInputError(f"{what} names {len(names)} class(es); at least 2 are needed.")
    seen: dict[str, int] = {}
    for i, n in enumerate(names):
        if n in seen:
            raise InvalidInputError(
                f"{what} names the class {n!r} twice (entries {seen[n] + 1} and {i + 1}); class names must be unique."
            )
        seen[n] = i
    return names
