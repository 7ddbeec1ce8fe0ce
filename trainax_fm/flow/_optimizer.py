import equinox as eqx
import jax.tree_util as jtu
import optax

from ._ema import AbstractEMA
from ._flow_map import FlowMap

TRAINED = "trained"
FROZEN = "frozen"


def _is_node(node) -> bool:
    return isinstance(node, (FlowMap, AbstractEMA))


def _label_flow_map(node):
    labelled = jtu.tree_map(lambda _: TRAINED, node)
    if node.freeze_velocity:
        labelled = eqx.tree_at(
            lambda m: m.velocity,
            labelled,
            replace_fn=lambda v: jtu.tree_map(lambda _: FROZEN, v),
        )
    return labelled


def _labels(params):
    def label(node):
        if isinstance(node, AbstractEMA):
            labelled = jtu.tree_map(lambda _: FROZEN, node)
            return eqx.tree_at(lambda m: m.online, labelled, label(node.online))
        if isinstance(node, FlowMap):
            return _label_flow_map(node)
        return jtu.tree_map(lambda _: TRAINED, node)

    return jtu.tree_map(label, params, is_leaf=_is_node)


def _ema_updates(updates, params):
    """Replace the (zero) updates of every EMA copy by the EMA step."""

    def fix(update, param):
        if not isinstance(param, AbstractEMA):
            return update
        new_online = optax.apply_updates(param.online, update.online)
        rate = 1.0 - param.decay
        ema_step = jtu.tree_map(
            lambda new, old: rate * (new - old), new_online, param.ema
        )
        return eqx.tree_at(lambda m: m.ema, update, ema_step)

    return jtu.tree_map(fix, updates, params, is_leaf=lambda n: isinstance(n, AbstractEMA))


def flow_map_optimizer(optimizer: optax.GradientTransformation) -> optax.GradientTransformation:
    """Wrap `optimizer` for training flow maps.

    - The velocity `v` inside every [`trainax_fm.flow.FlowMap`][] with
        `freeze_velocity=True` gets a zero update and no optimizer state. (The flow map
        already stops its gradient, but an optimizer may still move parameters with
        zero gradient, e.g. by weight decay.)
    - The average `ema` inside every [`trainax_fm.flow.EMAFlowMap`][] and
        [`trainax_fm.flow.EMAVelocity`][] is not trained
        by `optimizer`; after each update it moves towards the new weights,
        `ema <- decay * ema + (1 - decay) * new`.
    - Every other parameter is updated by `optimizer`.

    [`trainax_fm.trainer.SemigroupDistillationTrainer`][],
    [`trainax_fm.trainer.ProgressiveDistillationTrainer`][] and the few-step flow-map
    trainers (Lagrangian, MeanFlow, shortcut) apply it automatically; use
    it yourself with a [`trainax_fm.GeneralTrainer`][]. The update needs `params`
    (trainax_fm's engine always passes them).

    **Arguments:**

    - `optimizer`: any `optax.GradientTransformation`.

    **Returns:**

    - An `optax.GradientTransformation`.
    """
    if not hasattr(optimizer, "init") or not hasattr(optimizer, "update"):
        raise TypeError(
            "`optimizer` must be an optax.GradientTransformation (e.g. optax.adam(1e-3)), "
            f"got {type(optimizer).__name__}."
        )
    inner = optax.multi_transform({TRAINED: optimizer, FROZEN: optax.set_to_zero()}, _labels)

    def update(updates, state, params=None):
        updates, state = inner.update(updates, state, params)
        if any(isinstance(n, AbstractEMA) for n in jtu.tree_leaves(updates, is_leaf=_is_node)):
            if params is None:
                raise ValueError(
                    "flow_map_optimizer needs `params` in `update` to move the EMA of an "
                    "EMAFlowMap or EMAVelocity: call `optimizer.update(grads, state, params)`."
                )
            updates = _ema_updates(updates, params)
        return updates, state

    return optax.GradientTransformation(inner.init, update)
