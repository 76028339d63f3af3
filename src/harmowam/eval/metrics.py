"""Success rates and the paper's Table 3 arithmetic.

Per task and condition: success rate, transit success (the hand came within the
task's ``transit_distance`` of the object, or moved it: ``eval.rollout.transit_step``) and
interaction success given transit
(successes among the episodes whose transit succeeded). Per policy: the in-domain
average over tasks, each condition's average, the OOD average (mean of the OOD
conditions' averages) and the relative drop ``(ID - OOD) / ID``.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import torch
import torchmetrics

from harmowam.eval.statistics import nanmean


class SuccessRate(torchmetrics.Metric):
    """Fraction of successful episodes; ``mask`` restricts it to some episodes (e.g. those past transit).

    NaN when no episode counts, so an empty cell is never reported as 0%.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("successes", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, success: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        success = torch.as_tensor(success, dtype=torch.bool).flatten()
        if mask is not None:
            success = success[torch.as_tensor(mask, dtype=torch.bool).flatten()]
        self.successes += success.sum()
        self.total += success.numel()

    def compute(self) -> torch.Tensor:
        return self.successes / self.total if self.total > 0 else torch.tensor(float("nan"), dtype=torch.float64)


def cell_metrics(records: Iterable[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, float]]:
    """{(policy, task, condition): {episodes, success, transit, interaction}} from episode records."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["policy"], r["task"], r["condition"]), []).append(r)
    cells = {}
    for key, rs in groups.items():
        success = torch.tensor([r["success"] for r in rs])
        transit = torch.tensor([r["transit"] for r in rs])
        rate, reached, interaction = SuccessRate(), SuccessRate(), SuccessRate()
        rate.update(success)
        reached.update(transit)
        interaction.update(success, mask=transit)
        cells[key] = {"episodes": len(rs), "success": rate.compute().item(), "transit": reached.compute().item(),
                      "interaction": interaction.compute().item(), "successes": int(success.sum()),
                      "transits": int(transit.sum())}
    return cells


def summary_rows(cells: dict[tuple[str, str, str], dict[str, float]], policies: list[str], tasks: list[str],
                 conditions: list[str], in_domain: str = "in_domain") -> list[dict[str, Any]]:
    """One row per policy: each condition's success averaged over tasks, the OOD average and the drop."""
    rows = []
    for policy in policies:
        row: dict[str, Any] = {"policy": policy}
        for c in conditions:
            row[c] = nanmean([cells[(policy, t, c)]["success"] for t in tasks if (policy, t, c) in cells])
            row[f"{c}_successes"] = sum(cells[(policy, t, c)]["successes"] for t in tasks if (policy, t, c) in cells)
            row[f"{c}_episodes"] = sum(cells[(policy, t, c)]["episodes"] for t in tasks if (policy, t, c) in cells)
        ood = [c for c in conditions if c != in_domain]
        row["ood_avg_successes"] = sum(row[f"{c}_successes"] for c in ood)
        row["ood_avg_episodes"] = sum(row[f"{c}_episodes"] for c in ood)
        row["ood_avg"] = nanmean([row[c] for c in ood]) if ood else float("nan")
        id_avg = row.get(in_domain, float("nan"))
        row["relative_drop"] = (id_avg - row["ood_avg"]) / id_avg if id_avg and not math.isnan(id_avg) else float("nan")
        rows.append(row)
    return rows
