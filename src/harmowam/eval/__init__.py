"""Closed-loop evaluation: suites of tasks x conditions, rollouts, success and phase metrics, tables."""

from harmowam.eval.metrics import SuccessRate, cell_metrics, summary_rows
from harmowam.eval.runner import EvalConfig, PolicySpec, evaluate
from harmowam.eval.suite import SUITES, Condition, Suite, get_suite, list_suites

__all__ = ["SUITES", "Condition", "EvalConfig", "PolicySpec", "Suite", "SuccessRate", "cell_metrics", "evaluate",
           "get_suite", "list_suites", "summary_rows"]
