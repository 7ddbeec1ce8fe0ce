"""The test harness's single registry of every exported configuration and trainer.

`CONFIGURATIONS` holds one or more `ConfigurationCase` per configuration class exported by
`trainax_fm.configuration`, `TRAINERS` one `TrainerCase` per trainer class exported by
`trainax_fm.trainer`. `tests/test_contracts.py` runs the shared contracts over both
(loss and gradient against a hand-written reference, jit, vmap over seeds, engine
options, resume) and fails when an exported class is missing here.

`ALL_CONFIGURATIONS` are the rollout configurations as factories of the rollout length
(used by `tests/test_configuration.py` for the grid over lengths).

Everything is tiny: windows of 3 samples and 8 grid points, ODE states of 3 channels.
"""

import dataclasses
from collections.abc import Callable
from typing import Any, Optional

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import (
    conv_stepper,
    heat_residuum,
    random_weights,
    random_windows,
    roll_ref,
    smooth_ref,
)
from references import (
    ref_branch_one,
    ref_crps_ensemble,
    ref_input_noise,
    ref_symmetry_augmentation,
    ref_window_augmentation,
    np_convex_combination,
    np_delay_embedding,
    np_random_affine,
    ref_invariant_measure,
    ref_invariant_measure_sinkhorn,
    ref_pushforward,
    ref_diverted,
    ref_flow_matching,
    ref_lagrangian_self_distillation,
    ref_mean_flow,
    ref_mix,
    ref_pde_refiner,
    ref_progressive_distillation,
    ref_residuum,
    ref_semigroup_distillation,
    ref_shortcut_model,
    ref_stochastic_interpolant,
    ref_supervised,
    ref_teacher,
    ref_thermalizer,
    ref_temporal,
)

import trainax_fm as tx
from trainax_fm import flow
from trainax_fm.configuration import (
    AbstractTimeSampler,
    BaseConfiguration,
    Composite,
    CRPSEnsemble,
    DelayEmbedding,
    DivertedChain,
    DivertedChainBranchOne,
    FlowMatching,
    GeneralizedTeacherForcing,
    InputNoise,
    InvariantMeasureMMD,
    InvariantMeasureSinkhorn,
    LagrangianSelfDistillation,
    MeanFlow,
    MixChainPostPhysics,
    PDERefiner,
    ProgressiveDistillation,
    Pushforward,
    RandomAffine,
    RandomConvexCombination,
    Residuum,
    RolloutCurriculum,
    SemigroupDistillation,
    ShortcutModel,
    StochasticInterpolant,
    Supervised,
    SymmetryAugmentation,
    TeacherForcing,
    TemporalConsistency,
    ThermalizerDiffusion,
    TimePairSampler,
    UncertaintyWeighted,
    UniformTimeSampler,
)
from trainax_fm.trainer import (
    ConfigurationTrainer,
    CRPSEnsembleTrainer,
    DivertedChainBranchOneTrainer,
    DivertedChainTrainer,
    FlowMatchingTrainer,
    LagrangianSelfDistillationTrainer,
    MeanFlowTrainer,
    MixChainPostPhysicsTrainer,
    PDERefinerTrainer,
    ProgressiveDistillationTrainer,
    PushforwardTrainer,
    ResiduumTrainer,
    SemigroupDistillationTrainer,
    ShortcutModelTrainer,
    StochasticInterpolantTrainer,
    SupervisedTrainer,
    GeneralizedTeacherForcingTrainer,
    TeacherForcingTrainer,
    TemporalConsistencyTrainer,
    ThermalizerTrainer,
)

# --- small builders -----------------------------------------------------------------


def velocity_mlp(seed: int = 0, num_channels: int = 3, step_size_input: bool = False):
    """A tiny conditional velocity `v(x, y, t)` on ODE states `(num_channels,)`."""
    in_features = flow.velocity_input_channels(
        num_channels, 1, step_size_input=step_size_input
    )
    network = eqx.nn.MLP(
        in_features, num_channels, 8, 2, activation=jax.nn.tanh, key=jax.random.key(seed)
    )
    return flow.ConditionalVelocity(network, step_size_input=step_size_input)


def thermalizer_mlp(seed: int = 0, num_channels: int = 3, num_levels: int = 6):
    """A tiny thermalizer on ODE states `(num_channels,)`: MLP denoiser and classifier."""
    keys = jax.random.split(jax.random.key(300 + seed))
    return flow.Thermalizer(
        eqx.nn.MLP(num_channels + 1, num_channels, 8, 1, activation=jax.nn.tanh, key=keys[0]),
        eqx.nn.MLP(num_channels, num_levels, 8, 1, activation=jax.nn.tanh, key=keys[1]),
        num_noise_steps=num_levels,
    )


def flow_map(seed: int = 0):
    """A flow map on a frozen velocity, with a non-zero correction network."""
    fm = flow.FlowMap(velocity_mlp(100 + seed))
    return eqx.tree_at(
        lambda m: m.correction.network.layers[-1].bias,
        fm,
        replace_fn=lambda b: b + 0.1 * (seed + 1),
    )


def ode_windows(seed: int, window: int = 2, batch: int = 4):
    """Random float32 ODE windows `(batch, window, 3)`."""
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.standard_normal((batch, window, 3)), jnp.float32)


def field_trajectories(seed: int = 0):
    """Tiny trajectories `(3, 8, 1, 8)` for the rollout trainers."""
    return random_windows(seed, 8, batch=3)


def ode_trajectories(seed: int = 0):
    """Tiny trajectories `(4, 5, 3)` for the flow trainers."""
    return ode_windows(seed, window=5, batch=4)


def stack_trees(trees):
    """Stack the array leaves of equally structured PyTrees on a new leading axis."""
    arrays = [eqx.filter(t, eqx.is_array) for t in trees]
    static = eqx.filter(trees[0], eqx.is_array, inverse=True)
    stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *arrays)
    return eqx.combine(stacked, static)


def unstack_tree(tree, index: int):
    """The `index`-th entry of a tree stacked by `stack_trees`."""
    arrays, static = eqx.partition(tree, eqx.is_array)
    return eqx.combine(jax.tree_util.tree_map(lambda x: x[index], arrays), static)


