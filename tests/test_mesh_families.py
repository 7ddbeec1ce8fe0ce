"""Every kind of mesh trains every network family users bring, with the default options.

`jax.make_mesh` gives a mesh with explicit axes on current JAX, a `jax.sharding.Mesh`
built by hand one with automatic axes; the documented recipe uses the first. Both must
train convolutions (1D, 2D, 3D), spectral convolutions (pdequinox's FNO, and complex
weights), MLPs
and attention, under the default `steps_per_dispatch="auto"` and the other engine
options, to the same weights as one device. Everything runs in ONE subprocess with 4
virtual CPU devices (the device count is fixed when JAX starts), so JAX and the
trainers are imported once for all cases.
"""

import importlib.util
import os
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
FOUR_DEVICES = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
                "PYTHONPATH": str(ROOT)}

COMMON = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, equinox as eqx, numpy as np, optax
    import trainax_fm as tx

    assert jax.device_count() == 4, jax.devices()
    MESHES = {
        "make_mesh": jax.make_mesh((4,), ("batch",)),  # explicit axes on current JAX
        "Mesh": jax.sharding.Mesh(np.array(jax.devices()), ("batch",)),  # automatic axes
    }
    explicit = getattr(jax.sharding.AxisType, "Explicit", None)
    if explicit is not None:  # otherwise this JAX has no explicit axes to test
        assert MESHES["make_mesh"].axis_types == (explicit,), MESHES["make_mesh"].axis_types


    def leaves(tree):
        return jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_array))


    def assert_close(result, reference, what, rtol=1e-5, atol=1e-6):
        for got, expected in zip(leaves(result.stepper), leaves(reference.stepper)):
            assert np.all(np.isfinite(np.asarray(got))), what
            np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol, err_msg=what)
        np.testing.assert_allclose(
            result.loss_history, reference.loss_history, rtol=rtol, err_msg=what
        )
    """
)

FAMILIES = COMMON + textwrap.dedent(
    """
    import sys
    keys = iter(jax.random.split(jax.random.PRNGKey(1), 32))


    class FlatMLP(eqx.Module):
        # An MLP on a flattened 1D state `(C, N)`: a dense contraction over channels and
        # grid points together.
        mlp: eqx.nn.MLP

        def __call__(self, u):
            return self.mlp(u.reshape(-1)).reshape(u.shape)


    class Attention(eqx.Module):
        # Grid points as tokens of self-attention; channels embedded per token.
        embed: eqx.nn.Linear
        attention: eqx.nn.MultiheadAttention
        project: eqx.nn.Linear

        def __call__(self, u):
            tokens = jax.vmap(self.embed)(u.T)
            mixed = self.attention(tokens, tokens, tokens)
            return u + jax.vmap(self.project)(mixed).T


    class ComplexSpectral(eqx.Module):
        # A spectral convolution whose weights are complex arrays (pdequinox's FNO keeps
        # real and imaginary parts apart): optimizer and gradient sum see complex leaves.
        weight: jax.Array

        def __call__(self, u):
            modes = jnp.fft.rfft(u)[:, : self.weight.shape[-1]]
            mixed = jnp.einsum("oim,im->om", self.weight, modes)
            return u + jnp.fft.irfft(mixed, n=u.shape[-1])


    def data(*state_shape):
        return jax.random.normal(next(keys), (2, 6) + state_shape)


    def periodic(conv):
        return conv(1, 1, 3, padding=1, padding_mode="CIRCULAR", key=next(keys))


    families = {
        "conv1d": (periodic(eqx.nn.Conv1d), data(1, 16)),
        "conv2d": (periodic(eqx.nn.Conv2d), data(1, 6, 6)),
        "conv3d": (periodic(eqx.nn.Conv3d), data(1, 4, 4, 4)),
        "complex_spectral": (
            ComplexSpectral(0.1 * jax.random.normal(next(keys), (2, 2, 4), jnp.complex64)),
            data(2, 16),
        ),
        "mlp_0d": (eqx.nn.MLP(3, 3, 8, 1, key=next(keys)), data(3)),
        "mlp_1d": (FlatMLP(eqx.nn.MLP(8, 8, 8, 1, key=next(keys))), data(1, 8)),
        "attention": (
            Attention(
                eqx.nn.Linear(2, 4, key=next(keys)),
                eqx.nn.MultiheadAttention(2, 4, key=next(keys)),
                eqx.nn.Linear(4, 2, key=next(keys)),
            ),
            data(2, 8),
        ),
    }
    if sys.argv[1] == "with_fno":
        import pdequinox as pdeqx

        fno = pdeqx.arch.ClassicFNO(
            1, 1, 1, hidden_channels=4, num_modes=4, num_blocks=1, key=next(keys)
        )
        families["fno"] = (fno, data(1, 16))

    for family, (network, trajectories) in families.items():
        runs = {}
        for name, mesh in {"one device": None, **MESHES}.items():
            # The defaults: no steps_per_dispatch, no other engine option.
            trainer = tx.trainer.SupervisedTrainer(
                trajectories, optimizer=optax.adam(1e-3), num_training_steps=4,
                batch_size=8, num_rollout_steps=2, mesh=mesh,
            )
            runs[name] = trainer.train(network, jax.random.PRNGKey(2), spawn_tqdm=False)
        for name in MESHES:
            assert_close(runs[name], runs["one device"], f"{family} on {name}")
        print("trained", family)
    print("OK")
    """
)

OPTIONS = COMMON + textwrap.dedent(
    """
    import sys
    from pathlib import Path

    mesh = MESHES["make_mesh"]
    out = Path(sys.argv[1])
    trajectories = jax.random.normal(jax.random.PRNGKey(0), (3, 6, 1, 16))
    validation = jax.random.normal(jax.random.PRNGKey(3), (2, 6, 1, 16))
    net = eqx.nn.Conv1d(1, 1, 3, padding=1, padding_mode="CIRCULAR", key=jax.random.PRNGKey(1))
    key = jax.random.PRNGKey(2)
    common = dict(
        optimizer=optax.adam(1e-3), num_training_steps=6, batch_size=8, num_rollout_steps=2
    )


    def train(mesh, **options):
        trainer = tx.trainer.SupervisedTrainer(trajectories, mesh=mesh, **common, **options)
        return trainer.train(net, key, spawn_tqdm=False)


    reference = train(None, steps_per_dispatch=1)
    for mode in (1, "auto", 3):
        assert_close(train(mesh, steps_per_dispatch=mode), reference, f"steps_per_dispatch={mode}")
    # The mesh given to one `train` call instead of the trainer.
    overridden = tx.trainer.SupervisedTrainer(trajectories, **common).train(
        net, key, mesh=mesh, spawn_tqdm=False
    )
    assert_close(overridden, reference, "mesh given to train")

    validated = {
        name: train(
            m, validation_data=validation, validate_every=2,
            validation_metrics=("loss", "nrmse@2"),
        )
        for name, m in (("one device", None), ("mesh", mesh))
    }
    assert_close(validated["mesh"], validated["one device"], "validation")
    history, expected = validated["mesh"].validation, validated["one device"].validation
    np.testing.assert_array_equal(history.steps, [2, 4, 6])
    for metric in ("loss", "nrmse@2"):
        np.testing.assert_allclose(history.values[metric], expected.values[metric], rtol=1e-5)

    # Checkpoint after 3 updates, resume on the mesh: the uninterrupted mesh run, exactly.
    trainer = tx.trainer.SupervisedTrainer(trajectories, mesh=mesh, **common)
    full = trainer.train(net, key, spawn_tqdm=False)
    path = out / "state.eqx"
    trainer.train(net, key, num_steps=3, checkpoint_path=path, spawn_tqdm=False)
    state = tx.load_train_state(path, net, common["optimizer"])
    assert state.step == 3, state.step
    resumed = trainer.train(resume_from=state, spawn_tqdm=False)
    for got, expected in zip(leaves(resumed.stepper), leaves(full.stepper)):
        np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(resumed.loss_history, full.loss_history)

    seed_keys = jax.random.split(jax.random.PRNGKey(4), 2)
    make = lambda k: eqx.nn.Conv1d(1, 1, 3, padding=1, padding_mode="CIRCULAR", key=k)
    seeds = {
        name: tx.trainer.SupervisedTrainer(trajectories, mesh=m, **common).train_seeds(
            make, jax.random.PRNGKey(5), 2, spawn_tqdm=False
        )
        for name, m in (("one device", None), ("mesh", mesh))
    }
    assert seeds["mesh"].stepper.weight.shape == (2, 1, 1, 3)
    assert_close(seeds["mesh"], seeds["one device"], "num_seeds=2")

    velocity = tx.flow.ConditionalVelocity(
        eqx.nn.Conv1d(3, 1, 3, padding=1, padding_mode="CIRCULAR", key=jax.random.PRNGKey(6))
    )
    flows = {
        name: tx.trainer.FlowMatchingTrainer(
            trajectories, optimizer=optax.adam(1e-3), num_training_steps=6, batch_size=8, mesh=m,
        ).train(velocity, key, spawn_tqdm=False)
        for name, m in (("one device", None), ("mesh", mesh))
    }
    assert_close(flows["mesh"], flows["one device"], "FlowMatchingTrainer")

    # Mixed precision with float16 loss scaling: the mesh run equals the one-device run
    # (up to float16's reassociation) and keeps the loss scale in the optimizer state.
    policy = tx.MixedPrecision("float16", initial_scale=2.0**10)
    low = {name: train(m, precision=policy) for name, m in (("one device", None), ("mesh", mesh))}
    for got, expected in zip(leaves(low["mesh"].stepper), leaves(low["one device"].stepper)):
        np.testing.assert_allclose(got, expected, rtol=1e-2, atol=1e-4)
    assert low["mesh"].opt_state.loss_scale.scale == low["one device"].opt_state.loss_scale.scale
    print("OK")
    """
)


def run_on_four_devices(script: str, *args: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True,
        env=FOUR_DEVICES, cwd=ROOT, timeout=600,
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-6000:]
    assert completed.stdout.strip().endswith("OK"), completed.stdout
    return completed.stdout


def test_every_network_family_trains_on_both_kinds_of_mesh():
    with_fno = importlib.util.find_spec("pdequinox") is not None
    out = run_on_four_devices(FAMILIES, "with_fno" if with_fno else "without_fno")
    families = ["conv1d", "conv2d", "conv3d", "complex_spectral", "mlp_0d", "mlp_1d", "attention"]
    for family in families + (["fno"] if with_fno else []):
        assert f"trained {family}" in out


def test_engine_options_on_a_make_mesh_mesh(tmp_path):
    run_on_four_devices(OPTIONS, str(tmp_path))


# --- the documented recipes, run as written -------------------------------------------


def python_blocks(page: str) -> list[str]:
    """The ```python code blocks of `docs/<page>`, in order."""
    text = (ROOT / "docs" / page).read_text(encoding="utf-8")
    return re.findall(r"^```python\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)


