"""Configurations against hand-written Python-loop references (loss AND gradient).

The references (`tests/references.py`) are written from the semantics in API.md A2
only: the loss is the sum over time levels of `w[t] * loss(...)`, and with `cut_bptt`
the chain is cut (`stop_gradient`) after step `t` when `(t + 1) % cut_bptt_every == 0`.
They loop over time in Python and use nothing from the library but the stepper itself.

Cost note: scanned rollouts recompile on every call, so the tests cover the grid of
(rollout length, cuts, weights, branch length) with the cheap unrolled modes (with and
without remat) and run the scanned modes on one demanding case per configuration.
"""

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import (
    BATCH,
    DictStepper,
    TupleStepper,
    apply_each,
    assert_value_and_grad_close,
    conv_stepper,
    heat_residuum,
    mse,
    random_weights,
    random_windows,
    roll_ref,
    smooth_ref,
    value_and_grad,
)
from references import (
    ref_branch_one,
    ref_diverted,
    ref_mix,
    ref_residuum,
    ref_supervised,
    ref_teacher,
    ref_temporal,
)
from registry import ALL_CONFIGURATIONS

from trainax_fm.configuration import (
    BaseConfiguration,
    Composite,
    DivertedChain,
    DivertedChainBranchOne,
    MixChainPostPhysics,
    Residuum,
    Supervised,
    TeacherForcing,
    TemporalConsistency,
)

ROLLOUT_LENGTHS = (1, 2, 4)
CUTS = ((False, 1), (True, 1), (True, 2))
CUT_IDS = ("nocut", "cut1", "cut2")
# (unroll, remat): every combination must give the same loss and gradient. Scanned
# rollouts recompile on every call, so the scanned modes run on one demanding case per
# configuration (R = 4, cut after every 2nd step: remat groups of 2 meet the cuts):
# the full grid for Supervised, and all but the scanned remat-every-step mode (the same
# generic loop code) for the others. Every other case runs the plain unrolled mode and
# one unrolled remat mode, which are cheap.
MODES = tuple(itertools.product((True, False), (False, True, 2)))
SCANNED_CASE_MODES = tuple(m for m in MODES if m != (False, True))
UNROLLED_MODES = ((True, False), (True, True), (True, 2))
FULL_GRID_CASE = (4, True, 2)


def modes_for(R, cut_bptt, every, *, full=False):
    if (R, cut_bptt, every) == FULL_GRID_CASE:
        return MODES if full else SCANNED_CASE_MODES
    return ((True, False), (True, True) if R % 2 else (True, 2))


# --- the mode loop ------------------------------------------------------------------


def check_all_modes(
    make, reference, stepper, data, modes=UNROLLED_MODES, **call_kwargs
):
    """`make(unroll=..., remat=...)` must match `reference(stepper)` in every mode.

    Unrolled modes run eagerly; scanned modes run under `eqx.filter_jit` (as in the
    trainers), so both the eager and the jitted path are covered.
    """
    expected = value_and_grad(reference, stepper)
    for unroll, remat in modes:
        configuration = make(unroll=unroll, remat=remat)

        def loss(s, d, configuration=configuration):
            return configuration(s, d, **call_kwargs)

        if unroll:
            actual = value_and_grad(lambda s, loss=loss: loss(s, data), stepper)
        else:
            value, grads = eqx.filter_jit(eqx.filter_value_and_grad(loss))(
                stepper, data
            )
            actual = (value, jax.tree_util.tree_leaves(eqx.filter(grads, eqx.is_array)))
        assert_value_and_grad_close(
            actual, expected, label=f"unroll={unroll} remat={remat}"
        )
    return expected


# --- loss and gradient vs. the references ---------------------------------------------


@pytest.mark.parametrize("cut_bptt, every", CUTS, ids=CUT_IDS)
@pytest.mark.parametrize("R", ROLLOUT_LENGTHS)
def test_supervised_matches_reference(R, cut_bptt, every):
    stepper = conv_stepper(1)
    data = random_windows(2, R + 1)
    w = random_weights(R, R)
    common = {"cut_bptt": cut_bptt, "cut_bptt_every": every, "time_level_weights": w}
    check_all_modes(
        lambda **m: Supervised(R, **common, **m),
        lambda s: ref_supervised(s, data, R, w, cut_bptt, every),
        stepper,
        data,
        modes=modes_for(R, cut_bptt, every, full=True),
    )


def test_supervised_scanned_remat_with_remainder_group():
    """R = 3 with remat groups of 2: one full checkpointed group plus a remainder."""
    R = 3
    stepper = conv_stepper(3)
    data = random_windows(4, R + 1)
    w = random_weights(5, R)
    common = {"cut_bptt": True, "cut_bptt_every": 2, "time_level_weights": w}
    check_all_modes(
        lambda **m: Supervised(R, **common, **m),
        lambda s: ref_supervised(s, data, R, w, True, 2),
        stepper,
        data,
        modes=((False, 2), (True, 2)),
    )


def test_supervised_default_weights_and_longer_windows():
    """`time_level_weights=None` means ones; extra snapshots in the window are ignored."""
    stepper = conv_stepper(3)
    data = random_windows(4, 6)
    ones = jnp.ones(3)
    actual = value_and_grad(lambda s: Supervised(3)(s, data), stepper)
    expected = value_and_grad(
        lambda s: ref_supervised(s, data, 3, ones, False, 1), stepper
    )
    assert_value_and_grad_close(actual, expected)


