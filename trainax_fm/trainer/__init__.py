"""Trainers: one-line constructors of `GeneralTrainer` for each methodology.

The third of trainax_fm's three layers. Each trainer cuts the trajectories into windows
of the length its configuration needs and wires configuration, optimizer and the
training engine together. Call it as `trainer(stepper, key)` (trainax-compatible) or
`trainer.train(stepper, key)` for a fixed result type.
"""

from ._supervised import SupervisedTrainer as SupervisedTrainer
