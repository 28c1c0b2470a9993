"""The effect of one setting on accuracy, across the others, with its 95% interval.

Each value of a setting is compared with the setting's first value on pairs of runs that agree
in everything else (the other settings and the seed): the effect is the mean of the pairs'
differences, in accuracy points, with the mean's interval (gpucnn.app.stats). A value beats
another only when the interval excludes zero; otherwise the sentence says how many pairs would
be needed for an interval that excludes zero at the observed spread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .results import setting_text
from .stats import Estimate, estimate, t975

MAX_NEEDED = 1000  # beyond this, "more than 1,000 pairs"
NO_SPREAD = 1e-9  # a standard deviation of accuracy differences that is only their rounding


@dataclass(frozen=True)
class Effect:
    key: str
    value: str
    reference: str
    points: Estimate  # of the paired differences, in accuracy points
    subject: str = ""  # what the sentence begins with, instead of "key value vs reference"

    def sentence(self) -> str:
        """``filter_size 5 vs 3: +0.6 points, 95% interval -0.3 to +1.5: not distinguishable
        with 3 pairs (about 12 would be needed at this spread)``."""
        value, reference = setting_text(self.value), setting_text(self.reference)
        e, what = self.points, self.subject or f"{self.key} {value} vs {reference}"
        if e.n < 2:
            return (
                f"{what}: {e.mean:+.1f} points from {e.n} pair: no interval; repeat the runs "
                "(train.repeats=3) to tell them apart"
            )
        if e.sd < NO_SPREAD:  # every pair differs alike: no spread to set an interval by
            each = f"{what}: {e.mean:+.1f} points in each of the {e.n} pairs"
            if abs(e.mean) < NO_SPREAD:
                return f"{each}: the same accuracy"
            verdict = "better" if e.mean > 0 else "worse"
            return f"{each}: {value} is {verdict} in every pair (no spread to set an interval by)"
        head = f"{what}: {e.mean:+.1f} points, 95% interval {e.low:+.1f} to {e.high:+.1f}"
        if e.low > 0 or e.high < 0:
            return f"{head}: {value} is {'better' if e.low > 0 else 'worse'}"
        needed = pairs_needed(e.mean, e.sd)
        more = f"more than {MAX_NEEDED:,}" if needed is None else f"about {needed}"
        return (
            f"{head}: not distinguishable with {e.n} pairs ({more} would be needed at this spread)"
        )


def pairs_needed(mean: float, sd: float) -> int | None:
    """The fewest pairs whose 95% interval would exclude zero if the differences kept this
    mean and spread (None beyond MAX_NEEDED, and if the mean is 0)."""
    if sd == 0:
        return 2 if mean else None
    for n in range(2, MAX_NEEDED + 1):
        if t975(n - 1) * sd / math.sqrt(n) < abs(mean):
            return n
    return None


SWITCH = {"false": 0, "true": 1}  # a boolean setting's values, in order


def ordered(values: set[str], default: str | None = None) -> list[str]:
    """A setting's values in their natural order: numbers by size (0.001 before 0.01); else
    the setting's ``default`` first (what the others are compared with: sigmoid against relu,
    cosine against constant), False before True (off before on), the rest shortest first
    ([16,32] before [16,32,64])."""
    try:
        return sorted(values, key=float)
    except ValueError:
        return sorted(
            values,
            key=lambda v: (v != default, SWITCH.get(v.lower(), len(SWITCH)), len(v), v),
        )


def effects(runs: list[dict[str, Any]], key: str, default: str | None = None) -> list[Effect]:
    """The effect of each value of ``key`` against its first value (see ``ordered``, with the
    setting's ``default``), from runs given as ``{"settings": {...}, "seed": int, "accuracy":
    float}``."""
    values = ordered({setting_text(r["settings"][key]) for r in runs}, default)
    by_rest: dict[tuple, dict[str, float]] = {}
    for r in runs:
        rest = tuple(sorted((k, setting_text(v)) for k, v in r["settings"].items() if k != key))
        by_rest.setdefault((rest, r["seed"]), {})[setting_text(r["settings"][key])] = r["accuracy"]
    reference, out = values[0], []
    for value in values[1:]:
        diffs = [
            100 * (pair[value] - pair[reference])
            for pair in by_rest.values()
            if value in pair and reference in pair
        ]
        if diffs:
            out.append(Effect(key, value, reference, estimate(diffs)))
    return out