@pytest.mark.parametrize(
    "R, cut_bptt, every", [(1, False, 1), (3, True, 1), (3, True, 2)]
)
def test_supervised_with_history_inputs(R, cut_bptt, every):
    stepper = conv_stepper(5, in_channels=2, out_channels=1)
    data = random_windows(6, 2 + R)
    w = random_weights(R + 10, R)
    common = {
        "cut_bptt": cut_bptt,
        "cut_bptt_every": every,
        "time_level_weights": w,
        "num_input_steps": 2,
    }
    scanned = (R, cut_bptt, every) == (3, True, 2)
    check_all_modes(
        lambda **m: Supervised(R, **common, **m),
        lambda s: ref_supervised(s, data, R, w, cut_bptt, every, H=2),
        stepper,
        data,
        modes=((True, False), (False, 2)) if scanned else ((True, False), (True, 2)),
    )


# (R, cut_bptt, cut_bptt_every, cut_div_chain): every R with every cut setting, the
# diverted-chain cut alternating.
BRANCH_ONE_CASES = [
    (R, cut_bptt, every, (R + i) % 2 == 0)
    for R in ROLLOUT_LENGTHS
    for i, (cut_bptt, every) in enumerate(CUTS)
]


@pytest.mark.parametrize("R, cut_bptt, every, cut_div", BRANCH_ONE_CASES)
def test_diverted_chain_branch_one_matches_reference(R, cut_bptt, every, cut_div):
    stepper = conv_stepper(7)
    data = random_windows(8, 1)
    w = random_weights(R + 20, R)
    common = {
        "cut_bptt": cut_bptt,
        "cut_bptt_every": every,
        "cut_div_chain": cut_div,
        "time_level_weights": w,
    }
    check_all_modes(
        lambda **m: DivertedChainBranchOne(R, **common, **m),
        lambda s: ref_branch_one(s, data, R, w, cut_bptt, every, smooth_ref, cut_div),
        stepper,
        data,
        modes=modes_for(R, cut_bptt, every),
        ref_stepper=smooth_ref,
    )


# (R, B, cut_bptt, cut_bptt_every, cut_div_chain): every branch length 1..R for every R;
# with R = 4 the branch cut index t + b meets every cut setting.
DIVERTED_CASES = [
    (1, 1, True, 1, False),
    (2, 1, False, 1, True),
    (2, 2, True, 2, False),
    (4, 1, False, 1, False),
    (4, 1, True, 1, True),
    (4, 1, True, 2, False),
    (4, 2, False, 1, True),
    (4, 2, True, 2, True),  # full (unroll, remat) grid
    (4, 3, True, 1, False),
    (4, 4, True, 2, True),
]


@pytest.mark.parametrize("R, B, cut_bptt, every, cut_div", DIVERTED_CASES)
def test_diverted_chain_matches_reference(R, B, cut_bptt, every, cut_div):
    stepper = conv_stepper(9)
    data = random_windows(10, 1)
    w = random_weights(R + 30, R)
    v = random_weights(B + 40, B)
    common = {
        "cut_bptt": cut_bptt,
        "cut_bptt_every": every,
        "cut_div_chain": cut_div,
        "time_level_weights": w,
        "branch_level_weights": v,
    }
    full_grid = (R, B, cut_bptt, every) == (4, 2, True, 2)
    check_all_modes(
        lambda **m: DivertedChain(R, B, **common, **m),
        lambda s: ref_diverted(s, data, R, B, w, v, cut_bptt, every, roll_ref, cut_div),
        stepper,
        data,
        modes=SCANNED_CASE_MODES if full_grid else UNROLLED_MODES[:2],
        ref_stepper=roll_ref,
    )


def test_diverted_chain_time_level_weights_beyond_last_branch_are_unused():
    """trainax semantics: weights have length R, entries after R - B are ignored."""
    stepper = conv_stepper(10)
    data = random_windows(11, 1)
    w = jnp.array([0.5, 2.0, 7.0, -3.0])
    v = jnp.array([1.5, 0.25])
    changed = w.at[3].set(100.0)
    a = DivertedChain(4, 2, time_level_weights=w, branch_level_weights=v)
    b = DivertedChain(4, 2, time_level_weights=changed, branch_level_weights=v)
    np.testing.assert_allclose(
        a(stepper, data, ref_stepper=roll_ref),
        b(stepper, data, ref_stepper=roll_ref),
        rtol=1e-6,
    )


@pytest.mark.parametrize("R", ROLLOUT_LENGTHS)
def test_diverted_chain_branch_one_is_diverted_chain_with_one_branch_step(R):
    stepper = conv_stepper(11)
    data = random_windows(12, 1)
    w = random_weights(R + 50, R)
    kw = {
        "cut_bptt": True,
        "cut_bptt_every": 2,
        "time_level_weights": w,
        "unroll": True,
    }
    one = value_and_grad(
        lambda s: DivertedChainBranchOne(R, **kw)(s, data, ref_stepper=smooth_ref),
        stepper,
    )
    general = value_and_grad(
        lambda s: DivertedChain(R, 1, **kw)(s, data, ref_stepper=smooth_ref), stepper
    )
    assert_value_and_grad_close(general, one)


