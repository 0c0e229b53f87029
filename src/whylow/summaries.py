"""Streaming, mergeable summaries of a split's inputs.

An `InputSummary` reads ``x`` chunk by chunk (``x`` may be a memmap), so its
memory is bounded by the chunk size plus a few numbers per image, never by
the size of the data. Two summaries of disjoint parts merge into exactly the
summary of their concatenation, so a folder can be summarised in parallel
(processes, a Dask cluster) and the parts combined. ``update(a); update(b)``
equals ``update(concat(a, b))`` and ``s_a.merge(s_b)`` equals the summary of
``concat(a, b)``, up to floating-point rounding of the moments.

What is kept, and how it merges
-------------------------------
Per channel (per column for tabular ``N×D`` input):

* **count, mean, M2** of the finite values: per-chunk moments are combined
  with Chan et al.'s parallel update
  ``M2 = M2_a + M2_b + delta**2 * n_a * n_b / n`` (``delta = mean_b - mean_a``),
  which is exact in real arithmetic and stable in floating point. Within an
  image chunk the per-image means and variances are combined the same way.
* **min, max** of the finite values (merge: min / max), and counts of NaN,
  +inf and -inf.
* **a histogram** for quantiles (merge: add the counts).
  Inputs stored in one byte (``uint8``, ``int8``, ``bool``) get the exact
  256-value histogram (``np.bincount``), so their quantiles are exact. Every
  other dtype is cast to float32 and binned by the top 16 bits of its
  order-preserving bit pattern (sign, exponent, 7 mantissa bits): 65,536
  fixed bins covering every float, each at most 2**-7 of its value wide (a
  log-scale sketch in the spirit of DDSketch). Its quantiles interpolate
  within the bin, so their relative error is below 0.8 % and usually far
  smaller; the bins never depend on the data, so merging is exact.
* **the value lattice**: the distinct values, kept while there are at most
  ``max_distinct`` of them (merge: set union; past the cap the channel is
  "continuous"). From them `Lattice` finds the step ``s`` and offset ``o``
  with every value equal to ``o + k * s``: integer-valued data has step 1,
  ``uint8 / 255`` data has step 1/255, data divided by 127 step 1/127,
  mean/std-normalised 8-bit data step ``1 / (255 * std)``.

Per image (images only), kept as arrays of one value per image (merge:
concatenate), computed on the float32 image, grey level ``g`` = mean over
channels:

* ``brightness``: mean of ``g``; ``contrast``: standard deviation of ``g``.
* ``sharpness``: root mean square gradient of ``g``,
  ``sqrt(mean(dx**2 + dy**2))`` with forward differences.
* ``noise``: Immerkær's fast noise estimate, ``sqrt(pi/2) / 6 *
  mean(|g * N|)`` with ``N = [[1,-2,1],[-2,4,-2],[1,-2,1]]`` (a second
  difference along both axes, which cancels smooth structure and edges of
  constant slope).
* ``colourfulness``: Hasler & Süsstrunk's ``sqrt(sd_rg**2 + sd_yb**2) + 0.3 *
  sqrt(mean_rg**2 + mean_yb**2)`` with ``rg = R - G``, ``yb = (R + G) / 2 - B``
  (0 for images with fewer than 3 channels).
* ``clipped``: fraction of pixels whose grey level equals the image's own
  minimum or maximum (saturated plateaus; 1 for a constant image).
* ``gray_range``: largest minus smallest grey level (0 for a constant image).
* ``channel_mean``, ``channel_std``: per image and channel (``n × C``).
* ``nonfinite``: number of NaN / inf values in the image; images with any
  are left out of the moments, histograms and lattice (and counted), and
  their properties are NaN.
* ``hash``: two 64-bit hashes of the image's raw bytes (a random linear
  hash modulo 2**64, vectorised), for exact duplicates; callers confirm a
  hash match by comparing the bytes.

A bounded **thumbnail sample**: area-averaged ``thumb_size × thumb_size × C``
thumbnails of the ``max_thumbnails`` images with the smallest hash (a
bottom-k sample, ties broken by position). Bottom-k by a content hash is
deterministic and mergeable: the union's bottom k is the bottom k of the
parts' bottom k's, whatever the chunking.

Tabular ``N×D`` input keeps per-column moments, ranges and non-finite
counts only; image properties, histograms and lattices are skipped.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from whylow.errors import InvalidInputError

__all__ = ["InputSummary", "Lattice", "summarise", "split_summary", "row_hashes", "PROPERTIES", "DEFAULT_CHUNK_VALUES"]

#: Per-image scalar properties, in the order used for feature vectors.
PROPERTIES = ("brightness", "contrast", "sharpness", "noise", "colourfulness", "clipped")

#: Default chunk size, in values per chunk (about 4 MB of float32: cache-friendly, measured fastest).
DEFAULT_CHUNK_VALUES = 1_000_000

_SKETCH_SHIFT = 16
_SKETCH_BINS = 1 << (32 - _SKETCH_SHIFT)
_NOISE_CONST = math.sqrt(math.pi / 2.0) / 6.0
_HASH_KEYS = np.random.default_rng(20240611).integers(1, 2**63, size=(2, 1 << 16), dtype=np.uint64) | np.uint64(1)


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def _chan_merge(n_a, mean_a, m2_a, n_b, mean_b, m2_b):
    """Chan et al.'s parallel merge of (count, mean, M2); arrays broadcast per channel."""
    n = n_a + n_b
    with np.errstate(invalid="ignore", divide="ignore"):
        delta = mean_b - mean_a
        frac = np.where(n > 0, n_b / np.maximum(n, 1), 0.0)
        mean = mean_a + delta * frac
        m2 = m2_a + m2_b + delta * delta * n_a * frac
    mean = np.where(n > 0, mean, 0.0)
    m2 = np.where(n > 0, m2, 0.0)
    return n, mean, m2