# --- configurations -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ConfigurationCase:
    """One configuration with the stepper, windows and reference it is checked with.

    `make()` builds the configuration; `stepper(seed)` a trainable stepper;
    `data` the windows; `reference(stepper, data, key)` the hand-written loss (its
    gradient is the expected gradient); `call_kwargs` the `ref_stepper`/`residuum_fn`
    the configuration is called with.
    """

    name: str
    cls: type
    make: Callable[[], BaseConfiguration]
    stepper: Callable[[int], Any]
    data: Callable[[], Any]
    reference: Callable[[Any, Any, Any], Any]
    call_kwargs: dict = dataclasses.field(default_factory=dict)

    def __repr__(self):
        return self.name


_R = 3
_W = random_weights(201, _R)
_V = random_weights(202, 2)
_W_MIX = random_weights(203, 4)
_COMPOSITE_WEIGHTS = (0.5, 2.0, 0.25)
_FLOW_SAMPLER = UniformTimeSampler(0.1, 1.0)
_TEACHER = velocity_mlp(7)
_PAIR_SAMPLER = TimePairSampler(equal_share=0.5)
_LOGIT_PAIR_SAMPLER = TimePairSampler("logit_normal", mean=0.4, std=1.0, equal_share=0.5)


def average_velocity_mlp(seed: int = 0):
    """A tiny step-size-conditioned velocity `u(x, y, t, d)` on ODE states `(3,)`."""
    return velocity_mlp(seed, step_size_input=True)


def ema_velocity(seed: int = 0):
    """An `EMAVelocity` whose average differs from the online weights."""
    online = average_velocity_mlp(seed)
    return flow.EMAVelocity(online, decay=0.9, ema=average_velocity_mlp(seed + 50))

_CUT = {"cut_bptt": True, "cut_bptt_every": 2}
_BANDWIDTHS = (0.5, 2.0)


def _random_pushforward_reference(s, data, key):
    # The configuration's draw: one number of pushed steps in {0, 1, 2} per window.
    pushed = jax.random.randint(key, (data.shape[0],), 0, 3)
    return ref_pushforward(s, data, 2, 2, _W[:2], False, 1, pushed)


def _composite():
    kw = {**_CUT, "time_level_weights": _W}
    return Composite(
        [Supervised(_R, **kw), TemporalConsistency(_R, **kw), Residuum(_R, **kw)],
        list(_COMPOSITE_WEIGHTS),
    )


def _composite_reference(s, data, key):
    a, b, c = _COMPOSITE_WEIGHTS
    return (
        a * ref_supervised(s, data, _R, _W, True, 2)
        + b * ref_temporal(s, data, _R, _W, True, 2)
        + c * ref_residuum(s, data, _R, _W, True, 2, heat_residuum, False, False)
    )


_LEARNED_NAMES = ("supervised", "consistency")


def _uncertainty_weighted():
    kw = {**_CUT, "time_level_weights": _W}
    return UncertaintyWeighted(
        [Supervised(_R, **kw), TemporalConsistency(_R, **kw)], _LEARNED_NAMES
    )


def _loss_weighted_stepper(seed):
    """A conv stepper with log-variances away from 0 (weights other than 1)."""
    log_variances = jnp.array([0.3, -0.4]) + 0.1 * seed
    return tx.WithLossWeights(conv_stepper(seed), _LEARNED_NAMES, log_variances)


def _uncertainty_weighted_reference(s, data, key):
    """sum_i exp(-s_i) L_i + s_i, written out."""
    losses = (
        ref_supervised(s.stepper, data, _R, _W, True, 2),
        ref_temporal(s.stepper, data, _R, _W, True, 2),
    )
    return sum(
        jnp.exp(-s.log_variances[i]) * loss + s.log_variances[i]
        for i, loss in enumerate(losses)
    )


