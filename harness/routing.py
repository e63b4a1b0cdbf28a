"""Covering rows that route around the cases a declaration sets aside.

A case that a declaration sets aside (an implementation's `KnownFailure` with
``kinds=None``, or one of the engine's own) is never judged, so it covers nothing.
`route` keeps the covering and invalid-input rows of a `Space` whose cases are
judged, and replaces the rest with rows that hold the same pairs and triples but whose
other values make the case judgeable, where such a row exists. What no judgeable row
holds is listed as reachable only through set-aside cases.

A declaration reads a whole `Case`, and a row fixes only its discrete values: the
sizes are drawn after it. A row is therefore judged on the cases the strategy draws
from it: its simplest completion (where shrinking heads) and `RANDOM_COMPLETIONS`
seeded ones. A row is judged when no declaration sets any of them aside, and set
aside when one sets all of them aside. A row whose completions disagree (a
declaration that reads sizes) is kept, but a replacement is chosen judged where one
is: at run time the strategy draws such a row's sizes again while its case is set
aside (`harness.strategies.cases`, ``avoid``).
"""

from __future__ import annotations

import dataclasses
import functools
import random
from typing import Callable, Sequence

from hypothesis.control import BuildContext
from hypothesis.internal.conjecture.choice import ChoiceTemplate
from hypothesis.internal.conjecture.data import ConjectureData

from harness.cases import Case
from harness.case_space import Space

SetAside = Callable[[Case], bool]
"""A declaration: True for the cases it sets aside whole. One that raises is the
declaring plugin's error, and the error propagates."""

RANDOM_COMPLETIONS = 1
"""Seeded random completions a row is judged on, beside its simplest one."""
REPAIRS = 12
"""Rows with one value changed tried to repair a row whose case is set aside."""
SEARCH_STARTS = 8
RANDOM_ROWS = 6
"""With `REPAIRS`, how many rows are tried for a pair (or triple) before it is called
reachable only through set-aside cases: completions of that many of its starts, and
that many random ones."""

JUDGED, MIXED, SET_ASIDE = "judged", "mixed", "set aside"


@dataclasses.dataclass(frozen=True)
class Routing:
    """The rows a campaign's covering phase runs, and what they cannot reach."""

    covering_rows: tuple[dict, ...]
    invalid_rows: tuple[dict, ...]
    pairs_set_aside_only: frozenset = frozenset()
    """Feasible pairs that no judgeable row holds, as ``Space.feasible_pairs`` spells them."""
    triples_set_aside_only: frozenset = frozenset()
    """Invalid-input triples that no judgeable row holds."""


def unrouted(space: Space) -> Routing:
    """The space's own rows: nothing is set aside."""
    return Routing(space.covering_rows, space.invalid_rows)


class _Judge:
    """Decides whether the cases a row draws are set aside, one draw per completion, cached per row."""

    def __init__(self, space: Space, strategy, declarations: Sequence[SetAside]):
        self.space = space
        self.strategy = strategy
        self.declarations = tuple(declarations)
        self.verdicts: dict[tuple, str] = {}

    def _drawn(self, row: dict, completion: int) -> Case:
        prefix = list(self.space.prefix(row))
        if completion == 0:
            data = ConjectureData(prefix=prefix + [ChoiceTemplate("simplest", count=None)], random=None)
        else:
            data = ConjectureData(prefix=prefix, random=random.Random(f"rnn-harness routing {completion}"))
        with BuildContext(data, wrapped_test=None):
            return data.draw(self.strategy)

    def __call__(self, row: dict) -> str:
        key = tuple(sorted((name, repr(value)) for name, value in row.items()))
        if key not in self.verdicts:
            aside = [any(declaration(self._drawn(row, completion)) for declaration in self.declarations) for completion in range(1 + RANDOM_COMPLETIONS)]
            self.verdicts[key] = SET_ASIDE if all(aside) else MIXED if any(aside) else JUDGED
        return self.verdicts[key]


_ROUTINGS: dict[tuple, Routing] = {}


