"""Speed benchmark: end-to-end `whylow diagnose` against the peer calls it replaces, on the same data.

Run::

    python benchmarks/speed.py            # CIFAR-10-sized and ImageNet-val-sized inputs, three+ sizes each
    python benchmarks/speed.py --quick    # small sizes, for a smoke test (seconds)

Two workloads, each at several sizes N so the growth of time with N shows:

* **CIFAR-10-sized**: N training + N/5 test images, 32×32×3 uint8, 10
  classes, predictions given (N = 12,500, 25,000, 50,000; the largest is
  CIFAR-10 itself: 50k + 10k). The images are synthetic (no download):
  smooth class-dependent patterns with per-image brightness / contrast
  jitter and pixel noise; the predictions come from class-dependent logits
  (a true-class bump of random size, a confusable neighbour class, an
  overconfident temperature), about 97 % accurate on train and 85 % on
  test, so every check has realistic work.
* **ImageNet-val-sized predictions**: N × 1,000 probabilities and labels, no
  images (N up to 50,000).

whylow runs as the real CLI (``whylow diagnose --test test.npz --train
train.npz --quiet --json ...``) in a child process: its wall time includes
interpreter start, imports, reading the ``.npz`` files and writing the
report; its peak resident memory is that child's own (``os.wait4``). The
Python API (`whylow.diagnose` on the same files) is timed in a fresh child
too, the call alone. Every time is the best of ``--repeats`` runs (default
2; Datalab, by far the slowest, runs once). The peers run in this process on the same arrays,
already in memory (their load time is not counted): scikit-learn metrics,
netcal ECE and temperature scaling, cleanlab ``find_label_issues`` and
Datalab ``find_issues`` (with features: 8×8×3 average-pooled images). Datalab
grows faster than linearly; above ``--datalab-max-n`` rows (or when its
extrapolated time passes ``--peer-timeout``) it is timed only at the smaller
sizes, and the table says so.

Prints Markdown tables on stdout (progress on stderr); ``--json`` writes the
raw numbers; ``--check`` exits 1 unless the full CIFAR-10-sized diagnosis
takes under 10 s and is not slower than the slowest single peer call.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402 - after the path tweak above
    CallTimeout,
    best_time,
    call_with_timeout,
    fmt_bytes,
    fmt_seconds,
    growth_exponent,
    machine_line,
    markdown_table,
    run_measured,
    silenced,
)

CIFAR_SIZES = (12_500, 25_000, 50_000)
IMAGENET_SIZES = (6_250, 12_500, 25_000, 50_000)
QUICK_CIFAR_SIZES = (1_000, 2_000, 4_000)
QUICK_IMAGENET_SIZES = (1_000, 2_000, 4_000)


# -- synthetic data ---------------------------------------------------------------------------------
def cifar_like_images(n_samples: int, y: np.ndarray, n_classes: int = 10, size: int = 32, seed: int = 0,
                      chunk: int = 4096) -> np.ndarray:
    """Structured random uint8 images: a smooth pattern per class, jittered and noisy per image.

    Parameters
    ----------
    n_samples : int
    y : ndarray of int, shape (n_samples,)
        Class of each image; picks its pattern.
    n_classes, size, seed : int

    Returns
    -------
    ndarray of uint8, shape (n_samples, size, size, 3)
    """
    rng = np.random.default_rng(seed)
    grid_y, grid_x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    templates = np.zeros((n_classes, size, size, 3), np.float32)
    for k in range(n_classes):
        for c in range(3):
            for _ in range(3):
                fx, fy = rng.uniform(0.5, 3.0, 2)
                templates[k, :, :, c] += rng.uniform(0.5, 1.0) * np.cos(
                    2 * np.pi * (fx * grid_x + fy * grid_y) + rng.uniform(0, 2 * np.pi)
                )
        templates[k] = (templates[k] - templates[k].mean()) / (templates[k].std() + 1e-6)
    x = np.empty((n_samples, size, size, 3), np.uint8)
    for start in range(0, n_samples, chunk):
        stop = min(n_samples, start + chunk)
        m = stop - start
        contrast = rng.uniform(0.6, 1.4, (m, 1, 1, 1)).astype(np.float32)
        brightness = rng.normal(0, 15, (m, 1, 1, 1)).astype(np.float32)
        img = templates[y[start:stop]] * (45 * contrast)
        img += 120 + brightness
        img += rng.standard_normal(img.shape, dtype=np.float32) * 18
        np.clip(img, 0, 255, out=img)
        x[start:stop] = img.astype(np.uint8)
    return x


def class_probs(y: np.ndarray, n_classes: int, strength: float, temperature: float, seed: int,
                chunk: int = 8192) -> np.ndarray:
    """Softmax outputs of a plausible classifier: true-class bump of random size, a confusable class, noise.

    Parameters
    ----------
    y : ndarray of int, shape (n_samples,)
    n_classes : int
    strength : float
        Mean size of the true-class logit bump (higher: more accurate).
    temperature : float
        Logits are divided by it (< 1: overconfident).
    seed : int

    Returns
    -------
    ndarray of float32, shape (n_samples, n_classes)
    """
    rng = np.random.default_rng(seed)
    n = len(y)
    out = np.empty((n, n_classes), np.float32)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        yy = y[start:stop]
        m = len(yy)
        rows = np.arange(m)
        z = rng.standard_normal((m, n_classes), dtype=np.float32)
        z[rows, yy] += rng.gamma(2.0, strength / 2.0, m).astype(np.float32)
        z[rows, (yy + 1) % n_classes] += rng.gamma(1.0, 1.0, m).astype(np.float32)
        z /= np.float32(temperature)
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        out[start:stop] = z
    return out


def make_cifar(n_train: int, n_test: int, seed: int = 0) -> dict:
    """CIFAR-10-sized splits: ``{"train": (x, y, probs), "test": (x, y, probs)}``."""
    rng = np.random.default_rng(seed)
    out = {}
    for i, (name, n, strength) in enumerate((("train", n_train, 6.0), ("test", n_test, 3.5))):
        y = rng.integers(0, 10, n).astype(np.int64)
        x = cifar_like_images(n, y, seed=seed * 10 + i)
        probs = class_probs(y, 10, strength, temperature=0.7, seed=seed * 10 + i + 5)
        out[name] = (x, y, probs)
    return out


def make_imagenet(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """ImageNet-val-sized predictions: labels (N,) and probabilities (N, 1000), float32."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 1000, n).astype(np.int64)
    return y, class_probs(y, 1000, strength=7.0, temperature=0.8, seed=seed + 1)


