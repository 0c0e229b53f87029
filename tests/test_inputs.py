"""Loading and validating every input form (design.md §2)."""

from __future__ import annotations

import numpy as np
import pytest

from whylow import InvalidInputError, Split
from whylow.inputs import (
    infer_layout,
    load_class_names,
    load_split,
    predictions_to_probs,
    prepare_splits,
)


def _probs(rng, n, k):
    z = rng.normal(size=(n, k))
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


@pytest.mark.parametrize(
    "shape, layout",
    [((10, 32, 32, 3), "NHWC"), ((10, 3, 32, 32), "NCHW"), ((10, 28, 28), "NHW"), ((10, 5), "tabular"),
     ((10, 1, 16, 16), "NCHW"), ((10, 16, 16, 1), "NHWC"), ((10, 8, 8, 16), "NHWC")],
)
def test_infer_layout(shape, layout):
    assert infer_layout(shape, "x") == layout


def test_ambiguous_layout_names_the_option():
    with pytest.raises(InvalidInputError, match="--layout"):
        infer_layout((10, 3, 5, 3), "x")
    assert infer_layout((10, 3, 5, 3), "x", "NCHW") == "NCHW"


def test_prediction_kinds():
    rng = np.random.default_rng(0)
    p = _probs(rng, 50, 4)
    probs, kind = predictions_to_probs(p, "p")
    assert kind == "softmax" and np.allclose(probs, p)
    logits = rng.normal(size=(50, 4)) * 3
    probs, kind = predictions_to_probs(logits, "p")
    assert kind == "logits" and np.allclose(probs.sum(1), 1)
    sig = rng.uniform(size=50)
    probs, kind = predictions_to_probs(sig[:, None], "p")
    assert kind == "sigmoid" and probs.shape == (50, 2) and np.allclose(probs[:, 1], sig)
    probs, kind = predictions_to_probs(rng.normal(size=50) * 4, "p")
    assert kind == "logits" and probs.shape == (50, 2)


def test_logits_passed_as_probs_is_refused():
    with pytest.raises(InvalidInputError, match="logits"):
        predictions_to_probs(np.random.default_rng(0).normal(size=(20, 3)) * 4, "test probs", "probs")
    with pytest.raises(InvalidInputError, match="sum to 1"):
        predictions_to_probs(np.full((20, 3), 0.5), "test probs", "probs")


def test_npz_roundtrip_and_memmap(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(200, 8, 8, 3), dtype=np.uint8)
    y = rng.integers(0, 4, 200)
    p = _probs(rng, 200, 4)
    path = tmp_path / "s.npz"
    np.savez(path, x=x, y=y, probs=p)
    before = path.read_bytes()
    s = load_split(path, "test")
    assert np.array_equal(s.x, x) and np.array_equal(s.y, y) and np.allclose(s.probs, p)
    from whylow.inputs import load_npz

    mm = load_npz(path, "test", mmap_threshold=0)
    assert isinstance(mm.x, np.memmap) and np.array_equal(np.asarray(mm.x), x)
    assert path.read_bytes() == before  # never modified
    compressed = tmp_path / "c.npz"
    np.savez_compressed(compressed, x=x, y=y)
    assert np.array_equal(load_npz(compressed, "test", mmap_threshold=0).x, x)


def test_npz_with_objects_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, y=np.array([{"a": 1}, 2], dtype=object))
    with pytest.raises(InvalidInputError, match="never unpickles"):
        load_split(path, "test")


