"""Rollouts of a stepper over time: `_training` holds the loop machinery the
configurations share, `_inference` the public `trainax_fm.rollout`, `_probe` the checks
of a stepper before a rollout (input layout, whether it needs a key).

Private: the public names are re-exported from `trainax_fm`.
"""
