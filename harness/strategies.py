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
import functools

from hypothesis import strategies as st

from harness.case_space import STAGE_COVERING, STAGE_LAST, Space, space_for
from harness.cases import Case
from harness.dimensions import coincident_batch, defects_for, gains_for
from harness.implementation import Implementation

@st.composite
def sized(draw, small: st.SearchStrategy[int], extra: dict[str, st.SearchStrategy[int]], rare: tuple[str, ...]) -> int:
    """A size drawn as a class plus an offset, so shrinking first drops the class
    (wide/long -> small) and then the value, instead of getting stuck between the
    branches of a one_of."""
    size_class = draw(st.sampled_from(("small", "small", "small") + rare))
    return draw(small) if size_class == "small" else draw(extra[size_class])


@st.composite
def profiles(draw, space: Space) -> dict:
    """One value per discrete dimension of the space, each one integer choice, drawn
    right after the stage: a covering row is then the start of a choice sequence
    (`Space.prefix`). A random draw is repaired into a valid profile; a covering row
    is valid already and passes unchanged."""
    profile = {}
    for dimension in space.dimensions:
        choices = dimension.choices
        profile[dimension.name] = choices[draw(st.integers(0, len(choices) - 1))]
    return space.repair(profile)


def _avoiding(draw, strategy: st.SearchStrategy[int], avoid: set[int], low: int, high: int) -> int:
    """A draw from ``strategy`` that is not in ``avoid`` (moved up within [low, high]),
    so a case's class (few rows, not the coincident batch) is what its profile says."""
    value = draw(strategy)
    while value in avoid and value < high:
        value += 1
    while value in avoid and value > low:
        value -= 1
    return value


COVERING_REDRAWS = 4
"""Times a covering row's sizes and values are drawn again while a declaration sets its case aside."""


@st.composite
def cases(draw, implementation: Implementation, devices: list[str] | None = None, invalid: bool = True, avoid: tuple = ()) -> Case:
    """One valid (or, about one time in ten, deliberately invalid) example the
    implementation claims to support: its stage and profile (`harness.case_space`)
    first, then the sizes and values within it. ``avoid``: declarations
    (`harness.routing.SetAside`); a covering row's case that one of them sets aside
    is drawn again within the same profile, up to `COVERING_REDRAWS` times, so the row
    is judged where its sizes allow (a declaration may read sizes a row does not fix)."""
    space = space_for(implementation, tuple(devices) if devices else None, invalid)
    stage = draw(st.integers(STAGE_COVERING, STAGE_LAST))  # orders the stored rows (harness.case_space)
    profile = draw(profiles(space))
    case = draw(_within(implementation, space, profile))
    for _ in range(COVERING_REDRAWS if stage == STAGE_COVERING and avoid else 0):
        if not any(declaration(case) for declaration in avoid):
            break
        case = draw(_within(implementation, space, profile))
    return case