def routing_for(space: Space, strategy, declarations: Sequence[SetAside]) -> Routing:
    """`route`, computed once per process for a space and its (hashable) declarations."""
    key = (space.signature, tuple(declarations))
    try:
        return _ROUTINGS[key]
    except TypeError:  # a declaration that cannot be hashed: routed each time
        return route(space, strategy, declarations)
    except KeyError:
        return _ROUTINGS.setdefault(key, route(space, strategy, declarations))


def route(space: Space, strategy, declarations: Sequence[SetAside]) -> Routing:
    """The covering and invalid-input rows of ``space`` whose cases ``strategy``
    draws and no declaration sets aside, holding every pair and triple some
    judgeable row holds. Deterministic: the same space and declarations give the same rows."""
    if not declarations:
        return unrouted(space)
    judge = _Judge(space, strategy, declarations)
    valid_pairs = {pair for pair in space.feasible_pairs if ("invalid", True) not in pair}
    covering, pairs_aside = _routed(space, judge, space.covering_rows, valid_pairs, _covering_searches(space))
    if pairs_aside:  # IPOG again over the pairs a judged row can hold: often fewer rows
        again, aside_again = _routed(space, judge, space.rows_holding(valid_pairs - pairs_aside), valid_pairs - pairs_aside, _covering_searches(space))
        if not aside_again and len(again) < len(covering):
            covering = again
    invalid_pairs = space.feasible_pairs - valid_pairs
    invalid, triples_aside, invalid_aside = _routed_invalid(space, judge, invalid_pairs)
    return Routing(tuple(covering), tuple(invalid), frozenset(pairs_aside | invalid_aside), frozenset(triples_aside))


def _routed(space: Space, judge: _Judge, rows, wanted: set, searches) -> tuple[list[dict], set]:
    """``rows`` that are not set aside; each of the others with one value changed
    (`_repaired`), where it held pairs no other row holds; then a row found for each
    wanted pair still missing (`_search`). Returns the rows, the redundant ones
    dropped, and the pairs no judgeable row was found for."""
    kept, unjudged = [], []
    for row in rows:
        (unjudged if judge(row) == SET_ASIDE else kept).append(row)
    missing = set(wanted)
    for row in kept:
        missing -= space.pairs_of(row)
    for row in unjudged:
        if space.pairs_of(row) & missing:
            repaired = _repaired(space, judge, row, missing)
            if repaired is not None:
                kept.append(repaired)
                missing -= space.pairs_of(repaired)
    unreached = set()
    for pair in sorted(missing, key=repr):
        if pair not in missing:
            continue
        row = _search(space, judge, searches(pair), missing)
        if row is None:
            unreached.add(pair)
            missing.discard(pair)
            continue
        kept.append(row)
        missing -= space.pairs_of(row)
    return _without_redundant(space, kept, set(wanted) - unreached), unreached


def _repaired(space: Space, judge: _Judge, row: dict, missing: set) -> dict | None:
    """Of the `REPAIRS` rows with one value changed that hold the most missing pairs,
    the first judged one, else the first whose completions disagree, else None."""
    candidates = [candidate for candidate in _one_changed(space, {}, row) if space.pairs_of(candidate) & missing]
    candidates.sort(key=lambda candidate: -len(space.pairs_of(candidate) & missing))
    verdicts = {}
    for candidate in candidates[:REPAIRS]:
        verdicts.setdefault(judge(candidate), candidate)
        if JUDGED in verdicts:
            break
    return verdicts.get(JUDGED, verdicts.get(MIXED))


def _without_redundant(space: Space, rows: list[dict], wanted: set) -> list[dict]:
    """``rows`` less those (latest first) whose wanted pairs other rows all hold."""
    holders: dict = {}
    for row in rows:
        for pair in space.pairs_of(row) & wanted:
            holders[pair] = holders.get(pair, 0) + 1
    kept = list(rows)
    for row in reversed(rows):
        held = space.pairs_of(row) & wanted
        if all(holders[pair] > 1 for pair in held):
            kept.remove(row)
            for pair in held:
                holders[pair] -= 1
    return kept


