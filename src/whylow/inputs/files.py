"""Bounded, read-only access to the user's files: regular files only, size and structure limits.

Every reader in whylow goes through here, so a hostile or odd file (a FIFO or a
link to ``/dev/zero`` named ``x.npz``, a JSON file nested 100,000 levels deep, a
number of 5,000 digits, a class-names file saved as Latin-1) is answered with one
`InvalidInputError` sentence naming the file, never with a hang, a runaway
allocation or a traceback.

The limits live in `Limits`; `limits_scope` makes a set of limits current for
the readers called inside it (``whylow.diagnose`` does that with the
``limits.<name>`` entries of its ``options``, the CLI with ``--option
limits.<name>=VALUE``).

>>> Limits().max_json_depth
64
>>> with limits_scope(Limits(max_json_depth=3)):
...     current_limits().max_json_depth
3
"""

from __future__ import annotations

import codecs
import contextlib
import contextvars
import dataclasses
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from whylow.errors import InvalidInputError

__all__ = [
    "Limits",
    "current_limits",
    "limits_scope",
    "as_path",
    "file_kind",
    "open_regular",
    "read_text",
    "parse_json",
    "load_json",
    "available_memory",
    "format_bytes",
    "raise_hint",
]

_GIB = 2**30
_MIB = 2**20


@dataclass(frozen=True)
class Limits:
    """Bounds on what whylow reads; each can be raised with ``--option limits.<name>=VALUE``.

    Attributes
    ----------
    max_decompressed_bytes : int
        Largest decompressed size of one compressed ``.npz`` member (4 GiB).
    max_compression_ratio : float
        Largest ratio of decompressed to compressed size of an ``.npz`` member
        larger than 16 MiB (200; deflate bombs reach 1,000).
    max_array_bytes : int or None
        Largest array read into memory; None (the default) means 80 % of the
        memory available when the file is read (MemAvailable and the address
        space limit, whichever is smaller).
    max_image_pixels : int
        Pixels per image in an image folder (100 million); a larger image is a
        ``data-quality`` record for that file, like any unreadable image.
    max_json_depth : int
        Nesting depth of a JSON file (64).
    max_json_number_length : int
        Characters of one number in a JSON file (100).
    max_text_bytes : int
        Size of a JSON or text file read whole: history, class names (64 MiB).
    max_csv_field : int
        Characters of one CSV field (131,072, Python's csv default).
    """

    max_decompressed_bytes: int = 4 * _GIB
    max_compression_ratio: float = 200.0
    max_array_bytes: int | None = None
    max_image_pixels: int = 100_000_000
    max_json_depth: int = 64
    max_json_number_length: int = 100
    max_text_bytes: int = 64 * _MIB
    max_csv_field: int = 131_072

    def replace(self, **changes) -> "Limits":
        """A copy with some limits changed."""
        return dataclasses.replace(self, **changes)

    def array_budget(self) -> int:
        """Bytes an array read into memory may take now."""
        if self.max_array_bytes is not None:
            return int(self.max_array_bytes)
        return int(0.8 * available_memory())


#: Sizes in bytes among the limits (accept "4GiB", "500MB"); the others are counts or ratios.
BYTE_LIMITS = ("max_decompressed_bytes", "max_array_bytes", "max_text_bytes")

_CURRENT: contextvars.ContextVar[Limits] = contextvars.ContextVar("whylow_limits", default=Limits())


def current_limits() -> Limits:
    """The limits in force (the defaults outside `limits_scope`)."""
    return _CURRENT.get()


@contextlib.contextmanager
def limits_scope(limits: Limits | None):
    """Make ``limits`` current for the readers called inside the ``with`` block."""
    if limits is None:
        yield current_limits()
        return
    token = _CURRENT.set(limits)
    try:
        yield limits
    finally:
        _CURRENT.reset(token)


def raise_hint(name: str) -> str:
    """How to raise limit ``name``: ``--option limits.<name>=VALUE`` (``options={...}`` in Python)."""
    return f"raise it with --option limits.{name}=VALUE (options={{'limits.{name}': VALUE}} in Python)"


def format_bytes(n: float) -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    n = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if abs(n) < 1024 or unit == "EiB":
            return f"{int(n)} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} EiB"  # pragma: no cover


def available_memory() -> int:
    """Bytes this process can still allocate: MemAvailable, capped by the address-space limit's headroom."""
    avail = None
    try:
        with open("/proc/meminfo", "rb") as fh:
            for line in fh:
                if line.startswith(b"MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        avail = None
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = 8 * _GIB
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            used = _address_space_used()
            avail = min(avail, max(soft - used, 0))
    except (ImportError, OSError, ValueError):
        pass
    return int(avail)


def _address_space_used() -> int:
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


# -- paths and regular files ---------------------------------------------------------------------


def as_path(value, what: str) -> Path:
    """``value`` (str, bytes or path-like) as a `Path`, or an `InvalidInputError` naming ``what``."""
    if isinstance(value, Path):
        return value
    try:
        text = os.fsdecode(value)
    except TypeError:
        raise InvalidInputError(f"{what} must be a path (str or os.PathLike), got {type(value).__name__}.") from None
    if not text:
        raise InvalidInputError(f"{what} is an empty path.")
    if "\x00" in text:
        raise InvalidInputError(f"{what} {text!r} contains a NUL character, which no file name can hold.")
    return Path(text)


#: File types in the order they are tested, with their words.
_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISREG, "a regular file"),
)


def file_kind(mode: int) -> str:
    """What a file of ``st_mode`` is, in words: ``'a directory'``, ``'a named pipe (FIFO)'``, ..."""
    return next((words for is_kind, words in _FILE_KINDS if is_kind(mode)), "not a regular file")


