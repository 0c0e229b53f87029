"""The randomised grid of cases (`whylow.scenarios.grid`) and the benchmark's grid mode.

Fast: cases are shrunk (`shrink_case`) to a few hundred images and a few
epochs; the whole file runs in well under a minute on two cores.
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

pytest.importorskip("torch")

from conftest import load_detection_benchmark  # noqa: E402
from whylow.scenarios import grid  # noqa: E402 - after the torch skip

SKIMAGE_MISSING = importlib.util.find_spec("skimage") is None
SKIMAGE_REASON = "scikit-image is not installed: the skimage-photos source needs it (pip install -e '.[bench]')"


# -- sampling ---------------------------------------------------------------------------------------
def test_sample_case_is_determined_by_the_seed():
    for seed in (0, 7, 10_003):
        assert grid.sample_case(seed) == grid.sample_case(seed)
        assert grid.sample_case(seed, fault=None) == grid.sample_case(seed, fault=None)
    assert len({grid.sample_case(s).label for s in range(20)}) == 20


def test_dev_and_heldout_seeds_are_disjoint_and_alike():
    assert grid.DEV_SEEDS.stop <= grid.HELDOUT_SEEDS.start
    assert len(grid.DEV_SEEDS) == len(grid.HELDOUT_SEEDS) == 10_000
    assert not set(grid.DEV_SEEDS) & set(grid.HELDOUT_SEEDS)


def test_every_fault_code_samples_a_valid_case():
    from whylow.report.finding import CODES

    assert set(grid.FAULT_CODES) == set(CODES)
    for i, code in enumerate((*grid.FAULT_CODES, None)):
        for seed in (i, 100 + i, 200 + i):
            case = grid.sample_case(seed, fault=code)
            assert case.fault == code
            assert case.variant in grid.FAULT_VARIANTS[code], (code, case.variant)
            assert case.source in grid.SOURCES and case.storage in grid.STORAGES
            assert case.arch in grid.ARCHITECTURES and 16 <= case.size <= 32
            assert 100 <= case.n_train <= 5000 and case.n_val >= 50
            assert case.n_test >= (15 if code == "small-sample" else 100)
    any_codes = {grid.sample_case(s).fault for s in range(200)}
    assert any_codes == set(grid.FAULT_CODES)


def test_the_grid_case_is_the_same_whatever_the_fault_asked():
    a, b = grid.sample_case(42, fault="label-noise"), grid.sample_case(42, fault="no-signal")
    assert (a.source, a.storage, a.colour) == (b.source, b.storage, b.colour)


def test_unknown_fault_is_an_input_error():
    from whylow.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="fault must be"):
        grid.sample_case(0, fault="bad-luck")


# -- sources and storage ----------------------------------------------------------------------------
@pytest.mark.parametrize("name,colour,size,n_classes", [
    ("digits", "grey", 16, 10),
    ("digits", "rgb", 16, 10),
    ("sklearn-photos", "rgb", 24, 8),
    ("sklearn-photos", "grey", 20, 8),
    pytest.param("skimage-photos", "rgb", 32, 5, marks=pytest.mark.skipif(SKIMAGE_MISSING, reason=SKIMAGE_REASON)),
    pytest.param("skimage-photos", "grey", 16, 6, marks=pytest.mark.skipif(SKIMAGE_MISSING, reason=SKIMAGE_REASON)),
    ("shapes", "rgb", 28, 8),
    ("shapes", "grey", 16, 4),
])
def test_sources_draw_images_of_the_stated_shape(name, colour, size, n_classes):
    rng = np.random.default_rng(0)
    src = grid.load_source(name, colour, size, n_classes, rng)
    assert len(src.class_names) == n_classes
    counts = {"train": np.full(n_classes, 3), "test": np.full(n_classes, 2)}
    drawn = src.draw(counts, rng)
    channels = 3 if colour == "rgb" else 1
    for split, (x, y) in drawn.items():
        assert x.shape == (counts[split].sum(), size, size, channels) and x.dtype == np.float32
        assert np.isfinite(x).all() and x.min() >= 0.0 and x.max() <= 1.0
        assert np.bincount(y, minlength=n_classes).tolist() == counts[split].tolist()
        assert x.std(axis=(1, 2, 3)).min() > 0.0  # no blank images
    # off the 1/255 grid: the images were resized / rendered in floating point
    x = drawn["train"][0]
    assert np.abs(np.round(x * 255) / 255 - x).max() > 1e-4


def test_photo_tiles_never_go_to_two_splits():
    parts = grid._assign_tiles(40, [60, 20, 20], np.random.default_rng(0))
    flat = np.concatenate(parts)
    assert len(flat) == len(set(flat.tolist())) and all(len(p) for p in parts)


def test_shapes_include_orientation_dependent_classes():
    g = np.linspace(-1, 1, 33)
    py, px = np.meshgrid(g, g, indexing="ij")
    masks = grid._SHAPE_MASKS
    right, left = masks["arrow-right"](px, py), masks["arrow-left"](px, py)
    assert (right[:, ::-1] == left).all() and not (right == left).all()  # a horizontal flip swaps the classes
    tri, ell = masks["triangle-up"](px, py), masks["L"](px, py)
    assert not (tri[::-1] == tri).all() and not (ell[::-1] == ell).all()  # vertical flips change the evidence
    stripes = masks["h-stripes"](px, py)
    assert not (np.rot90(stripes) == stripes).all()


@pytest.mark.parametrize("storage", grid.STORAGES)
def test_storage_round_trips(storage):
    case = grid.sample_case(0, fault=None)
    case.storage, case.colour = storage, "rgb"
    x = np.random.default_rng(0).uniform(0, 1, (5, 16, 16, 3)).astype(np.float32)
    enc = grid._Encoding.fit(case, x)
    stored = enc.encode(x)
    expected_shape = (5, 3, 16, 16) if storage.endswith("nchw") else (5, 16, 16, 3)
    assert stored.shape == expected_shape
    assert stored.dtype == (np.uint8 if storage.startswith("uint8") else np.float32)
    tol = 0.5 / 255 + 1e-6 if storage.startswith("uint8") else 1e-5
    np.testing.assert_allclose(enc.decode(stored), x, atol=tol)
    if storage.startswith("standardised"):
        np.testing.assert_allclose(stored.mean(axis=(0, 2, 3) if storage.endswith("nchw") else (0, 1, 2)), 0, atol=1e-5)


# -- building cases ---------------------------------------------------------------------------------
def _small(seed, fault, **changes):
    case = grid.shrink_case(grid.sample_case(seed, fault=fault), max_train=160, max_epochs=12)
    for k, v in changes.items():
        setattr(case, k, v)
    return case


@pytest.fixture(scope="module")
def flipped_case():
    case = _small(3, "preprocessing-mismatch", source="shapes", colour="rgb", size=16, n_classes=8, arch="cnn",
                  width=8, storage="float01-nhwc", model_input="takes-stored")
    case.variant, case.params["fault"] = "flip", {"kind": "flip", "axis": "horizontal"}
    return case, grid.build_case(case)


def test_a_preprocessing_fault_records_what_was_injected_and_its_effect(flipped_case):
    case, scn = flipped_case
    assert scn.expected == "preprocessing-mismatch"
    p, effect = scn.notes["preprocessing"], scn.notes["effect"]
    assert p["kind"] in grid.PREPROCESSING_KINDS and effect["gate"] == "passed"
    assert set(effect) >= {"clean_accuracy", "faulted_accuracy", "clean_log_loss", "faulted_log_loss"}
    assert effect["clean_accuracy"] - effect["faulted_accuracy"] >= 0.05 or (
        effect["faulted_log_loss"] >= 1.1 * effect["clean_log_loss"])
    if p["kind"] == "flip" and effect["redraws"] == 0:
        train_x = scn.test.x  # the flipped test split, stored like the training split
        assert train_x.shape[1:] == scn.train.x.shape[1:] and train_x.dtype == scn.train.x.dtype


def test_whylow_runs_the_model_on_exactly_what_the_generator_measured(flipped_case):
    from whylow.models import as_predictor

    case, scn = flipped_case
    raw = as_predictor(scn.model, data_layout="NHWC").predict(scn.test.x)
    acc = float((raw.argmax(1) == scn.test.y).mean())
    assert acc == pytest.approx(scn.notes["effect"]["faulted_accuracy"], abs=1e-3)


@pytest.mark.parametrize("storage,arch", [("uint8-nhwc", "mlp"), ("standardised-nchw", "cnn-bn"),
                                          ("float01-nchw", "logreg")])
def test_a_healthy_case_builds_consistently_with_its_storage(storage, arch):
    case = _small(5, None, source="digits", colour="grey", size=16, n_classes=10, storage=storage, arch=arch,
                  width={"mlp": 64, "cnn-bn": 8, "logreg": 0}[arch],
                  model_input="normalises-inside" if storage.startswith("uint8") else "takes-stored")
    case.variant = "quantised-test" if not storage.startswith("uint8") else "early-stopping"
    scn = grid.build_case(case)
    assert scn.expected is None and scn.model is not None
    layout = storage.split("-")[1].upper()
    for split in (scn.train, scn.val, scn.test):
        assert split.x.dtype == (np.uint8 if storage.startswith("uint8") else np.float32)
        assert (split.x.shape[1] == 1) == (layout == "NCHW")
    if case.variant == "quantised-test":
        x = scn.test.x if storage.startswith("float01") else None
        if x is not None:
            np.testing.assert_allclose(np.round(x * 255) / 255, x, atol=1e-6)
    fit = scn.notes["fit"]
    assert {"train_accuracy", "val_accuracy", "gap", "epochs_run"} <= set(fit)
    json.dumps(scn.notes, default=str)  # notes are plain data


def test_a_late_rise_keeps_accuracy_within_a_point():
    case = _small(11, None, source="digits", colour="grey", size=16, n_classes=10, storage="float01-nchw",
                  arch="cnn", width=8, model_input="takes-stored")
    case.variant, case.params["max_epochs"] = "late-rise", 25
    scn = grid.build_case(case)
    late = scn.notes["late_rise"]
    assert late["final_epoch"] >= late["best_epoch"] and late["val_accuracy_gap"] <= 0.01 + 1e-9
    assert len(scn.history["val_loss"]) == late["final_epoch"]


# -- the benchmark's grid mode ----------------------------------------------------------------------
def test_grid_mode_runs_end_to_end(tmp_path, capsys):
    detection = load_detection_benchmark()
    out = tmp_path / "grid.json"
    code = detection.main(["--grid", "dev", "--faults", "1", "--healthy", "1", "--max-train", "120",
                           "--max-epochs", "6", "--json", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    for heading in ("randomised grid (dev seeds)", "Per fault code", "Per preprocessing", "Per source",
                    "Per storage", "Per arch", "False alarms on healthy models", "generalisation gap", "Cases"):
        assert heading in text
    payload = json.loads(out.read_text())
    assert payload["mode"] == "grid-dev" and len(payload["cases"]) == 2
    assert [c["case"]["expected"] for c in payload["cases"]] == ["preprocessing-mismatch", None]
    assert all(c["status"] == "ok" for c in payload["cases"]), [c["error"] for c in payload["cases"]]


def test_grid_plan_splits_seed_sets_and_round_robins_codes():
    detection = load_detection_benchmark()
    plan = detection.grid_plan("heldout", 18, 2)
    assert [f for _, f in plan[:16]] == list(grid.FAULT_CODES) and plan[16][1] == grid.FAULT_CODES[0]
    assert all(s in grid.HELDOUT_SEEDS for s, _ in plan)
    assert len({s for s, _ in plan}) == 20


def test_preprocessing_naming_rule():
    detection = load_detection_benchmark()
    match = detection.candidate_matches
    assert match({"kind": "scale", "factor": 255 / 127}, {"kind": "scale", "factor": 2.0})
    assert not match({"kind": "scale", "factor": 255.0}, {"kind": "scale", "factor": 256.0 * 1.03})
    assert match({"kind": "flip", "axis": "horizontal"}, {"kind": "flip", "axis": "horizontal"})
    assert not match({"kind": "flip", "axis": "horizontal"}, {"kind": "flip", "axis": "vertical"})
    assert match({"kind": "rotation", "k": 1}, {"kind": "rotation", "k": 5})
    assert not match({"kind": "channel-order"}, None)
    assert detection.rate_cell(9, 10).startswith("9/10 = 90 % [")
