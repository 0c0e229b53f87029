"""Benchmark: whylow's leakage and label-noise searches next to cleanlab on CIFAR-10-sized data.

Data (synthetic, seeded): 50,000 training and 10,000 test images, 32×32×3
uint8, 10 classes. Each image is its class template times a random gain,
plus a random low-frequency pattern and pixel noise, so images of a class
are similar but not identical. Injected faults, with ground truth:

* leakage: 1,000 test images are exact copies of distinct training images
  and 1,000 are copies with Gaussian noise (sd 2 grey levels);
* label noise: 8% of test labels and 8% of training labels are flipped.

Predictions are given (as in a prediction-only diagnosis): a synthetic model
that is right about 88% of the time on the true class (training rows and
leaked test rows get the more confident in-sample predictions).

Compared, each timed with wall-clock time and traced peak memory
(``tracemalloc``, which sees numpy's allocations):

* whylow ``train-test-leakage`` (fingerprints + 8×8 embedding + calibrated
  nearest neighbours, train 50k vs test 10k) vs cleanlab Datalab's
  ``near_duplicate`` issue search on the 60k images (Datalab has no notion
  of splits: it searches all pairs). Its search is too slow for the time
  budget at full size (about 1 minute for the 60k embeddings on a quiet
  2-core machine, 4 minutes on a loaded one), so by default it runs on a
  20k subset of whylow's 32-d embedding (whylow's check is timed on the
  same subset too) and on raw 3,072-d pixels of a 5k subset;
  ``--datalab-n 60000`` runs it at full size.
* whylow ``label-noise`` (confident learning on the test predictions,
  confirmed by a proxy cross-fitted within test, plus the training-label
  search with a proxy cross-fitted on train) vs cleanlab's
  ``find_label_issues`` on the same test predictions and on the same
  out-of-sample proxy probabilities of the training split.

Run: ``python benchmarks/labels_bench.py [--quick]`` (about 2-4 minutes on two
cores; ``--quick`` uses a tenth of the data). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
import warnings

import numpy as np


def make_data(n_train: int = 50_000, n_test: int = 10_000, n_classes: int = 10, seed: int = 0):
    """Synthetic CIFAR-sized images, labels and predictions with known leaks and label flips."""
    rng = np.random.default_rng(seed)
    templates = rng.uniform(40, 215, size=(n_classes, 4, 4, 3))
    templates = np.repeat(np.repeat(templates, 8, axis=1), 8, axis=2)

    def images(y):
        out = np.empty((len(y), 32, 32, 3), dtype=np.uint8)
        for s in range(0, len(y), 5000):
            yy = y[s : s + 5000]
            low = rng.normal(0, 35, size=(len(yy), 4, 4, 3))
            low = np.repeat(np.repeat(low, 8, axis=1), 8, axis=2)
            gain = rng.uniform(0.7, 1.3, size=(len(yy), 1, 1, 1))
            img = templates[yy] * gain + low + rng.normal(0, 20, size=(len(yy), 32, 32, 3))
            out[s : s + 5000] = np.clip(img, 0, 255).astype(np.uint8)
        return out

    y_train = rng.integers(0, n_classes, n_train)
    y_test = rng.integers(0, n_classes, n_test)
    x_train, x_test = images(y_train), images(y_test)
    # leakage: exact and near copies of distinct training images
    n_leak = n_test // 10
    slots = rng.choice(n_test, size=2 * n_leak, replace=False)
    sources = rng.choice(n_train, size=2 * n_leak, replace=False)
    x_test[slots[:n_leak]] = x_train[sources[:n_leak]]
    noisy = x_train[sources[n_leak:]].astype(np.float64) + rng.normal(0, 2.0, size=(n_leak, 32, 32, 3))
    x_test[slots[n_leak:]] = np.clip(np.round(noisy), 0, 255).astype(np.uint8)
    y_test[slots] = y_train[sources]

    def predictions(y, strength):
        logits = rng.normal(0, 1.3, size=(len(y), n_classes))
        logits[np.arange(len(y)), y] += strength
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        return p / p.sum(axis=1, keepdims=True)

    p_train = predictions(y_train, 5.0)  # in-sample: confident
    p_test = predictions(y_test, 3.2)
    p_test[slots] = predictions(y_test[slots], 5.0)  # the model has seen the leaked images
    # label noise in the given labels (the predictions follow the true classes)
    def flip(y, frac):
        y = y.copy()
        idx = np.sort(rng.choice(len(y), size=int(frac * len(y)), replace=False))
        y[idx] = (y[idx] + rng.integers(1, n_classes, len(idx))) % n_classes
        return y, idx

    clean_slots = np.setdiff1d(np.arange(n_test), slots)
    y_test_noisy = y_test.copy()
    flip_test = np.sort(rng.choice(clean_slots, size=int(0.08 * n_test), replace=False))
    y_test_noisy[flip_test] = (y_test[flip_test] + rng.integers(1, n_classes, len(flip_test))) % n_classes
    y_train_noisy, flip_train = flip(y_train, 0.08)
    return {
        "x_train": x_train, "y_train": y_train_noisy, "p_train": p_train,
        "x_test": x_test, "y_test": y_test_noisy, "p_test": p_test,
        "leak_exact": np.sort(slots[:n_leak]), "leak_near": np.sort(slots[n_leak:]), "leak_slots": slots, "leak_sources": sources,
        "flip_test": flip_test, "flip_train": flip_train,
    }


def measure(fn):
    """Run ``fn()``; return (result, seconds, peak traced MiB)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    t0 = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return out, seconds, peak / 2**20


