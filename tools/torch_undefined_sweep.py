"""Find the invalid inputs on which torch's reference is undefined, by running them.

Enumerates a small discrete space of invalid inputs (every family x applicable defect
x layout, packed sorted and unsorted with equal and unequal lengths x hidden_size and
input_size in {1, 2} x one layer, two layers or bidirectional x batch 0, 1 or 2 x h_0
given or not x every dtype), runs torch's reference on each as the campaign does
(`harness.oracle.reference_outcome`: the family's ATen module, in the case's dtype)
in worker processes forked from this one, ``--runs`` times with the cases in a
different order each time, and classifies each case: always raises one type, always
returns (the same values), crashes in every run, or varies. A case that crashed in a
run among others is rerun alone in fresh processes, so a crash is the case's own.

It then holds `harness.torch_undefined` to the result: every case that crashes or
varies must be covered by a declaration, and no declaration may cover a case whose
outcome was the same in every run. Prints the classes and exits 1 on a mismatch.

    OMP_NUM_THREADS=1 python tools/torch_undefined_sweep.py [--runs 4] [--jobs 2] [--family LSTMCell ...]
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import gc
import hashlib
import itertools
import os
import random
import select
import signal
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from harness import torch_undefined  # noqa: E402
from harness.cases import DEFECTS, DTYPE_ORDER, LAYOUTS, Case, materialize  # noqa: E402
from harness.dimensions import defects_for  # noqa: E402
from harness.families import FAMILIES  # noqa: E402
from harness.oracle.invalid import defective_input  # noqa: E402
from harness.oracle.session import construct, load_weights, reference_factory  # noqa: E402

CRASH = "crash"
HANG_SECONDS = 60.0
"""A process that answers nothing for this long is stopped; its case in flight counts as a crash (``crash:hang``)."""
UNDEFINED = {"crashes", "varies", "returns, values vary"}
"""The verdicts that make a case torch's undefined behaviour."""


def layouts(cell: bool) -> list[tuple[str, int, tuple[int, ...] | None]]:
    """(layout, batch, lengths): every layout, with the batch sizes and, for packed
    input, equal and unequal lengths (oneDNN and ATen choose paths on those)."""
    if cell:
        return [("batched", 0, None), ("batched", 1, None), ("batched", 2, None), ("unbatched", 1, None)]
    return [
        ("batched", 0, None), ("batched", 1, None), ("batched", 2, None), ("unbatched", 1, None),
        ("packed_sorted", 1, (2,)), ("packed_sorted", 2, (2, 2)), ("packed_sorted", 2, (2, 1)),
        ("packed_unsorted", 1, (2,)), ("packed_unsorted", 2, (2, 2)), ("packed_unsorted", 2, (1, 2)),
    ]


def sweep_cases(families: list[str]) -> list[Case]:
    """Every invalid case of the space, in a fixed order."""
    found = []
    for family in families:
        record = FAMILIES[family]
        stacks = [(1, False)] if record.cell else [(1, False), (2, False), (1, True)]
        for (layout, batch, lengths), hidden, width, (layers, bidirectional), dtype, h0_given in itertools.product(
            layouts(record.cell), (1, 2), (1, 2), stacks, DTYPE_ORDER, (False, True)
        ):
            projections = (0, 1) if record.projections and hidden == 2 else (0,)
            for proj_size in projections:
                valid = Case(
                    family=family, input_size=width, hidden_size=hidden, num_layers=layers, bidirectional=bidirectional,
                    proj_size=proj_size, dtype=dtype, layout=layout, seq_len=1 if record.cell else 2, batch=batch,
                    lengths=lengths, h0_given=h0_given, backward=False,
                )
                for defect in defects_for(valid):
                    state_defect = defect.startswith(("h0", "c0")) or defect in ("c0_missing", "state_not_tuple")
                    if state_defect and not h0_given:
                        continue  # a state defect passes a state (harness/dimensions.py)
                    found.append(dataclasses.replace(valid, defect=defect))
    return found