def shortened(code: str, replacements: dict[str, str]) -> str:
    """`code` with each documented value replaced (each must occur: a renamed value in
    the docs must not silently leave a 10 000-update run in the test)."""
    for old, new in replacements.items():
        assert old in code, f"the docs no longer contain {old!r}; update this test"
        code = code.replace(old, new)
    return code


def test_the_recipes_of_the_devices_page_run():
    blocks = python_blocks("how-to/devices.md")
    (laptop,) = [block for block in blocks if "xla_force_host_platform_device_count" in block]
    training = [block for block in blocks if "mesh=mesh" in block]
    assert len(training) == 3, training
    # The laptop recipe first: it must set the device count before JAX starts.
    script = "\n".join([laptop, *training])
    script = script.replace("num_training_steps=10_000", "num_training_steps=6")
    script += textwrap.dedent(
        """
        import numpy as np
        assert jax.device_count() == 4
        assert mesh.shape == {"batch": 4}
        assert np.all(np.isfinite(np.asarray(result.loss_history)))
        assert sharded.options.parameter_axis == "batch"
        print("OK")
        """
    )
    assert script.count("num_training_steps=6") == 3
    env = {key: value for key, value in FOUR_DEVICES.items() if key != "XLA_FLAGS"}
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-6000:]
    assert completed.stdout.strip().endswith("OK"), completed.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_the_recipes_of_the_multi_host_page_run_on_two_processes(tmp_path):
    h5py = pytest.importorskip("h5py")
    script_block, resume_block, laptop = python_blocks("how-to/multi-host.md")
    assert "jax.distributed.initialize()" in script_block and "resume_from" in resume_block
    with h5py.File(tmp_path / "ks_train.h5", "w") as f:
        f["u"] = np.random.default_rng(0).normal(size=(8, 30, 1, 32)).astype(np.float32)
    # The laptop recipe connects the two processes; the script then runs as written,
    # minus its own `initialize()` (SLURM's environment is not there).
    script = "\n".join([
        shortened(laptop, {"localhost:12355": f"localhost:{free_port()}"}),
        shortened(script_block, {
            "\njax.distributed.initialize()": "\n",
            "num_training_steps=50_000": "num_training_steps=12",
            "checkpoint_every=1_000": "checkpoint_every=6",
        }),
        "first = result",
        resume_block,
    ]).replace("/shared/", f"{tmp_path}/")
    script += textwrap.dedent(
        f"""
        import numpy as np
        assert jax.process_count() == 2 and jax.device_count() == 4
        assert first.train_state.step == 12 and state.step == 12
        np.testing.assert_array_equal(result.stepper.weight, first.stepper.weight)
        np.save("{tmp_path}/weight_" + sys.argv[1] + ".npy", np.asarray(first.stepper.weight))
        print("OK")
        """
    )
    env = {key: value for key, value in FOUR_DEVICES.items() if key != "XLA_FLAGS"}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(process)], stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT,
        )
        for process in (0, 1)
    ]
    try:
        outputs = [process.communicate(timeout=240)[0] for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-6000:]
        assert output.strip().endswith("OK"), output[-2000:]
    weights = [np.load(tmp_path / f"weight_{process}.npy") for process in (0, 1)]
    assert np.all(np.isfinite(weights[0]))
    np.testing.assert_array_equal(weights[1], weights[0])
