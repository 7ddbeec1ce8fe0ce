import inspect
from typing import Any, Optional

from .._general_trainer import GeneralTrainer
from .._loop._options import expose_signature
from ._common import bind_keywords, init_from_configuration, one_line_signature

_SHARED = one_line_signature()


class ConfigurationTrainer(GeneralTrainer):
    """Train with any configuration, e.g. a [`trainax_fm.configuration.Composite`][].

    The window length is taken from the configuration's `required_window_length`
    (unless given), so
    `ConfigurationTrainer(data, Composite([Supervised(5), TemporalConsistency(5)],
    [1.0, 0.1]), optimizer=..., num_training_steps=..., batch_size=...)` is all it takes.

    **Arguments:**

    - `data_trajectories`: trajectories `(S, T, C, *spatial)` or a PyTree of them.
    - `loss_configuration`: any configuration.
    - the keywords every trainer shares and the engine options: see
        [`trainax_fm.trainer`][] (`ref_stepper`, `residuum_fn` as the configuration
        needs).
    - `sub_trajectory_len`: override the window length (in blocks with
        `num_output_steps > 1`).
    """

    def __init__(
        self,
        data_trajectories,
        loss_configuration: Any,
        *,
        sub_trajectory_len: Optional[int] = None,
        **keywords,
    ):
        arguments = bind_keywords(type(self), data_trajectories, keywords, _SHARED)
        if sub_trajectory_len is None:
            sub_trajectory_len = getattr(loss_configuration, "required_window_length", 1)
        init_from_configuration(
            self, loss_configuration, window_length=sub_trajectory_len, **arguments
        )


def _signature() -> inspect.Signature:
    own = inspect.signature(ConfigurationTrainer).parameters
    return one_line_signature(
        own["sub_trajectory_len"], after_data=(own["loss_configuration"],)
    )


expose_signature(ConfigurationTrainer.__init__, _signature())
