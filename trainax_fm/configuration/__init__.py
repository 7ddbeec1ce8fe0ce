"""Configurations: how stepper, reference and data form one scalar loss.

The second of trainax_fm's three layers. Every configuration is an `eqx.Module` whose
`__call__(stepper, data, *, ref_stepper=None, residuum_fn=None, key=None, step=None)`
returns the loss of a minibatch of windows.
"""

from ._base import BaseConfiguration as BaseConfiguration
