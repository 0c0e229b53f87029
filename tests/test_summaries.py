"""Input summaries: streaming == one pass, merge == concatenation, exact statistics, lattices, properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from whylow.context import Context
from whylow.errors import InvalidInputError
from whylow.inputs import Split, prepare_splits
from whylow.summaries import PROPERTIES, InputSummary, summarise, split_summary

PER_IMAGE = (*PROPERTIES, "gray_range", "channel_mean", "channel_std", "nonfinite", "hash")


def assert_same(a: InputSummary, b: InputSummary) -> None:
    """Two summaries of the same data agree: counts exactly, moments to rounding."""
    assert a.n == b.n and a.sample_shape == b.sample_shape and a.layout == b.layout
    np.testing.assert_array_equal(a.count, b.count)
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a.var, b.var, rtol=1e-7, atol=1e-12)
    np.testing.assert_array_equal(a.min, b.min)
    np.testing.assert_array_equal(a.max, b.max)
    for attr in ("n_nan", "n_posinf", "n_neginf"):
        np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr))
    if a.kind == "tabular":
        return
    np.testing.assert_array_equal(a.hist, b.hist)
    for k in range(a.n_channels):
        la, lb = a.levels(k), b.levels(k)
        assert (la is None) == (lb is None)
        if la is not None:
            np.testing.assert_array_equal(la[0], lb[0])
            np.testing.assert_array_equal(la[1], lb[1])
    for name in PER_IMAGE:
        np.testing.assert_array_equal(a.prop(name), b.prop(name))
    ia, ta = a.thumbnails()
    ib, tb = b.thumbnails()
    np.testing.assert_array_equal(ia, ib)
    np.testing.assert_allclose(ta, tb, rtol=1e-6)


def _images(kind: str, n: int, seed: int) -> tuple[np.ndarray, str]:
    rng = np.random.default_rng(seed)
    if kind == "uint8":
        return rng.integers(0, 256, (n, 6, 5, 3), dtype=np.uint8), "NHWC"
    if kind == "lattice":
        return (rng.integers(0, 256, (n, 4, 7, 7)) / 255.0).astype(np.float32), "NCHW"
    if kind == "continuous":
        x = rng.normal(size=(n, 5, 6)).astype(np.float32)
        if n > 2:
            x[1, 2, 3] = np.nan
            x[2] = np.inf
        return x, "NHW"
    if kind == "int8":
        return rng.integers(-128, 128, (n, 4, 4, 1), dtype=np.int8), "NHWC"
    return rng.normal(size=(n, 7)) * 3 + 1, "tabular"


KINDS = ("uint8", "lattice", "continuous", "int8", "tabular")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(KINDS), n=st.integers(1, 40), chunk=st.integers(1, 17), seed=st.integers(0, 10_000))
def test_chunked_equals_one_pass(kind, n, chunk, seed):
    x, layout = _images(kind, n, seed)
    one = summarise(x, chunk_size=n, layout=layout, max_thumbnails=16)
    chunked = summarise(x, chunk_size=chunk, layout=layout, max_thumbnails=16)
    assert_same(one, chunked)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(KINDS), n=st.integers(2, 40), cut=st.floats(0.0, 1.0), seed=st.integers(0, 10_000))
def test_merge_equals_concatenation(kind, n, cut, seed):
    x, layout = _images(kind, n, seed)
    k = int(round(cut * n))
    whole = summarise(x, layout=layout, max_thumbnails=16)
    left = summarise(x[:k], layout=layout, max_thumbnails=16, chunk_size=3)
    right = summarise(x[k:], layout=layout, max_thumbnails=16, chunk_size=5)
    assert_same(whole, left.merge(right))


def test_moments_and_quantiles_match_numpy():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (300, 8, 8, 3), dtype=np.uint8)
    s = summarise(x, chunk_size=37, layout="NHWC")
    flat = x.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(s.mean, flat.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(s.std, flat.std(axis=0), rtol=1e-9)
    q = [0.0, 0.1, 0.5, 0.9, 1.0]
    np.testing.assert_array_equal(s.quantiles(q), np.quantile(flat, q, axis=0, method="inverted_cdf").T)
    assert s.value_range == (0.0, 255.0)
    lattice_x = (x / 255.0).astype(np.float32)
    sl = summarise(lattice_x, chunk_size=50, layout="NHWC")
    np.testing.assert_array_equal(sl.quantiles(q), np.quantile(lattice_x.reshape(-1, 3), q, axis=0, method="inverted_cdf").T)


def test_sketch_quantiles_of_continuous_values_are_within_a_percent():
    rng = np.random.default_rng(1)
    x = rng.gamma(2.0, 3.0, size=(200, 16, 16)).astype(np.float32)
    s = summarise(x, chunk_size=23, layout="NHW", max_distinct=64)
    assert s.levels(0) is None  # too many values: the sketch answers
    q = np.linspace(0.01, 0.99, 25)
    exact = np.quantile(x.ravel(), q)
    np.testing.assert_allclose(s.quantiles(q)[0], exact, rtol=0.008)


@pytest.mark.parametrize(
    "values, words, divisor",
    [
        (lambda r: r / 255.0, "multiples of 1/255", 255.0),
        (lambda r: r / 127.0, "multiples of 1/127", 127.0),
        (lambda r: r.astype(np.float32), "integers", 1.0),
        (lambda r: r * 4.0, "multiples of 4", None),
    ],
)
def test_value_lattice_is_detected(values, words, divisor):
    raw = np.random.default_rng(2).integers(0, 256, (50, 8, 8)).astype(np.float64)
    s = summarise(np.asarray(values(raw), dtype=np.float32), layout="NHW", chunk_size=7)
    lat = s.lattice(0)
    assert lat.describe() == words
    assert lat.divisor == divisor if divisor != 1.0 else lat.step == pytest.approx(1.0)


def test_lattice_of_standardised_and_continuous_values():
    raw = np.random.default_rng(3).integers(0, 256, (50, 8, 8)).astype(np.float64)
    std = ((raw / 255.0 - 0.45) / 0.22).astype(np.float32)
    lat = summarise(std, layout="NHW").lattice(0)
    assert lat.step == pytest.approx(1 / (255 * 0.22), rel=1e-3)
    assert lat.describe().startswith("steps of")
    cont = np.random.default_rng(3).random((50, 8, 8)).astype(np.float32)
    assert summarise(cont, layout="NHW", max_distinct=100).lattice(0).describe() == "continuous"


def test_image_properties_respond_to_what_they_measure():
    from scipy import ndimage

    rng = np.random.default_rng(4)
    base = rng.random((40, 32, 32)).astype(np.float32)
    smooth = ndimage.gaussian_filter(base, sigma=(0, 2, 2)).astype(np.float32)
    s_sharp = summarise(base, layout="NHW")
    s_blur = summarise(smooth, layout="NHW")
    assert np.all(s_blur.prop("sharpness") < 0.5 * s_sharp.prop("sharpness"))
    flat = np.full((20, 32, 32), 0.5, dtype=np.float32)
    noisy = flat + rng.normal(0, 0.05, flat.shape).astype(np.float32)
    noise = summarise(noisy, layout="NHW").prop("noise")
    np.testing.assert_allclose(np.median(noise), 0.05, rtol=0.1)  # Immerkær recovers sigma
    s_flat = summarise(flat, layout="NHW")
    np.testing.assert_array_equal(s_flat.prop("gray_range"), 0.0)
    np.testing.assert_array_equal(s_flat.prop("clipped"), 1.0)
    np.testing.assert_allclose(s_flat.prop("brightness"), 0.5)
    grey = np.repeat(base[..., None], 3, axis=-1)
    assert np.all(summarise(grey, layout="NHWC").prop("colourfulness") == 0)
    red = grey.copy()
    red[..., 1:] *= 0.2
    assert np.all(summarise(red, layout="NHWC").prop("colourfulness") > 0.1)
    np.testing.assert_allclose(s_sharp.prop("contrast"), base.reshape(40, -1).std(axis=1), rtol=1e-4)


def test_nonfinite_images_are_counted_and_left_out():
    x = np.random.default_rng(5).random((10, 4, 4, 3)).astype(np.float32)
    x[2, 0, 0, 1] = np.nan
    x[7] = -np.inf
    s = summarise(x, layout="NHWC", chunk_size=3)
    assert s.n_nonfinite == 1 + 48
    np.testing.assert_array_equal(np.flatnonzero(s.prop("nonfinite")), [2, 7])
    assert np.isnan(s.prop("brightness")[[2, 7]]).all()
    clean = np.delete(x, [2, 7], axis=0).reshape(-1, 3)
    np.testing.assert_allclose(s.mean, clean.mean(axis=0), rtol=1e-6)
    assert s.count[0] == clean.shape[0]
    index, _ = s.thumbnails()
    assert 2 not in index and 7 not in index


def test_memmap_input_and_bounded_thumbnail_sample(tmp_path):
    x = np.random.default_rng(6).integers(0, 256, (120, 9, 11, 3), dtype=np.uint8)
    path = tmp_path / "x.npy"
    np.save(path, x)
    mm = np.load(path, mmap_mode="r")
    s = summarise(mm, chunk_size=16, layout="NHWC", max_thumbnails=25)
    assert_same(s, summarise(x, layout="NHWC", max_thumbnails=25))
    index, thumbs = s.thumbnails()
    assert len(index) == 25 and thumbs.shape == (25, 8, 8, 3)
    # a thumbnail is the area average of its image
    full = summarise(x, layout="NHWC", thumb_size=1, max_thumbnails=200)
    i, t = full.thumbnails()
    np.testing.assert_allclose(t[:, 0, 0, :], x[i].reshape(len(i), -1, 3).mean(axis=1), rtol=1e-5)


def test_tabular_keeps_column_moments_only():
    x = np.random.default_rng(7).normal(size=(100, 4))
    x[5, 2] = np.nan
    s = summarise(x, layout="tabular", chunk_size=9)
    assert s.kind == "tabular" and s.properties == {}
    np.testing.assert_allclose(s.mean, np.nanmean(x, axis=0))
    np.testing.assert_allclose(s.std, np.nanstd(x, axis=0))
    assert s.n_nan.tolist() == [0, 0, 1, 0]
    with pytest.raises(ValueError):
        s.quantiles([0.5])


def test_bad_chunks_are_rejected_with_a_clear_message():
    s = InputSummary("NHWC").update(np.zeros((2, 4, 4, 3), dtype=np.uint8))
    with pytest.raises(InvalidInputError, match="per-sample shape"):
        s.update(np.zeros((2, 5, 4, 3), dtype=np.uint8))
    with pytest.raises(InvalidInputError, match="4 axes"):
        InputSummary("NCHW").update(np.zeros((2, 4, 4)))
    with pytest.raises(InvalidInputError, match="chunk_size"):
        summarise(np.zeros((3, 4, 4)), chunk_size=0, layout="NHW")
    with pytest.raises(InvalidInputError, match="different shapes"):
        s.merge(InputSummary("NHWC").update(np.zeros((1, 2, 2, 3), dtype=np.uint8)))


def test_summaries_are_cached_in_the_context():
    x = np.random.default_rng(8).random((30, 8, 8)).astype(np.float32)
    splits, names = prepare_splits({"test": Split(x=x, y=np.arange(30) % 3)})
    ctx = Context(splits=splits, n_classes=3, class_names=names)
    a = split_summary(ctx, "test")
    assert a is split_summary(ctx, "test") and ctx.cache["summary:test"] is a
    assert a.n == 30 and split_summary(ctx, "train") is None
    undone = split_summary(ctx, "test", key_suffix=":x2", transform=lambda c: c * 2)
    np.testing.assert_allclose(undone.mean, 2 * a.mean, rtol=1e-6)


def test_property_histogram_and_to_dict():
    x = np.random.default_rng(9).integers(0, 256, (50, 8, 8, 3), dtype=np.uint8)
    s = summarise(x, layout="NHWC")
    counts, edges = s.property_histogram("brightness", bins=10)
    assert counts.sum() == 50 and len(edges) == 11
    d = s.to_dict()
    assert d["n"] == 50 and d["lattice"] == ["integers"] * 3 and set(d["property_median"]) == set(PROPERTIES)
