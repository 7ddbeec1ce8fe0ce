"""The training loop behind every trainer.

`_compiled`: the compiled update (sampling, gather, loss, gradient, optax) in its two
forms, straight-line and a loop of many updates. `_dispatch`: how many updates run per
dispatch. `_stream`: which permutation table holds a step's minibatch. `_history`: the
losses. `_loop`: the host-side loop that runs the compiled updates and emits events to
hooks (`trainax_fm.hook`). `_options`: the engine options every trainer accepts.
`_run`: one `train` call. `_stages`: runs made of several stages.
"""
