"""whylow: find out why a classifier's predictions are low.

>>> import whylow
>>> report = whylow.diagnose(test=whylow.Split(y=y, probs=probs))  # doctest: +SKIP
>>> print(report)  # doctest: +SKIP
"""

from whylow._version import __version__
from whylow.compare import compare
from whylow.diagnose import diagnose
from whylow.errors import InvalidInputError, MissingDependencyError, WhylowError
from whylow.fixes.temperature import TemperatureScaler, VectorScaler, load_calibrator
from whylow.inputs import Split
from whylow.report import CheckStatus, Finding, Report

__all__ = sorted(
    [
        "CheckStatus",
        "Finding",
        "InvalidInputError",
        "MissingDependencyError",
        "Report",
        "Split",
        "TemperatureScaler",
        "VectorScaler",
        "WhylowError",
        "load_calibrator",
        "compare",
        "__version__",
        "diagnose",
    ]
)
