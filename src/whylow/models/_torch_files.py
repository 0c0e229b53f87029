"""Load TorchScript and ``torch.export`` files without running code from them.

Both formats are zip archives. The archive is inspected before torch sees it:

* a file that is not a zip (a raw pickle) or a zip holding only ``data.pkl``
  (what ``torch.save`` writes) is refused: opening it means unpickling, which
  runs whatever the file says. ``torch.load`` is never called on a user file.
* a TorchScript archive (``code/`` + ``constants.pkl``) goes to
  ``torch.jit.load``, whose C++ unpickler only rebuilds tensors and
  TorchScript classes.
* a ``torch.export`` archive is checked entry by entry first, because
  ``torch.export.load`` itself falls back to full unpickling (sample inputs,
  tensor-subclass weights, opaque constants), loads compiled AOTInductor
  libraries, evaluates symbolic-shape strings with ``sympy.sympify`` (``eval``)
  and resolves node targets by ``getattr`` from ``torch``. The check allows
  only: raw tensor payloads, sample inputs readable with ``weights_only=True``,
  node targets that are registered operators, and shape expressions in a
  small grammar. Anything else is refused with the reason.
"""

from __future__ import annotations

import io
import json
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

from whylow.errors import InvalidInputError, require

__all__ = ["load_torch_file", "sniff_torch_archive", "check_export_archive"]

_NEVER_UNPICKLES = (
    "whylow loads only TorchScript (torch.jit.save) and torch.export (torch.export.save) files and never unpickles "
    "a model file; re-save the model with torch.jit.save(torch.jit.script(model), 'model.pt') or "
    "torch.export.save(torch.export.export(model, (example_batch,)), 'model.pt2')"
)

# torch.export archive layout (torch/csrc/export/pt2_archive_constants.h), relative to the archive root.
_PT2_ALLOWED = [
    re.compile(p)
    for p in (
        r"archive_format",
        r"archive_version",
        r"byteorder",
        r"\.data/[A-Za-z0-9_.]+",
        r"models/[A-Za-z0-9_]+\.json",
        r"data/weights/[A-Za-z0-9_]+_weights_config\.json",
        r"data/weights/weight_\d+",
        r"data/constants/[A-Za-z0-9_]+_constants_config\.json",
        r"data/constants/tensor_\d+",
        r"data/sample_inputs/[A-Za-z0-9_]+\.pt",
        r"extra/.+",
    )
]

# What a node target may name: torch.ops.<namespace>.<op>[.<overload>], or a plain operator / math function.
_OPS_TARGET = re.compile(r"torch\.ops\.([A-Za-z][A-Za-z0-9_]*)\.[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)?")
_SYM_TARGET = re.compile(r"torch\.sym_[a-z_]+")
_OPERATOR_NAMES = {
    "add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "neg", "pos", "abs", "eq", "ne", "lt", "le",
    "gt", "ge", "and_", "or_", "xor", "not_", "invert", "lshift", "rshift", "getitem", "matmul",
}  # fmt: skip
_MATH_NAMES = {"ceil", "floor", "trunc", "sqrt"}

# Shape expressions are handed to sympy.sympify (eval): allow only these names, quoted symbol names,
# numbers and arithmetic/comparison punctuation; no dots, brackets, attribute access or dunders.
_EXPR_TOKEN = re.compile(
    r"\s+|\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|'[A-Za-z_][A-Za-z0-9_]*'|[A-Za-z_][A-Za-z0-9_]*|\*\*|//|[-+*/%(),<>!=]=?"
)
_SYMBOL_NAME = re.compile(r"[a-z]{1,5}\d+")
_EXPR_NAMES = {
    # sympy constructors and assumptions
    "Symbol", "Integer", "Float", "Rational", "Add", "Mul", "Pow", "Max", "Min", "Mod", "Abs", "floor", "ceiling",
    "sqrt", "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "And", "Or", "Not", "oo", "True", "False",
    "positive", "negative", "nonnegative", "nonpositive", "integer", "real", "finite", "zero", "nonzero",
    # torch.utils._sympy.functions, as listed by the torch.export deserializer
    "FloorDiv", "ModularIndexing", "Where", "PythonMod", "CleanDiv", "CeilToInt", "FloorToInt", "CeilDiv",
    "LShift", "RShift", "PowByNatural", "FloatPow", "FloatTrueDiv", "IntTrueDiv",
    "IsNonOverlappingAndDenseIndicator", "TruncToFloat", "TruncToInt", "RoundToInt", "RoundDecimal", "ToFloat",
    "Identity",
}  # fmt: skip