CONFIGURATIONS = (
    ConfigurationCase(
        "Supervised",
        Supervised,
        lambda: Supervised(_R, **_CUT, time_level_weights=_W),
        conv_stepper,
        lambda: random_windows(210, _R + 1),
        lambda s, d, k: ref_supervised(s, d, _R, _W, True, 2),
    ),
    ConfigurationCase(
        "DivertedChain",
        DivertedChain,
        lambda: DivertedChain(
            _R,
            2,
            **_CUT,
            cut_div_chain=True,
            time_level_weights=_W,
            branch_level_weights=_V,
        ),
        conv_stepper,
        lambda: random_windows(211, 1),
        lambda s, d, k: ref_diverted(s, d, _R, 2, _W, _V, True, 2, roll_ref, True),
        {"ref_stepper": roll_ref},
    ),
    ConfigurationCase(
        "DivertedChainBranchOne",
        DivertedChainBranchOne,
        lambda: DivertedChainBranchOne(_R, **_CUT, time_level_weights=_W),
        conv_stepper,
        lambda: random_windows(212, 1),
        lambda s, d, k: ref_branch_one(s, d, _R, _W, True, 2, smooth_ref, False),
        {"ref_stepper": smooth_ref},
    ),
    ConfigurationCase(
        "MixChainPostPhysics",
        MixChainPostPhysics,
        lambda: MixChainPostPhysics(2, 2, **_CUT, time_level_weights=_W_MIX),
        conv_stepper,
        lambda: random_windows(213, 5),
        lambda s, d, k: ref_mix(s, d, 2, 2, _W_MIX, True, 2, smooth_ref),
        {"ref_stepper": smooth_ref},
    ),
    ConfigurationCase(
        "Residuum",
        Residuum,
        lambda: Residuum(_R, **_CUT, cut_prev=True, time_level_weights=_W),
        conv_stepper,
        lambda: random_windows(214, 1),
        lambda s, d, k: ref_residuum(
            s, d, _R, _W, True, 2, heat_residuum, True, False
        ),
        {"residuum_fn": heat_residuum},
    ),
    ConfigurationCase(
        "TeacherForcing",
        TeacherForcing,
        lambda: TeacherForcing(
            _R, teacher_forcing_probability=1.0, **_CUT, time_level_weights=_W
        ),
        conv_stepper,
        lambda: random_windows(215, _R + 1),
        lambda s, d, k: ref_teacher(
            s, d, _R, _W, True, 2, [[True] * d.shape[0]] * _R
        ),
    ),
    ConfigurationCase(
        # Generalized teacher forcing: the free rollout (p = 0) pulled towards the truth
        # after every second step.
        "GeneralizedTeacherForcing",
        GeneralizedTeacherForcing,
        lambda: GeneralizedTeacherForcing(
            4,
            forcing_alpha=0.3,
            forcing_every=2,
            **_CUT,
            time_level_weights=_W_MIX,
        ),
        conv_stepper,
        lambda: random_windows(229, 5),
        lambda s, d, k: ref_teacher(
            s, d, 4, _W_MIX, True, 2, [[False] * d.shape[0]] * 4, alpha=0.3, forcing_every=2
        ),
    ),
    ConfigurationCase(
        "TemporalConsistency",
        TemporalConsistency,
        lambda: TemporalConsistency(
            _R, **_CUT, time_level_weights=_W, num_input_steps=2
        ),
        lambda seed: conv_stepper(seed, in_channels=2),
        lambda: random_windows(216, _R + 2),
        lambda s, d, k: ref_temporal(s, d, _R, _W, True, 2, H=2),
    ),
    ConfigurationCase(
        "Composite",
        Composite,
        _composite,
        conv_stepper,
        lambda: random_windows(217, _R + 1),
        _composite_reference,
        {"residuum_fn": heat_residuum},
    ),
    ConfigurationCase(
        "UncertaintyWeighted",
        UncertaintyWeighted,
        _uncertainty_weighted,
        _loss_weighted_stepper,
        lambda: random_windows(223, _R + 1),
        _uncertainty_weighted_reference,
    ),
    ConfigurationCase(
        # A plain call has no balancing history: the fixed weights.
        "Composite-ReLoBRaLo",
        Composite,
        lambda: eqx.tree_at(
            lambda c: c.balancing, _composite(), tx.configuration.ReLoBRaLo(),
            is_leaf=lambda x: x is None,
        ),
        conv_stepper,
        lambda: random_windows(228, _R + 1),
        _composite_reference,
        {"residuum_fn": heat_residuum},
    ),
    ConfigurationCase(
        "Pushforward",
        Pushforward,
        lambda: Pushforward(_R, num_pushforward_steps=2, **_CUT, time_level_weights=_W),
        conv_stepper,
        lambda: random_windows(223, _R + 3),
        lambda s, d, k: ref_pushforward(s, d, _R, 2, _W, True, 2),
    ),
    ConfigurationCase(
        "Pushforward-random",
        Pushforward,
        lambda: Pushforward(
            2,
            num_pushforward_steps=2,
            random_pushforward=True,
            time_level_weights=_W[:2],
        ),
        conv_stepper,
        lambda: random_windows(224, 5, batch=6),
        _random_pushforward_reference,
    ),
    ConfigurationCase(
        "InputNoise",
        InputNoise,
        lambda: InputNoise(
            Supervised(_R, **_CUT, time_level_weights=_W), 0.3, num_noisy_states=1
        ),
        conv_stepper,
        lambda: random_windows(225, _R + 1),
        lambda s, d, k: ref_input_noise(
            s, d, k, 0.3, 1, lambda s_, d_, k_: ref_supervised(s_, d_, _R, _W, True, 2)
        ),
    ),
    ConfigurationCase(
        # A 1D velocity-like channel 1 that changes sign under the flip.
        "SymmetryAugmentation",
        SymmetryAugmentation,
        lambda: SymmetryAugmentation(
            Supervised(_R, **_CUT, time_level_weights=_W),
            flip_axes=(0,),
            flip_sign_channels=((1,),),
        ),
        lambda seed: conv_stepper(seed, in_channels=2, out_channels=2),
        lambda: random_windows(230, _R + 1, batch=4, channels=2),
        lambda s, d, k: ref_symmetry_augmentation(
            s,
            d,
            k,
            lambda s_, d_, k_: ref_supervised(s_, d_, _R, _W, True, 2),
            shift_axes=(0,),
            flip_axes=(0,),
            signs=((1,),),
        ),
    ),
    # The per-window augmentations of many-system training, on 3-channel states (at
    # every grid point): with probability 0.3, 3 of the 4
    # windows are transformed under the contracts' key (tests/test_series_augmentations.py).
    ConfigurationCase(
        "RandomAffine",
        RandomAffine,
        lambda: RandomAffine(Supervised(_R, **_CUT, time_level_weights=_W), 0.3, bias_std=0.3),
        lambda seed: conv_stepper(seed, in_channels=3, out_channels=3),
        lambda: random_windows(231, _R + 1, batch=4, channels=3),
        lambda s, d, k: ref_window_augmentation(
            s, d, k, lambda s_, d_, k_: ref_supervised(s_, d_, _R, _W, True, 2), 0.3,
            lambda window, key: np_random_affine(window, key, 0.3),
        ),
    ),
    ConfigurationCase(
        "RandomConvexCombination",
        RandomConvexCombination,
        lambda: RandomConvexCombination(
            Supervised(_R, **_CUT, time_level_weights=_W), 0.3, concentration=0.7
        ),
        lambda seed: conv_stepper(seed, in_channels=3, out_channels=3),
        lambda: random_windows(232, _R + 1, batch=4, channels=3),
        lambda s, d, k: ref_window_augmentation(
            s, d, k, lambda s_, d_, k_: ref_supervised(s_, d_, _R, _W, True, 2), 0.3,
            lambda window, key: np_convex_combination(window, key, 0.7),
        ),
    ),
    ConfigurationCase(
        "DelayEmbedding",
        DelayEmbedding,
        lambda: DelayEmbedding(Supervised(_R, **_CUT, time_level_weights=_W), 0.3, max_delay=2),
        lambda seed: conv_stepper(seed, in_channels=3, out_channels=3),
        lambda: random_windows(233, _R + 1, batch=4, channels=3),
        lambda s, d, k: ref_window_augmentation(
            s, d, k, lambda s_, d_, k_: ref_supervised(s_, d_, _R, _W, True, 2), 0.3,
            lambda window, key: np_delay_embedding(window, key, 2),
        ),
    ),
    ConfigurationCase(
        "RolloutCurriculum",
        RolloutCurriculum,
        # Outside training the last length (2 of 3) counts: level 3 is masked.
        lambda: RolloutCurriculum(Supervised(_R, time_level_weights=_W), "5:1,10:2"),
        conv_stepper,
        lambda: random_windows(226, _R + 1),
        lambda s, d, k: ref_supervised(s, d, _R, _W * jnp.array([1.0, 1.0, 0.0]), False, 1),
    ),
    ConfigurationCase(
        "InvariantMeasureMMD",
        InvariantMeasureMMD,
        lambda: InvariantMeasureMMD(_R, bandwidths=_BANDWIDTHS),
        conv_stepper,
        lambda: random_windows(227, _R + 1),
        lambda s, d, k: ref_invariant_measure(s, d, _R, _BANDWIDTHS),
    ),
    ConfigurationCase(
        # A blur of 1 (per entry) on unit-variance data: 60 iterations converge, so the
        # envelope gradient equals the reference's gradient through its iterations.
        "InvariantMeasureSinkhorn",
        InvariantMeasureSinkhorn,
        lambda: InvariantMeasureSinkhorn(_R, epsilon=1.0, num_iterations=60),
        conv_stepper,
        lambda: random_windows(231, _R + 1),
        lambda s, d, k: ref_invariant_measure_sinkhorn(s, d, _R, 1.0, 60),
    ),
    ConfigurationCase(
        "ThermalizerDiffusion",
        ThermalizerDiffusion,
        lambda: ThermalizerDiffusion(noise_level_weight=0.5),
        thermalizer_mlp,
        lambda: ode_windows(232, window=1, batch=5),
        lambda s, d, k: ref_thermalizer(s, d, k, 6, 0.5),
    ),
    ConfigurationCase(
        "FlowMatching",
        FlowMatching,
        FlowMatching,
        velocity_mlp,
        lambda: ode_windows(218),
        ref_flow_matching,
    ),
    ConfigurationCase(
        # the stepper's own interpolant (noise 0.7, beta = s^2) is the configuration's
        "StochasticInterpolant",
        StochasticInterpolant,
        lambda: StochasticInterpolant(noise_scale=0.7),
        lambda seed: flow.StochasticInterpolantStepper(
            velocity_mlp(seed), 2, noise_scale=0.7, sampling_noise_scale=0.3
        ),
        lambda: ode_windows(260),
        lambda s, d, k: ref_stochastic_interpolant(s, d, k, noise_scale=0.7),
    ),
    ConfigurationCase(
        "StochasticInterpolant-linear",
        StochasticInterpolant,
        lambda: StochasticInterpolant(noise_scale=1.5, beta_schedule="linear"),
        velocity_mlp,
        lambda: ode_windows(261),
        lambda s, d, k: ref_stochastic_interpolant(s, d, k, noise_scale=1.5, quadratic=False),
    ),
    ConfigurationCase(
        "ProgressiveDistillation",
        ProgressiveDistillation,
        lambda: ProgressiveDistillation(
            _TEACHER,
            num_fine_steps=2,
            teacher_method="midpoint",
            step_sampler=_FLOW_SAMPLER,
        ),
        velocity_mlp,
        lambda: ode_windows(219),
        lambda s, d, k: ref_progressive_distillation(
            s, d, k, teacher=_TEACHER, sampler=_FLOW_SAMPLER, num_fine_steps=2
        ),
    ),
    ConfigurationCase(
        "ProgressiveDistillation-velocity-space",
        ProgressiveDistillation,
        lambda: ProgressiveDistillation(
            _TEACHER,
            num_fine_steps=3,
            teacher_method="midpoint",
            step_sampler=_FLOW_SAMPLER,
            velocity_space=True,
        ),
        velocity_mlp,
        lambda: ode_windows(220),
        lambda s, d, k: ref_progressive_distillation(
            s,
            d,
            k,
            teacher=_TEACHER,
            sampler=_FLOW_SAMPLER,
            num_fine_steps=3,
            velocity_space=True,
        ),
    ),
    ConfigurationCase(
        "SemigroupDistillation",
        SemigroupDistillation,
        lambda: SemigroupDistillation(step_sampler=_FLOW_SAMPLER),
        flow_map,
        lambda: ode_windows(221),
        lambda s, d, k: ref_semigroup_distillation(s, d, k, sampler=_FLOW_SAMPLER),
    ),
    ConfigurationCase(
        "SemigroupDistillation-velocity-space",
        SemigroupDistillation,
        lambda: SemigroupDistillation(step_sampler=_FLOW_SAMPLER, velocity_space=True),
        flow_map,
        lambda: ode_windows(222),
        lambda s, d, k: ref_semigroup_distillation(
            s, d, k, sampler=_FLOW_SAMPLER, velocity_space=True
        ),
    ),
)

