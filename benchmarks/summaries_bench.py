"""Benchmark: streaming input summaries and the input-side checks on CIFAR-10-sized data, next to peers.

Run::

    python benchmarks/summaries_bench.py           # 50k train + 10k test, 32×32×3 uint8 (about 2 minutes)
    python benchmarks/summaries_bench.py --quick   # 5k + 1k, a smoke test

Data: the synthetic CIFAR-10-sized images of ``benchmarks/speed.py``
(smooth class patterns, per-image brightness / contrast jitter, pixel
noise; no download), train and test drawn from one distribution (so the
shift check should find nothing), with predictions for both splits.

Measured, numpy/BLAS limited to one thread (``threadpoolctl``) so the
throughput is per core:

* ``summarise`` of each split (in memory, and the training split from a
  memory-mapped ``.npy``): wall time (best of ``--repeats``), throughput in
  MB of pixels per second, and peak traced memory (``tracemalloc``, in a
  separate run so tracing does not slow the timed one). The summary keeps
  exact byte histograms, Chan moments, lattices, per-image properties and a
  bottom-k thumbnail sample;
* the ``preprocessing-mismatch`` estimate and the ``covariate-shift`` check
  on a `whylow.context.Context` (summaries cached, so this is the
  judgement's own cost), and the whole of ``covariate-shift`` from cold;
* peers on the same arrays: numpy on the whole array (float32 copy, per-image
  brightness / contrast / gradient sharpness, per-channel moments) followed
  by scipy's ``ks_2samp`` on each property — the usual non-streaming way to
  compare image properties; and cleanlab Datalab's ``non_iid`` issue check
  on 8×8×3 pooled features of the test split (cleanvision, which runs
  Datalab's image-property checks, is not installed here).

Throughput is given per wall-clock second and per CPU second of this
process (they differ when other processes compete for the cores).
Prints a Markdown table; ``--json PATH`` writes the raw numbers.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import fmt_bytes, fmt_seconds, machine_line, markdown_table, silenced  # noqa: E402
from speed import class_probs, cifar_like_images, features_for_datalab  # noqa: E402


def make_data(n_train: int, n_test: int, seed: int = 0):
    """Train and test images from one distribution (one set of class patterns), with predictions."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n_train + n_test).astype(np.int64)
    x = cifar_like_images(n_train + n_test, y, seed=seed)
    y_tr, y_te = y[:n_train], y[n_train:]
    p_tr = class_probs(y_tr, 10, 6.0, temperature=0.7, seed=seed + 1)
    p_te = class_probs(y_te, 10, 3.5, temperature=0.7, seed=seed + 2)
    return (x[:n_train], y_tr, p_tr), (x[n_train:], y_te, p_te)


