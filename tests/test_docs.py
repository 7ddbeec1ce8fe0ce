"""The documentation: it builds with `mkdocs build --strict`, the API reference
documents every public name, so that a new export cannot be forgotten, and the built
site loads nothing from the network (formulas and diagrams render offline).

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
import trainax_fm.trainer
from trainax_fm._loop._options import ENGINE_OPTION_NAMES

ROOT = Path(__file__).resolve().parents[1]
API_DIR = ROOT / "docs" / "api"
DIRECTIVE = re.compile(r"^:::\s+([A-Za-z_][\w.]*)\s*$", re.MULTILINE)
# A tag that makes the browser fetch a script, stylesheet, font or image from elsewhere.
EXTERNAL_ASSET = re.compile(
    r"<(?:script|link|img|iframe)\b[^>]*?\b(?:src|href)=[\"']?((?:https?:)?//[^\"'\s>]+)",
    re.IGNORECASE,
)


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

    # Every trainer's rendered signature spells out its keywords, engine options included
    # (mkdocstrings reads the source, so `**keywords` would hide them).
    trainer_page = (site / "api" / "trainer" / "index.html").read_text(encoding="utf-8")
    trainer_page = trainer_page.replace("\n", " ")
    for name in exported_names(trainax_fm.trainer):
        start = trainer_page.index(f'id="trainax_fm.trainer.{name}"')
        end = trainer_page.find('id="trainax_fm.trainer.', start + 1)
        section = re.sub(r"<[^>]+>", "", trainer_page[start:end if end > 0 else None])
        signature = section[section.index(f"{name}(data_trajectories"):]
        for option in ENGINE_OPTION_NAMES:
            assert f"{option}:" in signature, (
                f"the API reference does not show `{option}` in {name}'s signature"
            )

    # Offline viewing: no page makes the browser fetch anything from another host.
    fetched = {}
    for page in site.rglob("*.html"):
        for url in EXTERNAL_ASSET.findall(page.read_text(encoding="utf-8")):
            fetched.setdefault(url, str(page.relative_to(site)))
    assert not fetched, "pages load assets from the network: " + ", ".join(
        f"{url} ({page})" for url, page in sorted(fetched.items())
    )
    assert (site / "javascripts" / "vendor" / "mermaid" / "mermaid.min.js").is_file()
    assert (site / "javascripts" / "vendor" / "mathjax" / "tex-chtml.js").is_file()
    assert not (site / "javascripts" / "vendor" / "update.sh").exists()


def mkdocs_config() -> dict:
    """mkdocs.yml as a dict (its `!!python/name:` tags read as plain strings)."""
    yaml = pytest.importorskip("yaml", reason="PyYAML reads mkdocs.yml (it comes with mkdocs)")

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor(
        "tag:yaml.org,2002:python/", lambda loader, suffix, node: suffix
    )
    return yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=Loader)


def test_extra_scripts_and_styles_are_served_with_the_site():
    config = mkdocs_config()
    scripts = config.get("extra_javascript", [])
    assets = scripts + config.get("extra_css", [])
    for asset in assets:
        path = asset if isinstance(asset, str) else asset["path"]
        assert not re.match(r"(https?:)?//", path), (
            f"mkdocs.yml loads {path} from the network, so pages need one to render; "
            "serve a copy from docs/javascripts/vendor/ (see update.sh there)."
        )
        assert (ROOT / "docs" / path).is_file(), f"mkdocs.yml names {path}, not in docs/"
    # mkdocs-material fetches Mermaid from unpkg.com unless the page defines it, and
    # MathJax is what turns arithmatex's `\\(...\\)` into formulas.
    names = [Path(s if isinstance(s, str) else s["path"]).name for s in scripts]
    assert "mermaid.min.js" in names, "serve Mermaid with the site (extra_javascript)"
    assert any(name.startswith("tex-") and name.endswith(".js") for name in names), (
        "serve MathJax with the site (extra_javascript)"
    )
    assert config["theme"].get("font") is False, "theme.font must be false (no Google Fonts)"
    for package in ("mathjax", "mermaid"):
        licence = ROOT / "docs" / "javascripts" / "vendor" / package / "LICENSE"
        assert licence.is_file(), f"the vendored {package} comes without its licence"


def test_external_asset_pattern():
    # The built-site check below relies on this pattern; it must tell CDN tags from local ones.
    assert EXTERNAL_ASSET.findall(
        '<script src="https://unpkg.com/mermaid.js"></script>'
        '<link rel="stylesheet" href="//fonts.googleapis.com/css">'
        '<script src="../javascripts/vendor/mermaid/mermaid.min.js"></script>'
        '<a href="https://github.com/x">a link is not fetched</a>'
    ) == ["https://unpkg.com/mermaid.js", "//fonts.googleapis.com/css"]


README_SNIPPET = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def readme_snippets() -> list[str]:
    return README_SNIPPET.findall((ROOT / "README.md").read_text(encoding="utf-8"))


def test_readme_has_the_snippets_this_file_runs():
    snippets = readme_snippets()
    assert any("SupervisedTrainer" in snippet for snippet in snippets)
    assert any("FlowMatchingTrainer" in snippet for snippet in snippets)


@pytest.mark.parametrize("index", range(len(readme_snippets())))
def test_readme_snippet_runs_as_written(index):
    """Each ```python block of the README runs on its own, in a fresh namespace.

    Only the number of updates is cut to 3 (the test checks that every name is defined
    and every call accepted, not the training result).
    """
    snippet = readme_snippets()[index]
    quick = re.sub(r"num_training_steps=\d+", "num_training_steps=3", snippet)
    namespace: dict = {}
    exec(compile(quick, f"README.md python block {index}", "exec"), namespace)
    if "ensemble" in namespace:  # the flow-matching block: 8 samples of 100 steps
        data, ensemble = namespace["data"], namespace["ensemble"]
        assert ensemble.shape == (8, 100, *data.shape[2:])
