"""Speed of whylow.metrics against scikit-learn and netcal on ImageNet-sized output.

Run::

    python benchmarks/metrics_bench.py                 # 50,000 x 1,000, float32 and float64
    python benchmarks/metrics_bench.py --n-samples 5000 --n-classes 100   # quick

Generates seeded softmax predictions, times each whylow metric and its
scikit-learn / netcal counterpart (best of `--repeats` runs, all on the same
arrays), checks that the values agree, and prints one Markdown table per
dtype. Exits with status 1 if whylow is slower than scikit-learn (or netcal)
on a metric they share, or if a value disagrees.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable

import numpy as np

from whylow import metrics as M


def make_predictions(n_samples: int, n_classes: int, dtype, seed: int):
    """Seeded softmax outputs of a moderately accurate, overconfident model.

    Logits are Gaussian noise plus a bump on the true class whose size varies
    per sample (easy and hard samples), sharpened by a factor 5 so the model
    is overconfident, as real CNNs are (at 1,000 classes: accuracy ~0.70,
    mean confidence ~0.83, ECE ~0.12).
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, size=n_samples)
    logits = rng.standard_normal((n_samples, n_classes), dtype=np.float32)
    logits[np.arange(n_samples), y] += rng.gamma(4.0, 1.2, size=n_samples).astype(np.float32)
    logits *= np.float32(5.0)
    logits -= logits.max(axis=1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=1, keepdims=True)
    return y, logits.astype(dtype, copy=False)


def best_of(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    best, value = float("inf"), None
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - t0)
    return best, value


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    import sklearn

    parts = [f"{cpu}, {cores} cores", f"Python {platform.python_version()}",
             f"numpy {np.__version__}", f"scikit-learn {sklearn.__version__}"]
    try:
        import netcal

        parts.append(f"netcal {netcal.__version__}")
    except ImportError:
        parts.append("netcal not installed")
    if hasattr(os, "getloadavg"):
        # other processes compete for the cores: wall times are only comparable within a run
        parts.append("load average %.1f" % os.getloadavg()[0])
    return "; ".join(parts)


def tasks(y, probs, n_classes):
    """(name, whylow, scikit-learn, netcal, compare) per metric.

    Peers get exactly what a user would pass them; where they need hard
    predictions, the argmax is inside their timed call, as it is inside
    whylow's.
    """
    import sklearn.metrics as skm

    labels = np.arange(n_classes)
    y_pred = probs.argmax(axis=1)  # given to both sides for confusion_matrix
    try:
        from netcal.metrics import ECE as NetcalECE
    except ImportError:
        NetcalECE = None

    def close(a, b, tol=1e-6):
        return bool(np.allclose(np.asarray(a, float), np.asarray(b, float), rtol=tol, atol=tol))

    def per_class_close(ours, ref):
        return all(close(ours[k], r) for k, r in zip(("precision", "recall", "f1", "support"), ref))

    return [
        ("accuracy", lambda: M.accuracy(y, probs),
         lambda: skm.accuracy_score(y, probs.argmax(axis=1)), None, close),
        ("balanced_accuracy", lambda: M.balanced_accuracy(y, probs),
         lambda: skm.balanced_accuracy_score(y, probs.argmax(axis=1)), None, close),
        # sklearn clips at the dtype's machine epsilon, whylow at eps=1e-15 by default:
        # the agreement check uses sklearn's clipping
        ("log_loss", lambda: M.log_loss(y, probs),
         lambda: skm.log_loss(y, probs, labels=labels), None,
         lambda a, b: close(M.log_loss(y, probs, eps=float(np.finfo(probs.dtype).eps)), b, 1e-5)),
        ("brier", lambda: M.brier_score(y, probs),
         lambda: skm.brier_score_loss(y, probs, labels=labels, scale_by_half=False), None,
         lambda a, b: close(a, b, 1e-5)),
        ("confusion_matrix", lambda: M.confusion_matrix(y, y_pred, n_classes),
         lambda: skm.confusion_matrix(y, y_pred, labels=labels), None,
         lambda a, b: bool(np.array_equal(a, b))),
        ("per_class_metrics", lambda: M.per_class_metrics(y, probs),
         lambda: skm.precision_recall_fscore_support(
             y, probs.argmax(axis=1), labels=labels, zero_division=0),
         None, per_class_close),
        ("ece (15 bins)", lambda: M.ece(y, probs), None,
         (lambda: NetcalECE(bins=15).measure(probs, y)) if NetcalECE else None,
         lambda a, b: close(a, b, 1e-4)),
        ("mean_confidence", lambda: M.mean_confidence(probs), None, None, None),
        ("reliability_curve", lambda: M.reliability_curve(y, probs), None, None, None),
        ("smooth_ece", lambda: M.smooth_ece(y, probs), None, None, None),
        ("summary (7 metrics)", lambda: M.summary(y, probs), None, None, None),
        ("bootstrap_ci (5 metrics, 200)", lambda: M.bootstrap_ci(y, probs), None, None, None),
        ("CalibrationAccumulator (10 chunks)", lambda: _stream(y, probs, n_classes),
         None, None, None),
    ]


