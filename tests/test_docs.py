"""The documentation: it builds with `mkdocs build --strict`, and the API reference
documents every public name, so that a new export cannot be forgotten.

The build needs the docs tools (`pip install -e ".[docs]"`); without them that test
is skipped. The name check needs nothing beyond trainax_fm itself.
"""

import importlib
import os
import pkgutil
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

import trainax_fm

ROOT = Path(__file__).resolve().parents[1]
API_DIR = ROOT / "docs" / "api"
DIRECTIVE = re.compile(r"^:::\s+([A-Za-z_][\w.]*)\s*$", re.MULTILINE)


def public_subpackages() -> dict[str, types.ModuleType]:
    """Every public subpackage or module of trainax_fm, found on disk and imported."""
    found = {}
    for info in pkgutil.iter_modules(trainax_fm.__path__):
        if not info.name.startswith("_"):
            found[info.name] = importlib.import_module(f"trainax_fm.{info.name}")
    return found


def exported_names(module: types.ModuleType) -> list[str]:
    """Public, non-module attributes of `module` (its explicit re-exports)."""
    return sorted(
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    )


def public_names() -> set[str]:
    """Full paths of every public object: `trainax_fm.X` and `trainax_fm.sub.X`."""
    names = {f"trainax_fm.{name}" for name in exported_names(trainax_fm)}
    for sub_name, module in public_subpackages().items():
        names.update(f"trainax_fm.{sub_name}.{name}" for name in exported_names(module))
    return names


def documented_objects() -> set[str]:
    """Identifiers rendered by `::: identifier` directives in docs/api/*.md."""
    found = set()
    for page in sorted(API_DIR.glob("*.md")):
        found.update(DIRECTIVE.findall(page.read_text(encoding="utf-8")))
    return found


def test_public_names_are_found():
    names = public_names()
    # A sanity check of the discovery itself, so the next test cannot pass vacuously.
    for expected in (
        "trainax_fm.GeneralTrainer",
        "trainax_fm.rollout",
        "trainax_fm.loss.MSELoss",
        "trainax_fm.configuration.Supervised",
        "trainax_fm.trainer.SupervisedTrainer",
        "trainax_fm.flow.FlowMap",
        "trainax_fm.metrics.nrmse",
    ):
        assert expected in names
    assert not any(name.startswith("trainax_fm._") for name in names)


def test_every_public_name_is_in_the_api_reference():
    documented = documented_objects()
    missing = sorted(public_names() - documented)
    assert not missing, (
        "These public names have no `::: name` entry in docs/api/*.md; add each to "
        "the page of its subpackage (and the page to the nav of mkdocs.yml for a new "
        "subpackage):\n  " + "\n  ".join(missing)
    )


def test_every_subpackage_has_an_api_page_with_its_overview():
    documented = documented_objects()
    missing = sorted(
        f"trainax_fm.{name}"
        for name in public_subpackages()
        if f"trainax_fm.{name}" not in documented
    )
    assert not missing, (
        "These subpackages have no overview entry (`::: trainax_fm.<name>` with "
        "`members: false`) in docs/api/: " + ", ".join(missing)
    )
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in sorted(API_DIR.glob("*.md")):
        assert f"api/{page.name}" in nav, f"docs/api/{page.name} is not in the nav of mkdocs.yml"


def test_api_reference_has_no_stale_entries():
    """Every `:::` entry must name an importable object (a renamed export breaks it)."""
    stale = []
    for identifier in sorted(documented_objects()):
        parts = identifier.split(".")
        obj = importlib.import_module(parts[0])
        for depth, part in enumerate(parts[1:], start=1):
            if hasattr(obj, part):
                obj = getattr(obj, part)
                continue
            try:
                obj = importlib.import_module(".".join(parts[: depth + 1]))
            except ImportError:
                stale.append(identifier)
                break
    assert not stale, "docs/api/ documents objects that do not exist: " + ", ".join(stale)


def test_mkdocs_build_strict(tmp_path):
    for tool in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        pytest.importorskip(
            tool, reason="the docs tools are not installed (pip install -e '.[docs]')"
        )
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    completed = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site),
         "--config-file", str(ROOT / "mkdocs.yml")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, "mkdocs build --strict failed:\n" + output[-6000:]
    assert (site / "index.html").is_file()

    # Every public name got rendered (an anchor with its full path) somewhere in the
    # API reference: a docstring that fails to load would otherwise go unnoticed.
    anchors = set()
    for page in (site / "api").rglob("*.html"):
        anchors.update(re.findall(r'id="(trainax_fm[\w.]*)"', page.read_text(encoding="utf-8")))
    not_rendered = sorted(public_names() - anchors)
    assert not not_rendered, "not rendered in the API reference: " + ", ".join(not_rendered)
