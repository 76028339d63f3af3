"""Success per condition and paired differences of the stage-2 variants, from the episode files in this folder.

    python docs/results/stage2_variants_48px/paired.py

Each run's episodes are keyed by (training seed, task, condition, scene seed); a paired
difference pools both training seeds where a variant has both. The default's seed-0
episodes are the q7 pipeline's HarmoWAM (q8 repeated them exactly).
"""

import json
from pathlib import Path

from harmowam.eval.statistics import outcomes, paired_difference

HERE = Path(__file__).resolve().parent
CONDITIONS = ["in_domain", "background", "position", "object"]
#: (variant, training seed) -> (episodes file, policy name in it)
RUNS = {
    ("default", 0): (HERE.parent / "quick_cpu_48px_q7" / "episodes.jsonl", "harmowam"),
    ("default", 1): (HERE / "default_s1" / "episodes.jsonl", "default_s1"),
    ("gate_state", 0): (HERE / "gate_state" / "episodes.jsonl", "gate_state"),
    ("gate_state", 1): (HERE / "gate_state_s1" / "episodes.jsonl", "gate_state_s1"),
    ("gate_state_detach", 0): (HERE / "gate_state_detach" / "episodes.jsonl", "gate_state_detach"),
    ("gate_state_detach", 1): (HERE / "gate_state_detach_s1" / "episodes.jsonl", "gate_state_detach_s1"),
    ("gate_detach", 0): (HERE / "gate_detach" / "episodes.jsonl", "gate_detach"),
}
PAIRS = [("gate_state", "default"), ("gate_state_detach", "default"), ("gate_state_detach", "gate_state"),
         ("gate_detach", "default")]


def main() -> None:
    # outcomes: {(task, condition, scene seed): success}, the key the comparison tables pair on
    runs = {key: outcomes(map(json.loads, path.open()), policy) for key, (path, policy) in RUNS.items()
            if path.is_file()}
    for (name, seed), o in runs.items():
        def rate(conds: list[str]) -> str:
            hits = [v for k, v in o.items() if k[1] in conds]
            return f"{sum(hits) / len(hits):.2f}"
        print(f"{name} seed {seed}: " + " / ".join(rate([c]) for c in CONDITIONS) + f" / OOD {rate(CONDITIONS[1:])} "
              f"({sum(v for k, v in o.items() if k[1] != 'in_domain')}/{sum(1 for k in o if k[1] != 'in_domain')})")
    for a, b in PAIRS:
        pa, pb = ({(s, *k): v for (n, s), o in runs.items() if n == name for k, v in o.items()} for name in (a, b))
        if not pa or not pb:
            continue  # a variant whose episodes are not here
        cells = []
        for label, conds in (("in-domain", ["in_domain"]), ("position", ["position"]),
                             ("background", ["background"]), ("OOD", CONDITIONS[1:])):
            d = paired_difference({k: v for k, v in pa.items() if k[2] in conds},
                                  {k: v for k, v in pb.items() if k[2] in conds})
            cells.append(f"{label} {d['difference']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}] n={d['pairs']}")
        print(f"{a} - {b}: " + "; ".join(cells))


if __name__ == "__main__":
    main()