def features_for_datalab(x: np.ndarray) -> np.ndarray:
    """8×8×3 average-pooled images as float32 feature vectors (what a Datalab user would pass as embeddings)."""
    n, h, w, c = x.shape
    fh, fw = h // 8, w // 8
    pooled = x[:, : fh * 8, : fw * 8].reshape(n, 8, fh, 8, fw, c).mean(axis=(2, 4), dtype=np.float32)
    return pooled.reshape(n, -1) / np.float32(255)


# -- whylow in a child process ----------------------------------------------------------------------
API_SNIPPET = r"""
import json, sys, time
t0 = time.perf_counter()
import whylow
from whylow.checks import registered_checks
checks = registered_checks()
t1 = time.perf_counter()
per_check = {}
for cls in checks:  # time each check's run (this child only)
    def timed(self, ctx, _run=cls.run, _name=cls.name):
        start = time.perf_counter()
        try:
            return _run(self, ctx)
        finally:
            per_check[_name] = per_check.get(_name, 0.0) + time.perf_counter() - start
    cls.run = timed
report = whylow.diagnose(**json.loads(sys.argv[1]))
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "diagnose_s": t2 - t1, "per_check_s": per_check}))
"""

BASELINE_SNIPPET = r"""
import whylow, whylow.cli, whylow.diagnose
from whylow.checks import load_checks
load_checks()
"""


def whylow_cmd() -> list[str]:
    """The ``whylow`` console script, or the same entry point through this interpreter."""
    exe = shutil.which("whylow")
    if exe:
        return [exe]
    return [sys.executable, "-c", "import sys; from whylow.cli import main; sys.argv[0] = 'whylow'; main()"]


