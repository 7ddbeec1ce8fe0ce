"""Turn a validated configuration into optimizer, emulator and trainer."""

import functools
from pathlib import Path
from typing import Any, Optional

import equinox as eqx
import jax
import jax.tree_util as jtu
import optax

from .._stepper._conditioned import ConditionedNetwork
from .._stepper._normalized import NormalizedStepper
from ..configuration import InputNoise, SymmetryAugmentation
from ..configuration._rollout_base import AbstractRolloutConfiguration
from ..loss import AMSELoss, CompositeLoss, MSELoss, SpectralAmplitudeLoss
from ..data._normalizer import Normalizer
from ..flow import ThermalizedStepper
from ..trainer import ConfigurationTrainer
from ._config import load_config
from ._data import Dataset
from ._errors import ConfigError
from ._method import METHODS, TrainMethod
from ._method_spec import parse_method
from ._network import build_network


def build_optimizer(training: dict) -> optax.GradientTransformation:
    """Adam with the configured learning-rate schedule and optional clipping.

    Equal settings give the same optimizer object, so runs in one process share
    their compiled updates.

    **Arguments:**

    - `training`: the `[training]` table of a validated configuration.

    **Returns:**

    - An `optax.GradientTransformation`.
    """
    keys = ("learning_rate", "num_training_steps", "warmup_steps", "lr_schedule",
            "grad_clip_norm")
    return _optimizer(*(training[k] for k in keys))


def build_schedule(training: dict):
    """The learning rate of the `[training]` table: a float or an optax schedule."""
    keys = ("learning_rate", "num_training_steps", "warmup_steps", "lr_schedule")
    return _schedule(*(training[k] for k in keys))


@functools.lru_cache(maxsize=64)
def _optimizer(lr, steps, warmup, lr_schedule, grad_clip_norm) -> optax.GradientTransformation:
    optimizer = optax.adam(_schedule(lr, steps, warmup, lr_schedule))
    if grad_clip_norm > 0:
        optimizer = optax.chain(optax.clip_by_global_norm(grad_clip_norm), optimizer)
    return optimizer


@functools.lru_cache(maxsize=64)
def _schedule(lr, steps, warmup, lr_schedule):
    if lr_schedule == "cosine":
        if warmup:
            schedule = optax.warmup_cosine_decay_schedule(
                0.0, lr, warmup_steps=warmup, decay_steps=steps, end_value=0.0
            )
        else:
            schedule = optax.cosine_decay_schedule(lr, steps)
    elif warmup:
        schedule = optax.join_schedules(
            [optax.linear_schedule(0.0, lr, warmup), optax.constant_schedule(lr)], [warmup]
        )
    else:
        schedule = lr
    return schedule


def build_stepper(
    config: dict, num_channels: int, num_spatial_dims: int, num_points: int, key,
    num_constant_channels: int = 0, teacher: Optional[eqx.Module] = None,
) -> eqx.Module:
    """The emulator to train: the network, or a flow-matching stepper around it.

    **Arguments:**

    - `config`: a validated configuration.
    - `num_channels`, `num_spatial_dims`, `num_points`: the state layout
        `(C, *spatial)` (`num_spatial_dims=0` for ODE states).
    - `key`: the initialisation key.
    - `num_constant_channels`: channels of the constants per trajectory (data with
        `constant_scalars`/`constant_fields`); with any, the network is wrapped in a
        [`trainax_fm.ConditionedNetwork`][] that sees them as extra input channels.
    - `teacher`: the teacher velocity of a method that names a TEACHER folder (the
        emulator stepper of `therm`'s EMULATOR_RESULTS_DIR), loaded
        beforehand with `load_teacher` (this function may run under a trace, where a
        file cannot be read into the module); `None` for the other methods.

    **Returns:**

    - An `eqx.Module` stepper; for `fm;K[;solver]` a
        [`trainax_fm.flow.FlowMatchingStepper`][] whose velocity network sees
        `[x_t, y, t]` (`2C + 1` channels); for `lsd`, `meanflow`, `shortcut` one
        around a step-size-conditioned velocity (`2C + 2` channels, or the teacher's
        network widened by a zero-initialised channel; for `pd` the teacher's
        network, widened if it is a plain velocity); for `shortcut;K;...;ema=DECAY`
        a [`trainax_fm.flow.EMAFlowMatchingStepper`][]; for `sg` a
        [`trainax_fm.flow.FlowMapStepper`][] on the teacher; for `therm` a
        [`trainax_fm.flow.ThermalizedStepper`][] around the emulator (passed as
        `teacher`) whose thermalizer is trained.
    """
    method = parse_method(config["training"]["method"])
    spec = config["network"]["spec"]
    sizes = dict(num_spatial_dims=num_spatial_dims, num_points=num_points)

    def network(in_channels, out_channels=num_channels, *, salt=0):
        # `salt` tells apart the networks of one stepper (a thermalizer's two)
        built = build_network(
            spec, in_channels=in_channels + num_constant_channels,
            out_channels=out_channels,
            key=jax.random.fold_in(key, salt) if salt else key, **sizes,
        )
        return ConditionedNetwork(built) if num_constant_channels else built

    if (method.teacher is None) != (teacher is None):
        raise ValueError(
            f"build_stepper of method {config['training']['method']!r} needs `teacher` "
            + ("(the velocity of its TEACHER folder, from load_teacher(...))"
               if teacher is None else "to be None (the method names no TEACHER folder)")
            + f"; got teacher={type(teacher).__name__}."
        )
    return METHODS[method.kind].stepper(method, network, num_channels, teacher)