CONFIGURATIONS += (
    ConfigurationCase(
        "LagrangianSelfDistillation",
        LagrangianSelfDistillation,
        lambda: LagrangianSelfDistillation(time_sampler=_PAIR_SAMPLER),
        average_velocity_mlp,
        lambda: ode_windows(223, batch=6),
        lambda s, d, k: ref_lagrangian_self_distillation(s, d, k, sampler=_PAIR_SAMPLER),
    ),
    ConfigurationCase(
        "LagrangianSelfDistillation-teacher",
        LagrangianSelfDistillation,
        lambda: LagrangianSelfDistillation(time_sampler=_PAIR_SAMPLER, teacher=_TEACHER),
        average_velocity_mlp,
        lambda: ode_windows(224, batch=6),
        lambda s, d, k: ref_lagrangian_self_distillation(
            s, d, k, sampler=_PAIR_SAMPLER, teacher=_TEACHER
        ),
    ),
    ConfigurationCase(
        "MeanFlow",
        MeanFlow,
        lambda: MeanFlow(time_sampler=_LOGIT_PAIR_SAMPLER),
        average_velocity_mlp,
        lambda: ode_windows(225, batch=6),
        lambda s, d, k: ref_mean_flow(s, d, k, sampler=_LOGIT_PAIR_SAMPLER),
    ),
    ConfigurationCase(
        "MeanFlow-adaptive-weight",
        MeanFlow,
        lambda: MeanFlow(
            time_sampler=_PAIR_SAMPLER, adaptive_weight_power=1.0, adaptive_weight_offset=0.01
        ),
        average_velocity_mlp,
        lambda: ode_windows(226, batch=6),
        lambda s, d, k: ref_mean_flow(s, d, k, sampler=_PAIR_SAMPLER, power=1.0, offset=0.01),
    ),
    ConfigurationCase(
        "ShortcutModel",
        ShortcutModel,
        lambda: ShortcutModel(max_level=2, bootstrap_share=0.5),
        average_velocity_mlp,
        lambda: ode_windows(227, batch=8),
        lambda s, d, k: ref_shortcut_model(s, d, k, max_level=2, bootstrap_share=0.5),
    ),
    ConfigurationCase(
        "ShortcutModel-EMA",
        ShortcutModel,
        lambda: ShortcutModel(max_level=3, bootstrap_share=0.5),
        ema_velocity,
        lambda: ode_windows(228, batch=8),
        lambda s, d, k: ref_shortcut_model(
            s, d, k, max_level=3, bootstrap_share=0.5, ema=True
        ),
    ),
)