def _link_words(path: Path) -> str:
    try:
        if path.is_symlink():
            return f" (a link to {os.path.realpath(path)!r})"
    except OSError:
        pass
    return ""


def open_regular(path, what: str):
    """Open ``path`` for binary reading if, after following links, it is a regular file.

    The file is opened non-blocking and checked with ``fstat`` before anything
    is read, so a FIFO never hangs and a device (``/dev/zero``) is never read,
    whatever the name says. ``what`` starts the error sentences, e.g.
    ``"The test split file"``.

    Returns
    -------
    io.BufferedReader
    """
    p = as_path(path, what)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(p, flags)
    except FileNotFoundError:
        if p.is_symlink():
            raise InvalidInputError(f"{what} {str(p)!r} is a broken link to {os.readlink(p)!r}, which does not exist.") from None
        raise InvalidInputError(f"{what} {str(p)!r} does not exist.") from None
    except NotADirectoryError:
        raise InvalidInputError(f"{what} {str(p)!r} does not exist: a part of its path is a file, not a folder.") from None
    except PermissionError:
        raise InvalidInputError(f"{what} {str(p)!r} cannot be read: permission denied.") from None
    except OSError as exc:
        raise InvalidInputError(f"{what} {str(p)!r} cannot be opened ({exc.strerror or exc}).") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InvalidInputError(
                f"{what} {str(p)!r} is {file_kind(st.st_mode)}{_link_words(p)}, not a regular file; whylow reads only regular files."
            )
        if flags & getattr(os, "O_NONBLOCK", 0):
            import fcntl

            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _read_bounded(fh, limit: int, what: str, path: Path) -> bytes:
    data = fh.read(limit + 1)
    if len(data) > limit:
        raise InvalidInputError(
            f"{what} {str(path)!r} is larger than {format_bytes(limit)}, the limit for files read whole; "
            f"{raise_hint('max_text_bytes')}."
        )
    return data


# -- text ------------------------------------------------------------------------------------------


def decode_error_position(data: bytes, start: int) -> tuple[int, int]:
    """1-based (line, column) of byte offset ``start`` in ``data``."""
    line = data.count(b"\n", 0, start) + 1
    column = start - (data.rfind(b"\n", 0, start) + 1) + 1
    return line, column


def decode_text(data: bytes, what: str, path) -> str:
    """UTF-8 text (a UTF-8 byte-order mark is dropped); other encodings are refused naming the line."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise InvalidInputError(f"{what} {str(path)!r} is UTF-16 text (it starts with a UTF-16 byte-order mark); save it as UTF-8.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = decode_error_position(data, exc.start)
        raise InvalidInputError(
            f"{what} {str(path)!r} is not UTF-8 text: byte 0x{data[exc.start]:02x} on line {line} (column {col}) "
            "cannot be decoded; save the file as UTF-8."
        ) from None


def read_text(path, what: str, limits: Limits | None = None) -> str:
    """Read a regular file of at most ``limits.max_text_bytes`` as UTF-8 (BOM allowed)."""
    limits = limits or current_limits()
    p = as_path(path, what)
    with open_regular(p, what) as fh:
        data = _read_bounded(fh, limits.max_text_bytes, what, p)
    return decode_text(data, what, p)


# -- JSON ------------------------------------------------------------------------------------------

_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


def _json_depth(text: str) -> int:
    """Deepest nesting of ``[``/``{`` outside strings (no recursion, linear time)."""
    raw = _JSON_STRING.sub(b'""', text.encode("utf-8", "surrogatepass"))
    arr = np.frombuffer(raw, dtype=np.uint8)
    if arr.size == 0:
        return 0
    step = ((arr == ord("[")) | (arr == ord("{"))).astype(np.int64) - ((arr == ord("]")) | (arr == ord("}")))
    return int(np.cumsum(step).max(initial=0))


def parse_json(text: str, what: str, path=None, limits: Limits | None = None):
    """``json.loads`` with bounded depth and number length; every failure is an `InvalidInputError`.

    NaN and Infinity are accepted (a diverged training history holds them).
    """
    limits = limits or current_limits()
    where = f"{what} {str(path)!r}" if path is not None else what
    depth = _json_depth(text)
    if depth > limits.max_json_depth:
        raise InvalidInputError(
            f"{where} nests {depth} levels deep, more than the {limits.max_json_depth} whylow reads; "
            f"{raise_hint('max_json_depth')}."
        )
    max_len = limits.max_json_number_length

    def number(token: str, convert):
        if len(token) > max_len:
            shown = token[:12] + "..." if len(token) > 15 else token
            raise InvalidInputError(
                f"{where} holds a number of {len(token)} characters ({shown}), more than the {max_len} whylow reads; "
                f"{raise_hint('max_json_number_length')}."
            )
        return convert(token)

    try:
        return json.loads(
            text,
            parse_int=lambda s: number(s, int),
            parse_float=lambda s: number(s, float),
        )
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{where} is not valid JSON ({exc}).") from None
    except RecursionError:
        raise InvalidInputError(f"{where} nests too deeply to read; {raise_hint('max_json_depth')}.") from None
    except ValueError as exc:  # e.g. Python's own int digit limit
        if isinstance(exc, InvalidInputError):
            raise
        raise InvalidInputError(f"{where} holds a value whylow cannot read ({exc}).") from None


def load_json(path, what: str, limits: Limits | None = None):
    """Read and parse a JSON file within the limits."""
    limits = limits or current_limits()
    p = as_path(path, what)
    return parse_json(read_text(p, what, limits), what, p, limits)
