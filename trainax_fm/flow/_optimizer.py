import equinox as eqx
import jax.tree_util as jtu
import optax

from ._flow_map import FlowMap

TRAINED = "trained"
FROZEN = "frozen"


def _labels(params):
    def label(node):
        labelled = jtu.tree_map(lambda _: TRAINED, node)
        if isinstance(node, FlowMap) and node.freeze_velocity:
            labelled = eqx.tree_at(
                lambda m: m.velocity,
                labelled,
                replace_fn=lambda v: jtu.tree_map(lambda _: FROZEN, v),
            )
        return labelled

    return jtu.tree_map(label, params, is_leaf=lambda node: isinstance(node, FlowMap))


def frozen_velocity_optimizer(
    optimizer: optax.GradientTransformation,
) -> optax.GradientTransformation:
    """Wrap `optimizer` so that the velocity `v` inside every `FlowMap` never changes.

    A [`trainax_fm.flow.FlowMap`][] with `freeze_velocity=True` already stops the
    gradient into `v`, but an optimizer may still move parameters with zero gradient
    (weight decay, momentum from an earlier run). This wrapper gives `v`'s parameters
    a zero update and keeps no optimizer state for them; every other parameter is
    updated by `optimizer`. Parameters outside a flow map are all trained.
    [`trainax_fm.trainer.SemigroupDistillationTrainer`][] applies it automatically;
    use it yourself with a [`trainax_fm.GeneralTrainer`][].

    **Arguments:**

    - `optimizer`: any `optax.GradientTransformation`.

    **Returns:**

    - An `optax.GradientTransformation` (an `optax.multi_transform`).
    """
    if not hasattr(optimizer, "init") or not hasattr(optimizer, "update"):
        raise TypeError(
            "`optimizer` must be an optax.GradientTransformation (e.g. optax.adam(1e-3)), "
            f"got {type(optimizer).__name__}."
        )
    return optax.multi_transform(
        {TRAINED: optimizer, FROZEN: optax.set_to_zero()}, _labels
    )
