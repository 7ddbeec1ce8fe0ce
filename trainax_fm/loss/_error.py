"""Losses that are one statistic of the error of a state (private bases)."""

import abc
from typing import Optional

from jaxtyping import Array, Float

from ._base import BaseLoss
from ._utils import difference, require_target


class AbstractStatisticLoss(BaseLoss):
    """A loss built from one scalar statistic (e.g. the mean square) of a state.

    MSE, MAE, RMSE and the normalised MSE and MAE differ only in that statistic and in
    whether they divide by the statistic of the target. Subclasses implement
    `_statistic`.
    """

    @abc.abstractmethod
    def _statistic(self, values: Float[Array, "num_channels ..."]) -> Float[Array, ""]:
        """The scalar statistic of one state's values."""


class AbstractErrorLoss(AbstractStatisticLoss):
    """The statistic of `prediction - target`, or of `prediction` for `target=None`."""

    def single_batch(
        self,
        prediction: Float[Array, "num_channels ..."],
        target: Optional[Float[Array, "num_channels ..."]] = None,
    ) -> Float[Array, ""]:
        return self._statistic(difference(type(self).__name__, prediction, target))


class AbstractNormalizedErrorLoss(AbstractStatisticLoss):
    """The statistic of `prediction - target` divided by that of `target` (required)."""

    def single_batch(
        self,
        prediction: Float[Array, "num_channels ..."],
        target: Optional[Float[Array, "num_channels ..."]] = None,
    ) -> Float[Array, ""]:
        name = type(self).__name__
        require_target(name, target)
        error = difference(name, prediction, target)
        return self._statistic(error) / self._statistic(target)