def _sketch_keys(values_f32: np.ndarray) -> np.ndarray:
    """Order-preserving uint32 keys of float32 values, shifted to their sketch bin (0..65535)."""
    u = values_f32.view(np.uint32)
    neg = (u >> np.uint32(31)).astype(bool)
    key = np.where(neg, ~u, u | np.uint32(0x80000000))
    return (key >> np.uint32(_SKETCH_SHIFT)).astype(np.intp)


def _sketch_decode(keys: np.ndarray) -> np.ndarray:
    """float64 value of uint32 sort keys (inverse of the order-preserving map)."""
    keys = np.asarray(keys, dtype=np.uint64) & np.uint64(0xFFFFFFFF)
    k = keys.astype(np.uint32)
    pos = k >= np.uint32(0x80000000)
    u = np.where(pos, k ^ np.uint32(0x80000000), ~k)
    return u.view(np.float32).astype(np.float64)


def _sketch_edges() -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper edges of every sketch bin (float64; non-finite bins give inf/nan)."""
    k = np.arange(_SKETCH_BINS, dtype=np.uint64)
    lo = _sketch_decode(k << np.uint64(_SKETCH_SHIFT))
    hi = _sketch_decode(((k + np.uint64(1)) << np.uint64(_SKETCH_SHIFT)) - np.uint64(1))
    return lo, hi


_EDGES_CACHE: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def _edges():
    if "e" not in _EDGES_CACHE:
        with np.errstate(invalid="ignore", over="ignore"):
            _EDGES_CACHE["e"] = _sketch_edges()
    return _EDGES_CACHE["e"]


@functools.lru_cache(maxsize=32)
def _pool_matrix(size: int, out: int) -> np.ndarray:
    """Area-averaging matrix of shape (out, size): row a averages the inputs that block a covers."""
    edges = np.linspace(0.0, size, out + 1)
    m = np.zeros((out, size), dtype=np.float64)
    for a in range(out):
        lo, hi = edges[a], edges[a + 1]
        for i in range(int(math.floor(lo)), min(size, int(math.ceil(hi)))):
            m[a, i] = max(0.0, min(hi, i + 1) - max(lo, i))
        m[a] /= m[a].sum()
    return m.astype(np.float32)


def row_hashes(raw: np.ndarray) -> np.ndarray:
    """Two 64-bit linear hashes per row of the raw bytes: shape (n, 2), uint64."""
    n = raw.shape[0]
    b = np.ascontiguousarray(raw).reshape(n, -1).view(np.uint8)
    pad = (-b.shape[1]) % 8
    if pad:
        b = np.concatenate([b, np.zeros((n, pad), dtype=np.uint8)], axis=1)
    w = b.view(np.uint64)
    out = np.zeros((n, 2), dtype=np.uint64)
    width = _HASH_KEYS.shape[1]
    for start in range(0, w.shape[1], width):  # images larger than 512 KiB reuse the keys block by block
        block = w[:, start : start + width]
        salt = np.uint64((start // width) * 0x9E3779B97F4A7C15 % 2**64)
        with np.errstate(over="ignore"):
            out[:, 0] += block @ _HASH_KEYS[0, : block.shape[1]] + salt
            out[:, 1] += block @ _HASH_KEYS[1, : block.shape[1]] + salt
    return out


@dataclass(frozen=True)
class Lattice:
    """The grid a channel's values lie on: every value is ``offset + k * step`` for an integer ``k``.

    Attributes
    ----------
    step : float or None
        Grid spacing; None when the values are continuous (more distinct
        values than were tracked, or no common step).
    offset : float or None
        A grid point (the smallest value reduced modulo ``step``).
    n_levels : int or None
        Number of distinct values, when tracked.
    """

    step: float | None
    offset: float | None
    n_levels: int | None

    @property
    def divisor(self) -> float | None:
        """``1 / step`` when that is close to a whole number (e.g. 255 for ``x / 255``), else None."""
        if not self.step:
            return None
        inv = 1.0 / self.step
        r = round(inv)
        if r >= 1 and abs(inv - r) <= 1e-3 * max(1.0, inv):
            return float(r)
        half = round(inv * 2) / 2
        if half >= 1 and abs(inv - half) <= 1e-3 * max(1.0, inv):
            return float(half)
        return None

    def describe(self) -> str:
        """Plain words: ``"integers"``, ``"multiples of 1/255"``, ``"steps of 0.0157"``, ``"continuous"``."""
        if self.step is None:
            return "continuous"
        on_zero = self.offset is not None and abs(self.offset) <= 1e-6 * max(self.step, 1e-12) + 1e-9
        if abs(self.step - round(self.step)) <= 1e-6 and round(self.step) >= 1 and on_zero:
            return "integers" if round(self.step) == 1 else f"multiples of {round(self.step)}"
        d = self.divisor
        if d is not None and on_zero:
            return f"multiples of 1/{d:g}"
        return f"steps of {self.step:.4g}" + ("" if on_zero else f" offset {self.offset:.4g}")

    def to_dict(self) -> dict:
        return {"step": self.step, "offset": self.offset, "n_levels": self.n_levels, "description": self.describe()}


def _lattice_from_values(values: np.ndarray | None) -> Lattice:
    """Find the common step of sorted distinct values (None when continuous)."""
    if values is None:
        return Lattice(None, None, None)
    v = np.asarray(values, dtype=np.float64)
    n = len(v)
    if n == 0:
        return Lattice(None, None, 0)
    if n == 1:
        return Lattice(None, float(v[0]), 1)
    diffs = np.diff(v)
    scale = max(abs(v[0]), abs(v[-1]), 1e-30)
    tol_abs = 4 * np.finfo(np.float32).eps * scale  # float32 storage error
    diffs = diffs[diffs > tol_abs]
    if len(diffs) == 0:
        return Lattice(None, float(v[0]), n)
    base = float(diffs.min())
    # the smallest gap may be many steps wide (a tinted channel of 17 grey levels: gaps of 16/255 and one of 15/255)
    for divide in range(1, 257):
        step = base / divide
        if step <= 2 * tol_abs:
            break
        k = (v - v[0]) / step
        if np.max(np.abs(k - np.round(k))) <= 0.02 + tol_abs / step:
            # refine the step by least squares on the integer grid
            kk = np.round(k)
            if kk[-1] > 0:
                step = float(np.dot(kk, v - v[0]) / np.dot(kk, kk))
            offset = float(v[0] - step * math.floor(v[0] / step + 0.5))
            if abs(offset) <= 1e-3 * step:
                offset = 0.0
            return Lattice(step, offset, n)
    return Lattice(None, None, n)


# --------------------------------------------------------------------------
# the summary
# --------------------------------------------------------------------------
class InputSummary:
    """Streaming, mergeable summary of the inputs ``x`` of one split.

    Parameters
    ----------
    layout : {"NHWC", "NCHW", "NHW", "tabular"}
        Layout of the chunks passed to `update`.
    name : str, optional
        Name of the split, for messages.
    max_distinct : int, default 4096
        Distinct values tracked per channel for the value lattice.
    thumb_size : int, default 8
        Side of the area-averaged thumbnails kept for the sample.
    max_thumbnails : int, default 20000
        Size of the bottom-k thumbnail sample.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).integers(0, 256, (100, 8, 8, 3), dtype=np.uint8)
    >>> s = InputSummary("NHWC").update(x[:40]).update(x[40:])
    >>> s.n, s.lattice(0).describe()
    (100, 'integers')
    >>> bool(np.allclose(s.mean, x.reshape(-1, 3).mean(0)))
    True
    """

    def __init__(
        self,
        layout: str,
        *,
        name: str = "",
        max_distinct: int = 4096,
        thumb_size: int = 8,
        max_thumbnails: int = 20000,
    ) -> None:
        if layout not in ("NHWC", "NCHW", "NHW", "tabular"):
            raise InvalidInputError(f"InputSummary layout must be NHWC, NCHW, NHW or tabular, got {layout!r}.")
        self.layout = layout
        self.name = name
        self.max_distinct = int(max_distinct)
        self.thumb_size = int(thumb_size)
        self.max_thumbnails = int(max_thumbnails)
        self.n = 0
        self.sample_shape: tuple[int, ...] | None = None
        self.dtype: np.dtype | None = None
        self.n_channels = 0
        # per channel
        self.count = self.mean_ = self.m2 = None
        self.min = self.max = None
        self.n_nan = self.n_posinf = self.n_neginf = None
        self.hist = None  # (C, 256) exact or (C, 65536) sketch
        self.hist_kind: str | None = None  # "byte" or "sketch"
        self.distinct: list[tuple[np.ndarray, np.ndarray] | None] | None = None
        # per image
        self._props: dict[str, list[np.ndarray]] = {}
        self._thumb_parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._thumb_count = 0
        self._thumb_shape: tuple[int, int] | None = None

    # -- shape bookkeeping --------------------------------------------------
    @property
    def kind(self) -> str:
        """``"image"`` or ``"tabular"``."""
        return "tabular" if self.layout == "tabular" else "image"

    def _init(self, chunk: np.ndarray) -> None:
        self.sample_shape = tuple(int(s) for s in chunk.shape[1:])
        self.dtype = chunk.dtype
        c = self._nhwc_shape(chunk.shape)[-1]
        self.n_channels = c
        self.count = np.zeros(c, dtype=np.int64)
        self.mean_ = np.zeros(c)
        self.m2 = np.zeros(c)
        self.min = np.full(c, np.inf)
        self.max = np.full(c, -np.inf)
        self.n_nan = np.zeros(c, dtype=np.int64)
        self.n_posinf = np.zeros(c, dtype=np.int64)
        self.n_neginf = np.zeros(c, dtype=np.int64)
        if self.kind == "image":
            self.hist_kind = "byte" if chunk.dtype.itemsize == 1 and chunk.dtype.kind in "iub" else "sketch"
            bins = 256 if self.hist_kind == "byte" else _SKETCH_BINS
            self.hist = np.zeros((c, bins), dtype=np.int64)
            # sketch path: exact (value, count) pairs while few; byte path: derived from the histogram
            self.distinct = [(np.zeros(0, dtype=np.float64), np.zeros(0, dtype=np.int64)) for _ in range(c)]
            h, w = self._nhwc_shape(chunk.shape)[1:3]
            self._thumb_shape = (min(self.thumb_size, h), min(self.thumb_size, w))

    def _nhwc_shape(self, shape) -> tuple[int, ...]:
        if self.layout == "tabular":
            if len(shape) != 2:
                raise InvalidInputError(f"Tabular chunks of the {self.name or 'input'} summary must be N×D, got shape {tuple(shape)}.")
            return (shape[0], shape[1])
        if self.layout == "NHW":
            if len(shape) != 3:
                raise InvalidInputError(f"NHW chunks of the {self.name or 'input'} summary must have 3 axes, got shape {tuple(shape)}.")
            return (shape[0], shape[1], shape[2], 1)
        if len(shape) != 4:
            raise InvalidInputError(f"{self.layout} chunks of the {self.name or 'input'} summary must have 4 axes, got shape {tuple(shape)}.")
        if self.layout == "NCHW":
            return (shape[0], shape[2], shape[3], shape[1])
        return tuple(shape)

    # -- streaming ------------------------------------------------------------
    def update(self, chunk) -> "InputSummary":
        """Add a chunk of samples (in this summary's layout) and return self.

        Parameters
        ----------
        chunk : array-like of shape (n_samples, ...)
            The next samples; numeric dtype, same per-sample shape as earlier chunks.
        """
        chunk = np.asarray(chunk)
        if chunk.dtype.kind not in "biuf":
            raise InvalidInputError(f"The {self.name or 'input'} summary needs numeric x, got dtype {chunk.dtype}.")
        if chunk.ndim == 0 or chunk.shape[0] == 0:
            return self
        if self.sample_shape is None:
            self._init(chunk)
        elif tuple(chunk.shape[1:]) != self.sample_shape:
            raise InvalidInputError(
                f"A chunk of the {self.name or 'input'} summary has per-sample shape {tuple(chunk.shape[1:])}, "
                f"but earlier chunks had {self.sample_shape}; every sample must have the same shape."
            )
        if self.kind == "tabular":
            self._update_tabular(chunk)
        else:
            self._update_images(chunk)
        self.n += int(chunk.shape[0])
        return self

    def _update_tabular(self, chunk: np.ndarray) -> None:
        c = chunk.astype(np.float64, copy=False)
        finite = np.isfinite(c)
        if chunk.dtype.kind == "f":
            self.n_nan += np.isnan(c).sum(axis=0)
            self.n_posinf += (c == np.inf).sum(axis=0)
            self.n_neginf += (c == -np.inf).sum(axis=0)
        cnt = finite.sum(axis=0)
        s = np.where(finite, c, 0.0).sum(axis=0)
        mean_b = np.where(cnt > 0, s / np.maximum(cnt, 1), 0.0)
        d = np.where(finite, c - mean_b, 0.0)
        m2_b = (d * d).sum(axis=0)
        self.count, self.mean_, self.m2 = _chan_merge(self.count, self.mean_, self.m2, cnt, mean_b, m2_b)
        self.min = np.minimum(self.min, np.where(finite, c, np.inf).min(axis=0))
        self.max = np.maximum(self.max, np.where(finite, c, -np.inf).max(axis=0))

    def _update_images(self, chunk: np.ndarray) -> None:
        n0 = self.n
        raw = chunk
        nh, h, w, ch = self._nhwc_shape(chunk.shape)
        if self.layout == "NCHW":
            view = np.moveaxis(chunk, 1, -1)
        elif self.layout == "NHW":
            view = chunk[..., None]
        else:
            view = chunk
        xf = np.ascontiguousarray(view, dtype=np.float32)  # n × h × w × c
        hw = h * w
        planes = xf.reshape(nh, hw, ch)
        ones = np.ones((1, hw), dtype=np.float32)
        csum = (ones @ planes)[:, 0, :].astype(np.float64)  # n × c
        csq = (ones @ (planes * planes))[:, 0, :].astype(np.float64)
        # images with NaN/inf: sums are not finite
        bad = ~np.isfinite(csum).all(axis=1) | ~np.isfinite(csq).all(axis=1)
        nonfinite = np.zeros(nh, dtype=np.int64)
        if bad.any():
            bx = xf[bad]
            nonfinite[bad] = (~np.isfinite(bx)).reshape(int(bad.sum()), -1).sum(axis=1)
            bvals = bx.reshape(-1, ch)
            self.n_nan += np.isnan(bvals).sum(axis=0)
            self.n_posinf += (bvals == np.inf).sum(axis=0)
            self.n_neginf += (bvals == -np.inf).sum(axis=0)
            really_bad = nonfinite > 0  # huge finite values can overflow float32 sums; keep those images
            bad = really_bad
        good = ~bad
        # --- per-channel moments from per-image moments (Chan across images)
        with np.errstate(invalid="ignore", over="ignore"):
            cmean = csum / hw
            cvar = np.maximum(csq / hw - cmean * cmean, 0.0)
        if bad.any():
            cmean_g, cvar_g = cmean[good], cvar[good]
        else:
            cmean_g, cvar_g = cmean, cvar
        ng = int(cmean_g.shape[0])
        if ng:
            cnt_b = np.full(ch, ng * hw, dtype=np.int64)
            mean_b = cmean_g.mean(axis=0)
            m2_b = hw * (cvar_g.sum(axis=0) + ((cmean_g - mean_b) ** 2).sum(axis=0))
            self.count, self.mean_, self.m2 = _chan_merge(self.count, self.mean_, self.m2, cnt_b, mean_b, m2_b)
        xg = xf if not bad.any() else xf[good]
        rg = view if not bad.any() else view[good]
        if ng:
            self._update_hist_and_lattice(rg, xg, ch)
        # --- per-image properties on the grey level
        with np.errstate(invalid="ignore", over="ignore"):
            props = self._image_properties(xf, cmean, cvar, h, w, ch)
        if bad.any():
            for k in props:
                props[k][bad] = np.nan
        props["nonfinite"] = nonfinite
        props["hash"] = row_hashes(raw)
        for k, v in props.items():
            self._props.setdefault(k, []).append(v)
        self._update_thumbnails(xf, props["hash"], n0, h, w, ch, bad)

    def _image_properties(self, xf, cmean, cvar, h, w, ch) -> dict[str, np.ndarray]:
        nh, hw = xf.shape[0], h * w
        # grey level times ch (the division is applied to the scalar results)
        if ch == 1:
            g = xf[..., 0]
        else:
            g = xf[..., 0] + xf[..., 1]
            for k in range(2, ch):
                g += xf[..., k]
        scale = 1.0 / ch
        g2 = g.reshape(nh, -1)
        bright = g2.sum(axis=1, dtype=np.float64) * (scale / hw)
        gsq = np.einsum("ij,ij->i", g2, g2).astype(np.float64) * (scale * scale / hw)
        contrast = np.sqrt(np.maximum(gsq - bright * bright, 0.0))
        sharp = np.full(nh, np.nan)
        noise = np.full(nh, np.nan)
        if h >= 2 and w >= 2:
            dx = (g[:, :, 1:] - g[:, :, :-1]).reshape(nh, -1)
            dy = g[:, 1:, :] - g[:, :-1, :]
            dyf = dy.reshape(nh, -1)
            energy = np.einsum("ij,ij->i", dx, dx).astype(np.float64) + np.einsum("ij,ij->i", dyf, dyf)
            sharp = np.sqrt(energy / hw) * scale
            if h >= 3 and w >= 3:
                # Immerkær: second difference along y (from dy), then along x
                r = dy[:, 1:, :] - dy[:, :-1, :]
                r2 = r[:, :, :-2] + r[:, :, 2:]
                r2 -= r[:, :, 1:-1]
                r2 -= r[:, :, 1:-1]
                np.abs(r2, out=r2)
                noise = _NOISE_CONST * scale * r2.reshape(nh, -1).sum(axis=1, dtype=np.float64) / ((h - 2) * (w - 2))
        if ch >= 3:
            rr, gg, bb = xf[..., 0], xf[..., 1], xf[..., 2]
            d_rg = (rr - gg).reshape(nh, -1)
            d_yb = rr + gg
            d_yb *= np.float32(0.5)
            d_yb -= bb
            d_yb = d_yb.reshape(nh, -1)
            m_rg = cmean[:, 0] - cmean[:, 1]
            m_yb = 0.5 * (cmean[:, 0] + cmean[:, 1]) - cmean[:, 2]
            v_rg = np.maximum(np.einsum("ij,ij->i", d_rg, d_rg) / hw - m_rg**2, 0.0)
            v_yb = np.maximum(np.einsum("ij,ij->i", d_yb, d_yb) / hw - m_yb**2, 0.0)
            colour = np.sqrt(v_rg + v_yb) + 0.3 * np.sqrt(m_rg**2 + m_yb**2)
        else:
            colour = np.zeros(nh)
        gmin = g2.min(axis=1)
        gmax = g2.max(axis=1)
        at_edge = np.count_nonzero(g2 == gmin[:, None], axis=1) + np.count_nonzero(g2 == gmax[:, None], axis=1)
        at_edge = at_edge - np.where(gmin == gmax, hw, 0)  # a constant image counted its pixels twice
        clipped = at_edge / hw
        gray_range = (gmax - gmin).astype(np.float64) * scale
        return {
            "brightness": bright,
            "contrast": contrast,
            "sharpness": sharp,
            "noise": noise,
            "colourfulness": colour,
            "clipped": clipped.astype(np.float64),
            "gray_range": gray_range,
            "channel_mean": cmean,
            "channel_std": np.sqrt(cvar),
        }

    def _update_hist_and_lattice(self, raw_nhwc: np.ndarray, xf: np.ndarray, ch: int) -> None:
        if self.hist_kind == "byte":
            offset = 128 if raw_nhwc.dtype.kind == "i" else 0
            for k in range(ch):
                v = raw_nhwc[..., k]
                if v.dtype.kind == "b":
                    v = v.view(np.uint8)
                if offset:
                    v = v.astype(np.int16) + offset
                counts = np.bincount(v.ravel(), minlength=256)
                present = np.flatnonzero(counts)
                self.min[k] = min(self.min[k], present[0] - offset)
                self.max[k] = max(self.max[k], present[-1] - offset)
                self.hist[k] += counts
            return
        for k in range(ch):
            v = np.ascontiguousarray(xf[..., k]).ravel()
            self.min[k] = min(self.min[k], float(v.min()))
            self.max[k] = max(self.max[k], float(v.max()))
            self.hist[k] += np.bincount(_sketch_keys(v), minlength=_SKETCH_BINS)
            if self.distinct[k] is not None:
                self.distinct[k] = self._track_levels(self.distinct[k], v)

    def _track_levels(self, levels, v: np.ndarray):
        """Add values ``v`` to the exact (sorted values, counts) of a channel; None once past ``max_distinct``."""
        known, counts = levels
        if len(known):
            pos = np.minimum(np.searchsorted(known, v), len(known) - 1)
            hit = known[pos] == v
            if hit.all():
                return known, counts + np.bincount(pos, minlength=len(known))
            new = v[~hit]
        else:
            new = v
        probe = self.max_distinct * 64
        if new.size > probe and len(np.unique(new[:probe])) > self.max_distinct:
            return None  # continuous: stop tracking (the full set is larger still)
        merged = np.union1d(known, np.unique(new).astype(np.float64))
        if len(merged) > self.max_distinct:
            return None
        total = np.bincount(np.searchsorted(merged, v), minlength=len(merged))
        if len(known):
            total[np.searchsorted(merged, known)] += counts
        return merged, total

    def _update_thumbnails(self, xf, hashes, n0, h, w, ch, bad) -> None:
        keep = np.flatnonzero(~bad)
        if not len(keep):
            return
        th, tw = self._thumb_shape
        cand_hash = hashes[keep]
        cand_index = n0 + keep.astype(np.int64)
        if len(keep) > self.max_thumbnails:  # only the chunk's own bottom k can survive
            sel = _bottom_k(cand_hash, cand_index, self.max_thumbnails)
            keep, cand_hash, cand_index = keep[sel], cand_hash[sel], cand_index[sel]
        self._thumb_parts.append((cand_hash, cand_index, _thumbnails(xf[keep], th, tw)))
        self._thumb_count += len(keep)
        if self._thumb_count > 2 * self.max_thumbnails:
            self._prune_thumbnails()

    def _prune_thumbnails(self) -> None:
        """Keep the bottom-k (by hash, then position) of all thumbnails collected so far."""
        if not self._thumb_parts:
            return
        hashes = np.concatenate([p[0] for p in self._thumb_parts])
        index = np.concatenate([p[1] for p in self._thumb_parts])
        thumbs = np.concatenate([p[2] for p in self._thumb_parts])
        order = _bottom_k(hashes, index, self.max_thumbnails)
        order = order[np.argsort(index[order], kind="stable")]  # stored in position order
        self._thumb_parts = [(hashes[order], index[order], thumbs[order])]
        self._thumb_count = len(order)

    def thumbnails(self) -> tuple[np.ndarray, np.ndarray]:
        """The thumbnail sample: positions (sorted) and thumbnails of shape (k, t, t, C)."""
        self._prune_thumbnails()
        if not self._thumb_parts:
            th, tw = self._thumb_shape or (0, 0)
            return np.zeros(0, dtype=np.int64), np.zeros((0, th, tw, self.n_channels), dtype=np.float32)
        _, index, thumbs = self._thumb_parts[0]
        return index, thumbs

    # -- merging --------------------------------------------------------------
    def merge(self, other: "InputSummary") -> "InputSummary":
        """Fold in the summary of the samples that follow this summary's samples; return self.

        The result equals the summary of the concatenated inputs (``self``'s
        samples first), up to rounding of the moments.
        """
        if not isinstance(other, InputSummary):
            raise InvalidInputError(f"Only an InputSummary can be merged into an InputSummary, got {type(other).__name__}.")
        if other.n == 0:
            return self
        if self.n == 0:
            self.__dict__.update({k: _copy(v) for k, v in other.__dict__.items()})
            return self
        if other.layout != self.layout or other.sample_shape != self.sample_shape:
            raise InvalidInputError(
                f"Cannot merge summaries of inputs with different shapes or layouts "
                f"({self.layout} {self.sample_shape} and {other.layout} {other.sample_shape})."
            )
        if other.dtype != self.dtype and (self.hist_kind != other.hist_kind):
            raise InvalidInputError(f"Cannot merge summaries of inputs of dtype {self.dtype} and {other.dtype}.")
        self.count, self.mean_, self.m2 = _chan_merge(self.count, self.mean_, self.m2, other.count, other.mean_, other.m2)
        self.min = np.minimum(self.min, other.min)
        self.max = np.maximum(self.max, other.max)
        self.n_nan = self.n_nan + other.n_nan
        self.n_posinf = self.n_posinf + other.n_posinf
        self.n_neginf = self.n_neginf + other.n_neginf
        if self.kind == "image":
            self.hist = self.hist + other.hist
            self.distinct = [_merge_levels(a, b, self.max_distinct) for a, b in zip(self.distinct, other.distinct)]
            for k, v in other._props.items():
                self._props.setdefault(k, []).extend(v)
            self._thumb_parts.extend((hh, ii + self.n, tt) for hh, ii, tt in other._thumb_parts)
            self._thumb_count += other._thumb_count
            if self._thumb_count > 2 * self.max_thumbnails:
                self._prune_thumbnails()
        self.n += other.n
        return self

    # -- derived --------------------------------------------------------------
    @property
    def mean(self) -> np.ndarray:
        """Mean of the finite values per channel (column), shape (C,)."""
        return np.where(self.count > 0, self.mean_, np.nan)

    @property
    def var(self) -> np.ndarray:
        """Population variance of the finite values per channel, shape (C,)."""
        return np.where(self.count > 0, self.m2 / np.maximum(self.count, 1), np.nan)

    @property
    def std(self) -> np.ndarray:
        """Standard deviation of the finite values per channel, shape (C,)."""
        return np.sqrt(self.var)

    @property
    def n_nonfinite(self) -> int:
        """Number of NaN and infinite values in the split."""
        return int(self.n_nan.sum() + self.n_posinf.sum() + self.n_neginf.sum()) if self.n else 0

    @property
    def value_range(self) -> tuple[float, float]:
        """Smallest and largest finite value over all channels."""
        if not self.n or not np.isfinite(self.min).any():
            return (math.nan, math.nan)
        return float(np.min(self.min)), float(np.max(self.max))

    def quantiles(self, q) -> np.ndarray:
        """Quantiles of the finite values per channel.

        Parameters
        ----------
        q : array-like of float in [0, 1], shape (n_q,)

        Returns
        -------
        ndarray of shape (n_channels, n_q)
            Exact (inverted CDF) for one-byte inputs and for channels with at
            most ``max_distinct`` distinct values; interpolated within the
            sketch bin otherwise (relative error < 0.8 %).
        """
        if self.kind != "image":
            raise ValueError("quantiles are kept for images only")
        q = np.atleast_1d(np.asarray(q, dtype=np.float64))
        out = np.full((self.n_channels, len(q)), np.nan)
        for k in range(self.n_channels):
            counts = self.hist[k]
            total = counts.sum()
            if total == 0:
                continue
            cdf = np.cumsum(counts)
            target = q * total
            levels = self.levels(k)
            if levels is not None and len(levels[0]):
                lcdf = np.cumsum(levels[1])
                pos = np.searchsorted(lcdf, np.maximum(target, 1e-9), side="left")
                out[k] = levels[0][np.minimum(pos, len(lcdf) - 1)]
                continue
            lo, hi = _edges()
            pos = np.searchsorted(cdf, np.maximum(target, 1e-9), side="left")
            pos = np.minimum(pos, len(cdf) - 1)
            before = np.where(pos > 0, cdf[np.maximum(pos - 1, 0)], 0)
            inbin = counts[pos]
            frac = np.clip((target - before) / np.maximum(inbin, 1), 0.0, 1.0)
            a = np.maximum(lo[pos], self.min[k])
            b = np.minimum(hi[pos], self.max[k])
            out[k] = a + frac * (b - a)
        return out

    def lattice(self, channel: int = 0) -> Lattice:
        """The value lattice of one channel (see `Lattice`)."""
        if self.kind != "image" or not self.n:
            return Lattice(None, None, None)
        levels = self.levels(channel)
        return _lattice_from_values(None if levels is None else levels[0])

    def levels(self, channel: int = 0) -> tuple[np.ndarray, np.ndarray] | None:
        """Exact distinct values of a channel and their counts, or None when there are too many (continuous)."""
        if self.kind != "image" or not self.n:
            return None
        if self.hist_kind == "byte":
            offset = 128 if self.dtype.kind == "i" else 0
            present = np.flatnonzero(self.hist[channel])
            return present.astype(np.float64) - offset, self.hist[channel][present]
        return self.distinct[channel]

    def lattices(self) -> list[Lattice]:
        """`lattice` of every channel."""
        return [self.lattice(k) for k in range(self.n_channels)]

    def prop(self, name: str) -> np.ndarray:
        """Per-image property ``name`` (see the module docstring) for every image, concatenated."""
        parts = self._props.get(name)
        if not parts:
            if self.n and self.kind == "image" or name not in (*PROPERTIES, "channel_mean", "channel_std", "hash", "nonfinite", "gray_range"):
                raise KeyError(f"no per-image property {name!r} in the {self.name or 'input'} summary")
            width = {"channel_mean": (0, self.n_channels), "channel_std": (0, self.n_channels), "hash": (0, 2)}
            return np.zeros(width.get(name, (0,)))
        if len(parts) > 1:
            joined = np.concatenate(parts)
            self._props[name] = [joined]
        return self._props[name][0]

    @property
    def properties(self) -> dict[str, np.ndarray]:
        """The scalar per-image properties, name -> array of shape (n,)."""
        return {k: self.prop(k) for k in PROPERTIES} if self.kind == "image" else {}

    def property_histogram(self, name: str, bins=20, range_=None) -> tuple[np.ndarray, np.ndarray]:
        """Histogram of a per-image property (finite values): ``(counts, edges)``."""
        v = self.prop(name)
        v = v[np.isfinite(v)]
        return np.histogram(v, bins=bins, range=range_)

    def feature_matrix(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Per-image property vectors: the scalar properties, channel means and channel stds, shape (n, 6 + 2C)."""
        cols = [self.prop(k)[:, None] for k in PROPERTIES]
        cols += [self.prop("channel_mean"), self.prop("channel_std")]
        m = np.concatenate(cols, axis=1)
        return m if rows is None else m[rows]

    def to_dict(self) -> dict:
        """A small JSON-able view: shape, dtype, range, lattice and moments per channel, property medians."""
        out = {
            "n": int(self.n),
            "shape": list(self.sample_shape) if self.sample_shape else None,
            "dtype": str(self.dtype) if self.dtype is not None else None,
            "layout": self.layout,
            "n_nonfinite": self.n_nonfinite,
        }
        if not self.n:
            return out
        lo, hi = self.value_range
        out["range"] = [_r(lo), _r(hi)]
        out["mean"] = [_r(v) for v in self.mean]
        out["std"] = [_r(v) for v in self.std]
        if self.kind == "image":
            out["lattice"] = [lat.describe() for lat in self.lattices()]
            out["property_median"] = {k: _r(float(np.nanmedian(v))) if np.isfinite(v).any() else None for k, v in self.properties.items()}
        return out


def _r(v, digits: int = 6):
    v = float(v)
    if not math.isfinite(v):
        return None
    return float(f"{v:.{digits}g}")


def _copy(v):
    if isinstance(v, np.ndarray):
        return v.copy()
    if isinstance(v, dict):
        return {k: list(x) for k, x in v.items()}
    if isinstance(v, list):
        return [None if x is None else (x.copy() if isinstance(x, np.ndarray) else x) for x in v]
    return v


def _merge_levels(a, b, cap: int):
    """Union of two (sorted values, counts) level sets; None when either is untracked or the union passes ``cap``."""
    if a is None or b is None:
        return None
    values = np.union1d(a[0], b[0])
    if len(values) > cap:
        return None
    counts = np.zeros(len(values), dtype=np.int64)
    counts[np.searchsorted(values, a[0])] += a[1]
    counts[np.searchsorted(values, b[0])] += b[1]
    return values, counts


def _bottom_k(hashes: np.ndarray, index: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k smallest (hash0, hash1, index) rows, in that order."""
    if len(index) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((index, hashes[:, 1], hashes[:, 0]))
    return order[:k]


def _thumbnails(xf: np.ndarray, th: int, tw: int) -> np.ndarray:
    """Area-averaged thumbnails of float32 NHWC images: shape (n, th, tw, C)."""
    n, h, w, c = xf.shape
    if n == 0:
        return np.zeros((0, th, tw, c), dtype=np.float32)
    ph = _pool_matrix(h, th)
    pw = _pool_matrix(w, tw)
    rows = ph @ xf.reshape(n, h, w * c)  # n × th × (w*c)
    rows = rows.reshape(n, th, w, c).transpose(0, 1, 3, 2)  # n × th × c × w
    return np.ascontiguousarray((rows @ pw.T).transpose(0, 1, 3, 2))  # n × th × tw × c


# --------------------------------------------------------------------------
# entry points
# --------------------------------------------------------------------------
def _chunk_rows(sample_shape: tuple[int, ...], chunk_size: int | None) -> int:
    if chunk_size is not None:
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
            raise InvalidInputError(f"chunk_size must be a positive number of samples, got {chunk_size!r}.")
        return int(chunk_size)
    per = max(1, int(np.prod(sample_shape)))
    return max(1, DEFAULT_CHUNK_VALUES // per)


def summarise(
    split,
    chunk_size: int | None = None,
    *,
    layout: str | None = None,
    name: str | None = None,
    transform=None,
    **options,
) -> InputSummary:
    """Summarise a split's inputs chunk by chunk.

    Parameters
    ----------
    split : SplitData or array-like of shape (n_samples, ...)
        A validated split (its ``x`` and ``layout`` are used) or an array.
    chunk_size : int, optional
        Samples per chunk; by default about 1 million values per chunk.
    layout : {"NHWC", "NCHW", "NHW", "tabular"}, optional
        Layout of an array ``split`` (inferred from its shape when omitted).
    name : str, optional
    transform : callable, optional
        Applied to every chunk before it is summarised (``transform(chunk)``
        returns an array of the same layout), e.g. to summarise inputs with
        an estimated preprocessing undone without materialising them.
    **options
        Passed to `InputSummary` (``max_distinct``, ``thumb_size``, ``max_thumbnails``).

    Returns
    -------
    InputSummary
    """
    x = getattr(split, "x", split)
    if x is None:
        raise InvalidInputError(f"The {getattr(split, 'name', name) or 'given'} split has no inputs x to summarise.")
    if layout is None:
        layout = getattr(split, "layout", None)
    if layout is None:
        from whylow.inputs.detect import infer_layout

        x = x if hasattr(x, "shape") else np.asarray(x)
        layout = infer_layout(tuple(x.shape), name or "x")
    name = name or getattr(split, "name", "") or ""
    if not hasattr(x, "shape"):
        x = np.asarray(x)
    summary = InputSummary(layout, name=name, **options)
    rows = _chunk_rows(tuple(x.shape[1:]), chunk_size)
    for start in range(0, x.shape[0], rows):
        chunk = np.asarray(x[start : start + rows])
        summary.update(chunk if transform is None else transform(chunk))
    return summary


def split_summary(ctx, name: str, *, key_suffix: str = "", transform=None) -> InputSummary | None:
    """The summary of split ``name``, computed once per diagnosis and shared through ``ctx.cached``.

    The cache key is ``"summary:<name>"``, plus ``key_suffix`` (e.g.
    ``":undone"``) when ``transform`` is applied to every chunk first.
    The chunk size can be set with ``options={"summaries.chunk_size": n}``.
    """
    s = ctx.split(name)
    if s is None or s.x is None:
        return None
    chunk = ctx.option("summaries", "chunk_size", None)
    return ctx.cached(f"summary:{name}{key_suffix}", lambda: summarise(s, chunk, transform=transform))