def outcome_of(case: Case) -> str:
    """torch's reference on the case, as `reference_outcome` runs it: the exception
    type's name, or ``returns:`` and a digest of what it returned."""
    module = construct(reference_factory(case.family), case, case.torch_dtype, case.device)
    load_weights(module, materialize(case).weights, "reference")
    x, hx = defective_input(case, case.torch_dtype)
    try:
        result = module(x, hx)
    except Exception as error:  # noqa: BLE001
        return type(error).__name__
    digest = hashlib.sha1()
    for tensor in _tensors(result):
        digest.update(tensor.detach().to(torch.float64).contiguous().numpy().tobytes())
        digest.update(str(tuple(tensor.shape)).encode())
    return "returns:" + digest.hexdigest()[:12]


def _tensors(result):
    if isinstance(result, torch.Tensor):
        yield result
    elif hasattr(result, "data") and isinstance(getattr(result, "data"), torch.Tensor):
        yield result.data
    elif isinstance(result, (tuple, list)):
        for item in result:
            yield from _tensors(item)


def _child(cases: list[Case], indices: list[int], write_end: int) -> None:
    warnings.simplefilter("ignore")
    with os.fdopen(write_end, "w", buffering=1) as out:
        for index in indices:
            outcome = outcome_of(cases[index])
            # Freed now: a corrupted heap aborts in this case's free, not a later case's.
            gc.collect(0)
            out.write(f"{index} {outcome}\n")
    os._exit(0)


def run_groups(cases: list[Case], groups: list[list[int]], jobs: int) -> dict[int, str]:
    """Each group in its own forked process, up to ``jobs`` at a time; a process that
    dies is charged with its case in flight, and the rest of its group goes on in a new one."""
    outcomes: dict[int, str] = {}
    pending = collections.deque(groups)
    running: dict[int, tuple[int, list[int], bytes]] = {}  # fd -> (pid, indices not answered, partial line)
    heard: dict[int, float] = {}  # pid -> when it last answered
    killed: set[int] = set()  # pids stopped for answering nothing in HANG_SECONDS
    while pending or running:
        while pending and len(running) < jobs:
            indices = pending.popleft()
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(read_end)
                try:
                    _child(cases, indices, write_end)
                finally:
                    os._exit(3)
            os.close(write_end)
            running[read_end] = (pid, list(indices), b"")
            heard[pid] = time.monotonic()
        ready, _, _ = select.select(list(running), [], [], 5.0)
        for fd, (pid, _, _) in running.items():
            if fd not in ready and time.monotonic() - heard[pid] > HANG_SECONDS and pid not in killed:
                killed.add(pid)
                os.kill(pid, signal.SIGKILL)
        for fd in ready:
            pid, left, partial = running[fd]
            chunk = os.read(fd, 65536)
            if chunk:
                heard[pid] = time.monotonic()
                *lines, partial = (partial + chunk).split(b"\n")
                for line in lines:
                    index, outcome = line.decode().split(" ", 1)
                    outcomes[int(index)] = outcome
                    left.remove(int(index))
                running[fd] = (pid, left, partial)
                continue
            os.close(fd)
            del running[fd]
            _, status = os.waitpid(pid, 0)
            if left:
                signal_number = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
                name = signal.Signals(signal_number).name if signal_number else f"exit {os.WEXITSTATUS(status)}"
                name = "hang" if pid in killed else name
                outcomes[left[0]] = f"{CRASH}:{name}"
                if left[1:]:
                    pending.append(left[1:])
    return outcomes


def classify(seen: list[str]) -> str:
    """One word for a case's outcomes over its runs."""
    kinds = {outcome.split(":")[0] for outcome in seen}
    if len(set(seen)) == 1:
        return "crashes" if seen[0].startswith(CRASH) else ("returns" if seen[0].startswith("returns") else f"raises {seen[0]}")
    if kinds == {"returns"}:
        return "returns, values vary"
    return "varies"


def brief(case: Case) -> str:
    """The fields the sweep varies, as one line."""
    return (
        f"{case.family}({case.input_size}, {case.hidden_size}, layers={case.num_layers}, bidirectional={case.bidirectional}, "
        f"proj={case.proj_size}) {case.dtype} {case.layout} batch={case.batch} lengths={case.lengths} h0_given={case.h0_given} {case.defect}"
    )


