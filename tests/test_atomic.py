"""Atomic writes: every file trainax_fm writes goes through `trainax_fm._atomic`."""

import os
import stat

import equinox as eqx
import jax
import numpy as np
import pytest

from trainax_fm._atomic import atomic_open, atomic_path, save_tree_atomic, write_bytes_atomic


def test_write_replaces_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "file.bin"
    assert write_bytes_atomic(target, b"first") == target
    write_bytes_atomic(target, b"second")
    assert target.read_bytes() == b"second"
    assert os.listdir(target.parent) == ["file.bin"]


def test_interrupted_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "file.bin"
    write_bytes_atomic(target, b"good")
    with pytest.raises(KeyboardInterrupt):
        with atomic_open(target) as stream:
            stream.write(b"half")
            raise KeyboardInterrupt
    assert target.read_bytes() == b"good"
    assert os.listdir(tmp_path) == ["file.bin"]


def test_files_get_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        target = write_bytes_atomic(tmp_path / "file.bin", b"x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_atomic_path_keeps_the_suffix_for_writers_that_go_by_name(tmp_path):
    with atomic_path(tmp_path / "figure.png", ".png") as temporary:
        assert temporary.endswith(".png") and os.path.dirname(temporary) == str(tmp_path)
        with open(temporary, "wb") as stream:
            stream.write(b"png")
    assert (tmp_path / "figure.png").read_bytes() == b"png"


def test_save_tree_round_trip(tmp_path):
    conv = eqx.nn.Conv1d(1, 1, 3, key=jax.random.PRNGKey(0))
    path = save_tree_atomic(tmp_path / "net.eqx", conv)
    like = eqx.nn.Conv1d(1, 1, 3, key=jax.random.PRNGKey(1))
    loaded = eqx.tree_deserialise_leaves(path, like)
    np.testing.assert_array_equal(loaded.weight, conv.weight)