def _timed(fn, repeats: int = 1):
    """Best wall time and CPU time of ``repeats`` calls; returns (wall, cpu, value)."""
    best_wall, best_cpu, value = float("inf"), float("inf"), None
    for _ in range(max(1, repeats)):
        gc.collect()
        w0, c0 = time.perf_counter(), time.process_time()
        value = fn()
        best_wall = min(best_wall, time.perf_counter() - w0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return best_wall, best_cpu, value


def _peak(fn) -> int:
    """Peak memory traced by ``tracemalloc`` while ``fn`` runs (numpy buffers included; memmap pages not)."""
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def naive_properties(x: np.ndarray) -> dict:
    """The non-streaming peer: the whole split as float32, per-image properties and per-channel moments."""
    xf = x.astype(np.float32)
    grey = xf.mean(axis=-1)
    props = {
        "brightness": grey.mean(axis=(1, 2)),
        "contrast": grey.std(axis=(1, 2)),
        "sharpness": np.sqrt(
            (np.diff(grey, axis=1) ** 2).mean(axis=(1, 2)) + (np.diff(grey, axis=2) ** 2).mean(axis=(1, 2))
        ),
    }
    props["channel_mean"] = xf.mean(axis=(0, 1, 2))
    props["channel_std"] = xf.std(axis=(0, 1, 2))
    return props


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5k + 1k images instead of 50k + 10k")
    parser.add_argument("--repeats", type=int, default=2, help="timed repeats; the best is reported")
    parser.add_argument("--json", type=Path, help="write the raw numbers here")
    parser.add_argument("--no-datalab", action="store_true", help="skip cleanlab Datalab")
    args = parser.parse_args(argv)

    from threadpoolctl import threadpool_limits

    from whylow.checks.preprocessing import preprocessing_estimate
    from whylow.checks.shift import CovariateShiftCheck
    from whylow.context import Context
    from whylow.inputs import Split, prepare_splits
    from whylow.summaries import split_summary, summarise

    n_train, n_test = (5_000, 1_000) if args.quick else (50_000, 10_000)
    t0 = time.perf_counter()
    (x_tr, y_tr, p_tr), (x_te, y_te, p_te) = make_data(n_train, n_test, seed=0)
    print(f"data: {n_train:,} + {n_test:,} images 32x32x3 uint8 in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    mb_tr, mb_te = x_tr.nbytes / 1e6, x_te.nbytes / 1e6
    rows, raw = [], {}

    def add(name, what, wall, cpu, peak, mb=None, note=""):
        raw[name] = {"wall_s": wall, "cpu_s": cpu, "peak_bytes": peak, "mb": mb, "note": note}
        rows.append([
            name,
            what,
            fmt_seconds(wall),
            fmt_seconds(cpu),
            f"{mb / wall:.0f} MB/s" if mb and wall else "—",
            f"{mb / cpu:.0f} MB/s" if mb and cpu else "—",
            fmt_bytes(peak),
            note,
        ])
        print(f"  {name}: {wall:.2f} s", file=sys.stderr)

    import scipy.stats  # noqa: F401 - imported before timing, as in a diagnosis
    import sklearn.linear_model  # noqa: F401

    with threadpool_limits(1):
        # -- whylow summaries -----------------------------------------------------------------
        w, c, _ = _timed(lambda: summarise(x_tr, layout="NHWC", name="train"), args.repeats)
        add("whylow summarise (train)", f"{n_train:,} images, in memory", w, c, _peak(lambda: summarise(x_tr, layout="NHWC")), mb_tr,
            "exact byte histograms, moments, lattice, 6 properties, thumbnails")
        w, c, _ = _timed(lambda: summarise(x_te, layout="NHWC", name="test"), args.repeats)
        add("whylow summarise (test)", f"{n_test:,} images, in memory", w, c, _peak(lambda: summarise(x_te, layout="NHWC")), mb_te)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "train.npy"
            np.save(path, x_tr)
            mm = np.load(path, mmap_mode="r")
            w, c, _ = _timed(lambda: summarise(mm, layout="NHWC"), args.repeats)
            add("whylow summarise (train, memmap)", f"{n_train:,} images, .npy memory-mapped", w, c,
                _peak(lambda: summarise(mm, layout="NHWC")), mb_tr, "memory bounded by the chunk, not N")
            del mm

        # -- whylow checks on a context -------------------------------------------------------------
        def make_ctx():
            splits, names = prepare_splits({"train": Split(x=x_tr, y=y_tr, probs=p_tr), "test": Split(x=x_te, y=y_te, probs=p_te)})
            return Context(splits=splits, n_classes=len(names), class_names=names)

        ctx = make_ctx()
        split_summary(ctx, "train")
        split_summary(ctx, "test")
        w, c, _ = _timed(lambda: preprocessing_estimate(make_warm(ctx), "test"), args.repeats)
        add("whylow preprocessing estimate", "quantile fit, 6 channel orders, KS", w, c, None, None, "summaries cached")
        w, c, found = _timed(lambda: CovariateShiftCheck().run(make_warm(ctx)), args.repeats)
        add("whylow covariate-shift check", "KS x6 + Holm, domain classifier, BBSD", w, c, _peak(lambda: CovariateShiftCheck().run(make_warm(ctx))),
            None, f"summaries cached; {len(found)} finding(s)")
        w, c, found = _timed(lambda: CovariateShiftCheck().run(make_ctx()), 1)
        add("whylow covariate-shift, cold", "summaries of both splits + the check", w, c, None, mb_tr + mb_te, "what a diagnosis pays once")

        # -- peers --------------------------------------------------------------------------------------
        from scipy.stats import ks_2samp

        def peer():
            a, b = naive_properties(x_tr), naive_properties(x_te)
            return {k: ks_2samp(a[k], b[k]).pvalue for k in ("brightness", "contrast", "sharpness")}

        w, c, _ = _timed(peer, 1)
        add("numpy whole-array + scipy ks_2samp", "3 properties + channel moments, both splits", w, c, _peak(peer), mb_tr + mb_te,
            "float32 copy of the whole split")

    if not args.no_datalab:
        from cleanlab import Datalab

        feats = features_for_datalab(x_te)

        def datalab():
            with silenced():
                lab = Datalab(data={"label": y_te}, label_name="label", verbosity=0)
                lab.find_issues(features=feats, issue_types={"non_iid": {}})
            return lab

        w, c, _ = _timed(datalab, 1)
        add("cleanlab Datalab non_iid", f"test split, {n_test:,} x 192 pooled features", w, c, None, mb_te,
            "kNN graph; not a train-vs-test test")

    headers = ["what", "data", "wall", "CPU", "MB/s (wall)", "MB/s (CPU)", "peak traced memory", "note"]
    table = markdown_table(headers, rows, "llrrrrrl")
    print(table)
    print()
    print(machine_line())
    if args.json:
        args.json.write_text(json.dumps(raw, indent=2))
    return 0


def make_warm(ctx):
    """A fresh context that shares ``ctx``'s splits and cached summaries (but no cached judgement)."""
    from whylow.context import Context

    cache = {k: v for k, v in ctx.cache.items() if k.startswith("summary:") and k.count(":") == 1}
    return Context(splits=ctx.splits, n_classes=ctx.n_classes, class_names=ctx.class_names, cache=cache)


if __name__ == "__main__":
    raise SystemExit(main())