def run_whylow(files: dict, workdir: Path, timeout: float, repeats: int = 1) -> dict:
    """Best of ``repeats`` runs of the CLI and of the API on ``files``; the largest peak RSS of any run.

    The per-check times are those of the fastest API run. A failed run is
    reported when no run succeeded.
    """
    runs = [_run_whylow_once(files, workdir, timeout) for _ in range(max(1, repeats))]
    best = {}
    cli_ok = [r for r in runs if r.get("cli_error") is None]
    best.update(min(cli_ok, key=lambda r: r["cli_s"]) if cli_ok else runs[-1])
    api_ok = [r for r in runs if r.get("api_error") is None and "api_diagnose_s" in r]
    for k in [k for k in best if k.startswith("api_")]:
        del best[k]
    best.update({k: v for k, v in (min(api_ok, key=lambda r: r["api_diagnose_s"]) if api_ok else runs[-1]).items()
                 if k.startswith("api_")})
    for key in ("cli_rss", "api_rss"):
        values = [r[key] for r in runs if r.get(key)]
        best[key] = max(values) if values else None
    best["runs"] = len(runs)
    return best


def _run_whylow_once(files: dict, workdir: Path, timeout: float) -> dict:
    """Time the CLI and the API on ``files`` (``{"test": path, "train": path}``); peak RSS of each child."""
    report_path = workdir / "report.json"
    cmd = whylow_cmd() + ["diagnose", "--quiet", "--json", str(report_path)]
    for split, path in files.items():
        cmd += [f"--{split}", str(path)]
    cli = run_measured(cmd, timeout=timeout)
    res = {"cli_s": cli.wall_s, "cli_rss": cli.peak_rss, "cli_error": None if cli.ok else cli.why()}
    if cli.ok and report_path.exists():
        rep = json.loads(report_path.read_text(encoding="utf-8"))
        res["checks"] = {c["name"]: c["status"] for c in rep.get("checks", [])}
        res["failed_checks"] = {c["name"]: c.get("reason") for c in rep.get("checks", []) if c["status"] == "failed"}
        res["findings"] = [(f["code"], f["severity"]) for f in rep.get("findings", [])][:3]
        report_path.unlink()
    api = run_measured([sys.executable, "-c", API_SNIPPET, json.dumps({k: str(v) for k, v in files.items()})], timeout=timeout)
    res["api_rss"] = api.peak_rss
    if api.ok:
        try:
            res.update({f"api_{k}": v for k, v in json.loads(api.stdout.strip().splitlines()[-1]).items()})
        except (ValueError, IndexError):
            res["api_error"] = f"unreadable output: {api.stdout[-200:]!r}"
    else:
        res["api_error"] = api.why()
    return res


# -- peers ------------------------------------------------------------------------------------------
def time_peer(fn, repeats: int, timeout: float) -> dict:
    """``{"s": best seconds}`` or ``{"error": why}``; never raises."""
    try:
        with silenced():
            s, _ = call_with_timeout(lambda: best_time(fn, repeats), timeout)
        return {"s": s}
    except CallTimeout:
        return {"error": f"> {timeout:.0f} s (stopped)"}
    except ImportError as exc:
        return {"error": f"not installed: {str(exc).splitlines()[0][:80]}"}
    except Exception as exc:  # noqa: BLE001 - a failing peer is a cell in the table
        return {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:80] if str(exc) else ''}"}


def sklearn_calls(y: np.ndarray, probs: np.ndarray, n_classes: int) -> dict:
    """The scikit-learn metric calls whylow's summary replaces, on one split."""
    from sklearn import metrics as skm

    labels = np.arange(n_classes)
    pred = probs.argmax(axis=1)
    return {
        "sklearn accuracy_score": lambda: skm.accuracy_score(y, pred),
        "sklearn balanced_accuracy_score": lambda: skm.balanced_accuracy_score(y, pred),
        "sklearn log_loss": lambda: skm.log_loss(y, probs, labels=labels),
        "sklearn brier_score_loss (multiclass)": lambda: skm.brier_score_loss(y, probs, labels=labels),
        "sklearn confusion_matrix": lambda: skm.confusion_matrix(y, pred, labels=labels),
    }


def netcal_calls(y: np.ndarray, probs: np.ndarray) -> dict:
    def ece():
        from netcal.metrics import ECE

        return ECE(bins=15).measure(probs, y)

    def temperature():
        from netcal.scaling import TemperatureScaling

        ts = TemperatureScaling()
        ts.fit(probs, y)
        return ts.transform(probs)

    return {"netcal ECE (15 bins)": ece, "netcal TemperatureScaling fit+transform": temperature}


def cleanlab_label_issues(y: np.ndarray, probs: np.ndarray):
    def call():
        from cleanlab.filter import find_label_issues

        return find_label_issues(y, probs)

    return call


