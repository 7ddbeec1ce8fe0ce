"""Time-level losses: compare one predicted state with one target state.

The first of trainax_fm's three layers. A loss works on a single state `(C, *spatial)`
(`single_batch`, or `single_batch_at_time` for losses whose weights depend on the
flow-matching time) and is vmapped over a leading batch axis (`multi_batch`,
`__call__`), whose per-state values are reduced with `batch_reduction`.

- `MSELoss`, `MAELoss`, `RMSELoss`: plain errors; with `target=None` they reduce the
  prediction alone (residua).
- `Normalized_MSELoss`, `Normalized_MAELoss`, `nRMSELoss`: errors relative to the target
  (they need a target).
- `SobolevLoss`: error plus gradient-error on periodic grids, spectral or by finite
  differences, with optional flow-time-dependent weights.
- `AMSELoss`, `SpectralAmplitudeLoss`: errors of the radially binned power spectra on
  periodic grids (the adjusted MSE of Subich et al. 2025, without the MSE's double
  penalty on small scales, and its amplitude term alone).
- `CompositeLoss`: weighted sum of losses.
"""

from ._base import BaseLoss as BaseLoss
from ._composite import CompositeLoss as CompositeLoss
from ._mae import MAELoss as MAELoss
from ._mse import MSELoss as MSELoss
from ._normalized import Normalized_MAELoss as Normalized_MAELoss
from ._normalized import Normalized_MSELoss as Normalized_MSELoss
from ._rmse import RMSELoss as RMSELoss
from ._rmse import nRMSELoss as nRMSELoss
from ._sobolev import SobolevLoss as SobolevLoss
from ._spectral import AMSELoss as AMSELoss
from ._spectral import SpectralAmplitudeLoss as SpectralAmplitudeLoss
