"""train-test-leakage: fingerprints, nearest neighbours, exact and near duplicates, scenarios, healthy data."""

from __future__ import annotations

import numpy as np
import pytest

import whylow
from whylow.checks.leakage import compact_features, find_exact_matches, nearest_neighbours, row_fingerprints
from whylow.scenarios import build


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Train the scenario CNNs on one thread: on a shared 2-core machine, two threads are several times slower."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(before)


def _leak_finding(report):
    found = [f for f in report.findings if f.code == "train-test-leakage"]
    return found[0] if found else None


def _split_ev(finding, name):
    return next(s for s in finding.evidence["splits"] if s["split"] == name)


def _textured(n, seed, size=16):
    """Natural-looking random images: smooth blobs plus noise, uint8 N×H×W×3."""
    rng = np.random.default_rng(seed)
    low = rng.uniform(0, 255, size=(n, 4, 4, 3))
    img = np.repeat(np.repeat(low, size // 4, axis=1), size // 4, axis=2) + rng.normal(0, 25, size=(n, size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


# -- building blocks ---------------------------------------------------------------------
def test_fingerprints_equal_rows_equal_and_distinct_rows_differ():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(500, 5, 5, 3), dtype=np.uint8)
    x[10] = x[3]
    fp = row_fingerprints(x, chunk=64)
    assert fp[10] == fp[3]
    assert len(np.unique(fp)) == 499
    # dtype-independent when hashed as float
    np.testing.assert_array_equal(row_fingerprints(x, as_float=True), row_fingerprints(x.astype(np.float32), as_float=True))


def test_exact_matches_are_confirmed_rows():
    rng = np.random.default_rng(1)
    ref = rng.integers(0, 256, size=(300, 12), dtype=np.uint8)
    query = rng.integers(0, 256, size=(100, 12), dtype=np.uint8)
    query[[5, 50, 99]] = ref[[7, 8, 9]]
    q, r = find_exact_matches(row_fingerprints(ref), row_fingerprints(query), ref, query)
    assert q.tolist() == [5, 50, 99] and r.tolist() == [7, 8, 9]
    # a forged fingerprint collision is rejected by the row comparison
    fp_q = row_fingerprints(query)
    fp_q[0] = row_fingerprints(ref)[0]
    q, _ = find_exact_matches(row_fingerprints(ref), fp_q, ref, query)
    assert 0 not in q.tolist()


def test_nearest_neighbours_match_sklearn_and_radius_search():
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(2)
    ref = rng.normal(size=(5000, 16)).astype(np.float32)
    query = rng.normal(size=(700, 16)).astype(np.float32)
    d, i = nearest_neighbours(query, ref, block_q=128, block_r=1000)
    d_sk, i_sk = NearestNeighbors(n_neighbors=1).fit(ref).kneighbors(query)
    np.testing.assert_array_equal(i, i_sk[:, 0])
    np.testing.assert_allclose(d, d_sk[:, 0], atol=1e-4)
    radius = float(np.quantile(d_sk, 0.2))
    dr, ir = nearest_neighbours(query, ref, radius=radius)
    inside = d_sk[:, 0] <= radius
    np.testing.assert_array_equal(ir[inside], i_sk[inside, 0])
    assert np.all(ir[~inside] == -1) and np.all(np.isinf(dr[~inside]))
    # self-exclusion
    d_self, i_self = nearest_neighbours(ref[:300], ref, exclude_self=np.arange(300))
    assert not np.any(i_self == np.arange(300)) and d_self.min() > 0


def test_compact_features_area_average():
    x = np.arange(2 * 16 * 16, dtype=np.uint8).reshape(2, 16, 16)
    f = compact_features(x, "NHW")
    assert f.shape == (2, 64)
    np.testing.assert_allclose(f[0, 0], x[0, :2, :2].mean())
    chw = np.moveaxis(np.stack([x, x // 2], axis=-1), -1, 1)
    np.testing.assert_allclose(compact_features(chw, "NCHW").reshape(2, 8, 8, 2)[..., 0], f.reshape(2, 8, 8))


# -- the check on planted duplicates -------------------------------------------------------
def _random_model_split(x, y, seed, acc=0.8, k=4):
    rng = np.random.default_rng(seed)
    pred = np.where(rng.random(len(y)) < acc, y, rng.integers(0, k, len(y)))
    probs = np.full((len(y), k), 0.1 / (k - 1))
    probs[np.arange(len(y)), pred] = 0.9
    return whylow.Split(x=x, y=y, probs=probs)


def test_exact_and_near_duplicates_counted_exactly():
    rng = np.random.default_rng(3)
    xtr, xte = _textured(1500, 0), _textured(400, 1)
    ytr, yte = rng.integers(0, 4, 1500), rng.integers(0, 4, 400)
    src = rng.choice(1500, size=60, replace=False)
    xte[:30] = xtr[src[:30]]
    noisy = xtr[src[30:]].astype(float) + rng.normal(0, 2.0, size=(30, 16, 16, 3))
    xte[30:60] = np.clip(np.round(noisy), 0, 255).astype(np.uint8)
    yte[:60] = ytr[src]
    report = whylow.diagnose(test=_random_model_split(xte, yte, 0), train=(xtr, ytr))
    f = _leak_finding(report)
    ev = _split_ev(f, "test")
    assert ev["n_exact"] == 30 and ev["n_near"] == 30
    assert f.severity == "critical"  # 15% of the test split
    pairs = {(e["test_index"], e["train_index"]) for e in ev["examples"]}
    assert pairs <= {(i, int(s)) for i, s in enumerate(src)}
    assert ev["same_label_fraction"] == 1.0
    assert report.findings[0].code == "train-test-leakage"


def test_no_duplicates_no_finding_and_dtype_mismatch_still_exact():
    rng = np.random.default_rng(4)
    xtr, xte = _textured(1000, 5), _textured(300, 6)
    report = whylow.diagnose(test=(xte, rng.integers(0, 3, 300)), train=(xtr, rng.integers(0, 3, 1000)))
    assert _leak_finding(report) is None
    xte[:20] = xtr[:20]
    report = whylow.diagnose(
        test=(xte.astype(np.float32), rng.integers(0, 3, 300)), train=(xtr, rng.integers(0, 3, 1000))
    )
    ev = _split_ev(_leak_finding(report), "test")
    assert ev["n_exact"] == 20


def test_tabular_exact_duplicates_and_no_false_near():
    rng = np.random.default_rng(5)
    xtr, xte = rng.random((1000, 10)), rng.random((200, 10))
    report = whylow.diagnose(test=(xte, rng.integers(0, 2, 200)), train=(xtr, rng.integers(0, 2, 1000)))
    assert _leak_finding(report) is None
    xte[:10] = xtr[100:110]
    report = whylow.diagnose(test=(xte, rng.integers(0, 2, 200)), train=(xtr, rng.integers(0, 2, 1000)))
    f = _leak_finding(report)
    ev = _split_ev(f, "test")
    assert ev["n_exact"] == 10 and ev["n_near"] == 0
    assert f.severity == "warning"  # 5%: significant, below the critical fraction


# -- scenarios ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def leak():
    sc = build("leakage", seed=0)
    return sc, sc.diagnose()


def test_leakage_is_top_finding(leak, validate_report):
    sc, report = leak
    top = report.findings[0]
    assert top.code == "train-test-leakage" and top.severity == "critical"
    ev = _split_ev(top, "test")
    planted = set(sc.notes["test_slots"])
    assert abs(ev["n_duplicated"] - len(planted)) <= 2
    assert all(e["test_index"] in planted for e in ev["examples"])
    sources = dict(zip(sc.notes["test_slots"], sc.notes["train_sources"]))
    assert all(sources[e["test_index"]] == e["train_index"] for e in ev["examples"])
    assert {"accuracy_all", "accuracy_non_duplicated", "accuracy_duplicated"} <= set(ev)
    assert _split_ev(top, "val")["n_duplicated"] == 0
    validate_report(report.to_dict())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_healthy_digits_not_flagged(seed):
    """Natural similar digits (many 1s look alike) are not near duplicates."""
    report = build("none", seed=seed).diagnose()
    f = _leak_finding(report)
    assert f is None or f.severity == "info"
    assert {c.name: c.status for c in report.checks}["train-test-leakage"] == "ran"
