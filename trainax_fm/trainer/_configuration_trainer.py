import dataclasses
from typing import Any, Optional


from ..configuration._callable import as_configuration
from ._common import init_from_configuration
from ._general import GeneralTrainer
from ._keywords import EngineKeywords, TrainerKeywords, WindowKeywords, keyword_init


@dataclasses.dataclass(eq=False, repr=False)
class _ConfigurationKeywords(EngineKeywords, WindowKeywords, TrainerKeywords):
    """The keywords of `ConfigurationTrainer`: the configuration after the data, the
    window length it needs, the windows' and the engine's."""

    loss_configuration: Any
    _: dataclasses.KW_ONLY
    sub_trajectory_len: Optional[int] = None


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

    __init__ = keyword_init(_ConfigurationKeywords)

    def initialise(self, **arguments: Any) -> None:
        """Initialise the trainer with the configuration and the windows it needs."""
        loss_configuration = arguments.pop("loss_configuration")
        window_length = arguments.pop("sub_trajectory_len")
        if window_length is None:
            window_length = as_configuration(loss_configuration).required_window_length
        init_from_configuration(
            self, loss_configuration, window_length=window_length, **arguments
        )