def datalab_call(y: np.ndarray, probs: np.ndarray, features: np.ndarray | None):
    def call():
        from cleanlab import Datalab

        lab = Datalab({"label": y}, label_name="label", verbosity=0)
        if features is None:
            lab.find_issues(pred_probs=probs)
        else:
            lab.find_issues(pred_probs=probs, features=features)
        return lab

    return call


def warm_up_peers() -> None:
    """Import the peer libraries and run each peer call once on tiny data, so no timing includes an import."""
    rng = np.random.default_rng(0)
    y = np.tile(np.arange(10), 30)
    probs = class_probs(y, 10, 4.0, 1.0, seed=0).astype(np.float64)
    x = rng.integers(0, 256, (len(y), 32, 32, 3), dtype=np.uint8)
    calls = {**sklearn_calls(y, probs, 10), **netcal_calls(y, probs)}
    calls["find_label_issues"] = cleanlab_label_issues(y, probs)
    calls["Datalab"] = datalab_call(y, probs, features_for_datalab(x))
    for fn in calls.values():
        time_peer(fn, 1, 120.0)


# -- one workload -----------------------------------------------------------------------------------
def _datalab_plan(n: int, history: list[tuple[int, float]], max_n: int, timeout: float) -> str | None:
    """Why Datalab is not timed at ``n`` (None: time it)."""
    if n > max_n:
        return f"not run above {max_n:,} rows (--datalab-max-n)"
    if history:
        n0, t0 = history[-1]
        guess = t0 * (n / n0) ** 1.6
        if guess > timeout:
            return f"not run: ~{guess:.0f} s extrapolated from {n0:,} rows (> --peer-timeout)"
    return None