def test_image_folder_with_a_corrupt_file(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(2)
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    (tmp_path / "dog" / "broken.png").write_bytes(b"not a png at all")
    s = load_split(tmp_path, "train")
    assert s.x.shape == (6, 12, 12, 3) and s.class_names == ["cat", "dog"]
    assert s.y.tolist() == [0, 0, 0, 1, 1, 1]
    assert len(s.corrupt_files) == 1 and "broken.png" in s.corrupt_files[0][0]


def test_prediction_tables(tmp_path):
    import pandas as pd

    rng = np.random.default_rng(3)
    p = _probs(rng, 30, 3)
    y = rng.integers(0, 3, 30)
    df = pd.DataFrame({"label": y, **{f"prob_{k}": p[:, k] for k in range(3)}})
    df.to_csv(tmp_path / "p.csv", index=False)
    df.to_parquet(tmp_path / "p.parquet")
    for name in ("p.csv", "p.parquet"):
        s = load_split(tmp_path / name, "test")
        assert np.allclose(s.probs, p) and np.array_equal(np.asarray(s.y, dtype=int), y)
    named = pd.DataFrame({"label": np.array(["cat", "dog", "cow"])[y], "logit_cat": p[:, 0], "logit_dog": p[:, 1], "logit_cow": p[:, 2]})
    named.to_csv(tmp_path / "n.csv", index=False)
    s = load_split(tmp_path / "n.csv", "test")
    splits, names = prepare_splits({"test": s})
    assert names == ["cat", "dog", "cow"] and splits["test"].prediction_kind == "logits"
    assert np.array_equal(splits["test"].y, y)


def test_class_names_files(tmp_path):
    (tmp_path / "c.txt").write_text("cat\ndog\n")
    (tmp_path / "c.json").write_text('["cat", "dog", "bird"]')
    assert load_class_names(tmp_path / "c.txt") == ["cat", "dog"]
    assert load_class_names(tmp_path / "c.json") == ["cat", "dog", "bird"]


def test_string_labels_and_one_hot():
    y = np.array(["b", "a", "b"])
    splits, names = prepare_splits({"test": Split(y=y)})
    assert names == ["a", "b"] and splits["test"].y.tolist() == [1, 0, 1]
    onehot = np.eye(3)[[2, 0, 1]]
    splits, _ = prepare_splits({"test": Split(y=onehot)})
    assert splits["test"].y.tolist() == [2, 0, 1]


@pytest.mark.parametrize(
    "split, message",
    [
        (Split(y=np.array([0, 1, 2]), probs=np.eye(3)[:2]), "different numbers of samples"),
        (Split(y=np.array([0, 1, 5]), probs=np.eye(3)), "out of range"),
        (Split(y=np.array([0.5, 1, 2]), probs=np.eye(3)), "integer class ids"),
        (Split(y=np.array([0, -1, 2]), probs=np.eye(3)), "start at 0"),
        (Split(y=np.array([0, 1, np.nan])), "NaN"),
        (Split(y=np.array([0, 1, 2]), probs=np.array([[0.2, 0.8, 0], [np.nan, 0.5, 0.5], [0, 0, 1]])), "NaN"),
        (Split(y=np.array([], dtype=int)), "empty"),
        (Split(x=np.zeros((3, 4, 4, 4, 4))), "axes"),
        (Split(x=np.array([["a", "b"], ["c", "d"]])), "numeric"),
        (Split(x=np.full((3, 8, 8), np.nan)), "only NaN"),
    ],
)
def test_bad_inputs_raise_one_clear_sentence(split, message):
    with pytest.raises(InvalidInputError, match=message) as info:
        prepare_splits({"test": split})
    text = str(info.value)
    assert text.startswith("The test split") or text.startswith("The test")
    assert "\n" not in text


def test_predictions_and_class_names_must_agree():
    with pytest.raises(InvalidInputError, match="3 columns but 2 class names"):
        prepare_splits({"test": Split(probs=np.eye(3))}, class_names=["a", "b"])


def test_splits_must_agree_on_n_classes():
    with pytest.raises(InvalidInputError, match="different numbers of classes"):
        prepare_splits({"test": Split(probs=np.eye(3)), "val": Split(probs=np.eye(4))})


def test_test_split_is_required():
    with pytest.raises(InvalidInputError, match="test split is required"):
        prepare_splits({"train": Split(y=np.array([0, 1]))})


def test_unknown_file_type_and_missing_file(tmp_path):
    (tmp_path / "data.txt").write_text("hello")
    with pytest.raises(InvalidInputError, match="unknown file type"):
        load_split(tmp_path / "data.txt", "test")
    with pytest.raises(InvalidInputError, match="does not exist"):
        load_split(tmp_path / "nope.npz", "test")
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    with pytest.raises(InvalidInputError, match="not a readable .npz"):
        load_split(tmp_path / "bad.npz", "test")
