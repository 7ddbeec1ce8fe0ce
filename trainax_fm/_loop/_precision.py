"""Mixed precision: the networks compute in a low-precision dtype, everything else in
float32.

The policy is applied to the PyTree the loss sees, inside the compiled update: the
trained stepper keeps float32 parameters (and the optimizer float32 state); each network
inside it is replaced by a copy with low-precision parameters whose inputs are cast down
and whose outputs are cast back up. Gradients flow through the casts to the float32
parameters. The wrappers around the networks (normalisation, flow-time mixing, block
and history steppers), the rollout states between network calls, the losses and their
reductions stay float32; so does the reference simulator.
"""

from typing import Any, Literal, Optional, Union

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import optax
from jaxtyping import Array, Float, Int, PyTree

from .._stepper._block import BlockStepper, ChainedSteps
from .._stepper._conditioned import ConditionedNetwork, SampleConstants
from .._stepper._loss_weights import WithLossWeights
from .._stepper._noise_input import NoiseInputStepper
from .._stepper._protocol import needs_key
from .._stepper._normalized import NormalizedStepper, ResidualInNormalizedSpace
from ..data._normalizer import Normalizer
from ..flow._ema import AbstractEMA
from ..flow._flow_map import FlowMap
from ..flow._refiner import PDERefinerStepper
from ..flow._solvers import AbstractSolver
from ..flow._interpolant import StochasticInterpolantPath
from ..flow._interpolant_stepper import StochasticInterpolantStepper
from ..flow._steppers import AbstractFlowStepper
from ..flow._thermalized_stepper import ThermalizedStepper
from ..flow._thermalizer import Thermalizer
from ..flow._velocity import ConditionalVelocity

ComputeDtype = Literal["bfloat16", "float16"]

# trainax_fm's own modules around the networks: the policy looks inside them for the
# networks and leaves their arithmetic in float32. Any other Module is a network.
WRAPPER_TYPES: tuple[type, ...] = (
    NormalizedStepper,
    ResidualInNormalizedSpace,
    Normalizer,
    BlockStepper,
    ChainedSteps,
    ConditionedNetwork,
    SampleConstants,
    WithLossWeights,
    NoiseInputStepper,
    AbstractFlowStepper,
    StochasticInterpolantStepper,
    StochasticInterpolantPath,
    PDERefinerStepper,
    AbstractSolver,
    ConditionalVelocity,
    FlowMap,
    AbstractEMA,
    Thermalizer,
    ThermalizedStepper,
)

# Kept in float32 unless the user says otherwise: normalisation layers, whose
# statistics lose too much in 8 bits of mantissa.
DEFAULT_KEPT: tuple[type, ...] = (eqx.nn.LayerNorm, eqx.nn.GroupNorm, eqx.nn.RMSNorm)


def _as_kept(kept) -> tuple:
    return (kept,) if isinstance(kept, (type, str)) else tuple(kept)


class MixedPrecision(eqx.Module):
    """Train with the networks computing in `compute_dtype` (an engine option,
    `precision=tx.MixedPrecision()`).

    Parameters and optimizer state stay float32, and so do the losses, their reductions,
    the rollout states between network calls, the wrappers around the networks and the
    reference simulator: only each network's own arithmetic runs in the low-precision
    dtype (its inputs and parameters cast down, its output cast back to float32). On
    GPUs and TPUs bfloat16 roughly doubles the throughput of convolutions and matrix
    products; on CPUs it is mostly slower (see the docs for measurements).

    **Arguments:**

    - `compute_dtype`: `"bfloat16"` (the default; float32's range, so no loss scaling)
        or `"float16"` (more mantissa, a small range: use `loss_scale="dynamic"`).
    - `keep_float32`: submodules that compute in float32 inside a low-precision
        network, as classes (matched with `isinstance`) or class names. JAX's FFT only
        takes float32, so spectral layers (FNO's) must be kept, e.g.
        `keep_float32=("SpectralConv",)` with the class name of your spectral layer.
        Default: `eqx.nn.LayerNorm`, `GroupNorm` and `RMSNorm`.
    - `loss_scale`: `None` (no scaling), a constant factor, or `"dynamic"`: the loss is
        multiplied by a factor before differentiation and the gradients divided by it,
        so small float16 gradients do not flush to zero; the factor halves after an
        update with non-finite gradients (the update is skipped) and doubles after
        `growth_interval` finite ones. Its state rides in the optimizer state, so
        checkpoints and resume carry it. Default: `"dynamic"` for float16, `None` for
        bfloat16.
    - `initial_scale`, `growth_interval`: of the dynamic loss scale.
    """

    compute_dtype: ComputeDtype = eqx.field(static=True, default="bfloat16")
    keep_float32: tuple = eqx.field(static=True, default=DEFAULT_KEPT, converter=_as_kept)
    loss_scale: Optional[Union[float, Literal["dynamic"]]] = eqx.field(
        static=True, default=None
    )
    initial_scale: float = eqx.field(static=True, default=2.0**15)
    growth_interval: int = eqx.field(static=True, default=2000)

    def __check_init__(self):
        if self.compute_dtype not in ("bfloat16", "float16"):
            raise ValueError(
                f"`compute_dtype` must be 'bfloat16' or 'float16', got {self.compute_dtype!r}."
            )
        for entry in self.keep_float32:
            if not isinstance(entry, (type, str)):
                raise TypeError(
                    "`keep_float32` holds Module classes or class names, got "
                    f"{type(entry).__name__} ({entry!r})."
                )
        if self.loss_scale is not None and self.loss_scale != "dynamic":
            if isinstance(self.loss_scale, bool) or not (
                isinstance(self.loss_scale, (int, float)) and self.loss_scale > 0
            ):
                raise ValueError(
                    "`loss_scale` must be None, 'dynamic' or a number > 0, got "
                    f"{self.loss_scale!r}."
                )
        if not self.initial_scale > 0:
            raise ValueError(f"`initial_scale` must be > 0, got {self.initial_scale!r}.")
        if isinstance(self.growth_interval, bool) or not (
            isinstance(self.growth_interval, int) and self.growth_interval > 0
        ):
            raise ValueError(
                f"`growth_interval` must be a positive integer, got {self.growth_interval!r}."
            )

    @property
    def dtype(self) -> jnp.dtype:
        return jnp.dtype(self.compute_dtype)

    @property
    def scaling(self) -> Optional[Union[float, str]]:
        """The loss scaling in effect: `loss_scale`, or dynamic for float16."""
        if self.loss_scale is None and self.compute_dtype == "float16":
            return "dynamic"
        return self.loss_scale

    def is_kept(self, node: Any) -> bool:
        return isinstance(node, eqx.Module) and any(
            isinstance(node, entry) if isinstance(entry, type) else type(node).__name__ == entry
            for entry in self.keep_float32
        )

    def for_compute(self, stepper: PyTree) -> PyTree:
        """`stepper` as the update computes with it: every network inside replaced by
        a `LowPrecisionNetwork` (its parameters in the compute dtype)."""

        def is_network(node) -> bool:
            return isinstance(node, eqx.Module) and not isinstance(node, WRAPPER_TYPES)

        def convert(node):
            if is_network(node):
                return LowPrecisionNetwork(self.cast_network(node), self.dtype)
            return node

        return jtu.tree_map(convert, stepper, is_leaf=is_network)

    def cast_network(self, network: PyTree) -> PyTree:
        """The network's floating parameters in the compute dtype; kept submodules
        (and complex parameters, which have no low-precision type) stay float32."""

        def convert(node):
            if self.is_kept(node):
                return Float32Submodule(node, self.dtype)
            if eqx.is_array(node) and jnp.issubdtype(node.dtype, jnp.floating):
                return node.astype(self.dtype)
            return node

        return jtu.tree_map(convert, network, is_leaf=self.is_kept)