def _stream(y, probs, n_classes):
    acc = M.CalibrationAccumulator(n_classes)
    for part in np.array_split(np.arange(len(y)), 10):
        acc.update(y[part[0] : part[-1] + 1], probs[part[0] : part[-1] + 1])
    return acc.compute()


def fmt(t):
    return "—" if t is None else f"{t:.4f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-samples", type=int, default=50_000)
    ap.add_argument("--n-classes", type=int, default=1_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    args = ap.parse_args(argv)

    warnings.filterwarnings("ignore")  # sklearn's row-sum warnings on float32 softmax
    print(f"Machine: {machine()}")
    problems = []
    for dtype in args.dtypes:
        y, probs = make_predictions(args.n_samples, args.n_classes, np.dtype(dtype), args.seed)
        print()
        print(f"### {args.n_samples:,} x {args.n_classes:,} {dtype} "
              f"(accuracy {M.accuracy(y, probs):.3f}, mean confidence "
              f"{M.mean_confidence(probs):.3f}); best of {args.repeats}")
        print()
        print("ratio = peer time / whylow time (scikit-learn, else netcal): above 1 means "
              "whylow is faster.")
        print()
        print("| metric | whylow (s) | scikit-learn (s) | netcal (s) | ratio |")
        print("|---|---:|---:|---:|---:|")
        for name, ours, sk, nc, compare in tasks(y, probs, args.n_classes):
            t_ours, v_ours = best_of(ours, args.repeats)
            t_sk = t_nc = None
            ratio = "—"
            if sk is not None:
                t_sk, v_sk = best_of(sk, args.repeats)
                ratio = f"{t_sk / t_ours:.1f}x"
                if t_ours > t_sk:
                    problems.append(
                        f"{dtype} {name}: whylow {t_ours:.4f}s > scikit-learn {t_sk:.4f}s")
                if compare is not None and not compare(v_ours, v_sk):
                    problems.append(f"{dtype} {name}: values differ from scikit-learn")
            if nc is not None:
                t_nc, v_nc = best_of(nc, args.repeats)
                if sk is None:
                    ratio = f"{t_nc / t_ours:.1f}x"
                    if t_ours > t_nc:
                        problems.append(
                            f"{dtype} {name}: whylow {t_ours:.4f}s > netcal {t_nc:.4f}s")
                    if compare is not None and not compare(v_ours, v_nc):
                        problems.append(f"{dtype} {name}: values differ from netcal "
                                        f"({v_ours!r} vs {v_nc!r})")
            print(f"| {name} | {fmt(t_ours)} | {fmt(t_sk)} | {fmt(t_nc)} | {ratio} |", flush=True)
        del y, probs
        gc.collect()
    print()
    if problems:
        print("Problems:")
        for p in problems:
            print(f"- {p}")
        return 1
    print("whylow is at least as fast as its peers on every shared metric, and the values agree.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
