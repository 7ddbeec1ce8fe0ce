"""Run every example script in smoke mode.

THE RULE FOR EXAMPLES: every `examples/*.py` script must support

- `--smoke`: a tiny configuration that finishes in seconds (well under 40 s on two CPU
  cores) and still runs every code path of the full example (training, rollout,
  metrics, plots);
- `--out DIR`: the directory its figures are written to (created if missing); with
  matplotlib installed a smoke run writes at least one PNG there.

The scripts are discovered with a glob, so a new example is tested automatically; one
that lacks `--smoke` or `--out` fails here with a message saying so. An example that
imports an optional extra (exponax, pdequinox, matplotlib) is skipped with a reason
when the extra is not installed. Each script runs in a fresh subprocess (its own JAX
runtime and compilation), with the working directory set to a temporary directory, so
nothing is written into the repository, and with `JAX_DISABLE_MOST_OPTIMIZATIONS=1`
(compilation dominates a smoke run).
"""

import ast
import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest

EXAMPLES_DIR = pathlib.Path(__file__).resolve().parent.parent / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.py"))

# Third-party modules an example may need beyond the core dependencies, and the
# extra that provides them.
OPTIONAL_MODULES = {
    "exponax": "pde",
    "pdequinox": "pde",
    "matplotlib": "plot",
}

SMOKE_TIMEOUT_S = 300  # generous: the runs share two CPU cores with other work


def _imported_modules(path: pathlib.Path) -> set[str]:
    """Top-level names of every module the script imports (anywhere in the file)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _declares_option(path: pathlib.Path, option: str) -> bool:
    return f'"{option}"' in path.read_text() or f"'{option}'" in path.read_text()


def test_examples_are_found():
    assert EXAMPLES, f"no example scripts found in {EXAMPLES_DIR}"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_smoke(path, tmp_path):
    missing = sorted(
        f"{module} (pip install -e '.[{extra}]')"
        for module, extra in OPTIONAL_MODULES.items()
        if module in _imported_modules(path) and importlib.util.find_spec(module) is None
    )
    if missing:
        pytest.skip(f"examples/{path.name} needs {', '.join(missing)}")
    for option, meaning in (
        ("--smoke", "a seconds-long run of all its code paths"),
        ("--out", "the directory for its figures, created if missing"),
    ):
        if not _declares_option(path, option):
            pytest.fail(
                f"examples/{path.name} has no `{option}` option ({meaning}). Every "
                "example must accept `--smoke` and `--out DIR`; see the rule at the top "
                "of tests/test_examples.py and examples/README.md."
            )

    out = tmp_path / "out"  # does not exist yet: the example must create it
    work = tmp_path / "cwd"
    work.mkdir()
    # Smoke runs are dominated by XLA compilation (a tiny network still compiles its
    # initialisers, training steps and rollouts); skipping most XLA optimisation passes
    # makes them two to five times faster on CPU without changing what runs.
    env = dict(os.environ, MPLBACKEND="Agg", JAX_DISABLE_MOST_OPTIMIZATIONS="1")
    command = [sys.executable, str(path), "--smoke", "--out", str(out)]
    try:
        completed = subprocess.run(
            command, check=False, cwd=work, env=env, capture_output=True, text=True,
            timeout=SMOKE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as err:
        pytest.fail(
            f"examples/{path.name} --smoke did not finish in {SMOKE_TIMEOUT_S} s; the "
            f"smoke mode must be a seconds-long run.\n--- stdout ---\n{err.stdout}"
            f"\n--- stderr ---\n{err.stderr}"
        )
    assert completed.returncode == 0, (
        f"{' '.join(command)} exited with {completed.returncode}.\n--- stdout ---\n"
        f"{completed.stdout}\n--- stderr ---\n{completed.stderr}"
    )
    if importlib.util.find_spec("matplotlib") is None:
        return  # examples skip their plots without matplotlib
    pngs = sorted(out.rglob("*.png")) if out.exists() else []
    assert pngs, (
        f"examples/{path.name} --smoke wrote no PNG into --out {out}.\n--- stdout ---\n"
        f"{completed.stdout}"
    )
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{png} is not a PNG file"
    stray = sorted(p.name for p in work.rglob("*.png"))
    assert not stray, f"examples/{path.name} wrote {stray} outside --out"
