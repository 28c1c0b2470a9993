"""The jobs of a sweep grouped by their settings (everything but the seed), each group with the
mean, standard deviation and 95% interval of its accuracies (gpucnn.app.stats)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from .results import finite
from .stats import Estimate, estimate

SEED = "train.seed"
# The data settings that choose the test images: runs that differ in one of them were tested on
# other images (and trained on others), and their numbers do not compare.
TEST_SET = ("data.name", "data.root", "data.path", "data.task", "data.positive", "data.negative",
            "data.limit_test", "data.test_fraction", "data.split_seed")  # fmt: skip
BALANCED = ("val_balanced", "test_balanced")  # the figures that classes of unequal sizes add
ESTIMATED = {"test": "test_accuracy", "val": "val_accuracy"}
ESTIMATED |= {prefix: f"{prefix}_accuracy" for prefix in BALANCED}
COLUMNS = [
    "runs",
    "seeds",
    "status",
    *(f"{p}_{s}" for p in ESTIMATED for s in ("accuracy", "sd", "low", "high")),
    "weights",
    "multiply_adds",
    "seconds_per_epoch",
    "epochs_completed",
    "frontier",
    "jobs",
    "reason",
]
# The costs a setting may be worth (frontier), by the word its frontier column names each with.
FRONTIER_COSTS = {"weights": "weights", "multiply_adds": "multiply-adds",
                  "seconds_per_epoch": "time"}  # fmt: skip


def settings_of(keys: list[str]) -> list[str]:
    """The keys that make a group: the swept keys but the seed."""
    return [k for k in keys if k != SEED]


def test_set_keys(keys: list[str]) -> list[str]:
    """The swept keys that choose the test images (``data``: the data config's name)."""
    return [k for k in keys if k == "data" or k in TEST_SET]


def by_test_set(rows: list[dict[str, Any]], keys: list[str]) -> list[dict[str, Any]]:
    """``rows``, ranked best first, with the rows of each test set together (the test set of
    the best row first): where a sweep varies the test images (data.task=binary,multiclass),
    accuracies of one test set do not rank against another's."""
    split = test_set_keys(keys)
    order: dict[tuple[str, ...], int] = {}
    for row in rows:
        order.setdefault(_test_set(row, split), len(order))
    return sorted(rows, key=lambda row: order[_test_set(row, split)])


def _test_set(row: dict[str, Any], split: list[str]) -> tuple[str, ...]:
    """What ``row`` was tested on: its values of the keys ``split`` (test_set_keys)."""
    return tuple(str(row.get(k)) for k in split)


def ranked_what(keys: list[str], best: str) -> str:
    """How a table of ``keys`` is ordered: ``best`` first, within each test set where the
    keys vary it."""
    split = test_set_keys(keys)
    if not split:
        return f"{best} first"
    differ = "differs" if len(split) == 1 else "differ"
    return (
        f"{best} first within each test set ({', '.join(split)} {differ}: accuracies on other "
        "test images do not compare)"
    )


def group(rows: list[dict[str, Any]], keys: list[str], column: str) -> list[dict[str, Any]]:
    """One row per setting of ``keys`` (the seed apart): its runs, seeds, statuses, and the
    estimates of test and validation accuracy over its finished runs; best mean ``column``
    (results.chosen_on) first, groups without a finished run last (within each test set:
    by_test_set)."""
    settings = settings_of(keys)
    buckets: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        buckets.setdefault(tuple(str(row.get(k)) for k in settings), []).append(row)
    groups = [_summary(members, settings) for members in buckets.values()]
    groups.sort(key=lambda g: -g[column] if finite(g[column]) else 2.0)
    frontier(groups, settings, column)
    return by_test_set(groups, settings)


def frontier(groups: list[dict[str, Any]], keys: list[str], column: str) -> None:
    """Name in each group's ``frontier`` the costs (FRONTIER_COSTS) at which it is worth
    choosing: no other setting tested on the same images has a mean ``column`` accuracy as
    high at a cost as low, and one of them better (the Pareto frontier of accuracy and that
    cost, on the means). Not set at all where no setting differs from another in weights or
    multiply-adds (a sweep of learning rates): there the best would be the one worth its
    cost, which the ranking already says."""
    scored = [g for g in groups if finite(g[column])]
    if not any(
        len({g[c] for g in scored if finite(g[c])}) > 1 for c in ("weights", "multiply_adds")
    ):
        return
    split = test_set_keys(keys)
    for g in groups:
        rivals = [r for r in scored if _test_set(r, split) == _test_set(g, split)]
        g["frontier"] = ", ".join(
            word
            for cost, word in FRONTIER_COSTS.items()
            if finite(g[column])
            and finite(g[cost])
            and not any(_beats(r, g, column, cost) for r in rivals)
        )


def _beats(rival: dict[str, Any], g: dict[str, Any], column: str, cost: str) -> bool:
    """Whether ``rival`` is as accurate as ``g`` (its mean ``column``) at no more ``cost``,
    and better in one of them."""
    if not finite(rival[cost]):
        return False
    as_good = rival[column] >= g[column] and rival[cost] <= g[cost]
    return as_good and (rival[column] > g[column] or rival[cost] < g[cost])


def _summary(members: list[dict[str, Any]], settings: list[str]) -> dict[str, Any]:
    members = sorted(members, key=lambda r: (len(str(r["job"])), str(r["job"])))  # job order
    done = [r for r in members if r.get("status") == "ok"]
    out: dict[str, Any] = {k: members[0].get(k) for k in settings}
    counts = Counter(r.get("status") for r in members)
    out.update(
        runs=len(members),
        seeds=",".join(str(r[SEED]) for r in members if r.get(SEED) is not None),
        status=next(iter(counts))
        if len(counts) == 1
        else ", ".join(f"{n} {s}" for s, n in counts.items()),
        weights=_first(members, "weights"),
        multiply_adds=_first(members, "multiply_adds"),
        seconds_per_epoch=estimate([r.get("seconds_per_epoch") for r in done]).mean,
        epochs_completed=estimate([r.get("epochs_completed") for r in done]).mean,  # patience
        jobs=",".join(str(r["job"]) for r in members),
        reason=_first(members, "reason"),
    )
    for prefix, column in ESTIMATED.items():
        e = estimate([r.get(column) for r in done])
        out.update(_columns(prefix, e))
    return out


def _first(members: list[dict[str, Any]], key: str) -> Any:
    """The first value of ``key`` among the runs that recorded one (a run refused or stopped
    before its model was built has no weight count), or None."""
    return next((r[key] for r in members if r.get(key) not in (None, "")), None)


def _columns(prefix: str, e: Estimate) -> dict[str, float]:
    return {f"{prefix}_accuracy": e.mean, f"{prefix}_sd": e.sd, f"{prefix}_low": e.low,
            f"{prefix}_high": e.high}  # fmt: skip


def shown(value: float, low: float, high: float) -> str:
    """``mean ± half-width`` (just the mean without an interval; nothing without a mean)."""
    if not finite(value):
        return ""
    if not (finite(low) and finite(high)):
        return f"{value:.4f}"
    return f"{value:.4f} ± {(high - low) / 2:.4f}"
