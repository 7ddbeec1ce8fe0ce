"""Callbacks: observe (or checkpoint) the stepper during training.

A callback is called before update `update_i` as `callback(update_i, stepper, data)`
with the update index, the stepper as it is before that update (the one update
`update_i - 1` produced; at update 0 the initial stepper) and the minibatch update
`update_i` trains on, and returns a dictionary. As in trainax, the stepper after the
last update is not seen by the callback: it is what the trainer returns.
[`trainax_fm.callback.BaseCallback`][] subclasses run every `every` updates
and return `{name: None}` in between;
[`trainax_fm.callback.CompositeCallback`][] merges several callbacks and plain
functions `f(update_i, stepper, data) -> dict`. `is_active(update_i)` tells a trainer
ahead of time at which updates a callback really computes something.
"""

from ._base import BaseCallback as BaseCallback
from ._composite import CompositeCallback as CompositeCallback
from ._get_network import GetNetwork as GetNetwork
from ._grad_norm import GradNorm as GradNorm
from ._loss import Loss as Loss
from ._save_network import SaveNetwork as SaveNetwork
from ._weight_norm import WeightNorm as WeightNorm