def _covering_searches(space: Space):
    def searches(pair) -> list[dict]:
        return [{"defect": None, **dict(pair)}]
    return searches


def _routed_invalid(space: Space, judge: _Judge, wanted: set) -> tuple[list[dict], set, set]:
    """One row per invalid triple that is not set aside where one exists, then rows for the
    ``invalid=yes`` pairs those leave; returns the rows, the triples and the pairs no
    judgeable row was found for."""
    rows, triples_aside = [], set()
    missing = set(wanted)
    for (defect, layout, given), row in zip(space.invalid_triples, space.invalid_rows):
        if judge(row) == SET_ASIDE:
            row = _search(space, judge, [{"defect": defect, "layout": layout, "h0_given": given}], missing)
        if row is None:
            triples_aside.add((defect, layout, given))
            continue
        rows.append(row)
        missing -= space.pairs_of(row)

    def searches(pair) -> list[dict]:
        (_, _), (name, value) = sorted(pair, key=lambda item: item[0] != "invalid")
        return [{"defect": d, "layout": l, "h0_given": g, name: value} for d, l, g in space.invalid_triples
                if (name not in ("layout", "h0_given") or {"layout": l, "h0_given": g}[name] == value)]

    more, pairs_aside = _routed(space, judge, (), missing, searches)
    return rows + more, triples_aside, pairs_aside


def _search(space: Space, judge: _Judge, starts: list[dict], wanted: set) -> dict | None:
    """A judged row that keeps one of ``starts``' values: for each of the first
    `SEARCH_STARTS` starts, the completion that holds the most wanted pairs; then the
    first one's with one other value changed (the `REPAIRS` that hold the most), then
    `RANDOM_ROWS` random completions of the first start (seeded). A row whose
    completions disagree is the last resort."""
    starts = [start for start in starts if space.completable(start)][:SEARCH_STARTS]
    if not starts:
        return None
    greedy = [_greedy(space, start, wanted) for start in starts]
    changed = _one_changed(space, starts[0], greedy[0])
    changed.sort(key=lambda row: -len(space.pairs_of(row) & wanted))
    candidates = greedy + changed[:REPAIRS] + _random(space, starts[0], RANDOM_ROWS)
    fallback = None
    for row in candidates:
        verdict = judge(row)
        if verdict == JUDGED:
            return row
        if verdict == MIXED and fallback is None:
            fallback = row
    return fallback


def _greedy(space: Space, start: dict, wanted: set) -> dict:
    row = dict(start)
    for dimension in space.dimensions:
        if dimension.name in row:
            continue
        allowed = [value for value in dimension.values if space.completable({**row, dimension.name: value})]
        gain = functools.partial(_gain, space, row, dimension.name, wanted)
        row[dimension.name] = max(allowed, key=lambda value: (gain(value), -allowed.index(value)))
    return _ordered(space, row)


def _gain(space: Space, row: dict, name: str, wanted: set, value) -> int:
    flat = {**row, name: value, "invalid": row.get("defect") is not None}
    return sum(
        1 for held, held_value in flat.items()
        if held != name and held in space._position and space._pair_key((held, held_value), (name, value)) in wanted
    )


def _one_changed(space: Space, start: dict, row: dict) -> list[dict]:
    changed = []
    for dimension in space.dimensions:
        if dimension.name in start:
            continue
        for value in dimension.values:
            if value != row[dimension.name] and space.allowed({**row, dimension.name: value}):
                changed.append({**row, dimension.name: value})
    return changed


def _random(space: Space, start: dict, count: int) -> list[dict]:
    generator = random.Random(f"rnn-harness routing {sorted(start.items(), key=repr)}")
    rows = []
    for _ in range(count):
        row = dict(start)
        for dimension in space.dimensions:
            if dimension.name not in row:
                allowed = [value for value in dimension.values if space.completable({**row, dimension.name: value})]
                row[dimension.name] = generator.choice(allowed)
        rows.append(_ordered(space, row))
    return rows


def _ordered(space: Space, row: dict) -> dict:
    return {name: row[name] for name in space.prefix_names}