@st.composite
def _within(draw, implementation: Implementation, space: Space, profile: dict) -> Case:
    """The sizes and values of a case within its profile."""
    family = implementation.family_record
    value = functools.partial(space.value, profile)
    defect = value("defect")
    cell = family.cell
    bidirectional = False if cell else value("bidirectional")
    # A case costs in proportion to layers x directions x steps: the classes' cheapest
    # members are the common draws, the rest of each range the rare ones.
    layers = 1
    if not cell and value("layers") == "several":
        layers = draw(sized(st.just(2), {"deep": st.integers(2, space.max_layers)}, ("deep",)))
    directions = 2 if bidirectional else 1
    projected = not cell and family.projections and value("projection") == "projected"
    # Sizes the profile's classes and the defect need: a coincident batch of a cell
    # is its hidden size (not 1, which is the one-row class), a projection is
    # narrower than the hidden size, one-feature defects need two features.
    min_hidden = 1
    if cell and value("batch") == "coincidence":
        min_hidden = 2
    if defect in ("h0_one_feature", "c0_one_feature") or (defect == "input_one_feature" and value("input_width") == "square"):
        min_hidden = 2
    if projected:
        min_hidden = 3 if defect == "h0_one_feature" else 2
    if value("input_width") == "square":
        min_hidden = max(min_hidden, 2)
    hidden_size = max(min_hidden, draw(sized(st.integers(1, 12), {"wide": st.integers(13, 40)}, ("wide",))))
    proj_size = 0
    if projected:
        proj_size = draw(st.integers(2 if defect == "h0_one_feature" else 1, hidden_size - 1))
    width = directions * (proj_size or hidden_size)
    if value("input_width") == "square":
        input_size = hidden_size
    else:
        low = 2 if defect == "input_one_feature" else 1
        drawn = sized(st.integers(low, 12), {"layer-wide": st.just(max(width, low)), "wide": st.integers(13, 40)}, ("layer-wide", "wide"))
        input_size = _avoiding(draw, drawn, {hidden_size} if hidden_size > 1 else set(), low, 41)
    nonlinearity = value("nonlinearity") if family.nonlinearity else "tanh"
    layout = value("layout")
    coincidence = coincident_batch(family, hidden_size, layers, directions)
    batch_class = value("batch")
    seq_len = 1
    if not cell:
        sequence = value("sequence")
        if sequence == "one":
            seq_len = 1
        elif sequence == "short":
            seq_len = draw(sized(st.integers(2, 8), {"medium": st.integers(9, 20)}, ("medium",)))
        else:
            seq_len = draw(sized(st.integers(65, 70), {"longer": st.integers(71, 90)}, ("longer",)))
    if layout == "unbatched":
        batch = 1
    elif batch_class == "one":
        batch = 1
    elif batch_class == "empty":
        batch = 0
    elif batch_class == "coincidence":
        batch = coincidence
    elif batch_class == "few":
        batch = _avoiding(draw, st.integers(2, 4), {coincidence}, 2, 5)
    else:
        widest = 20 if layout.startswith("packed") else 24
        batch = _avoiding(draw, sized(st.integers(17, 18), {"wider": st.integers(17, widest)}, ("wider",)), {coincidence}, 17, widest + 1)
    lengths = None
    if layout.startswith("packed"):
        # One sequence has the full length; the others are free in 1..seq_len.
        rest = draw(st.lists(st.integers(1, seq_len), min_size=batch - 1, max_size=batch - 1))
        position = draw(st.integers(0, batch - 1))
        lengths = rest[:position] + [seq_len] + rest[position:]
        if layout == "packed_sorted":
            lengths = sorted(lengths, reverse=True)
        lengths = tuple(lengths)
    training = value("training")
    dropout = 0.0
    if not cell and value("dropout") == "nonzero":
        # In training only p = 1 makes dropout deterministic enough to compare.
        dropout = 1.0 if training else draw(st.sampled_from([0.5, 1.0, 0.25]))
    gains = gains_for(family, nonlinearity)
    grad_mode = value("grad_mode")
    case = Case(
        family=family.name,
        input_size=input_size,
        hidden_size=hidden_size,
        num_layers=layers,
        nonlinearity=nonlinearity,
        bias=value("bias"),
        batch_first=False if cell else value("batch_first"),
        dropout=dropout,
        bidirectional=bidirectional,
        proj_size=proj_size,
        dtype=value("dtype"),
        device=value("device"),
        layout=layout,
        seq_len=seq_len,
        batch=batch,
        lengths=lengths,
        h0_given=value("h0_given"),
        noncontiguous=value("noncontiguous"),
        input_scale=draw(st.sampled_from([1.0, 0.1, 5.0])),
        h0_scale=draw(st.sampled_from([1.0, 0.5])),
        weight_gain=gains[value("regime")],
        exact_zeros=value("exact_zeros"),
        # Few value draws per shape: the shrinker then spends its time on shapes,
        # where minimal means something, not on walking a large seed down to 0.
        seed=draw(st.integers(0, 15)),
        training=training,
        # "backward_parameters": grad mode on, input and states not requiring grad, then
        # backward to the parameters, as a model's first layer is trained; kernels
        # choose other paths when the input needs no gradient.
        backward=grad_mode in ("backward", "backward_parameters") and implementation.backward,
        input_grad=grad_mode != "backward_parameters",
        no_grad=grad_mode == "no_grad",
        second_call=value("second_call"),
        defect=defect,
    )
    # The dimensions the sizes above do not draw (none of the built-in ones) realize their value here.
    for record in space.records:
        if record.realize is not None:
            case = record.realize(case, value(record.name))
    if defect is not None and defect not in defects_for(dataclasses.replace(case, defect=None)):
        raise AssertionError(f"the profile {profile} drew defect {defect!r}, but the sizes drawn for it do not let it apply: {case}")
    return case


