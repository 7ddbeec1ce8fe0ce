from typing import Optional

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from .._rollout._training import window_length
from .._argument_checks import check_positive_int
from ._base import BaseConfiguration, Windows
from ._wrapper import AbstractAugmentation, check_wrapped


class InputNoise(AbstractAugmentation):
    r"""Training noise for any configuration: perturb the inputs, keep the targets.

    Before the wrapped configuration sees a minibatch, Gaussian noise is added to the
    first `num_noisy_states` snapshots of every window (the initial condition, or the
    initial history of a stepper with `num_input_steps=H`); the later snapshots, the
    targets, stay clean:

    $$u_h \leftarrow u_h + \sigma\, s\, \varepsilon,\quad \varepsilon \sim \mathcal{N}(0, I),
    \quad h < \texttt{num\_noisy\_states}$$

    with `σ = relative_std` and `s` the data's standard deviation: `data_std` if given
    (e.g. `trajectories.std()`, the same scale for every minibatch), otherwise the
    standard deviation of all entries of the minibatch (per PyTree leaf, without
    gradient). The stepper learns to map slightly-off states back towards the data,
    which is the distribution shift its own errors cause in a rollout (Sanchez-Gonzalez
    et al. 2020; Stachenfeld et al. 2022).

    Works around every configuration, including [`trainax_fm.configuration.Composite`][]
    (all members see the same noisy inputs) and the reference-based ones (the reference
    then branches off the noisy state too). Needs a `key`; the wrapped configuration
    gets an independent one.

    **Arguments:**

    - `configuration`: the configuration to train with noisy inputs.
    - `relative_std`: `σ` (> 0), the noise level relative to the data's standard
        deviation (0.01-0.1 are common).
    - `num_noisy_states`: how many leading snapshots are inputs (set it to the
        stepper's `num_input_steps`).
    - `data_std`: a fixed scale `s` (a scalar, or a PyTree of scalars like the data),
        or `None` to measure it on every minibatch.
    """

    configuration: BaseConfiguration
    relative_std: float = eqx.field(static=True)
    num_noisy_states: int = eqx.field(static=True)
    data_std: Optional[PyTree[Float[Array, ""]]]

    def __init__(
        self,
        configuration: BaseConfiguration,
        relative_std: float,
        *,
        num_noisy_states: int = 1,
        data_std: Optional[PyTree[Float[Array, ""]]] = None,
    ):
        if isinstance(relative_std, bool) or not isinstance(relative_std, (int, float)):
            raise TypeError(
                f"`relative_std` must be a positive float, got {relative_std!r}."
            )
        if not relative_std > 0:
            raise ValueError(
                f"`relative_std` must be > 0, got {relative_std}; drop the InputNoise "
                "wrapper for noise-free training."
            )
        self.configuration = check_wrapped(configuration)
        self.relative_std = float(relative_std)
        self.num_noisy_states = check_positive_int(num_noisy_states, "num_noisy_states")
        self.data_std = None if data_std is None else jtu.tree_map(jnp.asarray, data_std)

    @property
    def required_window_length(self) -> int:
        return max(self.configuration.required_window_length, self.num_noisy_states)

    def augment(self, data: Windows, key: PRNGKeyArray) -> Windows:
        return self.noisy(data, key)

    def noisy(
        self, data: PyTree[Float[Array, "batch window ..."]], key: PRNGKeyArray
    ) -> PyTree[Float[Array, "batch window ..."]]:
        """`data` with the noise added to its first `num_noisy_states` snapshots."""
        if window_length(data) < self.num_noisy_states:
            raise ValueError(
                f"InputNoise perturbs the first {self.num_noisy_states} snapshots, but the "
                f"windows hold {window_length(data)}; lower `num_noisy_states` or cut "
                "longer windows."
            )
        leaves, treedef = jtu.tree_flatten(data)
        if self.data_std is None:
            scales = [jax.lax.stop_gradient(jnp.std(leaf)) for leaf in leaves]
        else:
            scales = jtu.tree_leaves(self.data_std)
            if len(scales) == 1:
                scales = scales * len(leaves)
            if len(scales) != len(leaves):
                raise ValueError(
                    f"`data_std` has {len(scales)} leaves but the data has {len(leaves)}; "
                    "give one scalar, or one per data leaf."
                )
        noisy = []
        for leaf, scale, leaf_key in zip(leaves, scales, jax.random.split(key, len(leaves))):
            inputs = leaf[:, : self.num_noisy_states]
            noise = jax.random.normal(leaf_key, inputs.shape, leaf.dtype)
            inputs = inputs + (self.relative_std * scale).astype(leaf.dtype) * noise
            noisy.append(leaf.at[:, : self.num_noisy_states].set(inputs))
        return jtu.tree_unflatten(treedef, noisy)
