"""What every one-line trainer shares: its windows, configuration and engine options.

A one-line trainer is a configuration type plus the windows it needs. Its keywords are
one record declared in `_keywords.py` groups (the shared trainer keywords in trainax's
order, its methodology's, the window keywords and the engine options), which IDEs and
the API reference read, so they see every keyword with its default. The tests check that
they match the configuration's fields and [`trainax_fm.EngineOptions`][].
"""

import inspect
from typing import Any, Callable, ClassVar, Optional

import optax

from .._argument_checks import check_positive_int
from ..data._windows import TrajectorySubStacker
from ._general import GeneralTrainer


class AbstractOneLineTrainer(GeneralTrainer):
    """A [`trainax_fm.GeneralTrainer`][] built from a configuration type in one line.

    Subclasses name `configuration_type` and set `__init__ = keyword_init(record)`,
    where the record (`_keywords.py`) holds the shared keywords, every keyword of
    `configuration_type`, the window keywords and the engine options. Override
    `window_length` where trainax cuts other windows than the configuration needs and
    `prepare_optimizer` where the optimizer must be wrapped.
    """

    configuration_type: ClassVar[type]

    def initialise(self, **arguments: Any) -> None:
        """Build the configuration from its keywords and initialise the trainer."""
        configuration = self.configuration_type(
            **{name: arguments.pop(name) for name in self.configuration_keywords()}
        )
        init_from_configuration(
            self,
            configuration,
            window_length=self.window_length(configuration),
            optimizer=self.prepare_optimizer(arguments.pop("optimizer")),
            **arguments,
        )

    @classmethod
    def configuration_keywords(cls) -> tuple[str, ...]:
        return tuple(inspect.signature(cls.configuration_type).parameters)

    def window_length(self, configuration) -> int:
        """Snapshots per window: what the configuration needs."""
        return configuration.required_window_length

    def prepare_optimizer(
        self, optimizer: optax.GradientTransformation
    ) -> optax.GradientTransformation:
        return optimizer


def init_from_configuration(
    trainer: GeneralTrainer,
    configuration: Any,
    *,
    data_trajectories,
    window_length: int,
    ref_stepper: Optional[Callable],
    residuum_fn: Optional[Callable],
    optimizer: optax.GradientTransformation,
    callback_fn: Optional[Callable],
    num_training_steps: int,
    batch_size: int,
    do_sub_stacking: bool,
    num_output_steps: int,
    **engine_options,
) -> None:
    """Cut the windows a configuration needs and initialise `trainer` with them.

    `window_length` counts the time levels the configuration sees: states, or blocks
    of `num_output_steps` states for a stepper that predicts several per call.
    """
    num_output_steps = check_positive_int(num_output_steps, "num_output_steps")
    # Checked here: the engine's own name for it is `num_minibatches`.
    num_training_steps = check_positive_int(num_training_steps, "num_training_steps")
    stacker = TrajectorySubStacker(
        data_trajectories,
        window_length * num_output_steps,
        do_sub_stacking=do_sub_stacking,
        num_output_steps=num_output_steps,
    )
    GeneralTrainer.initialise(
        trainer,
        stacker,
        configuration,
        ref_stepper=ref_stepper,
        residuum_fn=residuum_fn,
        optimizer=optimizer,
        num_minibatches=num_training_steps,
        batch_size=batch_size,
        callback_fn=callback_fn,
        **engine_options,
    )