def noise_input_stepper(seed: int = 0):
    """A `tx.NoiseInputStepper` on a tiny periodic conv: 1 state + 2 noise channels."""
    return tx.NoiseInputStepper(conv_stepper(seed, in_channels=3), num_noise_channels=2)


CONFIGURATIONS += (
    ConfigurationCase(
        "CRPSEnsemble",
        CRPSEnsemble,
        lambda: CRPSEnsemble(_R, num_members=3, time_level_weights=_W, unroll=False),
        noise_input_stepper,
        lambda: random_windows(231, _R + 1),
        lambda s, d, k: ref_crps_ensemble(s, d, k, _R, 3, _W),
    ),
    ConfigurationCase(
        "CRPSEnsemble-almost-fair",
        CRPSEnsemble,
        lambda: CRPSEnsemble(2, num_members=4, crps_alpha=0.9),
        noise_input_stepper,
        lambda: random_windows(232, 3),
        lambda s, d, k: ref_crps_ensemble(s, d, k, 2, 4, jnp.ones(2), alpha=0.9),
    ),
)


def refiner_stepper(seed: int = 0, K: int = 2, min_noise_std: float = 0.05):
    """A `flow.PDERefinerStepper` on the tiny velocity MLP (ODE states of 3 channels)."""
    return flow.PDERefinerStepper(velocity_mlp(seed), K, min_noise_std)


CONFIGURATIONS += (
    ConfigurationCase(
        # 8 samples over k in {0, 1, 2}: both branches of the loss in one batch.
        "PDERefiner",
        PDERefiner,
        lambda: PDERefiner(2, 0.05),
        refiner_stepper,
        lambda: ode_windows(233, batch=8),
        lambda s, d, k: ref_pde_refiner(s.model, d, k, 2, 0.05),
    ),
    ConfigurationCase(
        "PDERefiner-history",
        PDERefiner,
        lambda: PDERefiner(1, 0.2, num_input_steps=2),
        lambda seed=0: flow.PDERefinerStepper(
            flow.ConditionalVelocity(
                eqx.nn.MLP(
                    flow.velocity_input_channels(3, 2), 3, 8, 2,
                    activation=jax.nn.tanh, key=jax.random.key(seed),
                )
            ),
            1, 0.2, num_input_steps=2,
        ),
        lambda: ode_windows(234, window=3, batch=6),
        lambda s, d, k: ref_pde_refiner(s.model, d, k, 1, 0.2, H=2),
    ),
)

# Exported by `trainax_fm.configuration` but not configurations: the flow time samplers
# (checked by `tests/test_flow_configurations.py::test_sampler_ranges` and friends),
# the abstract base class and the balancing rule of a Composite with its state
# (checked by `tests/test_stability_methods.py`).
NOT_CONFIGURATIONS = frozenset(
    {"BaseConfiguration", "AbstractTimeSampler", "ReLoBRaLo", "BalancingState",
     "AbstractWindowAugmentation"}
    | {
        name
        for name, value in vars(tx.configuration).items()
        if isinstance(value, type) and issubclass(value, AbstractTimeSampler)
    }
)


# --- rollout configurations as factories of the rollout length -----------------------


@dataclasses.dataclass(frozen=True)
class ConfigurationFactory:
    """How to build one configuration from the common rollout arguments.

    `make(num_rollout_steps, **common)` builds it; `window(num_rollout_steps)` is the
    window length it needs; `num_weights(num_rollout_steps)` is the length of its
    `time_level_weights`.
    """

    name: str
    make: Callable
    window: Callable[[int], int]
    num_weights: Callable[[int], int]
    needs_ref_stepper: bool = False
    needs_residuum_fn: bool = False

    def __repr__(self):
        return self.name


def _two_member_composite(num_rollout_steps, **common):
    return Composite(
        [
            Supervised(num_rollout_steps, **common),
            TemporalConsistency(num_rollout_steps, **common),
        ],
        [0.7, 0.3],
    )