def load_torch_file(path: Path) -> Any:
    """Load a TorchScript module or an ExportedProgram from ``path``, refusing anything else.

    Parameters
    ----------
    path : Path
        An existing file.

    Returns
    -------
    torch.jit.ScriptModule or torch.export.ExportedProgram
    """
    torch = require("torch", "torch")
    kind = sniff_torch_archive(path)
    if kind == "torchscript":
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                return torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:
            raise InvalidInputError(
                f"The model file {path} looks like TorchScript but torch.jit.load could not read it "
                f"({type(exc).__name__}: {_first_line(exc)}); it may be corrupt or from an incompatible torch version."
            ) from exc
    check_export_archive(path)
    try:
        with open(path, "rb") as fh:  # a buffer, so torch does not warn about the file name's extension
            return torch.export.load(io.BytesIO(fh.read()))
    except Exception as exc:
        raise InvalidInputError(
            f"The model file {path} is a torch.export archive but torch.export.load could not read it "
            f"({type(exc).__name__}: {_first_line(exc)}); re-export it with this torch version ({torch.__version__})."
        ) from exc


def sniff_torch_archive(path: Path) -> str:
    """Tell a TorchScript archive from a torch.export archive by its entries; refuse anything else.

    Returns
    -------
    {"torchscript", "torch.export"}
    """
    if not zipfile.is_zipfile(path):
        raise InvalidInputError(
            f"The model file {path} is not a TorchScript or torch.export archive (it is not a zip file; "
            f"it may be a pickle written by torch.save with the old format); {_NEVER_UNPICKLES}."
        )
    try:
        with zipfile.ZipFile(path) as zf:
            root, names = _archive_entries(zf, path)
            if root + "archive_format" in names:
                fmt = zf.read(root + "archive_format").decode("utf-8", "replace").strip()
                if fmt == "pt2":
                    return "torch.export"
            if any(n.startswith(root + "code/") for n in names) and root + "constants.pkl" in names:
                return "torchscript"
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidInputError(f"The model file {path} is a damaged zip archive ({exc}).") from exc
    if root + "data.pkl" in names:
        raise InvalidInputError(
            f"The model file {path} was written by torch.save (a pickled object, not a TorchScript or "
            f"torch.export program) and was not opened; {_NEVER_UNPICKLES}."
        )
    raise InvalidInputError(
        f"The model file {path} is a zip archive but neither TorchScript nor torch.export; {_NEVER_UNPICKLES}."
    )


def check_export_archive(path: Path) -> None:
    """Refuse a torch.export archive that would make torch.export.load run code or unpickle.

    Raises
    ------
    InvalidInputError
        Naming the first offending entry and why.
    """
    torch = require("torch", "torch")
    with zipfile.ZipFile(path) as zf:
        root, names = _archive_entries(zf, path)
        rel = [n[len(root) :] for n in names if not n.endswith("/")]

        def refuse(why: str) -> InvalidInputError:
            return InvalidInputError(
                f"The torch.export file {path} was refused before loading: {why}; whylow loads only plain "
                "exported programs (registered operators, raw tensor weights) so that loading runs no code "
                "from the file."
            )

        version = None
        if "archive_version" in rel:
            version = zf.read(root + "archive_version").decode("utf-8", "replace").strip()
        if version != "0":
            raise refuse(f"archive version {version!r} is not the one this torch writes ('0')")
        for name in rel:
            if not any(p.fullmatch(name) for p in _PT2_ALLOWED):
                what = "compiled native code (AOTInductor)" if name.startswith("data/aotinductor/") else "an entry"
                raise refuse(f"it holds {what} {name!r} outside the plain exported-program layout")
        models = [n[len("models/") : -len(".json")] for n in rel if n.startswith("models/")]
        if not models:
            raise refuse("it holds no exported program (models/*.json); files from torch < 2.6 use pickles")
        for model in models:
            for config_name, prefix in (
                (f"data/weights/{model}_weights_config.json", "weight_"),
                (f"data/constants/{model}_constants_config.json", "tensor_"),
            ):
                if config_name in rel:
                    _check_payload_config(_read_json(zf, root + config_name, refuse), prefix, config_name, refuse)
            sample = f"data/sample_inputs/{model}.pt"
            if sample not in rel:
                raise refuse(f"it lacks the sample inputs {sample!r}")
            try:
                torch.load(io.BytesIO(zf.read(root + sample)), weights_only=True)
            except Exception as exc:
                raise refuse(
                    f"its sample inputs {sample!r} hold objects other than tensors ({type(exc).__name__}), "
                    "and torch.export.load would unpickle them"
                ) from exc
            _check_program(_read_json(zf, root + f"models/{model}.json", refuse), refuse)