def _context(d):
    from whylow.context import Context
    from whylow.inputs import Split, prepare_splits

    splits, names = prepare_splits({
        "train": Split(x=d["x_train"], y=d["y_train"], probs=d["p_train"]),
        "test": Split(x=d["x_test"], y=d["y_test"], probs=d["p_test"]),
    })
    return Context(splits=splits, n_classes=len(names), class_names=names, seed=0)


def _overlap(found: np.ndarray, truth: np.ndarray) -> str:
    found, truth = set(found.tolist()), set(truth.tolist())
    tp = len(found & truth)
    return f"precision {tp / max(len(found), 1):.3f}, recall {tp / max(len(truth), 1):.3f}"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a tenth of the data")
    ap.add_argument("--datalab-n", type=int, default=20_000, help="images (train + test) for Datalab on the embedding")
    ap.add_argument("--datalab-pixels", type=int, default=5_000, help="images for Datalab on raw pixels")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    scale = 10 if args.quick else 1
    from cleanlab import Datalab
    from cleanlab.filter import find_label_issues as cl_find_label_issues

    from whylow.checks.label_noise import LabelNoiseCheck, cross_fitted_probs, find_label_issues
    from whylow.checks.leakage import LeakageCheck, _Embedder, compact_features

    t0 = time.perf_counter()
    d = make_data(50_000 // scale, 10_000 // scale)
    n_tr, n_te = len(d["y_train"]), len(d["y_test"])
    rows = []
    print(f"data: {n_tr} train + {n_te} test images 32×32×3 uint8, 10 classes ({time.perf_counter() - t0:.1f} s to generate)\n")

    # -- leakage ------------------------------------------------------------------
    ctx = _context(d)
    findings, s, mb = measure(lambda: LeakageCheck().run(ctx))
    ev = next(sp for sp in findings[0].evidence["splits"] if sp["split"] == "test") if findings else None
    # recover the flagged indices for scoring (the evidence keeps only examples)
    chk = LeakageCheck()
    found = _leak_indices(ctx, chk)
    truth = np.concatenate([d["leak_exact"], d["leak_near"]])
    rows.append((f"leakage: train {n_tr} vs test {n_te}", "whylow train-test-leakage", s, mb,
                 f"{ev['n_exact']} exact + {ev['n_near']} near of {len(d['leak_exact'])} + {len(d['leak_near'])} injected; {_overlap(found, truth)}" if ev else "none found"))

    # Datalab searches all pairs of one dataset: give it train+test, on a subset that keeps the 5:1 ratio
    m = min(args.datalab_n // scale, n_tr + n_te)
    m_te = m // 6
    sub_tr, sub_te = np.arange(m - m_te), np.arange(m_te)
    sub = {k: v for k, v in d.items()}
    for key in ("x_train", "y_train", "p_train"):
        sub[key] = d[key][sub_tr]
    for key in ("x_test", "y_test", "p_test"):
        sub[key] = d[key][sub_te]
    # only leaks whose training source is inside the subset can be found there
    inside = (d["leak_slots"] < m_te) & (d["leak_sources"] < len(sub_tr))
    truth_sub = d["leak_slots"][inside]
    ctx_sub = _context(sub)
    findings, s, mb = measure(lambda: LeakageCheck().run(ctx_sub))
    found_sub = _leak_indices(ctx_sub, chk)
    which = "subset" if m < n_tr + n_te else "same data again"
    rows.append((f"leakage: {which}, train {len(sub_tr)} vs test {len(sub_te)}", "whylow train-test-leakage", s, mb,
                 f"{len(found_sub)} test rows flagged ({len(truth_sub)} leaks have their source in the subset); {_overlap(found_sub, truth_sub)}"))
    feats = np.concatenate([compact_features(sub["x_train"], "NHWC"), compact_features(sub["x_test"], "NHWC")])
    emb = _Embedder(feats[: len(sub_tr)], True, 0)(feats)
    labels_all = np.concatenate([sub["y_train"], sub["y_test"]])

    def datalab(features, labels):
        lab = Datalab(data={"label": labels}, label_name="label", verbosity=0)
        lab.find_issues(features=features, issue_types={"near_duplicate": {}})
        return lab.get_issues("near_duplicate")

    issues, s, mb = measure(lambda: datalab(emb, labels_all))
    flagged = np.flatnonzero(issues["is_near_duplicate_issue"].to_numpy())
    test_flagged = flagged[flagged >= len(sub_tr)] - len(sub_tr)
    rows.append((f"leakage: {'subset of ' if m < n_tr + n_te else ''}{m} images, whylow's {emb.shape[1]}-d embedding", "cleanlab Datalab near_duplicate", s, mb,
                 f"{len(flagged)} flagged among all {m} (both members of each pair, and within-split pairs); "
                 f"{len(test_flagged)} test rows; {_overlap(test_flagged, truth_sub)}"))
    mp = min(args.datalab_pixels // scale, m)
    mp_te = mp // 6
    pix = np.concatenate([sub["x_train"][: mp - mp_te], sub["x_test"][:mp_te]]).reshape(mp, -1).astype(np.float32)
    issues, s, mb = measure(lambda: datalab(pix, np.concatenate([sub["y_train"][: mp - mp_te], sub["y_test"][:mp_te]])))
    rows.append((f"leakage: subset of {mp} images, raw {pix.shape[1]}-d pixels", "cleanlab Datalab near_duplicate", s, mb,
                 f"{int(issues['is_near_duplicate_issue'].sum())} flagged"))

    # -- label noise -------------------------------------------------------------
    ctx = _context(d)
    findings, s, mb = measure(lambda: LabelNoiseCheck().run(ctx))
    splits = {sp["split"]: sp for sp in findings[0].evidence["splits"]} if findings else {}
    te = splits.get("test", {})
    tr = splits.get("train", {})
    rows.append((f"label noise: full check (test {n_te} + train {n_tr})", "whylow label-noise", s, mb,
                 f"test: {te.get('n_flagged')} confirmed flags ({len(d['flip_test'])} injected), train: {tr.get('n_flagged')} proxy flags ({len(d['flip_train'])} injected)"))
    flags, s, mb = measure(lambda: find_label_issues(d["y_test"], d["p_test"]))
    rows.append((f"label noise: test {n_te}, given probs", "whylow find_label_issues (numpy CL)", s, mb, _overlap(np.flatnonzero(flags), d["flip_test"])))
    cl, s, mb = measure(lambda: cl_find_label_issues(d["y_test"], d["p_test"], n_jobs=1))
    rows.append((f"label noise: test {n_te}, given probs", "cleanlab find_label_issues", s, mb,
                 f"{_overlap(np.flatnonzero(cl), d['flip_test'])}; agreement with whylow (Jaccard) {np.sum(cl & flags) / max(np.sum(cl | flags), 1):.3f}"))
    feats_tr = compact_features(d["x_train"], "NHWC")
    proxy, s_proxy, mb_proxy = measure(lambda: cross_fitted_probs(feats_tr, d["y_train"], 10, seed=0))
    rows.append((f"label noise: train {n_tr}, proxy cross-fit", "whylow cross_fitted_probs (5-fold LDA)", s_proxy, mb_proxy,
                 f"proxy accuracy {np.mean(proxy.argmax(1) == d['y_train']):.3f} on the given labels"))
    flags, s, mb = measure(lambda: find_label_issues(d["y_train"], proxy))
    rows.append((f"label noise: train {n_tr}, proxy probs", "whylow find_label_issues (numpy CL)", s, mb, _overlap(np.flatnonzero(flags), d["flip_train"])))
    cl, s, mb = measure(lambda: cl_find_label_issues(d["y_train"], proxy, n_jobs=1))
    rows.append((f"label noise: train {n_tr}, proxy probs", "cleanlab find_label_issues", s, mb,
                 f"{_overlap(np.flatnonzero(cl), d['flip_train'])}; agreement with whylow (Jaccard) {np.sum(cl & flags) / max(np.sum(cl | flags), 1):.3f}"))

    print("| task | implementation | time (s) | peak traced memory (MiB) | result |")
    print("|---|---|---:|---:|---|")
    for task, impl, s, mb, note in rows:
        print(f"| {task} | {impl} | {s:.2f} | {mb:.0f} | {note} |")
    print(f"\ninput size: x_train {d['x_train'].nbytes / 2**20:.0f} MiB, x_test {d['x_test'].nbytes / 2**20:.0f} MiB; "
          f"total {time.perf_counter() - t0:.0f} s")


def _leak_indices(ctx, chk) -> np.ndarray:
    """All test indices the leakage check flags (re-running its measurement, which is cached)."""
    from whylow.checks.leakage import _Embedder

    train, test = ctx.split("train"), ctx.split("test")
    tr_scan, te_scan = ctx.cache["scan:train:False"], ctx.cache["scan:test:False"]
    embed = _Embedder(tr_scan["features"], True, ctx.seed)
    tr_emb = embed(tr_scan["features"])
    valid = embed.valid(tr_scan["features"])
    threshold, _ = chk._calibrate(ctx, tr_emb, valid, tr_scan["fingerprints"], True)
    res = chk._measure(ctx, test, te_scan, train, tr_scan, embed, tr_emb, valid, threshold, False)
    return np.flatnonzero(res["dup"])


if __name__ == "__main__":
    main()