def method_optimizer(method: TrainMethod, optimizer: optax.GradientTransformation):
    """The optimizer `method` trains with (and its checkpoints hold the state of):
    `optimizer`, or a wrapper that freezes what the method does not train."""
    return METHODS[method.kind].optimizer(method, optimizer)


def teacher_words(method: TrainMethod) -> tuple:
    """`(kinds, role, runs)` of `load_teacher_config` for the folder `method` names."""
    entry = METHODS[method.kind]
    return entry.teacher_kinds, entry.teacher_role, entry.teacher_runs


def load_teacher_config(results_dir: str, kinds: tuple = ("fm",), role: str = "TEACHER",
                        runs: str = "") -> dict:
    """The configuration of a finished teacher run, checked to be one of `kinds`
    (errors call the folder `role` and its run `runs`, default: the kinds)."""
    config_file = Path(results_dir) / "config.toml"
    names = runs or " or ".join(kinds) + " run"
    if not config_file.is_file():
        raise ConfigError(
            "training.method", f"the results folder of a finished {names} as {role}",
            repr(results_dir),
            f"train that run first (on the same data); {str(config_file)!r} is missing",
        )
    teacher_config = load_config(config_file)
    if parse_method(teacher_config["training"]["method"]).kind not in kinds:
        raise ConfigError(
            "training.method", f"a {role} folder of a {names}",
            repr(teacher_config["training"]["method"]) + f" in {str(config_file)!r}",
            f"name the results folder of a {names}",
        )
    return teacher_config


def _layout_key(config: dict) -> tuple:
    return (config["network"]["spec"], config["training"]["method"])


@functools.lru_cache(maxsize=32)
def _compiled_init(spec: str, method: str, num_channels, num_spatial_dims, num_points,
                   num_seeds, num_constant_channels=0):
    config = {"network": {"spec": spec}, "training": {"method": method}}

    # The teacher is an argument, not a constant of the cached program: a retrained
    # teacher in the same folder must not give the weights of the old one.
    def init(key, teacher):
        return build_stepper(config, num_channels, num_spatial_dims, num_points, key,
                             num_constant_channels, teacher)

    if num_seeds is None:
        return eqx.filter_jit(init)
    return eqx.filter_jit(eqx.filter_vmap(init, in_axes=(0, None)))


def init_stepper(
    config: dict, num_channels: int, num_spatial_dims: int, num_points: int, key,
    num_constant_channels: int = 0, teacher: Optional[eqx.Module] = None,
) -> eqx.Module:
    """`build_stepper` compiled as one program (much faster than eager initialisation,
    which dispatches and compiles every small operation separately; cached per
    network layout). `teacher` as in `build_stepper`."""
    return _compiled_init(*_layout_key(config), num_channels, num_spatial_dims, num_points,
                          None, num_constant_channels)(key, teacher)


def with_normalization(
    config: dict, networks: eqx.Module, train_data: Any, num_seeds: Optional[int]
) -> eqx.Module:
    """The network(s) in a [`trainax_fm.NormalizedStepper`][] with statistics of the
    training data when `[network] normalize` asks for it (for seed-stacked networks
    every seed gets the same statistics; for a `ThermalizedStepper` its thermalizer
    is wrapped, never the emulator); the networks themselves otherwise."""
    mode = config["network"]["normalize"]
    if mode == "none":
        return networks
    residual = mode == "residual"
    normalizer = Normalizer.fit(train_data, increments=residual)

    def wrap(network, n):
        if isinstance(network, ThermalizedStepper):
            # the emulator came normalised (or not) from its own run: only the
            # thermalizer learns, and checks, normalised states
            return eqx.tree_at(lambda s: s.thermalizer, network,
                               NormalizedStepper(network.thermalizer, n))
        return NormalizedStepper(network, n, residual=residual)

    if num_seeds is None:
        return wrap(networks, normalizer)
    # Only the arrays carry the seed axis (an MLP's activation is a shared function).
    return eqx.filter_vmap(wrap, in_axes=(eqx.if_array(0), None))(networks, normalizer)


