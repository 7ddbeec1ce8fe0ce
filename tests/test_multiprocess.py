"""Two JAX processes on this machine (`jax.distributed` on localhost, gloo CPU
collectives, 2 virtual devices each) train like one process with 4 devices (also from a
mixture of systems), write one checkpoint, and resume from it after being killed."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

WORKER = Path(__file__).with_name("multiprocess_worker.py")
TIMEOUT = 240


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def launch(
    phase: str, num_processes: int, data: Path, out: Path
) -> list[subprocess.CompletedProcess]:
    """Run `num_processes` workers of `phase` side by side; their finished processes."""
    port = str(free_port())
    env = {**os.environ, "PYTHONPATH": str(WORKER.parents[1])}
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), phase, str(i), str(num_processes), port, str(data),
             str(out), str(TIMEOUT - 30)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )
        for i in range(num_processes)
    ]
    finished = []
    try:
        for proc in procs:
            output, _ = proc.communicate(timeout=TIMEOUT)
            finished.append(subprocess.CompletedProcess(proc.args, proc.returncode, output))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return finished


def test_two_processes_match_one_and_resume_after_a_kill(tmp_path):
    data = tmp_path / "data.npy"
    rng = np.random.default_rng(0)
    np.save(data, rng.normal(size=(6, 12, 1, 16)).astype(np.float32))

    (single,) = launch("single", 1, data, tmp_path)
    assert single.returncode == 0, single.stdout[-8000:]
    memory = np.load(tmp_path / "memory_0.npy")
    single_mixture = np.load(tmp_path / "mixture_0.npy")
    # From disk and from memory: the same minibatches, the same weights.
    np.testing.assert_array_equal(np.load(tmp_path / "disk_0.npy"), memory)

    for crashed in launch("crash", 2, data, tmp_path):
        assert crashed.returncode == -9, crashed.stdout[-8000:]  # SIGKILL at update 30
    assert (tmp_path / "crash.eqx").is_file()
    assert not list(tmp_path.glob(".crash.eqx.*"))  # written once, atomically

    for resumed in launch("resume", 2, data, tmp_path):
        assert resumed.returncode == 0, resumed.stdout[-8000:]
    for process in (0, 1):
        full = np.load(tmp_path / f"full_{process}.npy")
        # 2 processes x 2 devices = 1 process x 4 devices, up to the order of the
        # cross-process gradient sum.
        np.testing.assert_allclose(full, memory, rtol=1e-6, atol=1e-7)
        # A mixture of systems is a source like any other across processes.
        np.testing.assert_allclose(
            np.load(tmp_path / f"mixture_{process}.npy"), single_mixture, rtol=1e-6, atol=1e-7
        )
        # Killed and resumed from the update-25 checkpoint: bit-identical.
        np.testing.assert_array_equal(np.load(tmp_path / f"resumed_{process}.npy"), full)
    np.testing.assert_array_equal(
        np.load(tmp_path / "full_1.npy"), np.load(tmp_path / "full_0.npy")
    )
