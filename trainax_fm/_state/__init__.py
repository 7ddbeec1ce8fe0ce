"""What a run keeps and saves: the train state and result, the hooks' states (the
validation history among them), checkpoints of a train state and stepper files.

Private: the public names are re-exported from `trainax_fm`.
"""