def class_key(case: Case) -> tuple:
    """What a table row groups by: the case without its sizes' exact values."""
    return (case.family, case.defect, case.layout, f"hidden {case.hidden_size}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=4, help="runs of every case (default 4)")
    parser.add_argument("--jobs", type=int, default=2, help="processes at a time (default 2)")
    parser.add_argument("--group", type=int, default=300, help="cases per process (default 300)")
    parser.add_argument("--family", action="append", choices=sorted(FAMILIES), help="only these families (repeatable)")
    parser.add_argument("--defect", action="append", choices=DEFECTS, help="only these defects (repeatable)")
    parser.add_argument("--layout", action="append", choices=LAYOUTS, help="only these layouts (repeatable)")
    parser.add_argument("--verbose", action="store_true", help="print every case's verdict")
    arguments = parser.parse_args(argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    cases = [
        case for case in sweep_cases(arguments.family or list(FAMILIES))
        if case.defect in (arguments.defect or DEFECTS) and case.layout in (arguments.layout or LAYOUTS)
    ]
    for family in {case.family for case in cases}:  # imported once, before forking; a valid case, which cannot crash
        outcome_of(Case(family=family, defect="wrong_width"))
    started = time.perf_counter()
    print(f"{len(cases)} invalid cases, {arguments.runs} runs each", flush=True)
    seen: dict[int, list[str]] = collections.defaultdict(list)
    order = list(range(len(cases)))
    for run in range(arguments.runs):
        random.Random(run).shuffle(order)
        groups = [order[start:start + arguments.group] for start in range(0, len(order), arguments.group)]
        for index, outcome in run_groups(cases, groups, arguments.jobs).items():
            seen[index].append(outcome)
        print(f"run {run + 1}: {time.perf_counter() - started:.0f}s", flush=True)
    crashed = sorted(index for index, outcomes in seen.items() if any(o.startswith(CRASH) for o in outcomes))
    for run in range(arguments.runs):  # alone, each in a fresh process
        for index, outcome in run_groups(cases, [[index] for index in crashed], arguments.jobs).items():
            seen[index].append(outcome)
    print(f"{len(crashed)} cases crashed at least once; rerun alone: {time.perf_counter() - started:.0f}s", flush=True)

    rows: dict[tuple, collections.Counter] = collections.defaultdict(collections.Counter)
    declared: dict[tuple, set[str]] = collections.defaultdict(set)
    mismatches = []
    for index, case in enumerate(cases):
        verdict = classify(seen[index])
        declaration = torch_undefined.covering(case)
        undefined = verdict in UNDEFINED
        if undefined and declaration is None:
            mismatches.append(f"undeclared, {verdict} {seen[index]}: {brief(case)}")
        if not undefined and declaration is not None:
            mismatches.append(f"declared ({declaration.name}) but {verdict}: {brief(case)}")
        rows[class_key(case)][verdict] += 1
        declared[class_key(case)].add(declaration.name if declaration else "-")
    print("\n| family | defect | layout | hidden | outcomes (cases) | declaration |\n|---|---|---|---|---|---|")
    for key, counter in sorted(rows.items()):
        if declared[key] == {"-"} and not set(counter) & UNDEFINED:
            continue  # consistent in every case and declared nowhere: not listed
        text = ", ".join(f"{verdict} {count}" for verdict, count in counter.most_common())
        print(f"| {' | '.join(str(part) for part in key)} | {text} | {', '.join(sorted(declared[key]))} |")
    totals = collections.Counter(classify(outcomes) for outcomes in seen.values())
    print(f"\n{len(cases)} cases in {time.perf_counter() - started:.0f}s: " + ", ".join(f"{v} {c}" for v, c in totals.most_common()))
    if arguments.verbose:
        for index, case in enumerate(cases):
            print(f"{classify(seen[index])}: {brief(case)}")
    for line in mismatches[:40]:
        print(line)
    print(f"{len(mismatches)} mismatches with harness/torch_undefined.py")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
