"""Steppers and what wraps them: normalised, conditioned, multi-step (block), with
learnable loss weights, stochastic with noise input channels, seed-stacked, and which
of their arrays the optimizer trains.

Private: the public names are re-exported from `trainax_fm`.
"""
