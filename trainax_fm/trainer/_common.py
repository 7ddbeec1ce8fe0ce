"""What every one-line trainer shares: its keywords, windows and engine options.

A one-line trainer is a configuration type plus the windows it needs. Its keywords are
the shared trainer keywords (trainax's order), the configuration's own keywords and the
engine options, assembled here once, so no trainer can miss one; `help()` and
`inspect.signature` show them all.
"""

import inspect
from typing import Any, Callable, ClassVar, Optional

import optax
from jaxtyping import Array, Float, PyTree

from .._general_trainer import GeneralTrainer
from .._loop._options import expose_signature, with_engine_options
from .._validation import check_positive_int
from .._windows import TrajectorySubStacker


def _trainer_keywords(
    data_trajectories: PyTree[Float[Array, "num_trajectories time ..."]],
    *,
    ref_stepper: Optional[Callable] = None,
    residuum_fn: Optional[Callable] = None,
    optimizer: optax.GradientTransformation,
    callback_fn: Optional[Callable] = None,
    num_training_steps: int,
    batch_size: int,
    do_sub_stacking: bool = True,
    num_output_steps: int = 1,
    **engine_options,
):
    """The keywords every one-line trainer takes (the signature is all that is used)."""


_SHARED = list(inspect.signature(_trainer_keywords).parameters.values())
# trainax's order: data and the shared keywords, the methodology's, then the rest.
_LEADING, _TRAILING = _SHARED[:7], _SHARED[7:]


def one_line_signature(
    *methodology: inspect.Parameter, after_data: tuple[inspect.Parameter, ...] = ()
) -> inspect.Signature:
    """The signature of a trainer with these methodology keywords (and, `after_data`,
    positional parameters after the data)."""
    keyword_only = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in methodology]
    parameters = _LEADING[:1] + list(after_data) + _LEADING[1:] + keyword_only + _TRAILING
    return with_engine_options(inspect.Signature(parameters))


class AbstractOneLineTrainer(GeneralTrainer):
    """A [`trainax_fm.GeneralTrainer`][] built from a configuration type in one line.

    Subclasses name `configuration_type`; the trainer's keywords are the shared ones,
    every keyword of `configuration_type` and the engine options. Override
    `window_length` where trainax cuts other windows than the configuration needs and
    `prepare_optimizer` where the optimizer must be wrapped.
    """

    configuration_type: ClassVar[type]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        parameters = inspect.signature(cls.configuration_type).parameters.values()
        signature = one_line_signature(*parameters)

        # Each trainer gets its own `__init__`, which carries its own signature.
        def __init__(self, data_trajectories, **keywords):
            AbstractOneLineTrainer.__init__(self, data_trajectories, **keywords)

        expose_signature(__init__, signature)
        __init__.__doc__ = cls.__doc__
        cls.__init__ = __init__

    def __init__(self, data_trajectories, **keywords):
        arguments = bind_keywords(type(self), data_trajectories, keywords)
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

    def prepare_optimizer(self, optimizer: optax.GradientTransformation) -> optax.GradientTransformation:
        return optimizer


def bind_keywords(
    cls, data_trajectories, keywords: dict, signature: Optional[inspect.Signature] = None
) -> dict[str, Any]:
    """The trainer's arguments by name, with defaults; Python's errors for bad names."""
    signature = inspect.signature(cls) if signature is None else signature
    try:
        bound = signature.bind(data_trajectories, **keywords)
    except TypeError as error:
        raise TypeError(f"{cls.__name__}: {error}") from None
    bound.apply_defaults()
    return dict(bound.arguments)


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
    GeneralTrainer.__init__(
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