def _archive_entries(zf: zipfile.ZipFile, path: Path) -> tuple[str, set[str]]:
    names = set(zf.namelist())
    roots = {n.split("/", 1)[0] for n in names}
    if len(roots) != 1 or not all("/" in n for n in names):
        raise InvalidInputError(
            f"The model file {path} is a zip archive without the single top folder of a torch archive; "
            f"{_NEVER_UNPICKLES}."
        )
    return roots.pop() + "/", names


def _read_json(zf: zipfile.ZipFile, name: str, refuse) -> Any:
    try:
        return json.loads(zf.read(name).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise refuse(f"{name.split('/', 1)[1]!r} is not valid JSON") from exc


def _check_payload_config(config: Any, prefix: str, name: str, refuse) -> None:
    entries = config.get("config") if isinstance(config, dict) else None
    if not isinstance(entries, dict):
        raise refuse(f"{name!r} has no 'config' mapping")
    for fqn, meta in entries.items():
        if not isinstance(meta, dict):
            raise refuse(f"{name!r} entry {fqn!r} is not a mapping")
        if meta.get("use_pickle"):
            raise refuse(f"{fqn!r} in {name!r} is stored as a pickle")
        path_name = meta.get("path_name")
        if not isinstance(path_name, str) or not path_name.startswith(prefix):
            raise refuse(f"{fqn!r} in {name!r} is a {path_name!r} payload, not a plain tensor")


def _check_program(program: Any, refuse) -> None:
    """Walk the serialized program: every operator target and shape expression must be harmless."""
    torch = require("torch", "torch")
    ops_attributes = set(dir(type(torch.ops)))
    stack = [program]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        for key, value in node.items():
            if key in ("target", "as_operator") and isinstance(value, str):
                _check_target(value, ops_attributes, refuse)
            elif key == "expr_str" and isinstance(value, str):
                _check_expr(value, refuse)
            elif isinstance(value, (dict, list)):
                stack.append(value)


def _check_target(target: str, ops_attributes: set[str], refuse) -> None:
    match = _OPS_TARGET.fullmatch(target)
    if match and match.group(1) not in ops_attributes:
        return
    if _SYM_TARGET.fullmatch(target):
        return
    module, _, name = target.partition(".")
    if (module == "_operator" and name in _OPERATOR_NAMES) or (module == "math" and name in _MATH_NAMES):
        return
    raise refuse(f"a graph node calls {target[:80]!r}, which is not a registered operator")


def _check_expr(expr: str, refuse) -> None:
    pos = 0
    while pos < len(expr):
        token = _EXPR_TOKEN.match(expr, pos)
        if token is None:
            raise refuse(f"a shape expression contains {expr[pos:pos + 20]!r}, outside the shape grammar")
        text = token.group()
        if (text[0].isalpha() or text[0] == "_") and text not in _EXPR_NAMES and not _SYMBOL_NAME.fullmatch(text):
            raise refuse(f"a shape expression names {text!r}, which is not a shape function")
        pos = token.end()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else ""
