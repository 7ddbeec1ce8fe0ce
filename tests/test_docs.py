"""The documentation: it builds with `mkdocs build --strict`, the API reference
documents every public name, so that a new export cannot be forgotten, and the built
site loads nothing from the network (formulas and diagrams render offline).

The build needs the docs tools (`pip install -e ".[docs]"`); without them that test
is skipped. Its hook (docs/hooks/vendor.py) fetches MathJax and Mermaid from the npm
registry when docs/javascripts/vendor/ lacks them, so from a clean checkout the build
also needs npm and a network. The name check needs nothing beyond trainax_fm itself.
"""

import importlib
import importlib.util
import io
import os
import pkgutil
import re
import shutil
import subprocess
import sys
import tarfile
import types
from pathlib import Path

import pytest

import trainax_fm
import trainax_fm.trainer
from trainax_fm._loop._options import ENGINE_OPTION_NAMES

ROOT = Path(__file__).resolve().parents[1]
API_DIR = ROOT / "docs" / "api"
VENDOR_HOOK = ROOT / "docs" / "hooks" / "vendor.py"
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
        # One parameter a line when mkdocstrings formats signatures (with ruff or black).
        section = re.sub(r"\(\s+", "(", section)
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
    # The hook fetched MathJax and Mermaid (from a clean checkout) before mkdocs
    # collected docs/, so the site serves them, each with its licence.
    vendor = site / "javascripts" / "vendor"
    assert (vendor / "mermaid" / "mermaid.min.js").is_file()
    assert (vendor / "mathjax" / "tex-chtml.js").is_file()
    assert any((vendor / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))
    assert (vendor / "mathjax" / "input" / "tex" / "extensions" / "cancel.js").is_file()
    for package in ("mathjax", "mermaid"):
        assert (vendor / package / "LICENSE").is_file(), (
            f"the site serves {package} without its licence"
        )
    # Neither the build's own code nor the fetch's bookkeeping is published.
    assert not (site / "hooks").exists()
    assert not list(vendor.rglob(".*"))


def mkdocs_config() -> dict:
    """mkdocs.yml as a dict (its `!!python/name:` tags read as plain strings)."""
    yaml = pytest.importorskip("yaml", reason="PyYAML reads mkdocs.yml (it comes with mkdocs)")

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor(
        "tag:yaml.org,2002:python/", lambda loader, suffix, node: suffix
    )
    return yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=Loader)


