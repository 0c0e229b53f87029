"""Detection benchmark: does whylow name the injected fault, and do the peers catch it?

Run::

    python benchmarks/detection.py            # the full suite (every registered scenario, 3 magnitudes, 5+ healthy)
    python benchmarks/detection.py --quick    # a few cases, for a smoke test
    python benchmarks/detection.py --grid dev --faults 40 --healthy 20 --workers 2 --json out.json
    python benchmarks/detection.py --grid heldout ...   # the same, on seeds thresholds were never tuned on

The suite is built from the scenario registry (`whylow.scenarios`), so it
picks up every scenario that exists when it runs: each fault scenario at
several magnitudes (its default times ``--magnitude-factors``, or the
builder's own ``magnitudes`` attribute when it declares one), each with its
own seed, and the healthy scenarios at several seeds and architectures.

Every case is built, diagnosed with the full `whylow.diagnose` (all
registered checks), and scored:

* **top-1**: the first finding has the injected code *and* is a warning or
  critical finding (an ``info`` finding is not a detection);
* **top-3**: the injected code is among the first three findings (any severity);
* **false alarm**: a warning/critical finding on a healthy case, or on a
  fault case one whose code is neither the injected one nor a known
  consequence of it (`RELATED`) nor declared true of the scenario by its
  builder (``notes["related"]`` / ``notes["expected_findings"]``).

The same cases go through the peers where they have a matching check, each
with a stated decision rule (`PEER_RULES`): cleanlab's Datalab issue types,
netcal's ECE, and a two-sample Kolmogorov–Smirnov test on image properties
(or tabular features) as a stand-in for the drift reports of
deepchecks / evidently. A case that fails to build, to diagnose, or runs
past ``--case-timeout`` is reported as such in the table; it never stops
the run.

``--grid dev|heldout`` runs the randomised grid of `whylow.scenarios.grid`
instead (image sources, storage conventions, architectures, split sizes and
fault magnitudes drawn per seed; peers are not run): ``--faults N`` fault
cases round-robin over the finding codes and ``--healthy M`` healthy ones,
optionally in ``--workers`` processes. It prints totals with Wilson 95 %
intervals, results per fault code, per preprocessing / shift kind, per
source / storage / architecture, false alarms on healthy models per finding
code, and whether the top preprocessing finding named the injected bug and
its constant (``evidence["preprocessing_candidate"]``). Fault cases whose
fault failed the generator's effect gate are excluded from the scores and
listed. Thresholds may only ever be tuned on ``dev``.

Prints Markdown tables (per case, per fault code, totals) on stdout and
progress on stderr; ``--json`` also writes the raw results. ``--check``
exits 1 unless top-1 ≥ 80 % of fault cases and healthy cases raise no
false alarm.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402 - after the path tweak above
    CallTimeout,
    call_with_timeout,
    machine_line,
    markdown_table,
    silenced,
)

ALARM = ("critical", "warning")

#: Codes that legitimately accompany an injected fault, as its consequences
#: (a warning with one of these codes on a case with that fault is not a false alarm).
RELATED: dict[str, frozenset[str]] = {
    "preprocessing-mismatch": frozenset({"covariate-shift", "overconfidence", "no-signal"}),
    "covariate-shift": frozenset({"preprocessing-mismatch", "overconfidence"}),
    "label-shift": frozenset({"class-imbalance", "misleading-metric", "decision-threshold"}),
    "class-imbalance": frozenset({"label-shift", "misleading-metric", "decision-threshold"}),
    "label-noise": frozenset({"overfitting", "underfitting", "overconfidence", "underconfidence"}),
    "overconfidence": frozenset({"overfitting"}),
    "underconfidence": frozenset({"underfitting"}),
    "underfitting": frozenset({"learning-rate", "underconfidence"}),
    "overfitting": frozenset({"overconfidence"}),
    "no-signal": frozenset({"label-noise", "misleading-metric", "underfitting", "overfitting", "overconfidence"}),
    "train-test-leakage": frozenset({"data-quality"}),
    "misleading-metric": frozenset({"class-imbalance", "label-shift", "decision-threshold", "no-signal"}),
    "decision-threshold": frozenset({"class-imbalance", "label-shift", "misleading-metric"}),
    "learning-rate": frozenset({"underfitting", "overfitting"}),
    "small-sample": frozenset(),
    "data-quality": frozenset({"covariate-shift"}),
}

#: How each peer's output is turned into "this fault was flagged" (stated in the printed legend).
PEER_RULES = {
    "Datalab": (
        "cleanlab Datalab.find_issues on train ∪ val ∪ test (given labels, the model's probabilities, flattened "
        "inputs as features); issue types label, outlier, near_duplicate, non_iid, class_imbalance, null. "
        "label issues on ≥ 5 % of rows → label-noise; near-duplicate sets joining a test row to a train/val row "
        "for ≥ 1 % of test rows → train-test-leakage, near-duplicates within one split on ≥ 1 % of rows → data-quality; "
        "null issues → data-quality; class_imbalance issue (on the training labels alone) → class-imbalance; non_iid issue (rows are shuffled within each "
        "split and the splits concatenated, so non-iid means the splits differ) → covariate-shift; "
        "outliers on ≥ 5 % of test rows → data-quality."
    ),
    "netcal": (
        "netcal ECE (15 equal-width bins) on the test split ≥ 0.05 → overconfidence if mean confidence > "
        "accuracy, underconfidence otherwise."
    ),
    "KS drift": (
        "scipy two-sample Kolmogorov–Smirnov test, train (else val) vs test, on per-image properties "
        "(brightness, contrast, sharpness, per-channel means) or on each tabular feature; Bonferroni-corrected "
        "p < 0.01 → covariate-shift / preprocessing-mismatch (drift is flagged; its cause is not named)."
    ),
}
PEERS = tuple(PEER_RULES)

#: Scenarios whose cases the --quick run and the test subset use (those registered at run time).
QUICK_SCENARIOS = ("none", "normalisation", "overconfidence", "no-signal")

#: Healthy-case variants: different seeds and architectures (params a builder does not accept are dropped).
HEALTHY_VARIANTS = (
    {"seed": 0},
    {"seed": 1, "width": 8},
    {"seed": 2, "width": 32},
    {"seed": 3, "rgb": True},
    {"seed": 4, "width": 24, "rgb": True, "epochs": 20},
)


# -- the suite --------------------------------------------------------------------------------------
@dataclass
class Case:
    """One benchmark case: a scenario and the parameters it is built with."""

    scenario: str
    expected: str | None
    params: dict

    @property
    def label(self) -> str:
        shown = ", ".join(f"{k}={_short(v)}" for k, v in self.params.items())
        return f"{self.scenario}({shown})"


def _short(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def _accepts(fn, name: str) -> bool:
    params = inspect.signature(fn).parameters
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _accepted(fn, params: dict) -> dict:
    return {k: v for k, v in params.items() if _accepts(fn, k)}


def magnitudes_for(fn, factors=(0.75, 1.0, 1.5)) -> list:
    """The magnitudes a fault builder is run at, weakest first.

    The builder's own ``magnitudes`` attribute when it declares one;
    otherwise its default ``magnitude`` times each factor. A default in
    (0, 1] may be a fraction or a blend where 1 is the full fault, so
    magnitudes never go above 1 there: a value that would is replaced by
    the midpoint between the default and 1 (dropped if that is the default
    itself), and ``default / 2`` (then ``/ 4``, ...) is added until there
    are as many magnitudes as factors. An int default stays int (at least
    1). ``[None]`` when the builder takes no numeric magnitude.
    """
    declared = getattr(fn, "magnitudes", None)
    if declared:
        return list(declared)
    param = inspect.signature(fn).parameters.get("magnitude")
    if param is None:
        return [None]
    d = param.default
    if d is inspect.Parameter.empty or isinstance(d, bool) or not isinstance(d, (int, float)) or d <= 0:
        return [None]
    bounded = isinstance(d, float) and d <= 1.0
    out = []
    for f in factors:
        m = d * f
        if bounded and m > 1.0:
            m = d + (1.0 - d) / 2
        if isinstance(d, int):
            m = max(1, int(round(m)))
        if m not in out:
            out.append(m)
    fill = d / 2
    while bounded and len(out) < len(factors) and fill not in out:
        out.append(fill)
        fill /= 2
    return sorted(out)


def _quick_specs(specs, n_faults: int = 3) -> list:
    """`QUICK_SCENARIOS` that are registered, topped up to ``n_faults`` fault scenarios (one per code) from the rest."""
    chosen = [s for s in specs if s.name in QUICK_SCENARIOS]
    codes = {s.expected for s in chosen}
    for s in specs:
        if sum(c.expected is not None for c in chosen) >= n_faults:
            break
        if s.expected is not None and s.expected not in codes:
            chosen.append(s)
            codes.add(s.expected)
    return chosen


def default_case(spec, seed: int = 0) -> Case:
    """The case of a registered scenario at its default parameters."""
    return Case(spec.name, spec.expected, {"seed": seed})


def scenario_specs() -> tuple[dict, list[tuple[str, str]]]:
    """The registered scenarios by name, and the scenario modules that failed to import (module, error).

    Imports each module of `whylow.scenarios` on its own, so one broken
    module (e.g. being edited) costs only its own scenarios, not the suite.
    """
    import importlib
    import pkgutil

    import whylow.scenarios as pkg

    broken = []
    for mod in pkgutil.iter_modules(pkg.__path__):
        if not mod.name.startswith("_"):
            try:
                importlib.import_module(f"{pkg.__name__}.{mod.name}")
            except Exception as exc:  # noqa: BLE001 - reported, not fatal
                broken.append((mod.name, _one_line(exc)))
    try:
        specs = pkg.list_scenarios()
    except Exception:  # noqa: BLE001 - a module failed again: use what did register
        specs = list(getattr(pkg, "_SCENARIOS", {}).values())
    return {s.name: s for s in specs}, broken


def build_suite(quick: bool = False, only: list[str] | None = None, factors=(0.75, 1.0, 1.5)) -> list[Case]:
    """Cases for every registered scenario (or those in ``only``).

    Fault scenarios run at each magnitude of `magnitudes_for` (the i-th
    magnitude with seed i; a builder without a magnitude at as many seeds
    as there are factors); healthy ones (``expected is None``) at the
    variants of `HEALTHY_VARIANTS` ("none") or at seeds 0 and 1. With
    ``quick``, only `QUICK_SCENARIOS` (topped up to three fault scenarios
    from the others registered) at default parameters and seed 0.
    """
    specs = list(scenario_specs()[0].values())
    if only:
        specs = [s for s in specs if s.name in only]
    elif quick:
        specs = _quick_specs(specs)
    cases: list[Case] = []
    for spec in specs:
        if quick:
            cases.append(default_case(spec))
            continue
        if spec.expected is None:
            variants = HEALTHY_VARIANTS if spec.name == "none" else ({"seed": 0}, {"seed": 1})
            seen = []
            for v in variants:
                p = _accepted(spec.build, v)
                if p not in seen:
                    seen.append(p)
                    cases.append(Case(spec.name, None, p))
            continue
        mags = magnitudes_for(spec.build, factors)
        if mags == [None]:  # no magnitude to vary: vary the seed instead
            mags = [None] * len(factors)
        for i, m in enumerate(mags):
            params = {"seed": i}
            if m is not None:
                params["magnitude"] = m
            cases.append(Case(spec.name, spec.expected, params))
    # healthy cases first, then faults grouped by code
    cases.sort(key=lambda c: (c.expected is not None, c.expected or "", c.scenario))
    return cases


# -- running a case ---------------------------------------------------------------------------------
@dataclass
class CaseResult:
    """What happened to one case."""

    case: Case
    status: str = "ok"  # ok | build failed | diagnose failed | timeout
    error: str | None = None
    top: list = field(default_factory=list)  # [(code, severity, confidence)], first three findings
    alarms: list = field(default_factory=list)  # [(code, severity)] every warning/critical finding
    false_alarms: list = field(default_factory=list)  # [(code, severity)]
    failed_checks: list = field(default_factory=list)  # [(check, reason)]
    peers: dict = field(default_factory=dict)  # peer -> {"codes": [...], "detail": str} or {"error": str}
    seconds: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def top1(self) -> bool:
        """The first finding is the injected code at warning/critical severity (fault cases)."""
        return bool(self.ok and self.top and self.top[0][0] == self.case.expected and self.top[0][1] in ALARM)

    @property
    def top1_any(self) -> bool:
        """The first finding is the injected code, whatever its severity."""
        return bool(self.ok and self.top and self.top[0][0] == self.case.expected)

    @property
    def top3(self) -> bool:
        return bool(self.ok and self.case.expected in [t[0] for t in self.top])


def unrelated_alarms(expected: str | None, alarms, related_extra=()) -> list:
    """The warning/critical findings that are false alarms for a case with fault ``expected``.

    Parameters
    ----------
    expected : str or None
        The injected code; None for a healthy case (then every alarm is false).
    alarms : list of (code, severity)
    related_extra : iterable of str
        More codes the scenario itself declares as consequences (``notes["related"]``).
    """
    if expected is None:
        return list(alarms)
    ok = {expected} | set(RELATED.get(expected, ())) | set(related_extra)
    return [a for a in alarms if a[0] not in ok]


def declared_related(notes: dict | None) -> set[str]:
    """Codes a scenario declares as also true of it (``notes["related"]`` or ``notes["expected_findings"]``).

    Entries may carry words after the code ("covariate-shift (brightness)"); the leading code is taken.
    """
    from whylow.report.finding import CODES

    out = set()
    for key in ("related", "expected_findings"):
        items = (notes or {}).get(key) or ()
        if isinstance(items, str):
            items = [items]
        for item in items:
            head = str(item).split()[0].strip("(),;:") if str(item).split() else ""
            if head in CODES:
                out.add(head)
    return out


def run_case(case: Case, peers: bool = True, timeout: float | None = 300.0) -> CaseResult:
    """Build ``case``, diagnose it with every registered check, score it, and (optionally) run the peers.

    Never raises for a failing scenario, check or peer: the failure is recorded in the result.
    """
    res = CaseResult(case)
    t0 = time.perf_counter()
    def build():
        spec = scenario_specs()[0].get(case.scenario)
        if spec is None:
            raise LookupError(f"scenario {case.scenario!r} is not registered")
        return spec.build(**case.params)

    scn = build_and_time(res, build, timeout, t0)
    if scn is None:
        return res
    report = diagnose_and_score(res, scn, case.expected, case.params.get("seed", 0), timeout)
    if report is None:
        return res
    if peers:
        t2 = time.perf_counter()
        res.peers = run_peers(scn)
        res.seconds["peers"] = time.perf_counter() - t2
    return res


def build_and_time(res: CaseResult, build, timeout: float | None, t0: float):
    """``build()`` under ``timeout``; the scenario, or None with a timeout or an error recorded in ``res``."""
    try:
        scn = call_with_timeout(build, timeout)
    except CallTimeout as exc:
        res.status, res.error = "timeout", f"build {exc}"
        return None
    except Exception as exc:  # noqa: BLE001 - a broken case is a row in the table, not a crash
        res.status, res.error = "build failed", _one_line(exc)
        return None
    res.seconds["build"] = time.perf_counter() - t0
    return scn


def diagnose_and_score(res: CaseResult, scn, expected: str | None, seed: int, timeout: float | None):
    """Diagnose a built scenario into ``res`` (top three, alarms, false alarms, failed checks); the report, or None on failure.

    The time left of ``timeout`` after building bounds the diagnosis; a timeout or an error is recorded in ``res``.
    """
    t1 = time.perf_counter()
    try:
        left = None if timeout is None else max(1.0, timeout - res.seconds["build"])
        report = call_with_timeout(lambda: scn.diagnose(seed=seed), left)
    except CallTimeout as exc:
        res.status, res.error = "timeout", f"diagnose {exc}"
        return None
    except Exception as exc:  # noqa: BLE001 - a failing diagnosis is a row in the table, not a crash
        res.status, res.error = "diagnose failed", _one_line(exc)
        return None
    res.seconds["diagnose"] = time.perf_counter() - t1
    res.top = [(f.code, f.severity, round(float(f.confidence), 3)) for f in report.findings[:3]]
    res.alarms = [(f.code, f.severity) for f in report.findings if f.severity in ALARM]
    res.false_alarms = unrelated_alarms(expected, res.alarms, declared_related(getattr(scn, "notes", None)))
    res.failed_checks = [(c.name, c.reason) for c in report.checks if c.status == "failed"]
    return report


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


# -- peers ------------------------------------------------------------------------------------------
@dataclass
class PeerSplit:
    """What a peer sees of one split: inputs (NHWC images or N×D features), labels, probabilities."""

    name: str
    x: np.ndarray | None
    is_image: bool
    y: np.ndarray | None
    probs: np.ndarray | None


def peer_splits(scn) -> tuple[dict[str, PeerSplit], int]:
    """The scenario's splits as the peers receive them: validated by whylow, predicted by the model where needed.

    Uses whylow's own input preparation (so the peers see exactly the data
    whylow sees) and the model through `whylow.models.as_predictor`.
    """
    from whylow.context import Context
    from whylow.inputs import as_split, prepare_splits

    raw = {n: as_split(v, n) for n, v in (("train", scn.train), ("val", scn.val), ("test", scn.test))}
    splits, names = prepare_splits(raw, class_names=scn.class_names)
    model = None
    if scn.model is not None:
        from whylow.models import as_predictor

        layout = splits["test"].layout
        model = as_predictor(scn.model, data_layout=None if layout == "tabular" else layout)
    ctx = Context(splits=splits, n_classes=len(names), class_names=names, model=model)
    out = {}
    n_classes = len(names)
    for name, s in splits.items():
        probs = s.probs
        if probs is None and s.x is not None and model is not None:
            probs = ctx.predict_probs(s.x)
        if probs is not None:
            n_classes = max(n_classes, probs.shape[1])
        x = None
        if s.x is not None:
            x = np.asarray(s.images_nhwc() if s.is_image else s.x)
        out[name] = PeerSplit(name, x, bool(s.is_image), s.y, None if probs is None else np.asarray(probs, dtype=np.float64))
    return out, n_classes


def run_peers(scn) -> dict:
    """Each peer's flagged codes on this scenario: ``{peer: {"codes": [...], "detail": str}}`` or ``{"error": ...}``."""
    try:
        splits, n_classes = peer_splits(scn)
    except Exception as exc:  # noqa: BLE001
        return {p: {"error": f"inputs: {_one_line(exc)}"} for p in PEERS}
    out = {}
    for peer, fn in (("Datalab", peer_datalab), ("netcal", peer_netcal), ("KS drift", peer_ks_drift)):
        try:
            with silenced():
                out[peer] = fn(splits, n_classes)
        except ImportError as exc:
            out[peer] = {"error": f"not installed ({_one_line(exc)[:80]})"}
        except Exception as exc:  # noqa: BLE001 - a peer failing on a case is a cell, not a crash
            out[peer] = {"error": _one_line(exc)}
    return out


