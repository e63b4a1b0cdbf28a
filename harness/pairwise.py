"""IPOG: a small set of rows holding every allowed pair of values, under constraints.

Lei and Tai's in-parameter-order construction. The rows for the first two
dimensions are all their allowed value pairs. Each next dimension extends every row
with the value that covers the most uncovered pairs (horizontal growth). Then each
pair still uncovered goes into a row with room for it, or into a new row (vertical
growth). A row leaves a dimension open when no value of it covers anything new. The
caller fills the open dimensions. Plain data in, plain data out: the case space it
serves is `harness.case_space`.
"""

from __future__ import annotations

from typing import Callable, Hashable, Sequence

Value = tuple[str, Hashable]  # (dimension name, value)
Pair = tuple[Value, Value]


def ipog(
    order: Sequence[tuple[str, Sequence[Hashable]]],
    feasible: set[Pair] | frozenset[Pair],
    valid: Callable[[dict], bool],
    key: Callable[[Value, Value], Pair],
) -> list[dict]:
    """Rows (dicts of dimension name to value, some dimensions left open) that
    together hold every pair in ``feasible``.

    ``order``: the dimensions, as (name, values), in the order they are added.
    ``valid(partial_row)``: whether a row with these values can still be completed.
    ``key(a, b)``: the pair of two values as ``feasible`` spells it."""
    (first, first_values), (second, second_values) = order[0], order[1]
    rows = [{first: x, second: y} for x in first_values for y in second_values if key((first, x), (second, y)) in feasible]
    for index in range(2, len(order)):
        name, values = order[index]
        uncovered = {key((earlier, x), (name, y)) for earlier, earlier_values in order[:index] for x in earlier_values for y in values} & feasible
        for row in rows:  # horizontal growth
            best_value, best_gain = None, 0
            for value in values:
                if not valid({**row, name: value}):
                    continue
                gain = sum(1 for held_name, held in row.items() if key((held_name, held), (name, value)) in uncovered)
                if gain > best_gain:
                    best_value, best_gain = value, gain
            if best_value is not None:
                row[name] = best_value
                uncovered -= {key((held_name, held), (name, best_value)) for held_name, held in row.items() if held_name != name}
        for pair in sorted(uncovered, key=repr):  # vertical growth
            if pair not in uncovered:
                continue
            (a, x), (b, y) = pair
            row = next((row for row in rows if row.get(a, x) == x and row.get(b, y) == y and valid({**row, a: x, b: y})), None)
            if row is None:
                row = {}
                rows.append(row)
            row.update({a: x, b: y})
            uncovered -= {key((name, row[name]), (held_name, held)) for held_name, held in row.items() if held_name != name}
    return rows
