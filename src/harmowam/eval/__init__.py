"""Closed-loop evaluation: suites of tasks x conditions, rollouts, success and phase metrics, tables.

The names below are imported on first use: evaluation workers import ``harmowam.eval.env_pool``, and
``torchmetrics`` (behind ``SuccessRate``) alone takes about 7 s to import on 2 CPU cores.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {"SuccessRate": "metrics", "cell_metrics": "metrics", "summary_rows": "metrics",
            "EvalConfig": "runner", "PolicySpec": "runner", "evaluate": "runner",
            "SUITES": "suite", "Condition": "suite", "Suite": "suite", "get_suite": "suite", "list_suites": "suite"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f"harmowam.eval.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'harmowam.eval' has no attribute '{name}'")