@pytest.mark.parametrize("R", (2, 4))
def test_diverted_chain_full_branch_is_supervised_on_reference_trajectory(R):
    """B = R: one branch from the IC, i.e. supervised training on the reference rollout."""
    stepper = conv_stepper(13)
    ic = random_windows(14, 1)
    states = [ic[:, 0]]
    for _ in range(R):
        states.append(apply_each(smooth_ref, states[-1]))
    reference_windows = jnp.stack(states, axis=1)
    v = random_weights(60, R)
    diverted = value_and_grad(
        lambda s: DivertedChain(R, R, branch_level_weights=v, unroll=True)(
            s, ic, ref_stepper=smooth_ref
        ),
        stepper,
    )
    supervised = value_and_grad(
        lambda s: Supervised(R, time_level_weights=v, unroll=True)(
            s, reference_windows
        ),
        stepper,
    )
    assert_value_and_grad_close(diverted, supervised)


MIX_CASES = [
    (1, 3, True, 1),
    (2, 1, True, 1),
    (2, 3, True, 2),
    (4, 1, False, 1),
    (4, 3, True, 2),  # full grid: remat groups of 2 cross into the reference steps
]


@pytest.mark.parametrize("R, P, cut_bptt, every", MIX_CASES)
def test_mix_chain_post_physics_matches_reference(R, P, cut_bptt, every):
    stepper = conv_stepper(15)
    data = random_windows(16, R + P + 1)
    w = random_weights(R + P + 70, R + P)
    common = {"cut_bptt": cut_bptt, "cut_bptt_every": every, "time_level_weights": w}
    modes = modes_for(R, cut_bptt, every) if P == 3 else UNROLLED_MODES[:2]
    check_all_modes(
        lambda **m: MixChainPostPhysics(R, P, **common, **m),
        lambda s: ref_mix(s, data, R, P, w, cut_bptt, every, smooth_ref),
        stepper,
        data,
        modes=modes,
        ref_stepper=smooth_ref,
    )


# (R, cut_bptt, cut_bptt_every, cut_prev, cut_next): every R with every cut setting; the
# residuum cuts rotate through all four combinations.
_RESIDUUM_CUTS = ((False, False), (True, False), (False, True), (True, True))
RESIDUUM_CASES = [
    (R, cut_bptt, every) + _RESIDUUM_CUTS[(3 * j + i) % 4]
    for j, R in enumerate(ROLLOUT_LENGTHS)
    for i, (cut_bptt, every) in enumerate(CUTS)
]


@pytest.mark.parametrize("R, cut_bptt, every, cut_prev, cut_next", RESIDUUM_CASES)
def test_residuum_matches_reference(R, cut_bptt, every, cut_prev, cut_next):
    stepper = conv_stepper(17)
    data = random_windows(18, 1)
    w = random_weights(R + 80, R)
    common = {
        "cut_bptt": cut_bptt,
        "cut_bptt_every": every,
        "cut_prev": cut_prev,
        "cut_next": cut_next,
        "time_level_weights": w,
    }
    check_all_modes(
        lambda **m: Residuum(R, **common, **m),
        lambda s: ref_residuum(
            s, data, R, w, cut_bptt, every, heat_residuum, cut_prev, cut_next
        ),
        stepper,
        data,
        modes=modes_for(R, cut_bptt, every),
        residuum_fn=heat_residuum,
    )


# p = 0 is also checked against Supervised and p = 1 against one-step losses below.
TEACHER_CASES = [
    (1, False, 1, 0.0),
    (2, True, 1, 0.0),
    (4, True, 2, 0.0),
    (2, False, 1, 1.0),
    (4, True, 1, 1.0),
]


@pytest.mark.parametrize("R, cut_bptt, every, probability", TEACHER_CASES)
def test_teacher_forcing_deterministic_matches_reference(
    R, cut_bptt, every, probability
):
    stepper = conv_stepper(19)
    data = random_windows(20, R + 1)
    w = random_weights(R + 90, R)
    masks = [[probability == 1.0] * BATCH for _ in range(R)]
    common = {
        "teacher_forcing_probability": probability,
        "cut_bptt": cut_bptt,
        "cut_bptt_every": every,
        "time_level_weights": w,
    }
    check_all_modes(
        lambda **m: TeacherForcing(R, **common, **m),
        lambda s: ref_teacher(s, data, R, w, cut_bptt, every, masks),
        stepper,
        data,
        modes=modes_for(R, cut_bptt, every)
        if probability == 0.0
        else UNROLLED_MODES[:2],
    )


TEMPORAL_CASES = [
    (1, False, 1, 1),
    (2, True, 1, 1),
    (4, False, 1, 1),
    (4, True, 2, 1),
    (1, False, 1, 2),
    (4, True, 2, 2),
]


@pytest.mark.parametrize("R, cut_bptt, every, H", TEMPORAL_CASES)
def test_temporal_consistency_matches_reference(R, cut_bptt, every, H):
    stepper = conv_stepper(21, in_channels=H)
    data = random_windows(22, R + H)
    w = random_weights(R + 100, R)
    common = {
        "cut_bptt": cut_bptt,
        "cut_bptt_every": every,
        "time_level_weights": w,
        "num_input_steps": H,
    }
    check_all_modes(
        lambda **m: TemporalConsistency(R, **common, **m),
        lambda s: ref_temporal(s, data, R, w, cut_bptt, every, H=H),
        stepper,
        data,
        modes=modes_for(R, cut_bptt, every) if H == 1 else UNROLLED_MODES[:2],
    )


