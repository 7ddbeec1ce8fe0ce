"""One process of the multi-process tests (run by `tests/test_multiprocess.py`).

`python multiprocess_worker.py PHASE PROCESS_ID NUM_PROCESSES PORT DATA OUT HANG_SECONDS`:
JAX sees `4 // NUM_PROCESSES` virtual CPU devices in this process, 4 in all, and trains
50 updates on a 4-device mesh from the `.npy` file DATA (on disk); a process still
running after HANG_SECONDS prints the stacks of its threads and exits. Phases:

- `single`: one process; saves the weights trained from disk and from memory, and from
  a `SystemMixture` of the file's trajectories (`mixture`).
- `crash`: checkpoints every 25 updates and is killed (SIGKILL) at update 30.
- `resume`: checks the batch-size error and a checkpoint of a sharded array, resumes
  the crashed run from its checkpoint, then trains a fresh, uninterrupted run; saves
  both weights (`OUT/<run>_<process>.npy`), and trains on the mixture
  (`mixture_<process>.npy`).
"""

import faulthandler
import os
import signal
import sys

phase, process_id, num_processes, port, data_path, out, hang_seconds = sys.argv[1:]
# A hang (e.g. collectives issued in different orders) prints every thread's stack and
# exits, well before the test's timeout kills the process silently.
faulthandler.dump_traceback_later(float(hang_seconds), exit=True)
process_id, num_processes = int(process_id), int(num_processes)
os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={4 // num_processes}"

import jax  # noqa: E402

jax.config.update("jax_cpu_collectives_implementation", "gloo")
if num_processes > 1:
    jax.distributed.initialize(
        f"localhost:{port}", num_processes=num_processes, process_id=process_id
    )

import equinox as eqx  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import trainax_fm as tx  # noqa: E402

assert jax.device_count() == 4 and jax.process_count() == num_processes
mesh = jax.make_mesh((4,), ("batch",))
optimizer = optax.adam(1e-2)
net = eqx.nn.Conv1d(1, 1, 3, padding=1, padding_mode="CIRCULAR", key=jax.random.PRNGKey(1))
key = jax.random.PRNGKey(2)
checkpoint = os.path.join(out, "crash.eqx")


def trainer(data):
    return tx.trainer.SupervisedTrainer(
        data, optimizer=optimizer, num_training_steps=50, batch_size=8,
        num_rollout_steps=2, mesh=mesh, steps_per_dispatch=1,
    )


def save(name, result):
    assert result.train_state.step == 50
    np.save(os.path.join(out, f"{name}_{process_id}.npy"), np.asarray(result.stepper.weight))


class KillAt(tx.hook.AbstractHook):
    """Kill this process without any cleanup once update `step` is reached."""

    def __init__(self, step):
        self.step = step

    def next_boundary(self, loop, step):
        return self.step if step < self.step else None

    def on_boundary(self, loop):
        if loop.step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def mixture(source):
    """Three "systems" of two trajectories each, the first weighted twice."""
    return tx.data.SystemMixture(
        source, ["a", "a", "b", "b", "c", "c"], {"a": 2.0, "b": 1.0, "c": 1.0},
        key=jax.random.PRNGKey(3),
    )


on_disk = tx.data.open_trajectories(f"npy:{data_path}")
if phase == "single":
    save("disk", trainer(on_disk).train(net, key, spawn_tqdm=False))
    save("memory", trainer(np.load(data_path)).train(net, key, spawn_tqdm=False))
    save("mixture", trainer(mixture(on_disk)).train(net, key, spawn_tqdm=False))
elif phase == "crash":
    trainer(on_disk).train(
        net, key, checkpoint_path=checkpoint, checkpoint_every=25,
        hooks=[KillAt(30)], spawn_tqdm=False,
    )
    raise AssertionError("the run should have been killed at update 30")
elif phase == "resume":
    try:  # 7 rows cannot be split between 2 processes
        tx.trainer.SupervisedTrainer(
            on_disk, optimizer=optimizer, num_training_steps=5, batch_size=7, mesh=mesh
        )
    except ValueError as error:
        assert "number of processes (2)" in str(error), error
    else:
        raise AssertionError("batch_size 7 on 2 processes must be rejected")
    # A train state whose "stepper" is sharded over the processes: gathered, one file.
    rows = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch"))
    local = np.arange(6, dtype=np.float32).reshape(2, 3) + 6 * process_id
    sharded = jax.make_array_from_process_local_data(rows, local, (4, 3))
    assert not sharded.is_fully_addressable
    sharded_path = os.path.join(out, "sharded.eqx")
    tx.save_train_state(sharded_path, tx.TrainState(
        sharded, optax.sgd(0.1).init(sharded), 0, key, np.zeros(0, np.float32)
    ))
    loaded = tx.load_train_state(sharded_path, np.zeros((4, 3), np.float32), optax.sgd(0.1))
    np.testing.assert_array_equal(loaded.stepper, np.arange(12).reshape(4, 3))

    state = tx.load_train_state(checkpoint, net, optimizer)
    assert state.step == 25, state.step
    save("resumed", trainer(on_disk).train(resume_from=state, spawn_tqdm=False))
    save("full", trainer(on_disk).train(net, key, spawn_tqdm=False))
    save("mixture", trainer(mixture(on_disk)).train(net, key, spawn_tqdm=False))
print("OK", phase, process_id)