def bench_cifar(sizes, args, workdir: Path) -> dict:
    """Time whylow and the peers on CIFAR-10-sized splits at each training size in ``sizes``."""
    n_max = max(sizes)
    log(f"generating CIFAR-10-sized data ({n_max:,} train + {n_max // 5:,} test images) ...")
    data = make_cifar(n_max, n_max // 5, seed=args.seed)
    rows: dict[str, dict[int, dict]] = {}
    extra: dict[int, dict] = {}
    dl_history: list[tuple[int, float]] = []
    for n in sizes:
        n_test = n // 5
        xtr, ytr, ptr = (a[:n] for a in data["train"])
        xte, yte, pte = (a[:n_test] for a in data["test"])
        files = {"test": workdir / f"test_{n}.npz", "train": workdir / f"train_{n}.npz"}
        np.savez(files["test"], x=xte, y=yte, probs=pte)
        np.savez(files["train"], x=xtr, y=ytr, probs=ptr)
        input_bytes = sum(f.stat().st_size for f in files.values())
        log(f"CIFAR-sized N={n:,}: whylow CLI and API ...")
        w = run_whylow(files, workdir, args.timeout, args.repeats)
        extra[n] = {"input_bytes": input_bytes, **w}
        rows.setdefault("whylow diagnose: CLI, end to end", {})[n] = _val(w["cli_s"], w.get("cli_error"))
        rows.setdefault("whylow.diagnose(): Python API, the call", {})[n] = _val(w.get("api_diagnose_s"), w.get("api_error"))
        for f in files.values():
            f.unlink()
        log(f"CIFAR-sized N={n:,}: peers ...")
        pte64, ptr64 = pte.astype(np.float64), ptr.astype(np.float64)
        calls = {}
        calls.update({f"{k} (test)": v for k, v in sklearn_calls(yte, pte64, 10).items()})
        calls.update({f"{k} (test)": v for k, v in netcal_calls(yte, pte64).items()})
        calls["cleanlab find_label_issues (train)"] = cleanlab_label_issues(ytr, ptr64)
        for name, fn in calls.items():
            rows.setdefault(name, {})[n] = time_peer(fn, args.repeats, args.peer_timeout)
        dl_name = "cleanlab Datalab find_issues (train; probs + 192-d features)"
        if args.no_datalab:
            rows.setdefault(dl_name, {})[n] = {"error": "skipped (--no-datalab)"}
        elif (why := _datalab_plan(n, dl_history, args.datalab_max_n, args.peer_timeout)) is not None:
            rows.setdefault(dl_name, {})[n] = {"error": why}
        else:
            log(f"CIFAR-sized N={n:,}: Datalab ...")
            r = time_peer(datalab_call(ytr, ptr64, features_for_datalab(xtr)), 1, args.peer_timeout)
            rows.setdefault(dl_name, {})[n] = r
            if "s" in r:
                dl_history.append((n, r["s"]))
    return {"rows": rows, "extra": extra, "sizes": list(sizes)}


def bench_imagenet(sizes, args, workdir: Path) -> dict:
    """Time whylow (predictions only) and the peers on N × 1,000 predictions for each N in ``sizes``."""
    n_max = max(sizes)
    log(f"generating ImageNet-val-sized predictions ({n_max:,} × 1,000) ...")
    y_all, p_all = make_imagenet(n_max, seed=args.seed + 100)
    rows: dict[str, dict[int, dict]] = {}
    extra: dict[int, dict] = {}
    dl_history: list[tuple[int, float]] = []
    for n in sizes:
        y, p = y_all[:n], p_all[:n]
        files = {"test": workdir / f"imagenet_{n}.npz"}
        np.savez(files["test"], y=y, probs=p)
        log(f"ImageNet-sized N={n:,}: whylow CLI and API ...")
        w = run_whylow(files, workdir, args.timeout, args.repeats)
        extra[n] = {"input_bytes": files["test"].stat().st_size, **w}
        rows.setdefault("whylow diagnose: CLI, end to end", {})[n] = _val(w["cli_s"], w.get("cli_error"))
        rows.setdefault("whylow.diagnose(): Python API, the call", {})[n] = _val(w.get("api_diagnose_s"), w.get("api_error"))
        files["test"].unlink()
        log(f"ImageNet-sized N={n:,}: peers ...")
        p64 = p.astype(np.float64)
        calls = {}
        calls.update(sklearn_calls(y, p64, 1000))
        calls.update(netcal_calls(y, p64))
        calls["cleanlab find_label_issues"] = cleanlab_label_issues(y, p64)
        for name, fn in calls.items():
            rows.setdefault(name, {})[n] = time_peer(fn, args.repeats, args.peer_timeout)
        dl_name = "cleanlab Datalab find_issues (probs only)"
        if args.no_datalab:
            rows.setdefault(dl_name, {})[n] = {"error": "skipped (--no-datalab)"}
        elif (why := _datalab_plan(n, dl_history, args.datalab_max_n_imagenet, args.peer_timeout)) is not None:
            rows.setdefault(dl_name, {})[n] = {"error": why}
        else:
            log(f"ImageNet-sized N={n:,}: Datalab ...")
            r = time_peer(datalab_call(y, p64, None), 1, args.peer_timeout)
            rows.setdefault(dl_name, {})[n] = r
            if "s" in r:
                dl_history.append((n, r["s"]))
    return {"rows": rows, "extra": extra, "sizes": list(sizes)}


def _val(s, error) -> dict:
    return {"error": error} if error or s is None else {"s": float(s)}


# -- tables -----------------------------------------------------------------------------------------
WHYLOW_ROWS = ("whylow diagnose: CLI, end to end", "whylow.diagnose(): Python API, the call")


def _cell(r: dict | None) -> str:
    if r is None:
        return "—"
    return fmt_seconds(r["s"]) if "s" in r else r["error"]


def _slowest_peer(rows: dict, n: int) -> tuple[str | None, float | None]:
    peers = {k: v[n]["s"] for k, v in rows.items() if k not in WHYLOW_ROWS and n in v and "s" in v[n]}
    if not peers:
        return None, None
    name = max(peers, key=peers.get)
    return name, peers[name]


def _sum_peers(rows: dict, n: int) -> float | None:
    vals = [v[n]["s"] for k, v in rows.items() if k not in WHYLOW_ROWS and n in v and "s" in v[n]]
    return sum(vals) if vals else None


def workload_table(result: dict, baseline_rss: int | None) -> str:
    sizes, rows, extra = result["sizes"], result["rows"], result["extra"]
    headers = ["call"] + [f"N = {n:,}" for n in sizes] + ["time ∝ N^b"]
    body = []
    for name, by_n in rows.items():
        times = [by_n.get(n, {}).get("s") for n in sizes]
        b = growth_exponent(sizes, times)
        body.append([name] + [_cell(by_n.get(n)) for n in sizes] + ["—" if b is None else f"{b:.2f}"])
    body.append(["input on disk (.npz)"] + [fmt_bytes(extra[n]["input_bytes"]) for n in sizes] + ["—"])
    body.append(["whylow peak RSS, CLI child"] + [fmt_bytes(extra[n].get("cli_rss")) for n in sizes] + ["—"])
    if baseline_rss:
        body.append(
            ["whylow peak RSS above import baseline"]
            + [fmt_bytes(max(0, extra[n]["cli_rss"] - baseline_rss)) if extra[n].get("cli_rss") else "—" for n in sizes]
            + ["—"]
        )
    cli = rows[WHYLOW_ROWS[0]]
    ratio_row, sum_row = ["whylow CLI ÷ slowest single peer call"], ["whylow CLI ÷ all peer calls summed"]
    for n in sizes:
        name, slow = _slowest_peer(rows, n)
        total = _sum_peers(rows, n)
        w = cli.get(n, {}).get("s")
        ratio_row.append(f"{w / slow:.2f} ({_short_name(name)})" if w and slow else "—")
        sum_row.append(f"{w / total:.2f}" if w and total else "—")
    body += [ratio_row + ["—"], sum_row + ["—"]]
    return markdown_table(headers, body, "l" + "r" * (len(sizes) + 1))


def _short_name(name: str | None) -> str:
    if not name:
        return "—"
    return name.split(" (")[0]


def checks_line(result: dict) -> str:
    n = max(result["sizes"])
    e = result["extra"][n]
    checks = e.get("checks") or {}
    ran = sorted(k for k, v in checks.items() if v == "ran")
    skipped = sorted(k for k, v in checks.items() if v == "skipped")
    failed = e.get("failed_checks") or {}
    parts = [f"checks that ran at N = {n:,}: {', '.join(ran) or 'none'}"]
    if skipped:
        parts.append(f"skipped: {', '.join(skipped)}")
    if failed:
        parts.append("failed: " + "; ".join(f"{k} ({str(v)[:80]})" for k, v in failed.items()))
    if e.get("findings"):
        parts.append("top findings: " + ", ".join(f"{c} ({s})" for c, s in e["findings"]))
    return "; ".join(parts) + "."


def per_check_table(result: dict, top: int = 8) -> str | None:
    """The slowest whylow checks in the API run at the largest N, and the time outside the checks."""
    n = max(result["sizes"])
    e = result["extra"][n]
    per = e.get("api_per_check_s")
    total = e.get("api_diagnose_s")
    if not per or total is None:
        return None
    ranked = sorted(per.items(), key=lambda kv: -kv[1])
    share = lambda t: f"{100 * t / total:.0f} %"  # noqa: E731
    rows = [[name, fmt_seconds(t), share(t)] for name, t in ranked[:top]]
    rest = sum(t for _, t in ranked[top:])
    if ranked[top:]:
        rows.append([f"{len(ranked) - top} other checks", fmt_seconds(rest), share(rest)])
    outside = max(0.0, total - sum(per.values()))
    rows.append(["outside the checks (loading, validation, summary metrics, report)", fmt_seconds(outside), share(outside)])
    return markdown_table([f"whylow.diagnose at N = {n:,}: where the time goes", "time", "share"], rows, "lrr")


def bars(cifar: dict) -> tuple[str, bool]:
    """The issue's bars on the largest CIFAR-10-sized input, as a sentence and a pass flag."""
    n = max(cifar["sizes"])
    w = cifar["rows"][WHYLOW_ROWS[0]].get(n, {}).get("s")
    name, slow = _slowest_peer(cifar["rows"], n)
    if w is None:
        return f"whylow did not finish on N = {n:,}: {cifar['rows'][WHYLOW_ROWS[0]].get(n)}", False
    dl = cifar["rows"].get("cleanlab Datalab find_issues (train; probs + 192-d features)", {}).get(n, {})
    note = "" if "s" in dl or "skipped (--no-datalab)" in dl.get("error", "") else " (Datalab was not timed at this size)"
    under10 = w < 10.0
    not_slower = slow is not None and w <= slow
    text = (
        f"Full diagnosis of {n:,} + {n // 5:,} CIFAR-sized images: {w:.2f} s end to end "
        f"({'under' if under10 else 'NOT under'} 10 s); slowest single peer call: {_short_name(name)} "
        f"{fmt_seconds(slow)}{note}, so whylow is {'not slower' if not_slower else 'SLOWER'} (ratio "
        f"{w / slow:.2f})." if slow else f"whylow {w:.2f} s; no peer timing to compare with."
    )
    return text, under10 and not_slower


# -- main -------------------------------------------------------------------------------------------
def log(msg: str) -> None:
    print(f"[speed {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    ap.add_argument("--cifar-sizes", help=f"training sizes N (test N/5), default {','.join(map(str, CIFAR_SIZES))}")
    ap.add_argument("--imagenet-sizes", help=f"prediction rows N (× 1,000), default {','.join(map(str, IMAGENET_SIZES))}")
    ap.add_argument("--skip", choices=("cifar", "imagenet"), action="append", default=[], help="skip a workload")
    ap.add_argument("--repeats", type=int, default=None,
                    help="best of this many runs of whylow and of each peer call (Datalab: always one); "
                         "default 2, with --quick 1")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per whylow child process")
    ap.add_argument("--peer-timeout", type=float, default=240.0, help="seconds per peer call")
    ap.add_argument("--datalab-max-n", type=int, default=50_000, help="largest CIFAR training size Datalab is timed at")
    ap.add_argument("--datalab-max-n-imagenet", type=int, default=12_500, help="largest N × 1,000 Datalab is timed at")
    ap.add_argument("--no-datalab", action="store_true", help="do not time Datalab")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", dest="json_path", help="also write the raw numbers here")
    ap.add_argument("--check", action="store_true", help="exit 1 unless CIFAR-sized diagnosis < 10 s and <= slowest peer")
    args = ap.parse_args(argv)
    if args.repeats is None:
        args.repeats = 1 if args.quick else 2

    def sizes(opt, default, quick):
        if opt:
            return tuple(sorted(int(s) for s in opt.split(",")))
        return quick if args.quick else default

    cifar_sizes = sizes(args.cifar_sizes, CIFAR_SIZES, QUICK_CIFAR_SIZES)
    imagenet_sizes = sizes(args.imagenet_sizes, IMAGENET_SIZES, QUICK_IMAGENET_SIZES)
    t0 = time.perf_counter()
    results = {}
    with tempfile.TemporaryDirectory(prefix="whylow-speed-") as tmp:
        workdir = Path(tmp)
        log("import baseline (python + whylow + checks) ...")
        base = run_measured([sys.executable, "-c", BASELINE_SNIPPET], timeout=args.timeout)
        baseline_rss = base.peak_rss if base.ok else None
        log("warming up the peers (imports, first calls) ...")
        warm_up_peers()
        if "cifar" not in args.skip:
            results["cifar"] = bench_cifar(cifar_sizes, args, workdir)
        if "imagenet" not in args.skip:
            results["imagenet"] = bench_imagenet(imagenet_sizes, args, workdir)
    elapsed = time.perf_counter() - t0

    print("## Speed benchmark\n")
    print(machine_line() + f" Total run time {elapsed:.0f} s.\n")
    passed = True
    if "cifar" in results:
        r = results["cifar"]
        print("### CIFAR-10-sized: N training + N/5 test images (32×32×3 uint8, 10 classes, predictions given)\n")
        print(workload_table(r, baseline_rss) + "\n")
        print(checks_line(r) + "\n")
        if (t := per_check_table(r)) is not None:
            print(t + "\n")
        text, passed = bars(r)
        print(f"**{text}**\n")
    if "imagenet" in results:
        r = results["imagenet"]
        print("### ImageNet-val-sized predictions: N × 1,000 probabilities and labels (no images)\n")
        print(workload_table(r, baseline_rss) + "\n")
        print(checks_line(r) + "\n")
        if (t := per_check_table(r)) is not None:
            print(t + "\n")
    print(
        (f"Times are the best of {args.repeats} runs (Datalab: one run). " if args.repeats > 1 else "")
        + "whylow times are wall clock of a child process: the CLI row includes interpreter start, imports, reading "
        "the .npz files and writing the JSON report; the API row is the `whylow.diagnose` call alone (files "
        "loaded inside it). Peer calls run in-process on arrays already in memory (float64). Datalab features: "
        "8×8×3 average-pooled images. Peak RSS: the command's own maximum resident set (os.wait4 in a small "
        "launcher process), the largest over the runs"
        + (f"; import baseline {fmt_bytes(baseline_rss)}." if baseline_rss else ".")
    )
    if args.json_path:
        payload = {"elapsed_s": elapsed, "results": results}
        Path(args.json_path).write_text(json.dumps(payload, indent=1, default=str), encoding="utf-8")
    if args.check:
        return 0 if passed and "cifar" in results else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