@pytest.mark.parametrize(
    "R, cut_bptt, every", [(1, False, 1), (2, True, 1), FULL_GRID_CASE]
)
def test_composite_matches_weighted_reference(R, cut_bptt, every):
    stepper = conv_stepper(23)
    data = random_windows(24, R + 1)
    w = random_weights(R + 110, R)
    kw = {"cut_bptt": cut_bptt, "cut_bptt_every": every, "time_level_weights": w}

    def make(**m):
        return Composite(
            [
                Supervised(R, **kw, **m),
                DivertedChainBranchOne(R, **kw, **m),
                Residuum(R, **kw, **m),
            ],
            [0.5, 2.0, 0.25],
        )

    def reference(s):
        return (
            0.5 * ref_supervised(s, data, R, w, cut_bptt, every)
            + 2.0 * ref_branch_one(s, data, R, w, cut_bptt, every, roll_ref, False)
            + 0.25
            * ref_residuum(s, data, R, w, cut_bptt, every, heat_residuum, False, False)
        )

    full_grid = (R, cut_bptt, every) == FULL_GRID_CASE
    expected = check_all_modes(
        make,
        reference,
        stepper,
        data,
        modes=((True, False), (False, True)) if full_grid else ((True, False),),
        ref_stepper=roll_ref,
        residuum_fn=heat_residuum,
    )
    # Keys are split among the members but deterministic members ignore them.
    with_key = value_and_grad(
        lambda s: make(unroll=True)(
            s,
            data,
            ref_stepper=roll_ref,
            residuum_fn=heat_residuum,
            key=jax.random.key(0),
        ),
        stepper,
    )
    assert_value_and_grad_close(with_key, expected)


