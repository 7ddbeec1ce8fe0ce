"""The training loop behind every trainer.

`_compiled`: the compiled update (sampling, gather, loss, gradient, optax) in its two
forms, straight-line and a loop of many updates. `_dispatch`: how many updates run per
dispatch. `_stream`: which permutation table holds a step's minibatch. `_history`: the
losses. `_loop`: the host-side loop that runs the compiled updates and the hook protocol
it emits its events to (the hooks themselves, `trainax_fm.hook`, build on it).
`_options`: the engine options every trainer accepts. `_run`: one run of the loop from a
train state. Nothing here imports the hooks or the trainers: those sit above
(`trainax_fm.trainer._train_call` assembles a trainer's run, `trainax_fm.trainer._stages` runs of
several stages).
"""
