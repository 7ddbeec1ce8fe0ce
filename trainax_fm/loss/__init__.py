"""Time-level losses: compare one predicted state with one target state.

The first of trainax_fm's three layers. A loss works on a single state `(C, *spatial)`
(`single_batch`) and is vmapped over a batch (`multi_batch`, `__call__`).
"""

from ._base import BaseLoss as BaseLoss
from ._mse import MSELoss as MSELoss