def vendor_hook() -> types.ModuleType:
    """docs/hooks/vendor.py, the mkdocs hook that fetches MathJax and Mermaid."""
    spec = importlib.util.spec_from_file_location("trainax_fm_docs_vendor_hook", VENDOR_HOOK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_extra_scripts_and_styles_are_served_with_the_site():
    config = mkdocs_config()
    hook = vendor_hook()
    fetched = {
        f"javascripts/vendor/{package}/{target}"
        for package in hook.COPIED
        for _, target in hook.COPIED[package]
    }
    scripts = config.get("extra_javascript", [])
    assets = scripts + config.get("extra_css", [])
    for asset in assets:
        path = asset if isinstance(asset, str) else asset["path"]
        assert not re.match(r"(https?:)?//", path), (
            f"mkdocs.yml loads {path} from the network, so pages need one to render; "
            "serve a copy from docs/javascripts/vendor/ (fetched by docs/hooks/vendor.py)."
        )
        assert path in fetched or (ROOT / "docs" / path).is_file(), (
            f"mkdocs.yml names {path}: neither in docs/ nor fetched by docs/hooks/vendor.py"
        )
    # mkdocs-material fetches Mermaid from unpkg.com unless the page defines it, and
    # MathJax is what turns arithmatex's `\\(...\\)` into formulas.
    names = [Path(s if isinstance(s, str) else s["path"]).name for s in scripts]
    assert "mermaid.min.js" in names, "serve Mermaid with the site (extra_javascript)"
    assert any(name.startswith("tex-") and name.endswith(".js") for name in names), (
        "serve MathJax with the site (extra_javascript)"
    )
    assert config["theme"].get("font") is False, "theme.font must be false (no Google Fonts)"
    assert "docs/hooks/vendor.py" in config.get("hooks", []), (
        "mkdocs.yml must run docs/hooks/vendor.py (it fetches MathJax and Mermaid)"
    )
    for package in hook.COPIED:
        assert "LICENSE" in hook.required(package), f"{package} must be served with its licence"


def test_vendor_hook_keeps_only_what_the_site_serves():
    destination = vendor_hook().destination
    assert destination("mathjax", "package/LICENSE") == "LICENSE"
    assert destination("mathjax", "package/es5/tex-chtml.js") == "tex-chtml.js"
    assert destination("mathjax", "package/es5/output/chtml/fonts/woff-v2/MathJax_Zero.woff") == (
        "output/chtml/fonts/woff-v2/MathJax_Zero.woff"
    )
    assert destination("mathjax", "package/es5/input/tex/extensions/cancel.js") == (
        "input/tex/extensions/cancel.js"
    )
    for unused in (
        "package/es5/input/tex/extensions/all-packages.js",  # the all-in-one bundle
        "package/es5/tex-svg.js",
        "package/es5/output/chtml/fonts/tex.js",
        "package/package.json",
        "package/es5/input/tex/extensions/../../../../evil.js",
        "other/LICENSE",
    ):
        assert destination("mathjax", unused) is None, unused
    assert destination("mermaid", "package/LICENSE") == "LICENSE"
    assert destination("mermaid", "package/dist/mermaid.min.js") == "mermaid.min.js"
    assert destination("mermaid", "package/dist/mermaid.js") is None
    assert destination("mermaid", "package/dist/mermaid.min.js.map") is None


def test_vendor_hook_installs_a_complete_folder_or_nothing(tmp_path):
    """The unpacking and the atomic install, on a small stand-in for the npm tarball."""
    hook = vendor_hook()
    tarball = tmp_path / "mathjax.tgz"
    members = {
        "package/LICENSE": b"licence",
        "package/es5/tex-chtml.js": b"mathjax",
        "package/es5/tex-svg.js": b"unused",
        "package/es5/output/chtml/fonts/woff-v2/MathJax_Zero.woff": b"font",
        "package/es5/input/tex/extensions/cancel.js": b"extension",
        "package/es5/input/tex/extensions/all-packages.js": b"bundle",
    }
    with tarfile.open(tarball, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    (vendor / "mathjax").mkdir()  # an outdated or half-written folder is replaced
    (vendor / "mathjax" / "stale.js").write_bytes(b"old")
    assert not hook.is_current("mathjax", vendor)
    hook._install("mathjax", tarball, vendor)
    assert hook.is_current("mathjax", vendor)
    installed = sorted(
        str(path.relative_to(vendor)) for path in vendor.rglob("*") if path.is_file()
    )
    assert installed == [
        "mathjax/.version",
        "mathjax/LICENSE",
        "mathjax/input/tex/extensions/cancel.js",
        "mathjax/output/chtml/fonts/woff-v2/MathJax_Zero.woff",
        "mathjax/tex-chtml.js",
    ]
    assert [path.name for path in vendor.iterdir()] == ["mathjax"]  # no staging left over

    # A tarball that lacks a required file leaves the installed folder as it was.
    broken = tmp_path / "broken.tgz"
    with tarfile.open(broken, "w:gz") as archive:
        info = tarfile.TarInfo("package/LICENSE")
        archive.addfile(info, io.BytesIO(b""))
    with pytest.raises(hook.PluginError, match="tex-chtml.js"):
        hook._install("mathjax", broken, vendor)
    assert hook.is_current("mathjax", vendor)
    assert [path.name for path in vendor.iterdir()] == ["mathjax"]


def test_vendor_hook_says_what_to_install_without_npm(tmp_path, monkeypatch):
    hook = vendor_hook()
    monkeypatch.setattr(hook.shutil, "which", lambda name: None)
    with pytest.raises(hook.PluginError, match="npm"):
        hook.fetch(vendor=tmp_path / "vendor")


def test_fetched_libraries_are_not_committed():
    """MathJax and Mermaid are other projects' code: fetched at build time, never committed."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    vendor = ROOT / "docs" / "javascripts" / "vendor"
    tracked = subprocess.run(
        ["git", "ls-files", "--", str(vendor)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert not tracked, "third-party files are committed: " + ", ".join(tracked)
    for package in ("mathjax", "mermaid"):
        probe = vendor / package / "LICENSE"
        ignored = subprocess.run(["git", "check-ignore", "-q", str(probe)], cwd=ROOT, check=False)
        assert ignored.returncode == 0, (
            f".gitignore must ignore docs/javascripts/vendor/{package}/"
        )


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