def build_steppers(
    config: dict, dataset_like: Any, keys, num_constant_channels: int = 0,
    teacher: Optional[eqx.Module] = None,
) -> eqx.Module:
    """One stepper per key, stacked on a leading seed axis (`eqx.filter_vmap`); every
    seed starts from the same `teacher` (as in `build_stepper`)."""
    shape = dataset_like.shape
    num_spatial_dims = len(shape) - 3
    num_points = int(min(shape[3:])) if num_spatial_dims else 0
    return _compiled_init(*_layout_key(config), int(shape[2]), num_spatial_dims, num_points,
                          len(keys), num_constant_channels)(keys, teacher)


@eqx.filter_jit
def _take(tree: Any, index) -> Any:
    return jtu.tree_map(lambda x: x[index] if eqx.is_array(x) else x, tree)


def seed_slice(tree: Any, index: int) -> Any:
    """Entry `index` of every array leaf (one seed out of a stacked module)."""
    return _take(tree, jax.numpy.asarray(index))


TIME_LEVEL_LOSSES = {
    "mse": MSELoss,
    "amse": AMSELoss,
    "mse+spectral": lambda: CompositeLoss([MSELoss(), SpectralAmplitudeLoss()], [1.0, 1.0]),
}


def _with_time_level_loss(configuration, training: dict):
    """The method's rollout configuration with `training.time_level_loss` per state."""
    if not isinstance(configuration, AbstractRolloutConfiguration):
        raise ConfigError(
            "training.time_level_loss", "\"mse\" for this method (the option sets the "
            "per-state loss of the rollout methods one, sup, pf, div, mix, res, tf, gtf)",
            repr(training["time_level_loss"]),
            f"remove it, or train with a rollout method instead of {training['method']!r}",
        )
    loss = TIME_LEVEL_LOSSES[training["time_level_loss"]]()
    return eqx.tree_at(lambda c: c.time_level_loss, configuration, loss)


def build_trainer(config: dict, dataset: Dataset, method: TrainMethod, optimizer,
                  teacher: Optional[eqx.Module] = None):
    """A [`trainax_fm.trainer.ConfigurationTrainer`][] for the configured method;
    `teacher` is the velocity `_saved_networks.load_method_teacher` loaded for it (or `None`)."""
    training = config["training"]
    teacher_method = None
    if method.teacher is not None:
        if teacher is None:
            raise ValueError(
                f"build_trainer of method {training['method']!r} needs `teacher`, the "
                "velocity of its TEACHER folder (load_method_teacher(...)); got None."
            )
        teacher_method = parse_method(
            load_teacher_config(method.teacher, *teacher_words(method))["training"]["method"])
    optimizer = method_optimizer(method, optimizer)
    configuration = method.configuration(teacher, teacher_method)
    if training["time_level_loss"] != "mse":
        configuration = _with_time_level_loss(configuration, training)
    if training["input_noise"] > 0:
        configuration = InputNoise(configuration, training["input_noise"])
    if training["symmetry_shifts"]:
        states = jtu.tree_leaves(dataset.training_data)[0].shape[2:]
        if len(states) < 2:
            raise ConfigError(
                "training.symmetry_shifts", "data on a periodic grid (states (C, *spatial))",
                f"states of shape {tuple(states)} (no spatial axis)",
                "set symmetry_shifts = false for ODE data",
            )
        configuration = SymmetryAugmentation(configuration)
    return ConfigurationTrainer(
        dataset.training_data,
        configuration,
        ref_stepper=dataset.ref_stepper if method.needs_ref_stepper else None,
        residuum_fn=dataset.residuum_fn if method.needs_residuum else None,
        optimizer=optimizer,
        num_training_steps=training["num_training_steps"],
        batch_size=training["batch_size"],
        steps_per_dispatch=training["steps_per_dispatch"],
    )


@functools.partial(jax.jit, static_argnums=(0, 1))
def split_keys(seed: int, num_seeds: int):
    """`(init_keys, shuffle_keys, eval_key)` of a run, one init/shuffle key per seed."""
    init_root, shuffle_root, eval_key = jax.random.split(jax.random.PRNGKey(seed), 3)
    return (
        jax.random.split(init_root, num_seeds),
        jax.random.split(shuffle_root, num_seeds),
        eval_key,
    )
