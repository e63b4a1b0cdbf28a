"""Hypothesis strategies for the whole input space of torch's recurrent modules, as `Case`s.

Built in layers: small strategies for sizes and regimes, then `cases()`, a
``@composite`` that draws a constructor, a layout and values consistent with it and
with what the implementation declares it supports. The result is a `Case`, whose
`describe()` reads like a bug report. Sizes are
bounded so one example stays cheap; shrinking heads for the first option of each
``sampled_from`` (float32, batched, tanh, one layer, tiny shapes).
"""

from __future__ import annotations

import dataclasses

import torch
from hypothesis import strategies as st

from harness.cases import Case, defects_for
from harness.implementation import ALL_DTYPES, Implementation

DTYPE_NAMES = {torch.float32: "float32", torch.float64: "float64", torch.float16: "float16", torch.bfloat16: "bfloat16"}
DTYPE_ORDER = ("float32", "float64", "float16", "bfloat16")  # shrink towards float32


def available_devices() -> list[str]:
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@st.composite
def sized(draw, small: st.SearchStrategy[int], extra: dict[str, st.SearchStrategy[int]], rare: tuple[str, ...]) -> int:
    """A size drawn as a class plus an offset, so shrinking first drops the class
    (wide/long -> small) and then the value, instead of getting stuck between the
    branches of a one_of."""
    size_class = draw(st.sampled_from(("small", "small", "small") + rare))
    return draw(small) if size_class == "small" else draw(extra[size_class])


def sequence_lengths() -> st.SearchStrategy[int]:
    """Mostly short; now and then medium, or longer than 64 steps where errors compound."""
    return sized(st.integers(1, 6), {"medium": st.integers(7, 20), "long": st.integers(65, 90)}, ("medium", "long"))


def batch_sizes(coincidence: int) -> st.SearchStrategy[int]:
    """Mostly a few rows; sometimes none, a wide batch (> 16 rows), or exactly
    `coincidence` rows (num_layers * num_directions: an h_n with swapped axes then has
    the right shape and only its values betray it)."""
    extra = {"empty": st.just(0), "wide": st.integers(17, 24), "coincidence": st.just(coincidence)}
    return sized(st.integers(1, 4), extra, ("empty", "wide", "coincidence"))


@st.composite
def constructors(draw, implementation: Implementation) -> dict:
    """The family's constructor keywords (and the size fields a cell case keeps at 1)."""
    family = implementation.family_record
    hidden_size = draw(sized(st.integers(1, 12), {"wide": st.integers(13, 40)}, ("wide",)))
    if family.cell:
        num_layers, bidirectional, width = 1, False, hidden_size
        proj_size = 0
    else:
        max_layers = min(4, implementation.max_layers or 4)
        num_layers = draw(sized(st.integers(1, min(2, max_layers)), {"deep": st.integers(1, max_layers)}, ("deep",)))
        bidirectional = draw(st.booleans()) if implementation.bidirectional else False
        proj_size = 0
        if family.projections and implementation.projections and hidden_size > 1:
            # Mostly none; else anywhere in 1..H-1 (square W_hr is impossible, but a
            # one-wide h and an h one narrower than c both hide bugs).
            proj_size = draw(sized(st.just(0), {"projected": st.integers(1, hidden_size - 1)}, ("projected",)))
        width = (2 if bidirectional else 1) * (proj_size or hidden_size)
    # Coincidences that hide bugs: square W_ih, and an input as wide as a layer output.
    input_size = draw(
        sized(
            st.integers(1, 12),
            {"square": st.just(hidden_size), "layer-wide": st.just(width), "wide": st.integers(13, 40)},
            ("square", "layer-wide", "wide"),
        )
    )
    nonlinearity = "tanh"
    if family.nonlinearity:
        nonlinearities = sorted(implementation.nonlinearities or ("tanh", "relu"), key=("tanh", "relu").index)
        nonlinearity = draw(st.sampled_from(nonlinearities))
    bias = draw(st.booleans().map(lambda b: not b))
    batch_first = False if family.cell else draw(st.booleans())
    return {
        "input_size": input_size,
        "hidden_size": hidden_size,
        "num_layers": num_layers,
        "nonlinearity": nonlinearity,
        "bias": bias,
        "batch_first": batch_first,
        "bidirectional": bidirectional,
        "proj_size": proj_size,
    }