def _features(x: np.ndarray | None, max_dims: int = 768) -> np.ndarray | None:
    """Flattened inputs as float32 features, average-pooled until at most ``max_dims`` values per sample.

    Non-finite values are kept (as NaN), as a user passing their data to Datalab would.
    """
    if x is None:
        return None
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 4:  # N×H×W×C images: pool 2×2 while too large
        while x.shape[1] * x.shape[2] * x.shape[3] > max_dims and x.shape[1] >= 2 and x.shape[2] >= 2:
            h, w = x.shape[1] // 2 * 2, x.shape[2] // 2 * 2
            x = x[:, :h, :w].reshape(len(x), h // 2, 2, w // 2, 2, x.shape[3]).mean(axis=(2, 4))
    flat = x.reshape(len(x), -1)
    flat[~np.isfinite(flat)] = np.nan  # NaN rows stay NaN: Datalab's null check is the one that should see them
    return flat


def peer_datalab(splits: dict[str, PeerSplit], n_classes: int) -> dict:
    """cleanlab Datalab on the labelled, predicted splits concatenated in order (see `PEER_RULES`)."""
    from cleanlab import Datalab

    parts = [s for s in splits.values() if s.y is not None and s.probs is not None]
    if not parts:
        return {"codes": [], "detail": "no labelled split with predictions"}
    # rows shuffled within each split, so non_iid sees differences between splits, not the source's ordering
    rng = np.random.default_rng(0)
    orders = [rng.permutation(len(s.y)) for s in parts]
    y = np.concatenate([s.y[o] for s, o in zip(parts, orders)])
    probs = np.concatenate([s.probs[o] for s, o in zip(parts, orders)])
    which = np.concatenate([[s.name] * len(s.y) for s in parts])
    feats = None
    if all(s.x is not None for s in parts) and len({s.x.shape[1:] for s in parts}) == 1:
        feats = _features(np.concatenate([s.x[o] for s, o in zip(parts, orders)]))
    types = {"label": {}, "outlier": {}, "near_duplicate": {}, "non_iid": {}, "class_imbalance": {}, "null": {}}
    if feats is None:
        types = {k: v for k, v in types.items() if k in ("label", "outlier", "non_iid", "class_imbalance")}
    lab = Datalab({"label": y}, label_name="label", verbosity=0)
    kwargs = {"pred_probs": probs, "issue_types": types}
    if feats is not None:
        kwargs["features"] = feats
    lab.find_issues(**kwargs)
    summary = {r["issue_type"]: int(r["num_issues"]) for r in lab.get_issue_summary().to_dict("records")}
    n = len(y)
    is_test = which == "test"
    codes, detail = set(), []
    if summary.get("label", 0) >= 0.05 * n:
        codes.add("label-noise")
    detail.append(f"label {summary.get('label', 0)}/{n}")
    if "near_duplicate" in summary:
        issues = lab.get_issues("near_duplicate")
        flagged = issues["is_near_duplicate_issue"].to_numpy()
        sets = issues["near_duplicate_sets"].to_numpy()
        crossing = np.array([bool(len(sets[i])) and any(which[j] != which[i] for j in sets[i]) for i in range(n)])
        cross = int((flagged & crossing & is_test).sum())
        within = int((flagged & ~crossing).sum())
        if is_test.any() and cross >= 0.01 * is_test.sum():
            codes.add("train-test-leakage")
        if within >= 0.01 * n:
            codes.add("data-quality")
        detail.append(f"near-dup {within} within splits, {cross} test rows across")
    if summary.get("null", 0) > 0:
        codes.add("data-quality")
        detail.append(f"null {summary['null']}")
    train = splits.get("train")
    if train is not None and train.y is not None:  # imbalance is a property of the training labels
        lab_train = Datalab({"label": train.y}, label_name="label", verbosity=0)
        lab_train.find_issues(issue_types={"class_imbalance": {}})
        summary["class_imbalance"] = int(lab_train.get_issue_summary()["num_issues"].sum())
    if summary.get("class_imbalance", 0) > 0:
        codes.add("class-imbalance")
        detail.append("class_imbalance")
    if "non_iid" in summary:
        p_value = (lab.get_info("non_iid") or {}).get("p-value")
        if summary["non_iid"] > 0:
            codes.add("covariate-shift")
        detail.append(f"non_iid p {p_value:.2g}" if isinstance(p_value, float) else "non_iid")
    if "outlier" in summary and is_test.any():
        out_test = int(lab.get_issues("outlier")["is_outlier_issue"].to_numpy()[is_test].sum())
        if out_test >= 0.05 * is_test.sum():
            codes.add("data-quality")
        detail.append(f"outlier(test) {out_test}")
    return {"codes": sorted(codes), "detail": "; ".join(detail)}


def peer_netcal(splits: dict[str, PeerSplit], n_classes: int) -> dict:
    """netcal ECE on the test split (see `PEER_RULES`)."""
    from netcal.metrics import ECE

    t = splits["test"]
    if t.y is None or t.probs is None:
        return {"codes": [], "detail": "test split has no labels or predictions"}
    probs = t.probs if t.probs.shape[1] > 1 else np.column_stack([1 - t.probs[:, 0], t.probs[:, 0]])
    ece = float(ECE(bins=15).measure(probs, t.y))
    gap = float(probs.max(axis=1).mean() - (probs.argmax(axis=1) == t.y).mean())
    codes = []
    if ece >= 0.05:
        codes.append("overconfidence" if gap > 0 else "underconfidence")
    return {"codes": codes, "detail": f"ECE {ece:.3f}, conf−acc {gap:+.3f}"}


def image_properties(x: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image properties a drift report looks at: brightness, contrast, sharpness, channel means.

    Parameters
    ----------
    x : ndarray of shape (n_samples, height, width, channels)
    """
    x = np.asarray(x, dtype=np.float32)
    grey = x.mean(axis=3)
    props = {
        "brightness": grey.mean(axis=(1, 2)),
        "contrast": grey.std(axis=(1, 2)),
        "sharpness": np.abs(np.diff(grey, axis=1)).mean(axis=(1, 2)) + np.abs(np.diff(grey, axis=2)).mean(axis=(1, 2)),
    }
    if x.shape[3] > 1:
        for c in range(x.shape[3]):
            props[f"channel{c}_mean"] = x[..., c].mean(axis=(1, 2))
    return props


def peer_ks_drift(splits: dict[str, PeerSplit], n_classes: int) -> dict:
    """Two-sample KS tests, reference (train, else val) vs test, Bonferroni-corrected (see `PEER_RULES`)."""
    from scipy import stats

    ref = next((splits[n] for n in ("train", "val") if n in splits and splits[n].x is not None), None)
    test = splits["test"]
    if ref is None or test.x is None:
        return {"codes": [], "detail": "needs inputs x in test and train/val"}
    if ref.x.shape[1:] != test.x.shape[1:] and not (ref.is_image and test.is_image):
        return {"codes": [], "detail": "train and test inputs differ in shape"}
    if ref.is_image:
        a, b = image_properties(ref.x), image_properties(test.x)
    else:
        fa, fb = ref.x.reshape(len(ref.x), -1), test.x.reshape(len(test.x), -1)
        a = {f"f{j}": fa[:, j] for j in range(fa.shape[1])}
        b = {f"f{j}": fb[:, j] for j in range(fb.shape[1])}
    pvals = {}
    for k in a:
        va, vb = a[k][np.isfinite(a[k])], b[k][np.isfinite(b[k])]
        if len(va) and len(vb):
            pvals[k] = float(stats.ks_2samp(va, vb).pvalue)
    if not pvals:
        return {"codes": [], "detail": "no finite values to compare"}
    m = len(pvals)
    worst = min(pvals, key=pvals.get)
    p_adj = min(1.0, pvals[worst] * m)
    codes = ["covariate-shift", "preprocessing-mismatch"] if p_adj < 0.01 else []
    return {"codes": codes, "detail": f"min adj. p {p_adj:.2g} ({worst})"}


# -- tables -----------------------------------------------------------------------------------------
def _fmt_top(res: CaseResult) -> str:
    if not res.ok:
        return f"**{res.status}**: {res.error}"
    if not res.top:
        return "(no findings)"
    return ", ".join(f"{c} ({s[0]})" for c, s, _ in res.top)


def _peer_cell(res: CaseResult, peer: str) -> str:
    if not res.ok:
        return "—"
    r = res.peers.get(peer)
    if r is None:
        return "—"
    if "error" in r:
        return f"error: {r['error'][:60]}"
    exp = res.case.expected
    codes = r["codes"]
    if exp is None:
        mark = "✗ alarm" if codes else "✓ quiet"
    elif exp in codes:
        mark = "✓ caught"
    else:
        mark = "· missed"
    return f"{mark} [{', '.join(codes) or '—'}]"


def case_table(results: list[CaseResult], peers: bool) -> str:
    headers = ["case", "injected", "whylow top 3 (severity)", "top-1", "false alarms"]
    if peers:
        headers += list(PEERS)
    rows = []
    for r in results:
        if r.case.expected is None:
            verdict = "—" if not r.ok else ("✓" if not r.false_alarms else "✗")
        else:
            verdict = "✓" if r.top1 else ("(info)" if r.top1_any else "✗")
        fa = ", ".join(f"{c} ({s[0]})" for c, s in r.false_alarms) if r.ok else "—"
        row = [r.case.label, r.case.expected or "healthy", _fmt_top(r), verdict, fa or "none"]
        if peers:
            row += [_peer_cell(r, p) for p in PEERS]
        rows.append(row)
    return markdown_table(headers, rows)


def _peer_caught(r: CaseResult, peer: str) -> bool | None:
    p = r.peers.get(peer)
    if not r.ok or p is None or "error" in p:
        return None
    return r.case.expected in p["codes"]


def code_table(results: list[CaseResult], peers: bool) -> str:
    """Per injected code: how many cases each tool caught (whylow: top-1 / top-3)."""
    from whylow.report.finding import CODES

    headers = ["fault code", "cases", "whylow top-1", "whylow top-3"] + (list(PEERS) if peers else [])
    rows = []
    for code in CODES:
        rs = [r for r in results if r.case.expected == code]
        if not rs:
            rows.append([code, 0, "no scenario", "—"] + (["—"] * len(PEERS) if peers else []))
            continue
        row = [code, len(rs), f"{sum(r.top1 for r in rs)}/{len(rs)}", f"{sum(r.top3 for r in rs)}/{len(rs)}"]
        if peers:
            for p in PEERS:
                got = [_peer_caught(r, p) for r in rs]
                known = [g for g in got if g is not None]
                row.append(f"{sum(known)}/{len(known)}" if known else "n/a")
        rows.append(row)
    healthy = [r for r in results if r.case.expected is None]
    if healthy:
        alarmed = sum(bool(r.false_alarms) for r in healthy if r.ok)
        row = ["healthy (cases with any alarm)", len(healthy), f"{alarmed} alarmed", "—"]
        if peers:
            for p in PEERS:
                got = [r.peers.get(p) for r in healthy if r.ok]
                known = [g for g in got if g is not None and "error" not in g]
                row.append(f"{sum(bool(g['codes']) for g in known)} alarmed" if known else "n/a")
        rows.append(row)
    return markdown_table(headers, rows)


def totals(results: list[CaseResult]) -> dict:
    """Top-1 accuracy, top-3 recall and false-alarm counts over the suite."""
    faults = [r for r in results if r.case.expected is not None]
    healthy = [r for r in results if r.case.expected is None]
    n_f = len(faults)
    return {
        "fault_cases": n_f,
        "healthy_cases": len(healthy),
        "failed_cases": sum(not r.ok for r in results),
        "top1": sum(r.top1 for r in faults) / n_f if n_f else None,
        "top1_any_severity": sum(r.top1_any for r in faults) / n_f if n_f else None,
        "top3": sum(r.top3 for r in faults) / n_f if n_f else None,
        "false_alarms_healthy": sum(len(r.false_alarms) for r in healthy),
        "healthy_cases_alarmed": sum(bool(r.false_alarms) for r in healthy),
        "false_alarms_unrelated": sum(len(r.false_alarms) for r in faults),
        "codes_without_scenario": _codes_without_scenario(results),
    }


def _codes_without_scenario(results) -> list[str]:
    from whylow.report.finding import CODES

    have = {r.case.expected for r in results}
    return [c for c in CODES if c not in have]


def totals_table(t: dict) -> str:
    pct = lambda v: "—" if v is None else f"{100 * v:.0f} %"  # noqa: E731
    rows = [
        ["fault cases / healthy cases / failed to run", f"{t['fault_cases']} / {t['healthy_cases']} / {t['failed_cases']}"],
        ["top-1 accuracy (injected code first, warning or critical)", pct(t["top1"])],
        ["top-1, any severity", pct(t["top1_any_severity"])],
        ["top-3 recall", pct(t["top3"])],
        ["false alarms on healthy cases (findings; cases)", f"{t['false_alarms_healthy']}; {t['healthy_cases_alarmed']}"],
        ["unrelated warnings/criticals on fault cases", t["false_alarms_unrelated"]],
        ["codes with no scenario yet", ", ".join(t["codes_without_scenario"]) or "none"],
    ]
    return markdown_table(["total", "value"], rows, "lr")


# -- grid mode: randomised cases, dev and held-out seeds ---------------------------------------------
@dataclass
class GridRef:
    """A grid case as the result tables see it (`whylow.scenarios.grid`)."""

    seed: int
    expected: str | None
    label: str = ""

    @property
    def params(self) -> dict:
        return {"seed": self.seed}


@dataclass
class GridResult(CaseResult):
    """A `CaseResult` of a grid case, with what the tables group by (source, storage, ...) in ``meta``."""

    meta: dict = field(default_factory=dict)
    candidate: dict | None = None  # evidence["preprocessing_candidate"] of the top finding

    def _names_it(self, code: str) -> bool:
        """``code`` names the injected fault: the expected code, or one the generator declares equivalent
        (``notes["equivalent"]``: an Adam learning rate of 1e-5 *is* a learning rate too low, and underfitting)."""
        return code == self.case.expected or code in self.meta.get("equivalent", ())

    @property
    def top1(self) -> bool:
        return bool(self.ok and self.top and self._names_it(self.top[0][0]) and self.top[0][1] in ALARM)

    @property
    def top1_any(self) -> bool:
        return bool(self.ok and self.top and self._names_it(self.top[0][0]))

    @property
    def top3(self) -> bool:
        return bool(self.ok and any(self._names_it(t[0]) for t in self.top))

    @property
    def scored(self) -> bool:
        """Whether the case counts: a fault case whose fault failed the generator's effect gate does not."""
        return not str(self.meta.get("gate", "")).startswith("failed")

    @property
    def named_right(self) -> bool:
        """Preprocessing cases: the top finding is preprocessing-mismatch and its candidate is the injected bug."""
        injected = self.meta.get("preprocessing")
        if not (self.ok and injected and self.top and self.top[0][0] == "preprocessing-mismatch"):
            return False
        return candidate_matches(injected, self.candidate)


def candidate_matches(injected: dict, candidate: dict | None) -> bool:
    """Whether a preprocessing candidate names the injected bug: same kind, and the same constant.

    scale: ``factor`` within 2 %; flip: the same ``axis``; rotation: the same ``k``;
    normalisation-constants: the same ``name`` when the candidate gives one; the other kinds: the kind.
    """
    if not isinstance(candidate, dict) or candidate.get("kind") != injected.get("kind"):
        return False
    kind = injected["kind"]
    try:
        if kind == "scale":
            return abs(float(candidate["factor"]) / float(injected["factor"]) - 1.0) <= 0.02
        if kind == "flip":
            return candidate.get("axis") == injected["axis"]
        if kind == "rotation":
            return int(candidate.get("k")) % 4 == int(injected["k"]) % 4
        if kind == "normalisation-constants" and "name" in candidate:
            return str(candidate["name"]).lower() == str(injected["name"]).lower()
    except (KeyError, TypeError, ValueError):
        return False
    return True


def grid_plan(which: str, n_faults: int, n_healthy: int, start: int = 0) -> list[tuple[int, str | None]]:
    """The (seed, fault) pairs of a grid run.

    Fault case ``i`` takes seed ``seeds[start + i]`` and the fault code
    ``FAULT_CODES[i % 16]`` (round-robin over the codes); healthy case ``j``
    takes ``seeds[len(seeds) // 2 + start + j]``, so the two never share a seed.
    """
    from whylow.scenarios.grid import DEV_SEEDS, FAULT_CODES, HELDOUT_SEEDS

    seeds = {"dev": DEV_SEEDS, "heldout": HELDOUT_SEEDS}[which]
    plan = [(seeds[start + i], FAULT_CODES[i % len(FAULT_CODES)]) for i in range(n_faults)]
    plan += [(seeds[len(seeds) // 2 + start + j], None) for j in range(n_healthy)]
    return plan


def _grid_meta(case, notes: dict) -> dict:
    effect = notes.get("effect") or {}
    return {
        "source": case.source, "colour": case.colour, "size": case.size, "storage": case.storage,
        "model_input": case.model_input, "arch": notes.get("grid", {}).get("arch", case.arch),
        "n_train": notes.get("sizes", {}).get("train", case.n_train), "variant": notes.get("variant", case.variant),
        "preprocessing": notes.get("preprocessing"), "shift": notes.get("shift"),
        "gate": effect.get("gate"), "effect": {k: v for k, v in effect.items() if k != "rejected"},
        "fault_note": notes.get("fault"), "healthy_note": notes.get("healthy"), "fit": notes.get("fit"),
        "equivalent": list(notes.get("equivalent", ())),
    }


def run_grid_case(seed: int, fault: str | None, timeout: float | None = 300.0, max_train: int | None = None,
                  max_epochs: int | None = None) -> GridResult:
    """Sample, build and diagnose one grid case; never raises (failures are recorded in the result).

    ``max_train`` / ``max_epochs`` shrink the case (`whylow.scenarios.grid.shrink_case`), for smoke runs.
    """
    from whylow.scenarios.grid import build_case, sample_case, shrink_case

    ref = GridRef(seed, fault, f"{seed} {fault or 'healthy'}")
    res = GridResult(ref)
    t0 = time.perf_counter()
    case = shrink_case(sample_case(seed, fault=fault), max_train, max_epochs)
    ref.label = case.label
    res.meta = {"source": case.source, "storage": case.storage, "arch": case.arch, "variant": case.variant}
    scn = build_and_time(res, lambda: build_case(case), timeout, t0)
    if scn is None:
        return res
    res.meta = _grid_meta(case, scn.notes)
    ref.label = scn.notes.get("label", ref.label)
    report = diagnose_and_score(res, scn, fault, seed, timeout)
    if report is None:
        return res
    if report.findings:
        cand = (report.findings[0].evidence or {}).get("preprocessing_candidate")
        res.candidate = cand if isinstance(cand, dict) else None
    return res


def _grid_result_dict(r: GridResult) -> dict:
    d = asdict(r)
    d.update(top1=r.top1, top1_any=r.top1_any, top3=r.top3, label=r.case.label, scored=r.scored,
             named_right=r.named_right)
    return d


def _grid_result_from(d: dict) -> GridResult:
    ref = GridRef(**d["case"])
    keep = {k: d[k] for k in ("status", "error", "seconds", "meta", "candidate")}
    lists = {k: [tuple(x) for x in d[k]] for k in ("top", "alarms", "false_alarms", "failed_checks")}
    return GridResult(ref, peers={}, **keep, **lists)


def _worker_init() -> None:
    """One thread per worker process (torch and BLAS): two workers on two cores."""
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    try:
        from threadpoolctl import threadpool_limits

        globals()["_POOL_LIMIT"] = threadpool_limits(limits=1)
    except ImportError:  # pragma: no cover
        pass


def _grid_worker(job: tuple) -> dict:
    return _grid_result_dict(run_grid_case(*job))


def run_grid(plan, workers: int = 1, timeout: float | None = 300.0, log=sys.stderr, max_train: int | None = None,
             max_epochs: int | None = None) -> list[GridResult]:
    """Run every (seed, fault) of ``plan``, in ``workers`` spawned processes when more than one.

    Results come back in plan order. A worker that dies costs its case(s) a
    "worker failed" row, never the run.
    """
    jobs = [(seed, fault, timeout, max_train, max_epochs) for seed, fault in plan]
    out: dict[int, GridResult] = {}

    def note(i, r):
        secs = sum(r.seconds.values())
        what = r.status if not r.ok else (_fmt_top(r) or "no findings")
        print(f"[{len(out)}/{len(jobs)}] {r.case.label}: {secs:.1f} s: {what}", file=log, flush=True)

    if workers <= 1:
        _worker_init()
        for i, job in enumerate(jobs):
            out[i] = _grid_result_from(_grid_worker(job))
            note(i, out[i])
        return [out[i] for i in range(len(jobs))]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"), initializer=_worker_init) as ex:
        futures = {ex.submit(_grid_worker, job): i for i, job in enumerate(jobs)}
        for fut in as_completed(futures):
            i = futures[fut]
            try:
                out[i] = _grid_result_from(fut.result())
            except Exception as exc:  # noqa: BLE001 - a dead worker is a row, not a crash
                seed, fault = jobs[i][:2]
                out[i] = GridResult(GridRef(seed, fault, f"{seed} {fault or 'healthy'}"), status="worker failed",
                                    error=_one_line(exc))
            note(i, out[i])
    return [out[i] for i in range(len(jobs))]


def wilson(k: int, n: int) -> tuple[float, float] | None:
    """The Wilson 95 % interval of a proportion k/n (None when n is 0)."""
    if n == 0:
        return None
    from scipy.stats import binomtest

    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def rate_cell(k: int, n: int) -> str:
    """``k/n = p % [lo–hi]`` with the Wilson 95 % interval."""
    if n == 0:
        return "—"
    lo, hi = wilson(k, n)
    return f"{k}/{n} = {100 * k / n:.0f} % [{100 * lo:.0f}–{100 * hi:.0f}]"


def grid_totals(results: list[GridResult]) -> dict:
    """Counts behind the totals table (fault cases whose effect gate failed are excluded from scoring)."""
    faults = [r for r in results if r.case.expected is not None]
    scored = [r for r in faults if r.scored]
    healthy = [r for r in results if r.case.expected is None]
    healthy_ok = [r for r in healthy if r.ok and r.scored]
    prep = [r for r in scored if r.case.expected == "preprocessing-mismatch"]
    ok_times = [r.seconds for r in results if r.ok]
    return {
        "fault_cases": len(faults),
        "scored_fault_cases": len(scored),
        "excluded_gate_failed": [f"{r.case.label} ({r.meta.get('gate')})" for r in faults if not r.scored],
        "healthy_cases": len(healthy),
        "failed_to_run": [f"{r.case.label}: {r.status}: {r.error}" for r in results if not r.ok],
        "top1": (sum(r.top1 for r in scored), len(scored)),
        "top1_any_severity": (sum(r.top1_any for r in scored), len(scored)),
        "top3": (sum(r.top3 for r in scored), len(scored)),
        "healthy_with_warning": (sum(bool(r.alarms) for r in healthy_ok), len(healthy_ok)),
        "preprocessing_top1": (sum(r.top1 for r in prep), len(prep)),
        "preprocessing_named_right": (sum(r.named_right for r in prep), len(prep)),
        "unrelated_alarms_on_fault_cases": sum(len(r.false_alarms) for r in scored),
        "seconds_build": [t.get("build", 0.0) for t in ok_times],
        "seconds_diagnose": [t.get("diagnose", 0.0) for t in ok_times],
    }


def _secs(values) -> str:
    if not values:
        return "—"
    v = np.asarray(values)
    return f"median {np.median(v):.1f} s, mean {v.mean():.1f} s, max {v.max():.1f} s"


def grid_totals_table(t: dict) -> str:
    rows = [
        ["fault cases (scored / excluded: fault had no effect) / healthy cases / failed to run",
         f"{t['fault_cases']} ({t['scored_fault_cases']} / {len(t['excluded_gate_failed'])}) / {t['healthy_cases']} / "
         f"{len(t['failed_to_run'])}"],
        ["top-1 (injected code first, warning or critical)", rate_cell(*t["top1"])],
        ["top-1, any severity", rate_cell(*t["top1_any_severity"])],
        ["top-3 (injected code among the first three findings)", rate_cell(*t["top3"])],
        ["healthy models with any warning/critical", rate_cell(*t["healthy_with_warning"])],
        ["preprocessing-mismatch top-1", rate_cell(*t["preprocessing_top1"])],
        ["preprocessing named right (top finding's candidate = the injected bug and constant)",
         rate_cell(*t["preprocessing_named_right"])],
        ["unrelated warnings/criticals on fault cases", t["unrelated_alarms_on_fault_cases"]],
        ["build time per case", _secs(t["seconds_build"])],
        ["diagnose time per case", _secs(t["seconds_diagnose"])],
    ]
    return markdown_table(["total", "value"], rows, "lr")


def _wrong_top(rs: list[GridResult]) -> str:
    from collections import Counter

    wrong = Counter(r.top[0][0] if r.top else "(none)" for r in rs if r.ok and not r.top1)
    return ", ".join(f"{c} ×{n}" for c, n in wrong.most_common(3)) or "—"


def grid_code_table(results: list[GridResult]) -> str:
    """Per injected code: top-1 and top-3 with intervals, and what came first instead."""
    from whylow.scenarios.grid import FAULT_CODES

    rows = []
    for code in FAULT_CODES:
        rs = [r for r in results if r.case.expected == code and r.scored]
        excluded = sum(1 for r in results if r.case.expected == code and not r.scored)
        rows.append([code, len(rs), excluded, rate_cell(sum(r.top1 for r in rs), len(rs)),
                     rate_cell(sum(r.top3 for r in rs), len(rs)), _wrong_top(rs)])
    return markdown_table(["fault code", "scored", "excluded", "top-1", "top-3", "first instead (misses)"], rows)


def grid_kind_table(results: list[GridResult]) -> str:
    """Per preprocessing kind and per covariate-shift kind: top-1 and (preprocessing) named right."""
    rows = []
    for code, key in (("preprocessing-mismatch", "preprocessing"), ("covariate-shift", "shift")):
        rs = [r for r in results if r.case.expected == code and r.scored]
        for kind in sorted({(r.meta.get(key) or {}).get("kind", "?") for r in rs}):
            sub = [r for r in rs if (r.meta.get(key) or {}).get("kind", "?") == kind]
            named = rate_cell(sum(r.named_right for r in sub), len(sub)) if key == "preprocessing" else "—"
            rows.append([code, kind, len(sub), rate_cell(sum(r.top1 for r in sub), len(sub)), named, _wrong_top(sub)])
    return markdown_table(["fault", "kind", "cases", "top-1", "named right", "first instead (misses)"], rows)


def grid_axis_table(results: list[GridResult], axis: str) -> str:
    """Fault top-1 / top-3 and healthy alarms grouped by one grid axis (source, storage, arch)."""
    values = sorted({str(r.meta.get(axis)) for r in results if r.meta.get(axis) is not None})
    rows = []
    for v in values:
        fs = [r for r in results if r.case.expected is not None and r.scored and str(r.meta.get(axis)) == v]
        hs = [r for r in results if r.case.expected is None and r.ok and r.scored and str(r.meta.get(axis)) == v]
        rows.append([v, rate_cell(sum(r.top1 for r in fs), len(fs)), rate_cell(sum(r.top3 for r in fs), len(fs)),
                     rate_cell(sum(bool(r.alarms) for r in hs), len(hs))])
    return markdown_table([axis, "fault top-1", "fault top-3", "healthy with a warning"], rows)


def grid_false_alarm_table(results: list[GridResult]) -> str:
    """Per finding code: how many healthy models got it as a warning/critical (with intervals)."""
    healthy = [r for r in results if r.case.expected is None and r.ok and r.scored]
    codes = sorted({c for r in healthy for c, _ in r.alarms})
    rows = [[c, rate_cell(sum(any(a[0] == c for a in r.alarms) for r in healthy), len(healthy))] for c in codes]
    rows.append(["any code", rate_cell(sum(bool(r.alarms) for r in healthy), len(healthy))])
    return markdown_table(["finding code (warning/critical) on healthy models", "healthy models"], rows)


def grid_gap_table(results: list[GridResult]) -> str:
    """Healthy models with a warning, by their own train - validation accuracy gap (an ordinary gap is no fault)."""
    healthy = [r for r in results if r.case.expected is None and r.ok]
    rows = []
    for name, lo, hi in (("≤ 5 points", -1.0, 0.05), ("5–15 points", 0.05, 0.15), ("> 15 points", 0.15, 2.0)):
        rs = [r for r in healthy if lo < float((r.meta.get("fit") or {}).get("gap", 0.0)) <= hi]
        codes = sorted({c for r in rs for c, _ in r.alarms})
        rows.append([name, rate_cell(sum(bool(r.alarms) for r in rs), len(rs)), ", ".join(codes) or "—"])
    return markdown_table(["healthy model's train − val accuracy gap", "with a warning", "codes"], rows)


def _effect_cell(r: GridResult) -> str:
    e = r.meta.get("effect") or {}
    if "clean_accuracy" in e:
        return (f"acc {e['clean_accuracy']:.2f}→{e['faulted_accuracy']:.2f}, "
                f"NLL {e['clean_log_loss']:.2f}→{e['faulted_log_loss']:.2f}")
    if "clean_log_loss" in e:
        return f"NLL {e['clean_log_loss']:.2f}→{e['faulted_log_loss']:.2f}"
    if "healthy_val_accuracy" in e:
        return f"val acc {e['val_accuracy']:.2f} vs healthy {e['healthy_val_accuracy']:.2f}"
    if "val_auc" in e:
        return (f"bal. acc {e['val_balanced_accuracy_at_0.5']:.2f}→{e['val_balanced_accuracy_at_best']:.2f} "
                f"at {e['best_threshold']}")
    fit = r.meta.get("fit") or {}
    if "train_accuracy" in fit:
        temp = f", T {fit['val_temperature']:.2f}" if "val_temperature" in fit else ""
        return f"train {fit['train_accuracy']:.2f} / val {fit['val_accuracy']:.2f}{temp}"
    return "—"


def grid_case_table(results: list[GridResult]) -> str:
    rows = []
    for r in results:
        if r.case.expected is None:
            verdict = "—" if not r.ok else ("excluded" if not r.scored else ("✓ quiet" if not r.alarms else "✗ alarm"))
        elif not r.scored:
            verdict = "excluded"
        else:
            verdict = "✓" if r.top1 else ("(info)" if r.top1_any else ("top-3" if r.top3 else "✗"))
        inj = (r.meta.get("preprocessing") or r.meta.get("shift") or {}).get("kind")
        expected = (r.case.expected or "healthy") + (f" ({inj})" if inj else "")
        named = "—"
        if r.meta.get("preprocessing"):
            cand = r.candidate
            named = ("✓ " if r.named_right else "✗ ") + (json.dumps(cand, default=str)[:60] if cand else "no candidate")
        fa = ", ".join(f"{c} ({s[0]})" for c, s in r.false_alarms) if r.ok else "—"
        rows.append([r.case.label, expected, _effect_cell(r), _fmt_top(r), verdict, named, fa or "none",
                     f"{r.seconds.get('build', 0):.0f}+{r.seconds.get('diagnose', 0):.0f}"])
    headers = ["case", "injected", "effect", "whylow top 3 (severity)", "top-1", "named", "unrelated alarms",
               "s build+diag"]
    return markdown_table(headers, rows)


def grid_main(args) -> int:
    """The --grid mode: sample, build and diagnose grid cases; print the tables."""
    t_start = time.perf_counter()
    plan = grid_plan(args.grid, args.faults, args.healthy, args.start)
    print(f"grid {args.grid}: {args.faults} fault and {args.healthy} healthy cases, {args.workers} worker(s)",
          file=sys.stderr, flush=True)
    results = run_grid(plan, workers=args.workers, timeout=args.case_timeout, max_train=args.max_train,
                       max_epochs=args.max_epochs)
    elapsed = time.perf_counter() - t_start
    t = grid_totals(results)
    print(f"## Detection benchmark, randomised grid ({args.grid} seeds)\n")
    if args.max_train or args.max_epochs:
        print(f"**Smoke run**: cases shrunk to at most {args.max_train or 'all'} training images and "
              f"{args.max_epochs or 'all'} epochs; not the benchmark's numbers.\n")
    print(machine_line() + f" Total run time {elapsed:.0f} s with {args.workers} worker(s).\n")
    print(grid_totals_table(t) + "\n")
    print("### Per fault code\n\n" + grid_code_table(results) + "\n")
    print("### Per preprocessing and covariate-shift kind\n\n" + grid_kind_table(results) + "\n")
    for axis in ("source", "storage", "model_input", "arch"):
        print(f"### Per {axis}\n\n" + grid_axis_table(results, axis) + "\n")
    print("### False alarms on healthy models, per finding code\n\n" + grid_false_alarm_table(results) + "\n")
    print("### Healthy models by their generalisation gap\n\n" + grid_gap_table(results) + "\n")
    print("### Cases\n\n" + grid_case_table(results) + "\n")
    print(
        "Intervals: Wilson 95 %. top-1: the first finding is the injected code at warning/critical severity "
        "(or a code the generator declares equivalent: an underfitting case made by a learning rate of 1e-5 is also "
        "named right as `learning-rate`). "
        "A fault case is excluded from scoring when its injected fault did not pass the generator's effect gate "
        "(e.g. it did not change the model's predictions). Healthy models: any warning/critical finding is a false "
        "alarm. Unrelated alarms on fault cases: codes that are neither the injected one nor in `RELATED` nor "
        "declared by the case."
    )
    if t["excluded_gate_failed"]:
        print("\nExcluded fault cases (no effective fault): " + "; ".join(t["excluded_gate_failed"]))
    if t["failed_to_run"]:
        print("\nFailed to run: " + "; ".join(t["failed_to_run"]))
    failed_checks = sorted({f"{name} ({reason[:80]})" for r in results for name, reason in r.failed_checks})
    if failed_checks:
        print("\nChecks that failed on some case: " + "; ".join(failed_checks))
    if args.json_path:
        payload = {"mode": f"grid-{args.grid}", "totals": t, "elapsed_s": elapsed, "machine": machine_line(),
                   "cases": [_grid_result_dict(r) for r in results]}
        Path(args.json_path).write_text(json.dumps(payload, indent=1, default=str), encoding="utf-8")
    return 0


# -- main -------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK_SCENARIOS)} at default parameters")
    ap.add_argument("--scenarios", help="comma-separated scenario names (default: all registered)")
    ap.add_argument("--magnitude-factors", default="0.75,1,1.5", help="multiples of each builder's default magnitude")
    ap.add_argument("--no-peers", action="store_true", help="skip cleanlab / netcal / KS")
    ap.add_argument("--case-timeout", type=float, default=300.0, help="seconds per case (build + diagnose)")
    ap.add_argument("--list", action="store_true", help="print the cases of the suite and exit")
    ap.add_argument("--json", dest="json_path", help="also write the raw results here")
    ap.add_argument("--check", action="store_true", help="exit 1 unless top-1 >= 80%% and no healthy false alarm")
    grid = ap.add_argument_group("randomised grid (whylow.scenarios.grid); peers are not run in this mode")
    grid.add_argument("--grid", choices=("dev", "heldout"), help="run grid cases from the dev or held-out seeds")
    grid.add_argument("--faults", type=int, default=32, help="fault cases (round-robin over the finding codes)")
    grid.add_argument("--healthy", type=int, default=16, help="healthy cases")
    grid.add_argument("--workers", type=int, default=1, help="cases run in this many processes (one thread each)")
    grid.add_argument("--start", type=int, default=0, help="offset into the seed set (another sample of cases)")
    grid.add_argument("--max-train", type=int, help="smoke runs: at most this many training images per case")
    grid.add_argument("--max-epochs", type=int, help="smoke runs: train at most this many epochs")
    args = ap.parse_args(argv)
    if args.grid:
        return grid_main(args)

    factors = tuple(float(f) for f in args.magnitude_factors.split(","))
    only = [s.strip() for s in args.scenarios.split(",")] if args.scenarios else None
    t_start = time.perf_counter()
    try:
        broken = scenario_specs()[1]
        cases = build_suite(quick=args.quick, only=only, factors=factors)
    except Exception as exc:  # noqa: BLE001 - e.g. a scenario module that fails to import
        print(f"detection: could not list the scenarios: {_one_line(exc)}", file=sys.stderr)
        traceback.print_exc()
        return 2
    if not cases:
        print("detection: no scenario matched", file=sys.stderr)
        return 2
    if args.list:
        print(markdown_table(["case", "injected"], [[c.label, c.expected or "healthy"] for c in cases]))
        return 0
    results = []
    for i, case in enumerate(cases, 1):
        print(f"[{i}/{len(cases)}] {case.label} ...", end=" ", file=sys.stderr, flush=True)
        r = run_case(case, peers=not args.no_peers, timeout=args.case_timeout)
        results.append(r)
        secs = sum(r.seconds.values())
        note = r.status if not r.ok else (_fmt_top(r) or "no findings")
        print(f"{secs:.1f} s: {note}", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - t_start
    t = totals(results)

    print("## Detection benchmark\n")
    print(machine_line() + f" Total run time {elapsed:.0f} s.\n")
    print(totals_table(t) + "\n")
    print(code_table(results, peers=not args.no_peers) + "\n")
    print(case_table(results, peers=not args.no_peers) + "\n")
    print(
        "top-1 ✓: the first finding is the injected code at warning/critical severity; (info): first but only "
        "as info. Severity letters: c critical, w warning, i info. False alarms: warning/critical findings on "
        "healthy cases, or on fault cases with a code that is neither the injected one nor a consequence of it "
        "(`RELATED` in benchmarks/detection.py) nor declared true of the scenario by its builder."
    )
    if broken:
        print("\nScenario modules that failed to import (their scenarios are missing): "
              + "; ".join(f"{m} ({e})" for m, e in broken))
    failed_checks = sorted({f"{name} ({reason[:80]})" for r in results for name, reason in r.failed_checks})
    if failed_checks:
        print("\nChecks that failed on some case: " + "; ".join(failed_checks))
    if not args.no_peers:
        print("\nPeer decision rules:\n")
        for peer, rule in PEER_RULES.items():
            print(f"- **{peer}**: {rule}")
    if args.json_path:
        payload = {"totals": t, "elapsed_s": elapsed, "cases": [_jsonable(r) for r in results]}
        Path(args.json_path).write_text(json.dumps(payload, indent=1, default=str), encoding="utf-8")
    if args.check:
        good = t["top1"] is not None and t["top1"] >= 0.8 and t["false_alarms_healthy"] == 0 and t["failed_cases"] == 0
        return 0 if good else 1
    return 0


def _jsonable(r: CaseResult) -> dict:
    d = asdict(r)
    d.update(top1=r.top1, top1_any=r.top1_any, top3=r.top3, label=r.case.label)
    return d


if __name__ == "__main__":
    sys.exit(main())
