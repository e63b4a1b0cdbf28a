"""Print everything the case space decides, so a change to it can be diffed against
its parent: for every built-in, its space with and without CUDA and invalid inputs
(open dimensions, feasible pairs, covering rows, invalid rows and their prefixes),
sampled rows, each profile's plan, the strategy's draws for fixed seeds and the cases
it draws from the first rows; a hash of 4,500 repaired random profiles per built-in;
`defects_for` on a grid of cases; and the coverage JSON of three short campaigns.
About 40 seconds of one core. Issue 26 reorganised the case space without changing
any of this (byte-identical to its parent, 4ffe7cd).

    git archive 4ffe7cd | tar -x -C /tmp/before
    (cd /tmp/before && PYTHONPATH=$PWD python "$OLDPWD"/tools/case_space_snapshot.py > /tmp/before.txt)
    PYTHONPATH=$PWD python tools/case_space_snapshot.py > /tmp/after.txt && cmp /tmp/before.txt /tmp/after.txt
"""

from __future__ import annotations

import hashlib
import itertools
import json

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.internal.conjecture.data import ConjectureData

from harness import strategies
from harness.campaign import PROFILES, fuzz_implementation
from harness.cases import LAYOUTS, Case
from harness.registry import discover

try:  # the module names since issue 26
    from harness.case_space import space_for
    from harness.covering_stage import plan
    from harness.dimensions import defects_for
except ImportError:  # before it, so the same script prints the parent's side
    from harness.cases import defects_for
    from harness.coverage import plan
    from harness.covering import space_for


def sorted_profile(space, case) -> str:
    return repr(sorted(space.profile_of(case).items(), key=repr))


def spaces(registry, name: str) -> None:
    implementation = registry.implementation(name)
    for devices, invalid in itertools.product((("cpu",), ("cpu", "cuda")), (True, False)):
        space = space_for(implementation, devices, invalid)
        print("==", name, devices, invalid)
        print("signature", repr(space.signature[:4]))  # the constraints joined the cache key in issue 26
        print("fixed", repr(space.fixed))
        print("dims", [(d.name, d.values, d.weights) for d in space.dimensions])
        print("pairwise", [(d.name, d.values) for d in space.pairwise_dimensions])
        print("feasible", repr(sorted(space.feasible_pairs, key=repr)))
        for row in space.covering_rows:
            print("cover", repr(row), space.prefix(row))
        print("triples", repr(space.invalid_triples))
        for row in space.invalid_rows:
            print("invalid", repr(row), space.prefix(row))
        if devices == ("cpu",) and invalid:
            for row in space.sampled_rows(7, 40):
                print("sampled", repr(row))
            for profile, (budget, _) in PROFILES.items():
                rows = plan(space, implementation.example_budget(budget), profile, True, 11)
                print("plan", profile, rows.covering, rows.invalid, rows.sampled, rows.max_examples, repr(rows.deferred), rows.prefixes)
            repaired = hashlib.sha256()
            for sample_seed in range(3):
                repaired.update(repr(space.sampled_rows(sample_seed, 1500)).encode())
            print("repaired", repaired.hexdigest())


def draws(registry, name: str) -> None:
    implementation = registry.implementation(name)
    space = space_for(implementation, ("cpu",))
    strategy = strategies.cases(implementation, devices=["cpu"])
    for row in (space.covering_rows + space.invalid_rows)[:12]:
        data = ConjectureData.for_choices(space.prefix(row) + (0,) * 400)
        try:
            case = data.draw(strategy)
            print("replay", case.to_json(), sorted_profile(space, case))
        except Exception as error:  # the zeros after the prefix may not fit a later choice
            print("replay-error", type(error).__name__)
    for draw_seed in (1, 2, 3):
        drawn = []

        @settings(database=None, max_examples=15, phases=[Phase.generate], deadline=None, suppress_health_check=list(HealthCheck))
        @seed(draw_seed)
        @given(case=strategy)
        def collect(case):
            drawn.append(case)

        collect()
        for case in drawn:
            print("draw", draw_seed, case.to_json(), sorted_profile(space, case))


def defect_grid() -> None:
    digest, count = hashlib.sha256(), 0
    for family in ("RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"):
        cell = family.endswith("Cell")
        for layout, batch, layers, bidirectional, hidden, width, proj, given in itertools.product(
                LAYOUTS, (0, 1, 2, 3, 17), (1, 2), (False, True), (1, 2, 3), (1, 2), (0, 1), (False, True)):
            if cell and (layout.startswith("packed") or layers > 1 or bidirectional):
                continue
            if (proj and (family != "LSTM" or proj >= hidden)) or (layout.startswith("packed") and batch == 0):
                continue
            case = Case(
                family=family, layout=layout, batch=batch, num_layers=layers, bidirectional=bidirectional, hidden_size=hidden,
                input_size=width, proj_size=proj, h0_given=given, seq_len=1 if cell else 2,
                lengths=(2,) * batch if layout.startswith("packed") else None,
            )
            digest.update(repr((case, defects_for(case))).encode())
            count += 1
    print("defects_for", count, digest.hexdigest())


def main() -> None:
    registry = discover(builtin_only=True)
    print("implementations", sorted(registry.names))
    for name in sorted(registry.names):
        spaces(registry, name)
        draws(registry, name)
    defect_grid()
    for name, examples in (("loop", 40), ("loop-grucell", 40), ("loop-lstm", 60)):
        result = fuzz_implementation(
            registry.implementation(name), profile="ci", max_examples=examples, seed=4242, isolate=False,
            database=None, repro_dir=None, devices=["cpu"],
        )
        print("campaign", name, result.verdict, result.examples)
        print(json.dumps(result.coverage, sort_keys=True, indent=1))


if __name__ == "__main__":
    main()
