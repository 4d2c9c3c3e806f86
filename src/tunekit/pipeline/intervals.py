"""95% bootstrap intervals for evaluation metrics.

A task's evaluate hands back, next to its metrics, one or more `PerExample` groups: additive
statistics per example (correct or not, token loss and count, BLEU n-gram matches, ...) and
the function that turns their sums into metrics. A bootstrap resample is then one weighted
sum per statistic (multinomial counts @ stats), so 1,000 resamples cost milliseconds even for
corpus-level scores such as BLEU, and every metric is recomputed exactly as the point estimate
is (a test checks that aggregate(all examples) reproduces the reported numbers).

Intervals are percentile intervals over resamples of the evaluated examples, seeded, so the
same predictions always give the same interval. They describe sampling noise of the test set,
not training noise (another seed can move a metric further).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

CONFIDENCE = 0.95
SEED = 0


@dataclass(frozen=True)
class PerExample:
    stats: Mapping[str, "object"]                       # name -> array (n,) or (n, k), additive over examples
    aggregate: Callable[[Mapping[str, "object"]], dict]  # summed stats -> {metric: value}

    @property
    def n(self) -> int:
        return len(next(iter(self.stats.values()))) if self.stats else 0


def bootstrap(groups: list[PerExample], resamples: int, confidence: float = CONFIDENCE,
              seed: int = SEED) -> dict[str, list[float]]:
    """metric -> [low, high] for every metric the groups' aggregates produce."""
    import numpy as np

    rng = np.random.default_rng(seed)
    intervals: dict[str, list[float]] = {}
    for group in groups:
        n = group.n
        if n < 2 or resamples <= 0:
            continue  # one example has no spread to speak of
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)
        sums = {name: counts @ np.asarray(values, dtype=np.float64) for name, values in group.stats.items()}
        draws: dict[str, list[float]] = {}
        for b in range(resamples):
            for metric, value in group.aggregate({k: v[b] for k, v in sums.items()}).items():
                draws.setdefault(metric, []).append(float(value))
        tail = 100 * (1 - confidence) / 2
        for metric, values in draws.items():
            low, high = np.percentile(values, [tail, 100 - tail])
            intervals[metric] = [round(float(low), 4), round(float(high), 4)]
    return intervals


def point_estimates(groups: list[PerExample]) -> dict[str, float]:
    """The metrics of all examples at once (what the reported numbers must equal)."""
    import numpy as np

    out: dict[str, float] = {}
    for group in groups:
        out.update(group.aggregate({k: np.asarray(v, dtype=np.float64).sum(axis=0) for k, v in group.stats.items()}))
    return out


def describe(resamples: int, confidence: float = CONFIDENCE, seed: int = SEED) -> dict:
    """How the intervals were made (stored beside them in metrics.json)."""
    return {"method": "bootstrap", "kind": "percentile", "confidence": confidence, "resamples": resamples,
            "seed": seed}
