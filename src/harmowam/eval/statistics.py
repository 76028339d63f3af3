"""Intervals a reviewer asks for: Wilson intervals on success rates, paired differences on shared seeds.

Every policy of an evaluation runs on the same scenes (task, condition, seed), so two
policies are compared episode by episode: the paired difference removes the scenes'
own difficulty from the comparison, and its interval is narrower than the two rates'
intervals suggest.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

Z95 = 1.959963984540054


def nanmean(values: list[float]) -> float:
    """The mean of the values that are not NaN (an empty cell is NaN, never 0); NaN if none."""
    values = [v for v in values if not math.isnan(v)]
    return sum(values) / len(values) if values else float("nan")


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial rate (95% by default); (nan, nan) with no trials.

    Unlike the normal approximation it stays inside [0, 1] and is not empty at 0 or n
    successes, which is where small evaluation cells sit."""
    if n <= 0:
        return float("nan"), float("nan")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def paired_difference(a: dict[Any, bool], b: dict[Any, bool], z: float = Z95) -> dict[str, float]:
    """Mean of ``a - b`` over the episodes both ran (keyed by scene), with a normal 95% interval of the
    paired differences, and the number of pairs. ``a`` better on a scene counts +1, worse -1."""
    keys = sorted(set(a) & set(b))
    n = len(keys)
    if n == 0:
        return {"difference": float("nan"), "low": float("nan"), "high": float("nan"), "pairs": 0}
    d = [float(a[k]) - float(b[k]) for k in keys]
    mean = sum(d) / n
    var = sum((x - mean) ** 2 for x in d) / (n - 1) if n > 1 else 0.0
    half = z * math.sqrt(var / n)
    return {"difference": mean, "low": max(-1.0, mean - half), "high": min(1.0, mean + half), "pairs": n}


def outcomes(records: Iterable[dict[str, Any]], policy: str, conditions: list[str] | None = None) -> dict[Any, bool]:
    """``{(task, condition, seed): success}`` of one policy's episodes (the pairing key)."""
    return {(r["task"], r["condition"], r["seed"]): bool(r["success"]) for r in records
            if r["policy"] == policy and (conditions is None or r["condition"] in conditions)}


def format_rate(successes: int, n: int) -> str:
    """``0.73 [0.55, 0.86] n=30``: the rate, its Wilson interval and the episodes behind it."""
    if n == 0:
        return "- (n=0)"
    lo, hi = wilson_interval(successes, n)
    return f"{successes / n:.2f} [{lo:.2f}, {hi:.2f}] n={n}"