ALL_CONFIGURATIONS = (
    ConfigurationFactory(
        "Supervised",
        lambda r, **kw: Supervised(r, **kw),
        lambda r: r + 1,
        lambda r: r,
    ),
    ConfigurationFactory(
        "DivertedChain",
        lambda r, **kw: DivertedChain(r, max(1, r // 2), **kw),
        lambda r: 1,
        lambda r: r,
        needs_ref_stepper=True,
    ),
    ConfigurationFactory(
        "DivertedChainBranchOne",
        lambda r, **kw: DivertedChainBranchOne(r, **kw),
        lambda r: 1,
        lambda r: r,
        needs_ref_stepper=True,
    ),
    ConfigurationFactory(
        "MixChainPostPhysics",
        lambda r, **kw: MixChainPostPhysics(r, 2, **kw),
        lambda r: r + 3,
        lambda r: r + 2,
        needs_ref_stepper=True,
    ),
    ConfigurationFactory(
        "Residuum",
        lambda r, **kw: Residuum(r, **kw),
        lambda r: 1,
        lambda r: r,
        needs_residuum_fn=True,
    ),
    ConfigurationFactory(
        "TeacherForcing",
        lambda r, **kw: TeacherForcing(r, teacher_forcing_probability=0.0, **kw),
        lambda r: r + 1,
        lambda r: r,
    ),
    ConfigurationFactory(
        "GeneralizedTeacherForcing",
        lambda r, **kw: GeneralizedTeacherForcing(r, forcing_alpha=0.25, **kw),
        lambda r: r + 1,
        lambda r: r,
    ),
    ConfigurationFactory(
        "TemporalConsistency",
        lambda r, **kw: TemporalConsistency(r, **kw),
        lambda r: r + 1,
        lambda r: r,
    ),
    ConfigurationFactory(
        "Pushforward",
        lambda r, **kw: Pushforward(r, num_pushforward_steps=1, **kw),
        lambda r: r + 2,
        lambda r: r,
    ),
    ConfigurationFactory(
        "Composite", _two_member_composite, lambda r: r + 1, lambda r: r
    ),
)

# The flow configurations take no rollout length (one window of `H + 1` snapshots).
FLOW_CONFIGURATIONS = frozenset(
    {
        "FlowMatching",
        "ProgressiveDistillation",
        "SemigroupDistillation",
        "LagrangianSelfDistillation",
        "MeanFlow",
        "ShortcutModel",
        "StochasticInterpolant",
        "PDERefiner",
    }
)
# Configurations that train a wrapped stepper (`tx.WithLossWeights`), not a bare
# network or function as the rollout-length grid does; their members are in the grid.
WRAPPED_STEPPER_CONFIGURATIONS = frozenset({"UncertaintyWeighted"})
# Wrappers of another configuration, and the MMD and Sinkhorn regularisers (no time-level loss,
# cuts or weights): no factory of the common rollout arguments.
NON_FACTORY_CONFIGURATIONS = FLOW_CONFIGURATIONS | {
    "InputNoise",
    "SymmetryAugmentation",
    "RandomAffine",
    "RandomConvexCombination",
    "DelayEmbedding",
    "RolloutCurriculum",
    "InvariantMeasureMMD",
    "InvariantMeasureSinkhorn",
}
# Ensembles scored with the CRPS: no time-level loss or cuts either; the thermalizer's
# diffusion model trains on single states (no rollout).
NON_FACTORY_CONFIGURATIONS = NON_FACTORY_CONFIGURATIONS | {"CRPSEnsemble", "ThermalizerDiffusion"}


# --- trainers -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TrainerCase:
    """One trainer on tiny data.

    `make(num_training_steps, data=..., **engine)` builds it (`data`: other trajectories
    of the same shape; `engine`: e.g. `steps_per_dispatch`, or a fixed keyword such as
    `ref_stepper` to replace);
    `stepper(seed)` a stepper to train. `multistage`: `train` returns one result per
    stage and resumes from `{checkpoint_path}/train_state.eqx`
    (`ProgressiveDistillationTrainer`).
    """

    name: str
    cls: type
    make: Callable[..., Any]
    stepper: Callable[[int], Any]
    multistage: bool = False
    # The trajectories `make` trains on by default.
    data: Any = dataclasses.field(default_factory=lambda: _FIELDS)

    def __repr__(self):
        return self.name


# One trainer of each engine path: a plain rollout loss, a keyed flow loss, a stateful
# (balancing) loss and a multi-stage trainer. Engine contracts that are the same code for
# every trainer and cost seconds each run on these by default and on all with `-m slow`.
ENGINE_PATH_TRAINERS = frozenset(
    {
        "SupervisedTrainer",
        "FlowMatchingTrainer",
        "ConfigurationTrainer-ReLoBRaLo",
        "ProgressiveDistillationTrainer",
    }
)


def engine_path_params(cases):
    """`cases` as pytest parameters, those outside `ENGINE_PATH_TRAINERS` marked slow."""
    return [
        pytest.param(case, id=repr(case))
        if case.name in ENGINE_PATH_TRAINERS
        else pytest.param(case, id=repr(case), marks=pytest.mark.slow)
        for case in cases
    ]


_OPTIMIZER = optax.adam(1e-2)
_FIELDS = field_trajectories(230)
_ODE = ode_trajectories(231)


def _rollout_trainer(cls, **fixed):
    def make(num_training_steps, data=_FIELDS, **engine):
        return cls(
            data,
            optimizer=_OPTIMIZER,
            num_training_steps=num_training_steps,
            batch_size=2,
            **{**fixed, **engine},
        )

    return make


def _flow_trainer(cls, **fixed):
    def make(num_training_steps, data=_ODE, **engine):
        return cls(
            data,
            optimizer=_OPTIMIZER,
            num_training_steps=num_training_steps,
            batch_size=4,
            **{**fixed, **engine},
        )

    return make


def _pd_student(seed):
    # One stage keeps the contracts fast; tests/test_flow_trainers.py runs several.
    return flow.FlowMatchingStepper(velocity_mlp(seed, step_size_input=True), 2)


TRAINERS = (
    TrainerCase(
        "SupervisedTrainer",
        SupervisedTrainer,
        _rollout_trainer(SupervisedTrainer, num_rollout_steps=2),
        conv_stepper,
    ),
    TrainerCase(
        "DivertedChainTrainer",
        DivertedChainTrainer,
        _rollout_trainer(
            DivertedChainTrainer,
            ref_stepper=roll_ref,
            num_rollout_steps=3,
            num_branch_steps=2,
        ),
        conv_stepper,
    ),
    TrainerCase(
        "DivertedChainBranchOneTrainer",
        DivertedChainBranchOneTrainer,
        _rollout_trainer(
            DivertedChainBranchOneTrainer, ref_stepper=smooth_ref, num_rollout_steps=2
        ),
        conv_stepper,
    ),
    TrainerCase(
        "MixChainPostPhysicsTrainer",
        MixChainPostPhysicsTrainer,
        _rollout_trainer(
            MixChainPostPhysicsTrainer,
            ref_stepper=smooth_ref,
            num_rollout_steps=2,
            num_post_physics_steps=1,
        ),
        conv_stepper,
    ),
    TrainerCase(
        "ResiduumTrainer",
        ResiduumTrainer,
        _rollout_trainer(ResiduumTrainer, residuum_fn=heat_residuum, num_rollout_steps=2),
        conv_stepper,
    ),
    TrainerCase(
        "TeacherForcingTrainer",
        TeacherForcingTrainer,
        _rollout_trainer(
            TeacherForcingTrainer, num_rollout_steps=2, teacher_forcing_probability=0.5
        ),
        conv_stepper,
    ),
    TrainerCase(
        "GeneralizedTeacherForcingTrainer",
        GeneralizedTeacherForcingTrainer,
        _rollout_trainer(
            GeneralizedTeacherForcingTrainer, num_rollout_steps=2, forcing_alpha=0.5
        ),
        conv_stepper,
    ),
    TrainerCase(
        "TemporalConsistencyTrainer",
        TemporalConsistencyTrainer,
        _rollout_trainer(
            TemporalConsistencyTrainer, num_rollout_steps=2, num_input_steps=2
        ),
        lambda seed: conv_stepper(seed, in_channels=2),
    ),
    TrainerCase(
        "PushforwardTrainer",
        PushforwardTrainer,
        _rollout_trainer(
            PushforwardTrainer, num_pushforward_steps=2, random_pushforward=True
        ),
        conv_stepper,
    ),
    TrainerCase(
        "ConfigurationTrainer",
        ConfigurationTrainer,
        lambda num_training_steps, data=_FIELDS, **engine: ConfigurationTrainer(
            data,
            Composite([Supervised(2), TemporalConsistency(2)], [1.0, 0.5]),
            optimizer=_OPTIMIZER,
            num_training_steps=num_training_steps,
            batch_size=2,
            **engine,
        ),
        conv_stepper,
    ),
    TrainerCase(
        "ConfigurationTrainer-UncertaintyWeighted",
        ConfigurationTrainer,
        lambda num_training_steps, data=_FIELDS, **engine: ConfigurationTrainer(
            data,
            UncertaintyWeighted([Supervised(2), TemporalConsistency(2)], _LEARNED_NAMES),
            optimizer=_OPTIMIZER,
            num_training_steps=num_training_steps,
            batch_size=2,
            **engine,
        ),
        _loss_weighted_stepper,
    ),
    TrainerCase(
        # The balancing state rides in the optimizer state: resume, seeds, dispatch.
        "ConfigurationTrainer-ReLoBRaLo",
        ConfigurationTrainer,
        lambda num_training_steps, data=_FIELDS, **engine: ConfigurationTrainer(
            data,
            Composite(
                [Supervised(2), InvariantMeasureMMD(2, bandwidths=(1.0,))],
                [1.0, 0.5],
                balancing=tx.configuration.ReLoBRaLo(lookback_probability=0.5),
            ),
            optimizer=_OPTIMIZER,
            num_training_steps=num_training_steps,
            batch_size=2,
            **engine,
        ),
        conv_stepper,
    ),
    TrainerCase(
        "ThermalizerTrainer",
        ThermalizerTrainer,
        _flow_trainer(ThermalizerTrainer, noise_level_weight=0.5),
        thermalizer_mlp,
        data=_ODE,
    ),
    TrainerCase(
        "FlowMatchingTrainer",
        FlowMatchingTrainer,
        _flow_trainer(FlowMatchingTrainer),
        velocity_mlp,
        data=_ODE,
    ),
    TrainerCase(
        "SemigroupDistillationTrainer",
        SemigroupDistillationTrainer,
        _flow_trainer(SemigroupDistillationTrainer, velocity_space=True),
        flow_map,
        data=_ODE,
    ),
    TrainerCase(
        "ProgressiveDistillationTrainer",
        ProgressiveDistillationTrainer,
        _flow_trainer(
            ProgressiveDistillationTrainer,
            teacher=_TEACHER,
            num_teacher_steps=2,
            num_stages=1,
        ),
        _pd_student,
        multistage=True,
        data=_ODE,
    ),
)


TRAINERS += (
    TrainerCase(
        "LagrangianSelfDistillationTrainer",
        LagrangianSelfDistillationTrainer,
        _flow_trainer(LagrangianSelfDistillationTrainer),
        average_velocity_mlp,
        data=_ODE,
    ),
    TrainerCase(
        "MeanFlowTrainer",
        MeanFlowTrainer,
        _flow_trainer(MeanFlowTrainer, adaptive_weight_power=1.0),
        average_velocity_mlp,
        data=_ODE,
    ),
    TrainerCase(
        "ShortcutModelTrainer",
        ShortcutModelTrainer,
        _flow_trainer(ShortcutModelTrainer, max_level=3),
        lambda seed: flow.EMAVelocity(average_velocity_mlp(seed), decay=0.5),
        data=_ODE,
    ),
)


TRAINERS += (
    TrainerCase(
        "StochasticInterpolantTrainer",
        StochasticInterpolantTrainer,
        _flow_trainer(StochasticInterpolantTrainer, noise_scale=0.7),
        lambda seed: flow.StochasticInterpolantStepper(velocity_mlp(seed), 2, noise_scale=0.7),
        data=_ODE,
    ),
)


TRAINERS += (
    TrainerCase(
        "CRPSEnsembleTrainer",
        CRPSEnsembleTrainer,
        _rollout_trainer(CRPSEnsembleTrainer, num_rollout_steps=2, num_members=2),
        noise_input_stepper,
    ),
)


TRAINERS += (
    TrainerCase(
        "PDERefinerTrainer",
        PDERefinerTrainer,
        _flow_trainer(PDERefinerTrainer, num_refinement_steps=2, min_noise_std=0.05),
        refiner_stepper,
        data=_ODE,
    ),
)


def exported_classes(module, base: Optional[type] = None):
    """Names of the public classes `module` exports (subclasses of `base` if given)."""
    names = getattr(module, "__all__", None) or [
        n for n in vars(module) if not n.startswith("_")
    ]
    return {
        name
        for name in names
        if isinstance(getattr(module, name), type)
        and (base is None or issubclass(getattr(module, name), base))
    }


# --- 3D fields: every configuration family on states `(C, N, N, N)` -------------------
# `tests/test_fields_3d.py` checks each case's loss and gradient against its reference
# and trains it for an update with `ConfigurationTrainer` on `FIELDS_3D`. The grid is
# 4x4x4 with one channel so that compiling stays cheap.

_N_3D = 4


def conv3d_stepper(seed: int = 0, in_channels: int = 1, out_channels: int = 1):
    """A tiny periodic convolution `(in_channels, N, N, N) -> (out_channels, N, N, N)`."""
    return eqx.nn.Conv3d(
        in_channels,
        out_channels,
        3,
        padding=1,
        padding_mode="CIRCULAR",
        key=jax.random.key(seed),
    )


def windows_3d(seed: int, window: int, batch: int = 3):
    """Random float32 3D windows `(batch, window, 1, N, N, N)`."""
    rng = np.random.default_rng(seed)
    shape = (batch, window, 1, _N_3D, _N_3D, _N_3D)
    return jnp.asarray(rng.standard_normal(shape), jnp.float32)


def residuum_3d(u_next, u_prev):
    """Residuum `u_next - smooth(u_prev)` on batched 3D states `(B, C, N, N, N)`."""
    if u_next.ndim != 5 or u_prev.ndim != 5:
        raise AssertionError(
            f"residuum_fn must receive batched 3D states, got {u_next.shape}"
        )
    return u_next - smooth_ref(u_prev)


def velocity_conv3d(seed: int = 0, step_size_input: bool = False):
    """A conditional velocity `v(x, y, t)` on 3D states: one Conv3d over the inputs."""
    in_channels = flow.velocity_input_channels(1, 1, step_size_input=step_size_input)
    return flow.ConditionalVelocity(
        conv3d_stepper(seed, in_channels, 1), step_size_input=step_size_input
    )


def flow_map_3d(seed: int = 0):
    """A flow map on a frozen 3D velocity, with a non-zero correction network."""
    fm = flow.FlowMap(velocity_conv3d(100 + seed))
    return eqx.tree_at(
        lambda m: m.correction.network.bias, fm, replace_fn=lambda b: b + 0.1 * (seed + 1)
    )


_TEACHER_3D = velocity_conv3d(7)
FIELDS_3D = windows_3d(240, 6)

CONFIGURATIONS_3D = (
    ConfigurationCase(
        "Supervised-3D",
        Supervised,
        lambda: Supervised(_R, **_CUT, time_level_weights=_W),
        conv3d_stepper,
        lambda: windows_3d(241, _R + 1),
        lambda s, d, k: ref_supervised(s, d, _R, _W, True, 2),
    ),
    ConfigurationCase(
        "DivertedChain-3D",
        DivertedChain,
        lambda: DivertedChain(
            _R, 2, **_CUT, cut_div_chain=True, time_level_weights=_W, branch_level_weights=_V
        ),
        conv3d_stepper,
        lambda: windows_3d(242, 1),
        lambda s, d, k: ref_diverted(s, d, _R, 2, _W, _V, True, 2, roll_ref, True),
        {"ref_stepper": roll_ref},
    ),
    ConfigurationCase(
        "MixChainPostPhysics-3D",
        MixChainPostPhysics,
        lambda: MixChainPostPhysics(2, 2, **_CUT, time_level_weights=_W_MIX),
        conv3d_stepper,
        lambda: windows_3d(243, 5),
        lambda s, d, k: ref_mix(s, d, 2, 2, _W_MIX, True, 2, smooth_ref),
        {"ref_stepper": smooth_ref},
    ),
    ConfigurationCase(
        "Residuum-3D",
        Residuum,
        lambda: Residuum(_R, **_CUT, cut_prev=True, time_level_weights=_W),
        conv3d_stepper,
        lambda: windows_3d(244, 1),
        lambda s, d, k: ref_residuum(s, d, _R, _W, True, 2, residuum_3d, True, False),
        {"residuum_fn": residuum_3d},
    ),
    ConfigurationCase(
        "TeacherForcing-3D",
        TeacherForcing,
        lambda: TeacherForcing(
            _R, teacher_forcing_probability=1.0, **_CUT, time_level_weights=_W
        ),
        conv3d_stepper,
        lambda: windows_3d(245, _R + 1),
        lambda s, d, k: ref_teacher(s, d, _R, _W, True, 2, [[True] * d.shape[0]] * _R),
    ),
    ConfigurationCase(
        "FlowMatching-3D",
        FlowMatching,
        FlowMatching,
        velocity_conv3d,
        lambda: windows_3d(246, 2),
        ref_flow_matching,
    ),
    ConfigurationCase(
        "StochasticInterpolant-3D",
        StochasticInterpolant,
        StochasticInterpolant,
        velocity_conv3d,
        lambda: windows_3d(252, 2),
        ref_stochastic_interpolant,
    ),
    ConfigurationCase(
        "ProgressiveDistillation-3D",
        ProgressiveDistillation,
        lambda: ProgressiveDistillation(
            _TEACHER_3D, num_fine_steps=2, teacher_method="midpoint", step_sampler=_FLOW_SAMPLER
        ),
        velocity_conv3d,
        lambda: windows_3d(247, 2),
        lambda s, d, k: ref_progressive_distillation(
            s, d, k, teacher=_TEACHER_3D, sampler=_FLOW_SAMPLER, num_fine_steps=2
        ),
    ),
    ConfigurationCase(
        "SemigroupDistillation-3D",
        SemigroupDistillation,
        lambda: SemigroupDistillation(step_sampler=_FLOW_SAMPLER),
        flow_map_3d,
        lambda: windows_3d(248, 2),
        lambda s, d, k: ref_semigroup_distillation(s, d, k, sampler=_FLOW_SAMPLER),
    ),
    ConfigurationCase(
        "LagrangianSelfDistillation-3D",
        LagrangianSelfDistillation,
        lambda: LagrangianSelfDistillation(time_sampler=_PAIR_SAMPLER),
        lambda seed: velocity_conv3d(seed, step_size_input=True),
        lambda: windows_3d(249, 2, batch=4),
        lambda s, d, k: ref_lagrangian_self_distillation(s, d, k, sampler=_PAIR_SAMPLER),
    ),
    ConfigurationCase(
        "MeanFlow-3D",
        MeanFlow,
        lambda: MeanFlow(time_sampler=_PAIR_SAMPLER),
        lambda seed: velocity_conv3d(seed, step_size_input=True),
        lambda: windows_3d(250, 2, batch=4),
        lambda s, d, k: ref_mean_flow(s, d, k, sampler=_PAIR_SAMPLER),
    ),
    ConfigurationCase(
        "ShortcutModel-3D",
        ShortcutModel,
        lambda: ShortcutModel(max_level=2, bootstrap_share=0.5),
        lambda seed: velocity_conv3d(seed, step_size_input=True),
        lambda: windows_3d(251, 2, batch=4),
        lambda s, d, k: ref_shortcut_model(s, d, k, max_level=2, bootstrap_share=0.5),
    ),    ConfigurationCase(
        "PDERefiner-3D",
        PDERefiner,
        lambda: PDERefiner(2, 0.05),
        lambda seed: flow.PDERefinerStepper(velocity_conv3d(seed), 2, 0.05),
        lambda: windows_3d(252, 2, batch=5),
        lambda s, d, k: ref_pde_refiner(s.model, d, k, 2, 0.05),
    ),
)