def _cast_floating(tree: PyTree, dtype) -> PyTree:
    def convert(x):
        if eqx.is_array(x) and jnp.issubdtype(x.dtype, jnp.floating) and x.dtype != dtype:
            return x.astype(dtype)
        return x

    return jtu.tree_map(convert, tree)


class LowPrecisionNetwork(eqx.Module):
    """A network with low-precision parameters: its floating inputs are cast to `dtype`
    and its floating outputs back to float32."""

    network: Any
    dtype: Any = eqx.field(static=True)

    @property
    def needs_key(self) -> bool:
        return needs_key(self.network)

    def __call__(self, *args, **kwargs):
        args, kwargs = _cast_floating((args, kwargs), self.dtype)
        return _cast_floating(self.network(*args, **kwargs), jnp.float32)


class Float32Submodule(eqx.Module):
    """A submodule kept in float32 inside a low-precision network: its inputs are cast
    to float32 and its outputs back to the network's `dtype`."""

    module: Any
    dtype: Any = eqx.field(static=True)

    def __call__(self, *args, **kwargs):
        args, kwargs = _cast_floating((args, kwargs), jnp.float32)
        return _cast_floating(self.module(*args, **kwargs), self.dtype)


# --- dynamic loss scaling ---------------------------------------------------------------


class LossScaleState(eqx.Module):
    """The dynamic loss scale and the number of finite updates since it last changed."""

    scale: Float[Array, ""]
    finite_steps: Int[Array, ""]


class LossScaledOptState(eqx.Module):
    """An optimizer state with the loss scale beside it (what `with_loss_scale` keeps)."""

    inner: PyTree
    loss_scale: LossScaleState


def with_loss_scale(
    optimizer: optax.GradientTransformation, policy: MixedPrecision
) -> optax.GradientTransformation:
    """`optimizer` whose state also holds the dynamic loss scale of `policy`.

    The update kernel reads and advances the scale (`next_loss_scale`); the wrapped
    optimizer only sees unscaled, finite gradients."""

    def init(params):
        return LossScaledOptState(
            optimizer.init(params),
            LossScaleState(
                jnp.asarray(policy.initial_scale, jnp.float32), jnp.zeros((), jnp.int32)
            ),
        )

    def update(updates, state, params=None, **extra_args):
        inner_updates, inner = optimizer.update(updates, state.inner, params, **extra_args)
        return inner_updates, LossScaledOptState(inner, state.loss_scale)

    return optax.GradientTransformationExtraArgs(init, update)


def next_loss_scale(
    state: LossScaleState, finite: jax.Array, policy: MixedPrecision
) -> LossScaleState:
    """Halve the scale after non-finite gradients; double it after `growth_interval`
    finite updates in a row."""
    grown = state.finite_steps + 1 >= policy.growth_interval
    scale = jnp.where(
        finite,
        jnp.where(grown, state.scale * 2.0, state.scale),
        jnp.maximum(state.scale / 2.0, 1.0),
    )
    finite_steps = jnp.where(finite & ~grown, state.finite_steps + 1, 0)
    return LossScaleState(scale.astype(jnp.float32), finite_steps.astype(jnp.int32))


def loss_scale_of(opt_state: PyTree, policy: Optional[MixedPrecision]) -> Optional[jax.Array]:
    """The factor the loss is multiplied by before differentiation, or `None`."""
    if policy is None or policy.scaling is None:
        return None
    if policy.scaling == "dynamic":
        return opt_state.loss_scale.scale
    return jnp.asarray(policy.scaling, jnp.float32)


def all_finite(tree: PyTree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jtu.tree_leaves(tree) if eqx.is_array(x)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)

