"""Tests of `trainax_fm.plot`: figures, files, input checks and the optional import."""

import builtins
import sys

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

import matplotlib.figure  # noqa: E402
from PIL import Image  # noqa: E402

import trainax_fm.plot as tplot  # noqa: E402
from trainax_fm.plot._common import _require_matplotlib, _require_pillow  # noqa: E402

RNG = np.random.default_rng(0)
TRAJ_1D = RNG.normal(size=(6, 2, 8))
TRAJ_2D = RNG.normal(size=(4, 1, 6, 6))
TRAJ_3D = RNG.normal(size=(3, 2, 4, 5, 6))


def _assert_png(path):
    assert path.exists() and path.stat().st_size > 0
    with Image.open(path) as image:
        assert image.format == "PNG"
    leftovers = [p for p in path.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []  # the temporary file was moved into place


# --- every function: a Figure and a PNG ---------------------------------------------


def test_loss_history_forms(tmp_path):
    single = np.exp(-np.linspace(0, 3, 20))
    fig = tplot.loss_history(single, save=tmp_path / "one.png")
    assert isinstance(fig, matplotlib.figure.Figure)
    _assert_png(tmp_path / "one.png")

    # 2D: seeds of one method -> median line with a band
    runs = single[None] * np.array([[1.0], [1.5], [2.0]])
    fig = tplot.loss_history(runs, every=5, log=False)
    ax = fig.axes[0]
    assert len(ax.lines) == 1 and len(ax.collections) == 1
    np.testing.assert_allclose(ax.lines[0].get_xdata(), np.arange(20) * 5)
    np.testing.assert_allclose(ax.lines[0].get_ydata(), single * 1.5)
    assert ax.get_yscale() == "linear" and ax.get_xscale() == "linear"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("update", "loss")
    assert tplot.loss_history(single, title="L").axes[0].get_yscale() == "log"

    # list with a repeated label pools runs (of unequal lengths); band=None: no band
    fig = tplot.loss_history(
        [single, single[:10] * 2, runs], labels=["a", "a", "b"], band=None
    )
    assert len(fig.axes[0].lines) == 2 and len(fig.axes[0].collections) == 0

    # a plain list of floats is one history
    fig = tplot.loss_history([1.0, 0.5, 0.25])
    assert len(fig.axes[0].lines) == 1 and not fig.axes[0].get_legend()

    # mapping and an existing Axes
    host = matplotlib.figure.Figure()
    ax = host.add_subplot()
    assert tplot.loss_history({"x": single, "y": runs}, ax=ax) is host
    assert len(ax.lines) == 2


def test_error_over_time(tmp_path):
    errors = {"one-step": np.linspace(0, 1, 5), "unrolled": RNG.random((3, 5))}
    fig = tplot.error_over_time(errors, dt=0.5, save=tmp_path / "err.png", log=True)
    assert isinstance(fig, matplotlib.figure.Figure)
    _assert_png(tmp_path / "err.png")
    lines = fig.axes[0].lines
    np.testing.assert_allclose(lines[0].get_xdata(), 0.5 * np.arange(1, 6))
    assert len(fig.axes[0].collections) == 1  # band only for the 3 seeds
    assert fig.axes[0].get_yscale() == "log" and fig.axes[0].get_legend() is not None
    fig = tplot.error_over_time(errors, ylabel="VRMSE", title="T")
    ax = fig.axes[0]
    assert (ax.get_ylabel(), ax.get_title(), ax.get_yscale()) == ("VRMSE", "T", "linear")
    fig = tplot.error_over_time(np.ones(4), labels=["m"], include_init=True)
    np.testing.assert_allclose(fig.axes[0].lines[0].get_xdata(), np.arange(4))


@pytest.mark.parametrize("time_axis", ["horizontal", "vertical"])
def test_spacetime(tmp_path, time_axis):
    reference = TRAJ_1D + 0.1
    fig = tplot.spacetime(TRAJ_1D, reference, channel=1, time_axis=time_axis,
                          save=tmp_path / "st.png")
    assert isinstance(fig, matplotlib.figure.Figure)
    _assert_png(tmp_path / "st.png")
    images = [im for ax in fig.axes for im in ax.images]
    assert len(images) == 3
    assert images[0].get_clim() == images[1].get_clim()  # shared colour limits
    np.testing.assert_allclose(images[2].get_array(), -0.1)
    shown = images[0].get_array()
    expected = TRAJ_1D[:, 1].T if time_axis == "horizontal" else TRAJ_1D[:, 1]
    np.testing.assert_allclose(shown, expected)
    # prediction only: one panel, drawn into a given Axes
    host = matplotlib.figure.Figure()
    fig = tplot.spacetime(TRAJ_1D, titles=None, axes=[host.add_subplot()])
    assert fig is host and sum(len(ax.images) for ax in fig.axes) == 1


def test_snapshots_2d(tmp_path):
    fig = tplot.snapshots_2d(TRAJ_2D, times=[0, -1], reference=TRAJ_2D * 0.5,
                             difference=True, save=tmp_path / "snap.png")
    assert isinstance(fig, matplotlib.figure.Figure)
    _assert_png(tmp_path / "snap.png")
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 3 * 2
    fig = tplot.snapshots_2d(TRAJ_2D)  # default times: all 4 steps
    assert len([ax for ax in fig.axes if ax.images]) == 4


def test_energy_spectra(tmp_path):
    x = np.arange(16) / 16
    wave = np.sin(2 * np.pi * 3 * x)[None]
    state_2d = RNG.normal(size=(2, 8, 8))
    fig = tplot.energy_spectra([wave, state_2d], labels=["sine", "noise"],
                               save=tmp_path / "spec.png")
    assert isinstance(fig, matplotlib.figure.Figure)
    _assert_png(tmp_path / "spec.png")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    sine = ax.lines[0]
    np.testing.assert_allclose(sine.get_xdata(), np.arange(1, 9))
    np.testing.assert_allclose(sine.get_ydata()[2], 0.5, rtol=1e-5)
    assert tplot.energy_spectra(wave) is not None  # a single state


@pytest.mark.parametrize("trajectory", [TRAJ_1D, TRAJ_2D], ids=["1d", "2d"])
def test_animate_rollout(tmp_path, trajectory):
    target = tmp_path / "sub" / "roll.gif"
    out = tplot.animate_rollout(trajectory, target, reference=trajectory * 0.9, fps=5)
    assert out == target and target.stat().st_size > 0
    with Image.open(target) as image:
        assert image.format == "GIF"
        assert image.n_frames == trajectory.shape[0] > 1
    assert [p.name for p in target.parent.iterdir()] == ["roll.gif"]
    # stride keeps the last step
    tplot.animate_rollout(trajectory, target, stride=2, include_init=True)
    with Image.open(target) as image:
        assert image.n_frames == {6: 4, 4: 3}[trajectory.shape[0]]  # 0,2,4,5 / 0,2,3


# --- 3D fields: slices and projections ---------------------------------------------


def _image_data(fig, row=0, column=0):
    """The array drawn in the image of a panel, as `field[i, j]` (undo the transpose)."""
    columns = len({ax.get_subplotspec().colspan.start for ax in fig.axes if ax.images})
    return np.asarray(fig.axes[row * columns + column].images[0].get_array()).T


def test_snapshots_of_a_3d_rollout(tmp_path):
    """A 3D rollout is drawn as its middle slice across the last axis by default, or
    any slice or projection; the figure is titled with the plane."""
    fig = tplot.snapshots_2d(
        TRAJ_3D, times=[0, -1], reference=TRAJ_3D * 0.5, difference=True,
        save=tmp_path / "three.png",
    )
    _assert_png(tmp_path / "three.png")
    np.testing.assert_allclose(_image_data(fig), TRAJ_3D[0, 0, :, :, 3])
    assert fig._suptitle.get_text() == "z = 3"
    fig = tplot.snapshots_2d(TRAJ_3D, times=[1], channel=1, slice_axis=0, slice_at=-1)
    np.testing.assert_allclose(_image_data(fig), TRAJ_3D[1, 1, 3])
    assert fig._suptitle.get_text() == "x = 3"
    fig = tplot.snapshots_2d(TRAJ_3D, times=[2], slice_axis=1, slice_at="mean")
    np.testing.assert_allclose(_image_data(fig), TRAJ_3D[2, 0].mean(axis=1))
    assert fig._suptitle.get_text() == "mean over y"
    fig = tplot.snapshots_2d(TRAJ_3D, times=[2], slice_at="max")
    np.testing.assert_allclose(_image_data(fig), TRAJ_3D[2, 0].max(axis=2))
    # 2D data has no plane to choose: unchanged, no title.
    assert tplot.snapshots_2d(TRAJ_2D, slice_at=0)._suptitle is None


def test_animate_and_spectra_of_3d_fields(tmp_path):
    target = tmp_path / "three.gif"
    tplot.animate_rollout(TRAJ_3D, target, reference=TRAJ_3D, slice_at="mean")
    with Image.open(target) as image:
        assert image.format == "GIF" and image.n_frames == TRAJ_3D.shape[0]
    cubic = RNG.normal(size=(2, 1, 6, 6, 6))
    fig = tplot.energy_spectra(list(cubic), save=tmp_path / "spectra.png")
    _assert_png(tmp_path / "spectra.png")
    assert len(fig.axes[0].lines) == 2


@pytest.mark.parametrize(
    "keywords, match",
    [
        ({"slice_axis": 3}, "slice_axis"),
        ({"slice_axis": 1.0}, "slice_axis"),
        ({"slice_at": 6}, "slice_at=6.*6 points of axis z"),
        ({"slice_at": "median"}, "slice_at"),
        ({"slice_at": 1.5}, "slice_at"),
    ],
)
def test_3d_plane_choice_is_checked(keywords, match):
    with pytest.raises((ValueError, TypeError), match=match):
        tplot.snapshots_2d(TRAJ_3D, **keywords)
    with pytest.raises((ValueError, TypeError), match=match):
        tplot.animate_rollout(TRAJ_3D, "never.gif", **keywords)


# --- input checks -------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: tplot.loss_history(np.ones((2, 3, 4))), r"histories.*\(2, 3, 4\)"),
        (lambda: tplot.loss_history([np.ones(3)] * 2, labels=["a"]), "labels.*2.*1"),
        (lambda: tplot.loss_history(np.ones(3), band=(0.8, 0.2)), "band"),
        (lambda: tplot.error_over_time({"a": np.ones((2, 3, 4))}), r"errors\['a'\]"),
        (lambda: tplot.error_over_time([np.ones(3)], labels=["a", "b"]), "labels"),
        (lambda: tplot.error_over_time([]), "`errors` is empty"),
        (lambda: tplot.loss_history({}), "`histories` is empty"),
        (lambda: tplot.loss_history({"b": np.ones((2, 3, 4))}), r"histories\['b'\]"),
        (lambda: tplot.loss_history([np.ones(3), np.ones(0)]), r"histories\[1\].*empty"),
        (lambda: tplot.spacetime(TRAJ_2D), r"prediction.*\(T, C, N\).*rank 4"),
        (lambda: tplot.spacetime(TRAJ_1D, TRAJ_1D[:3]), "reference.*shape"),
        (lambda: tplot.spacetime(TRAJ_1D, channel=2), "channel"),
        (lambda: tplot.spacetime(TRAJ_1D, time_axis="diagonal"), "time_axis"),
        (lambda: tplot.spacetime(TRAJ_1D, TRAJ_1D, axes=[None]), "axes.*3.*1"),
        (lambda: tplot.snapshots_2d(TRAJ_1D), r"trajectory.*\(T, C, H, W\) or"),
        (lambda: tplot.snapshots_2d(TRAJ_3D[None]), r"\(T, C, X, Y, Z\).*rank 6"),
        (lambda: tplot.snapshots_2d(TRAJ_2D, times=[4]), "times"),
        (lambda: tplot.snapshots_2d(TRAJ_2D, difference=True), "reference"),
        (lambda: tplot.energy_spectra(np.ones(8)), r"states.*\(C, \*spatial\)"),
        (lambda: tplot.energy_spectra([np.ones((1, 8))], labels=["a", "b"]), "labels"),
        (lambda: tplot.energy_spectra([np.ones((1, 4, 6))]), r"states\[0\]"),
        (lambda: tplot.animate_rollout(np.ones((3, 8)), "x.gif"), "trajectory"),
        (lambda: tplot.animate_rollout(TRAJ_1D, "x.png"), "gif"),
    ],
)
def test_invalid_inputs_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_failed_save_leaves_no_file(tmp_path):
    target = tmp_path / "bad.notaformat"
    with pytest.raises(ValueError, match="notaformat"):
        tplot.loss_history(np.ones(3), save=target)
    assert list(tmp_path.iterdir()) == []


# --- optional dependencies ----------------------------------------------------------


def _block_import(monkeypatch, blocked):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.split(".")[0] == blocked:
            raise ImportError(f"No module named {blocked!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)


def test_missing_matplotlib_gives_install_hint(monkeypatch, tmp_path):
    _block_import(monkeypatch, "matplotlib")
    with pytest.raises(ImportError, match=r'pip install "trainax_fm\[plot\]"'):
        _require_matplotlib()
    with pytest.raises(ImportError, match="trainax_fm.plot needs matplotlib"):
        tplot.loss_history(np.ones(3))
    with pytest.raises(ImportError, match="matplotlib"):
        tplot.animate_rollout(TRAJ_1D, tmp_path / "a.gif")


def test_missing_pillow_gives_hint(monkeypatch, tmp_path):
    _block_import(monkeypatch, "PIL")
    with pytest.raises(ImportError, match="Pillow"):
        _require_pillow()
    with pytest.raises(ImportError, match="pip install pillow"):
        tplot.animate_rollout(TRAJ_1D, tmp_path / "a.gif")


def test_plot_import_is_lazy():
    code = (
        "import sys, trainax_fm, trainax_fm.plot; "
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported eagerly'"
    )
    import subprocess

    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