@st.composite
def cases(draw, implementation: Implementation, devices: list[str] | None = None, invalid: bool = True) -> Case:
    """One valid (or, sometimes, deliberately invalid) example the implementation claims to support."""
    family = implementation.family_record
    constructor = draw(constructors(implementation))
    dtypes = [name for name in DTYPE_ORDER if DTYPE_NAMES_REVERSED[name] in (implementation.dtypes or ALL_DTYPES)]
    dtype = draw(st.sampled_from(dtypes))
    allowed_devices = [d for d in (devices or available_devices()) if implementation.devices is None or d in implementation.devices]
    device = draw(st.sampled_from(allowed_devices))
    layouts = ["batched"]
    if implementation.unbatched:
        layouts.append("unbatched")
    if implementation.packed and not family.cell:
        layouts += ["packed_sorted", "packed_unsorted"]
    layout = draw(st.sampled_from(layouts))
    seq_len = 1 if family.cell else draw(sequence_lengths())
    lengths = None
    if layout == "unbatched":
        batch = 1
    elif layout.startswith("packed"):
        batch = draw(sized(st.integers(1, 4), {"wide": st.integers(17, 20)}, ("wide",)))
        # One sequence has the full length; the others are free in 1..seq_len.
        rest = draw(st.lists(st.integers(1, seq_len), min_size=batch - 1, max_size=batch - 1))
        position = draw(st.integers(0, batch - 1))
        lengths = rest[:position] + [seq_len] + rest[position:]
        if layout == "packed_sorted":
            lengths = sorted(lengths, reverse=True)
        lengths = tuple(lengths)
    else:
        directions = 2 if constructor["bidirectional"] else 1
        # A state with swapped axes has the right shape when the batch equals the
        # other axis: layers*directions for a layer, the hidden size for a cell.
        coincidence = constructor["hidden_size"] if family.cell else constructor["num_layers"] * directions
        batch = draw(batch_sizes(coincidence))
    training = draw(st.booleans())
    if family.cell:
        dropout = 0.0
    elif training:
        # In training only p = 0 and p = 1 make dropout deterministic enough to compare.
        dropout = draw(st.sampled_from([0.0, 1.0]))
    else:
        dropout = draw(st.sampled_from([0.0, 0.5, 1.0, 0.25]))
    regime = draw(st.sampled_from(["default", "saturating", "chaotic", "small"]))
    weight_gain = {"default": 1.0, "saturating": 8.0, "chaotic": 3.0, "small": 0.1}[regime]
    if constructor["nonlinearity"] == "relu" and weight_gain > 1:
        weight_gain = 1.5  # relu has no saturation: large gains only overflow
    # "backward_parameters": grad mode on, input and states not requiring grad, then
    # backward to the parameters, as a model's first layer is trained; kernels choose
    # other paths when the input needs no gradient.
    grad_mode = draw(st.sampled_from(["backward", "forward_only", "no_grad", "backward_parameters"]))
    case = Case(
        family=family.name,
        **constructor,
        dropout=dropout,
        dtype=dtype,
        device=device,
        layout=layout,
        seq_len=seq_len,
        batch=batch,
        lengths=lengths,
        h0_given=draw(st.booleans()),
        noncontiguous=draw(st.sampled_from(["none", "transposed", "strided", "offset"])),
        input_scale=draw(st.sampled_from([1.0, 0.1, 5.0])),
        h0_scale=draw(st.sampled_from([1.0, 0.5])),
        weight_gain=weight_gain,
        exact_zeros=draw(st.booleans()),
        # Few value draws per shape: the shrinker then spends its time on shapes,
        # where minimal means something, not on walking a large seed down to 0.
        seed=draw(st.integers(0, 15)),
        training=training,
        backward=grad_mode in ("backward", "backward_parameters") and implementation.backward,
        input_grad=grad_mode != "backward_parameters",
        no_grad=grad_mode == "no_grad",
        second_call=draw(st.sampled_from(["none", "optimizer_step", "load_state_dict"])),
    )
    # 1 in 10 cases is invalid on purpose; the shrinker heads for 0, i.e. valid input.
    if invalid and draw(st.integers(0, 9)) == 9:
        case = dataclasses.replace(case, defect=draw(st.sampled_from(defects_for(case))))
    return case


DTYPE_NAMES_REVERSED = {name: dtype for dtype, name in DTYPE_NAMES.items()}