def test_cuts_change_the_gradient():
    """Guard for the references: with R >= 2 a cut must change the gradient."""
    stepper = conv_stepper(25)
    data = random_windows(26, 4)
    w = jnp.ones(3)
    _, full = value_and_grad(lambda s: ref_supervised(s, data, 3, w, False, 1), stepper)
    _, cut = value_and_grad(lambda s: ref_supervised(s, data, 3, w, True, 1), stepper)
    assert not np.allclose(full[0], cut[0])
    _, lib_cut = value_and_grad(
        lambda s: Supervised(3, cut_bptt=True, unroll=True)(s, data), stepper
    )
    np.testing.assert_allclose(lib_cut[0], cut[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("factory", ALL_CONFIGURATIONS, ids=repr)
def test_every_configuration_reports_its_needs(factory):
    for R in ROLLOUT_LENGTHS:
        configuration = factory.make(
            R, time_level_weights=jnp.ones(factory.num_weights(R))
        )
        assert configuration.required_window_length == factory.window(R)
        assert configuration.needs_ref_stepper == factory.needs_ref_stepper
        assert configuration.needs_residuum_fn == factory.needs_residuum_fn
        assert not configuration.needs_key
        assert isinstance(configuration, BaseConfiguration)


@pytest.mark.parametrize("factory", ALL_CONFIGURATIONS, ids=repr)
def test_every_configuration_accepts_its_minimal_window(factory):
    """Windows of exactly `required_window_length` snapshots are enough."""
    R = 2
    configuration = factory.make(R, unroll=True)
    data = random_windows(27, configuration.required_window_length)
    loss = configuration(
        conv_stepper(28), data, ref_stepper=smooth_ref, residuum_fn=heat_residuum
    )
    assert jnp.ndim(loss) == 0 and np.isfinite(float(loss)) and float(loss) > 0.0


# --- teacher forcing ----------------------------------------------------------------


@pytest.mark.parametrize("R", (1, 3))
def test_teacher_forcing_one_is_sum_of_one_step_losses(R):
    stepper = conv_stepper(29)
    data = random_windows(30, R + 1)
    w = random_weights(31, R)

    def one_step_sum(s):
        return sum(w[t] * Supervised(1)(s, data[:, t : t + 2]) for t in range(R))

    tf = value_and_grad(
        lambda s: TeacherForcing(
            R, teacher_forcing_probability=1.0, time_level_weights=w
        )(s, data),
        stepper,
    )
    assert_value_and_grad_close(tf, value_and_grad(one_step_sum, stepper))
    # With a key the draws all say "truth" for p = 1.
    tf_key = value_and_grad(
        lambda s: TeacherForcing(
            R, teacher_forcing_probability=1.0, time_level_weights=w
        )(s, data, key=jax.random.key(3)),
        stepper,
    )
    assert_value_and_grad_close(tf_key, value_and_grad(one_step_sum, stepper))


@pytest.mark.parametrize("cut_bptt", (False, True))
@pytest.mark.parametrize("R", (1, 4))
def test_teacher_forcing_zero_is_supervised(R, cut_bptt):
    stepper = conv_stepper(32)
    data = random_windows(33, R + 1)
    kw = {"cut_bptt": cut_bptt, "cut_bptt_every": 2}
    for key in (None, jax.random.key(1)):
        tf = value_and_grad(
            lambda s, key=key: TeacherForcing(R, teacher_forcing_probability=0.0, **kw)(
                s, data, key=key
            ),
            stepper,
        )
        assert_value_and_grad_close(
            tf, value_and_grad(lambda s: Supervised(R, **kw)(s, data), stepper)
        )


def test_teacher_forcing_with_history_inputs_matches_reference():
    R, H = 3, 2
    stepper = conv_stepper(34, in_channels=H)
    data = random_windows(35, R + H)
    w = random_weights(36, R)
    for probability in (0.0, 1.0):
        masks = [[probability == 1.0] * BATCH for _ in range(R)]
        configuration = TeacherForcing(
            R,
            teacher_forcing_probability=probability,
            time_level_weights=w,
            num_input_steps=H,
        )
        assert_value_and_grad_close(
            value_and_grad(lambda s, c=configuration: c(s, data), stepper),
            value_and_grad(
                lambda s, m=masks: ref_teacher(s, data, R, w, False, 1, m, H=H), stepper
            ),
        )


def _all_mixture_references(stepper, data, R, w, batch):
    """Loss and gradient for every possible truth/prediction choice pattern."""
    # One compiled reference with the pattern as an argument.
    reference = eqx.filter_jit(
        eqx.filter_value_and_grad(lambda s, m: ref_teacher(s, data, R, w, False, 1, m))
    )
    results = []
    # The choice after the last step is never used.
    for bits in itertools.product((False, True), repeat=(R - 1) * batch):
        masks = np.zeros((R, batch), dtype=bool)
        masks[: R - 1] = np.reshape(bits, (R - 1, batch))
        value, grads = reference(stepper, jnp.asarray(masks))
        results.append(
            (value, jax.tree_util.tree_leaves(eqx.filter(grads, eqx.is_array)))
        )
    return results


def _match_one(actual, candidates):
    value, grads = actual
    for ref_value, ref_grads in candidates:
        if np.allclose(value, ref_value, rtol=1e-5, atol=1e-6) and all(
            np.allclose(g, r, rtol=1e-5, atol=1e-6) for g, r in zip(grads, ref_grads)
        ):
            return float(ref_value)
    raise AssertionError(f"loss {float(value)} matches no truth/prediction pattern")


def test_teacher_forcing_mixture_is_one_of_the_choice_patterns():
    R, batch = 3, 2
    stepper = conv_stepper(37)
    data = random_windows(38, R + 1, batch=batch)
    w = random_weights(39, R)
    candidates = _all_mixture_references(stepper, data, R, w, batch)
    configuration = TeacherForcing(
        R, teacher_forcing_probability=0.5, time_level_weights=w
    )
    assert configuration.needs_key
    seen = set()
    for seed in range(4):
        actual = value_and_grad(
            lambda s, seed=seed: configuration(s, data, key=jax.random.key(seed)),
            stepper,
        )
        seen.add(round(_match_one(actual, candidates), 5))
    assert len(seen) >= 2, "p = 0.5 should not give the same pattern for every key"
    # The same key gives the same loss.
    a = configuration(stepper, data, key=jax.random.key(4))
    b = configuration(stepper, data, key=jax.random.key(4))
    assert float(a) == float(b)


def test_teacher_forcing_needs_a_key_for_fractional_probability():
    data = random_windows(40, 3)
    with pytest.raises(ValueError, match="key"):
        TeacherForcing(2, teacher_forcing_probability=0.3)(conv_stepper(0), data)


def test_teacher_forcing_string_schedule():
    R = 3
    stepper = conv_stepper(41)
    data = random_windows(42, R + 1)
    configuration = TeacherForcing(R, teacher_forcing_probability="2:1.0,4:0.5,6:0.0")
    assert configuration.needs_key
    one_step = float(sum(Supervised(1)(stepper, data[:, t : t + 2]) for t in range(R)))
    unrolled = float(Supervised(R)(stepper, data))
    key = jax.random.key(5)
    for step in (0, 1):
        np.testing.assert_allclose(
            configuration(stepper, data, key=key, step=step), one_step, rtol=1e-5
        )
    for step in (4, 5, 6, 100):
        np.testing.assert_allclose(
            configuration(stepper, data, key=key, step=step), unrolled, rtol=1e-5
        )
    # step=None outside training: the last value (0.0).
    np.testing.assert_allclose(
        configuration(stepper, data, key=key), unrolled, rtol=1e-5
    )
    # p = 0.5 on steps 2 and 3: one of the choice patterns.
    candidates = _all_mixture_references(stepper, data, R, jnp.ones(R), BATCH)
    for step in (2, 3):
        actual = value_and_grad(
            lambda s, step=step: configuration(s, data, key=key, step=step), stepper
        )
        _match_one(actual, candidates)
    # A traced step works too (inside jit, as in the trainer).
    jitted = eqx.filter_jit(lambda s, d, st: configuration(s, d, key=key, step=st))
    np.testing.assert_allclose(
        jitted(stepper, data, jnp.asarray(0)), one_step, rtol=1e-5
    )
    np.testing.assert_allclose(
        jitted(stepper, data, jnp.asarray(7)), unrolled, rtol=1e-5
    )
    # Without a key it is an error (the schedule has a fractional value).
    with pytest.raises(ValueError, match="key"):
        configuration(stepper, data, step=0)


def test_teacher_forcing_deterministic_string_schedule_needs_no_key():
    stepper = conv_stepper(43)
    data = random_windows(44, 3)
    configuration = TeacherForcing(2, teacher_forcing_probability="3:1.0,5:0.0")
    assert not configuration.needs_key
    one_step = float(sum(Supervised(1)(stepper, data[:, t : t + 2]) for t in range(2)))
    np.testing.assert_allclose(
        configuration(stepper, data, step=2), one_step, rtol=1e-5
    )
    np.testing.assert_allclose(
        configuration(stepper, data, step=3), Supervised(2)(stepper, data), rtol=1e-5
    )


def test_teacher_forcing_callable_schedule():
    stepper = conv_stepper(45)
    data = random_windows(46, 4)
    configuration = TeacherForcing(
        3, teacher_forcing_probability=lambda step: jnp.where(step < 10, 1.0, 0.0)
    )
    one_step = float(sum(Supervised(1)(stepper, data[:, t : t + 2]) for t in range(3)))
    key = jax.random.key(6)
    np.testing.assert_allclose(
        configuration(stepper, data, key=key, step=3), one_step, rtol=1e-5
    )
    np.testing.assert_allclose(
        configuration(stepper, data, key=key, step=10),
        Supervised(3)(stepper, data),
        rtol=1e-5,
    )
    with pytest.raises(ValueError, match="step"):
        configuration(stepper, data, key=key)


@pytest.mark.parametrize(
    "schedule, exception",
    [
        (1.5, ValueError),
        (-0.1, ValueError),
        ("2:1.0,4", ValueError),
        ("4:1.0,2:0.5", ValueError),
        ("2:1.0,4:1.2", ValueError),
        (True, TypeError),
        ([0.5], TypeError),
    ],
)
def test_teacher_forcing_bad_schedules(schedule, exception):
    with pytest.raises(exception, match="teacher_forcing_probability"):
        TeacherForcing(2, teacher_forcing_probability=schedule)


# --- temporal consistency -----------------------------------------------------------


def test_temporal_consistency_is_zero_for_the_exact_stepper():
    """If the stepper reproduces the data, every increment matches."""
    states = [random_windows(47, 1)[:, 0]]
    for _ in range(3):
        states.append(apply_each(roll_ref, states[-1]))
    data = jnp.stack(states, axis=1)
    assert float(TemporalConsistency(3)(roll_ref, data)) == pytest.approx(
        0.0, abs=1e-12
    )
    # An offset-free but wrong stepper is penalised.
    assert float(TemporalConsistency(3)(smooth_ref, data)) > 1e-3


# --- composite ----------------------------------------------------------------------


class LegacyConfiguration(BaseConfiguration):
    """A configuration written for trainax: no `key`/`step` keywords."""

    def __call__(self, stepper, data, *, ref_stepper=None, residuum_fn=None):
        return mse(jax.vmap(stepper)(data[:, 0]), data[:, 1])


def test_composite_is_weighted_sum_with_keys_and_legacy_members():
    stepper = conv_stepper(48)
    data = random_windows(49, 3)
    members = [Supervised(2), TemporalConsistency(2), LegacyConfiguration()]
    weights = [1.0, 0.5, 3.0]
    composite = Composite(members, weights)
    expected = sum(
        w * c(stepper, data) for c, w in zip(members[:2], weights[:2])
    ) + 3.0 * LegacyConfiguration()(stepper, data)
    np.testing.assert_allclose(
        composite(stepper, data, key=jax.random.key(0)), expected, rtol=1e-5
    )
    np.testing.assert_allclose(composite(stepper, data, step=3), expected, rtol=1e-5)
    assert composite.required_window_length == 3
    assert not composite.needs_key


def test_trainax_callables_are_wrapped_once_where_they_enter():
    from trainax_fm.configuration._callable import CallableConfiguration, as_configuration

    stepper = conv_stepper(48)
    data = random_windows(49, 3)

    def plain(stepper, data, *, ref_stepper=None, residuum_fn=None):
        return mse(jax.vmap(stepper)(data[:, 0]), data[:, 1])

    supervised = Supervised(2)
    assert as_configuration(supervised) is supervised
    for legacy in (plain, LegacyConfiguration()):
        wrapped = as_configuration(legacy)
        assert isinstance(wrapped, CallableConfiguration)
        assert (wrapped.takes_key, wrapped.takes_step) == (False, False)
        assert wrapped.required_window_length == 1 and not wrapped.needs_key
        np.testing.assert_allclose(
            wrapped(stepper, data, key=jax.random.key(0), step=3), plain(stepper, data)
        )
    composite = Composite([supervised, plain], [1.0, 2.0])
    np.testing.assert_allclose(
        composite(stepper, data, key=jax.random.key(0)),
        supervised(stepper, data) + 2.0 * plain(stepper, data),
        rtol=1e-5,
    )


def test_composite_with_a_stochastic_member():
    R = 3
    stepper = conv_stepper(50)
    data = random_windows(51, R + 1, batch=2)
    tf = TeacherForcing(R, teacher_forcing_probability=0.5)
    composite = Composite([Supervised(R), tf], [2.0, 0.5])
    assert composite.needs_key
    with pytest.raises(ValueError, match="key"):
        composite(stepper, data)
    candidates = _all_mixture_references(stepper, data, R, jnp.ones(R), 2)
    supervised = value_and_grad(lambda s: Supervised(R)(s, data), stepper)
    for seed in range(3):
        total = value_and_grad(
            lambda s, seed=seed: composite(s, data, key=jax.random.key(seed)), stepper
        )
        tf_part = (
            (total[0] - 2.0 * supervised[0]) / 0.5,
            [(g - 2.0 * r) / 0.5 for g, r in zip(total[1], supervised[1])],
        )
        _match_one(tf_part, candidates)


def test_composite_errors():
    with pytest.raises(ValueError, match="configurations"):
        Composite([], [])
    with pytest.raises(ValueError, match="weights"):
        Composite([Supervised(1), Supervised(2)], [1.0])
    with pytest.raises(TypeError, match="configurations"):
        Composite([Supervised(1), 3], [1.0, 1.0])


# --- PyTree and ODE data ------------------------------------------------------------


def _tree_reference(stepper, leaves_of, data, R):
    """Supervised rollout of a tuple stepper; the loss of a level sums over the leaves."""
    state = leaves_of(data, 0)
    total = 0.0
    for t in range(R):
        state = list(jax.vmap(stepper)(tuple(state)))
        for p, target in zip(state, leaves_of(data, t + 1)):
            total = total + mse(p, target)
    return total


# One-off structures: compiled once with jit (cheaper than warming up eager primitives).


def test_supervised_on_tuple_data():
    R = 2
    stepper = TupleStepper(52)
    data = (random_windows(53, R + 1), random_windows(54, R + 1, channels=2))
    def leaves_of(d, t):
        return [d[0][:, t], d[1][:, t]]

    expected = value_and_grad(
        lambda s: _tree_reference(s, leaves_of, data, R), stepper, jit=True
    )
    actual = value_and_grad(
        lambda s: Supervised(R, unroll=True)(s, data), stepper, jit=True
    )
    assert_value_and_grad_close(actual, expected)


def test_supervised_on_dict_data():
    R = 2
    stepper = DictStepper(55)
    data = {"u": random_windows(56, R + 1), "v": random_windows(57, R + 1, channels=2)}
    def leaves_of(d, t):
        return [d["u"][:, t], d["v"][:, t]]

    expected = value_and_grad(
        lambda s: _tree_reference(s.inner, leaves_of, data, R), stepper, jit=True
    )
    for unroll, remat in ((True, True), (False, False)):
        configuration = Supervised(R, unroll=unroll, remat=remat)
        actual = value_and_grad(
            lambda s, c=configuration: c(s, data), stepper, jit=True
        )
        assert_value_and_grad_close(actual, expected, label=f"unroll={unroll}")


def test_supervised_on_ode_states():
    """States `(C,)` without spatial axes, with an `eqx.nn.Linear` stepper."""
    stepper = eqx.nn.Linear(3, 3, key=jax.random.key(58))
    data = jnp.asarray(
        np.random.default_rng(59).standard_normal((BATCH, 4, 3)), jnp.float32
    )
    expected = value_and_grad(
        lambda s: sum(
            mse(_power(s, data[:, 0], t + 1), data[:, t + 1]) for t in range(3)
        ),
        stepper,
        jit=True,
    )
    actual = value_and_grad(
        lambda s: Supervised(3, cut_bptt=False)(s, data), stepper, jit=True
    )
    assert_value_and_grad_close(actual, expected)


def _power(stepper, states, n):
    for _ in range(n):
        states = apply_each(stepper, states)
    return states


# --- error paths --------------------------------------------------------------------


@pytest.mark.parametrize(
    "configuration, needed",
    [
        (Supervised(3), 4),
        (Supervised(2, num_input_steps=2), 4),
        (TeacherForcing(3), 4),
        (TemporalConsistency(3), 4),
        (MixChainPostPhysics(2, 2), 5),
    ],
    ids=[
        "Supervised",
        "SupervisedHistory",
        "TeacherForcing",
        "TemporalConsistency",
        "MixChain",
    ],
)
def test_window_too_short(configuration, needed):
    data = random_windows(60, needed - 1)
    stepper = conv_stepper(61, in_channels=getattr(configuration, "num_input_steps", 1))
    with pytest.raises(ValueError, match=f"at least {needed}"):
        configuration(stepper, data, ref_stepper=smooth_ref)
    assert configuration.required_window_length == needed


@pytest.mark.parametrize(
    "configuration, missing",
    [
        (DivertedChain(2, 1), "ref_stepper"),
        (DivertedChainBranchOne(2), "ref_stepper"),
        (MixChainPostPhysics(1, 1), "ref_stepper"),
        (Residuum(2), "residuum_fn"),
        (Composite([Supervised(1), Residuum(1)], [1.0, 1.0]), "residuum_fn"),
    ],
    ids=["DivertedChain", "BranchOne", "MixChain", "Residuum", "Composite"],
)
def test_missing_reference_or_residuum(configuration, missing):
    data = random_windows(62, 3)
    with pytest.raises(ValueError, match=missing):
        configuration(conv_stepper(63), data)


@pytest.mark.parametrize(
    "build, exception, name",
    [
        (lambda: DivertedChain(2, 3), ValueError, "num_branch_steps"),
        (lambda: DivertedChain(2, 0), ValueError, "num_branch_steps"),
        (lambda: Supervised(0), ValueError, "num_rollout_steps"),
        (lambda: Supervised(-1), ValueError, "num_rollout_steps"),
        (lambda: Supervised(2.0), TypeError, "num_rollout_steps"),
        (lambda: Residuum(0), ValueError, "num_rollout_steps"),
        (lambda: DivertedChainBranchOne(0), ValueError, "num_rollout_steps"),
        (lambda: MixChainPostPhysics(0, 1), ValueError, "num_rollout_steps"),
        (lambda: MixChainPostPhysics(1, 0), ValueError, "num_post_physics_steps"),
        (lambda: TeacherForcing(0), ValueError, "num_rollout_steps"),
        (lambda: TemporalConsistency(0), ValueError, "num_rollout_steps"),
        (
            lambda: Supervised(2, cut_bptt=True, cut_bptt_every=0),
            ValueError,
            "cut_bptt_every",
        ),
        (lambda: Residuum(2, cut_bptt_every=0), ValueError, "cut_bptt_every"),
        (lambda: Supervised(2, num_input_steps=0), ValueError, "num_input_steps"),
        (
            lambda: Supervised(2, time_level_weights=jnp.ones(3)),
            ValueError,
            "time_level_weights",
        ),
        (
            lambda: Supervised(2, time_level_weights=jnp.ones((2, 1))),
            ValueError,
            "time_level_weights",
        ),
        (
            lambda: Residuum(3, time_level_weights=[1.0]),
            ValueError,
            "time_level_weights",
        ),
        (
            lambda: MixChainPostPhysics(2, 2, time_level_weights=jnp.ones(2)),
            ValueError,
            "time_level_weights",
        ),
        (
            lambda: DivertedChain(3, 2, branch_level_weights=jnp.ones(3)),
            ValueError,
            "branch_level_weights",
        ),
        (
            lambda: Supervised(2, time_level_loss=lambda a, b: jnp.mean((a - b) ** 2)),
            TypeError,
            "time_level_loss",
        ),
        (
            lambda: DivertedChainBranchOne(2, time_level_loss="mse"),
            TypeError,
            "time_level_loss",
        ),
        (lambda: Supervised(2, cut_bptt="yes"), TypeError, "cut_bptt"),
        (lambda: DivertedChain(2, 1, cut_div_chain=1), TypeError, "cut_div_chain"),
        (lambda: Residuum(2, cut_prev=None), TypeError, "cut_prev"),
        (lambda: Supervised(2, unroll="sometimes"), ValueError, "unroll"),
        (lambda: Supervised(2, remat=0), ValueError, "remat"),
    ],
)
def test_bad_construction_arguments(build, exception, name):
    with pytest.raises(exception, match=name):
        build()


def test_mix_chain_weights_cover_network_and_reference_levels():
    """R + P weights: entry k weighs level k, network (k < R) and reference (k >= R)."""
    R, P = 2, 3
    stepper = conv_stepper(73)
    data = random_windows(74, R + P + 1)
    default = MixChainPostPhysics(R, P, unroll=True)(stepper, data, ref_stepper=smooth_ref)
    ones = MixChainPostPhysics(R, P, time_level_weights=jnp.ones(R + P), unroll=True)
    np.testing.assert_allclose(
        ones(stepper, data, ref_stepper=smooth_ref), default, rtol=1e-6
    )
    terms = []
    for k in range(R + P):
        one_hot = jnp.zeros(R + P).at[k].set(1.0)
        configuration = MixChainPostPhysics(R, P, time_level_weights=one_hot, unroll=True)
        term = float(configuration(stepper, data, ref_stepper=smooth_ref))
        expected = ref_mix(stepper, data, R, P, one_hot, False, 1, smooth_ref)
        np.testing.assert_allclose(term, expected, rtol=1e-5, err_msg=f"level {k}")
        assert term > 0.0, f"level {k} contributes nothing"
        terms.append(term)
    # Zeroing one level drops exactly its term.
    for k in (R - 1, R + P - 1):
        dropped = MixChainPostPhysics(
            R, P, time_level_weights=jnp.ones(R + P).at[k].set(0.0), unroll=True
        )
        np.testing.assert_allclose(
            dropped(stepper, data, ref_stepper=smooth_ref),
            float(default) - terms[k],
            rtol=1e-5,
        )
    np.testing.assert_allclose(sum(terms), default, rtol=1e-5)
    for wrong in (R, R + P + 1):
        with pytest.raises(ValueError, match="time_level_weights"):
            MixChainPostPhysics(R, P, time_level_weights=jnp.ones(wrong))


@pytest.mark.parametrize("factory", ALL_CONFIGURATIONS, ids=repr)
def test_stepper_with_wrong_shape_is_named(factory):
    R = 2
    configuration = factory.make(R)
    data = random_windows(64, factory.window(R))
    kwargs = {"ref_stepper": smooth_ref, "residuum_fn": heat_residuum}
    with pytest.raises(ValueError, match="`stepper`"):
        configuration(lambda x: x[..., :-1], data, **kwargs)


@pytest.mark.parametrize("factory", ALL_CONFIGURATIONS, ids=repr)
def test_stepper_with_wrong_dtype_is_named(factory):
    R = 2
    configuration = factory.make(R)
    data = random_windows(65, factory.window(R))
    kwargs = {"ref_stepper": smooth_ref, "residuum_fn": heat_residuum}
    with pytest.raises(TypeError, match="`stepper`.*float16"):
        configuration(lambda x: x.astype(jnp.float16), data, **kwargs)


@pytest.mark.parametrize(
    "configuration",
    [DivertedChain(2, 2), DivertedChainBranchOne(2), MixChainPostPhysics(1, 1)],
    ids=["DivertedChain", "BranchOne", "MixChain"],
)
def test_reference_stepper_with_wrong_shape_is_named(configuration):
    data = random_windows(66, 3)
    with pytest.raises(ValueError, match="`ref_stepper`"):
        configuration(conv_stepper(67), data, ref_stepper=lambda x: x[..., :-1])


def test_stepper_with_wrong_tree_structure_is_named():
    data = (random_windows(68, 2), random_windows(69, 2, channels=2))
    with pytest.raises(ValueError, match="`stepper`"):
        Supervised(1)(lambda state: state[0], data)


def test_history_stepper_with_wrong_output_channels():
    data = random_windows(70, 4)
    stepper = conv_stepper(71, in_channels=2, out_channels=2)
    with pytest.raises(ValueError, match="num_input_steps"):
        Supervised(2, num_input_steps=2)(stepper, data)


def test_float64_stepper_against_float32_data():
    with jax.enable_x64(True):
        data = random_windows(72, 2)
        def stepper(x):
            return x.astype(jnp.float64)

        with pytest.raises(TypeError, match="`stepper`.*float64"):
            Supervised(1)(stepper, data)
