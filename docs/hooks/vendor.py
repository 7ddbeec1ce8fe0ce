"""mkdocs hook: fetch the JavaScript the docs site serves itself, at build time.

Built pages render formulas (MathJax) and diagrams (Mermaid) from copies served with
the site, so that they work without a network (clusters, air-gapped machines). Those
copies are other projects' code, so they are not committed: before each build this hook
checks docs/javascripts/vendor/mathjax/ and .../mermaid/ and, where one is missing or
holds another version, downloads the package tarball once from the npm registry
(`npm pack`, which needs `npm` and a network) and copies the files the site needs, with
the package's licence, into place. Later builds, and the built site, need neither.

The versions (and the tarballs' checksums) are pinned here and only here. To update a
library, change its version and integrity in PACKAGES (`npm view mathjax@X dist.integrity`),
build the docs and check the pages.

Registered in mkdocs.yml under `hooks:`; excluded from the site by `exclude_docs`.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

try:
    from mkdocs.exceptions import PluginError
except ImportError:  # the module is also imported by the tests, without mkdocs

    class PluginError(RuntimeError):  # type: ignore[no-redef]
        pass


VENDOR = Path(__file__).resolve().parents[1] / "javascripts" / "vendor"

# package: (version, the tarball's npm integrity). MathJax 3: the `MathJax = {...}`
# configuration in docs/javascripts/mathjax.js; Mermaid 11: the major version
# mkdocs-material's integration expects.
PACKAGES = {
    "mathjax": (
        "3.2.2",
        "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==",
    ),
    "mermaid": (
        "11.17.2",
        "sha512-V6K3C8EBdEsPFZXSKMJe6ppQOENxuHARr9GvHX4hh47lAbhMRD9qf4oEK7LoaRQxULMa80/qt5gHO73aCleBBg==",
    ),
}

# package: (path in the tarball below package/, path below vendor/<package>/); a path
# ending in / is a folder, copied with everything in it. MathJax finds its fonts and TeX
# extensions relative to the script's own URL, so the package's es5/ layout is kept.
# The extensions are what `autoload` fetches for macros outside the core (\boldsymbol,
# \cancel, \color, ...).
COPIED = {
    "mathjax": (
        ("LICENSE", "LICENSE"),
        ("es5/tex-chtml.js", "tex-chtml.js"),
        ("es5/output/chtml/fonts/woff-v2/", "output/chtml/fonts/woff-v2/"),
        ("es5/input/tex/extensions/", "input/tex/extensions/"),
    ),
    "mermaid": (
        ("LICENSE", "LICENSE"),
        ("dist/mermaid.min.js", "mermaid.min.js"),
    ),
}
# Left out of the copied folders: the all-in-one bundle of the TeX extensions.
SKIPPED = {"mathjax": ("input/tex/extensions/all-packages.js",)}

# Names the version a folder holds (a dot file: mkdocs does not publish it).
STAMP = ".version"


def destination(package: str, member: str) -> str | None:
    """Where the tarball member `member` goes below vendor/<package>/, or None.

    `member` is the name in the npm tarball (`package/es5/tex-chtml.js`); the result
    is a relative POSIX path (`tex-chtml.js`), None for anything the site does not use.
    """
    parts = PurePosixPath(member).parts
    if len(parts) < 2 or parts[0] != "package" or ".." in parts:
        return None
    inner = "/".join(parts[1:])
    for source, target in COPIED[package]:
        if inner == source:
            found = target
        elif source.endswith("/") and inner.startswith(source):
            found = target + inner[len(source) :]
        else:
            continue
        return None if found in SKIPPED.get(package, ()) else found
    return None


def required(package: str) -> list[str]:
    """What a complete vendor/<package>/ holds: its files, and folders (ending in /)."""
    return [target for _, target in COPIED[package]]


def is_current(package: str, vendor: Path = VENDOR) -> bool:
    folder = vendor / package
    stamp = folder / STAMP
    return (
        stamp.is_file()
        and stamp.read_text(encoding="utf-8").strip() == PACKAGES[package][0]
        and all(_present(folder, name) for name in required(package))
    )


def _present(folder: Path, name: str) -> bool:
    """`name` is a file in `folder`, or for a name ending in / a folder with something in it."""
    path = folder / name
    if name.endswith("/"):
        return path.is_dir() and any(path.iterdir())
    return path.is_file()


def _integrity(path: Path) -> str:
    digest = hashlib.sha512(path.read_bytes()).digest()
    return "sha512-" + base64.b64encode(digest).decode("ascii")


def _npm_pack(specs: list[str], scratch: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise PluginError(
            "Building the docs fetches MathJax and Mermaid once from the npm registry "
            "(docs/hooks/vendor.py), and `npm` is not on PATH. Install Node.js with npm "
            "(https://nodejs.org, or e.g. `apt-get install npm`) and build again; after "
            "one build the files stay in docs/javascripts/vendor/ and no network is needed."
        )
    command = [npm, "pack", "--silent", *specs]
    try:
        completed = subprocess.run(
            command,
            cwd=scratch,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise PluginError(f"`{' '.join(command[1:])}` took over 10 minutes") from error
    if completed.returncode != 0:
        raise PluginError(
            f"`npm {' '.join(command[1:])}` failed (exit {completed.returncode}), so the "
            "docs cannot serve MathJax and Mermaid. It needs access to the npm registry "
            "(or an npm cache or mirror that has these versions); run it by hand to see "
            "why, then build again.\n" + (completed.stderr or completed.stdout)[-2000:]
        )


def _unpack(package: str, tarball: Path, target: Path) -> None:
    """Copy the kept files of `tarball` into the (new, empty) folder `target`."""
    with tarfile.open(tarball, "r:gz") as archive:
        for member in archive:
            if not member.isfile():
                continue
            relative = destination(package, member.name)
            if relative is None:
                continue
            path = target / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            source = archive.extractfile(member)
            assert source is not None
            with source, open(path, "wb") as out:
                shutil.copyfileobj(source, out)
    missing = [name for name in required(package) if not _present(target, name)]
    if missing:
        raise PluginError(
            f"{tarball.name} lacks {', '.join(missing)}; check COPIED in docs/hooks/vendor.py"
        )


def _install(package: str, tarball: Path, vendor: Path) -> None:
    """Fill vendor/<package>/ from `tarball` atomically: build aside, then rename."""
    version = PACKAGES[package][0]
    staging = Path(tempfile.mkdtemp(prefix=f".{package}-new-", dir=vendor))
    old = None
    try:
        _unpack(package, tarball, staging)
        (staging / STAMP).write_text(version + "\n", encoding="utf-8")
        final = vendor / package
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{package}-old-", dir=vendor))
            final.rename(old / package)
        try:
            staging.rename(final)
        except OSError:
            # Fine if another build, running at the same time, got there first.
            if not is_current(package, vendor):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def fetch(vendor: Path = VENDOR, force: bool = False) -> list[str]:
    """Put every package of PACKAGES that is missing or outdated into `vendor`.

    Returns the packages fetched (none when all are current and `force` is false).
    """
    wanted = [name for name in PACKAGES if force or not is_current(name, vendor)]
    if not wanted:
        return []
    vendor.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="trainax-fm-docs-vendor-") as scratch_name:
        scratch = Path(scratch_name)
        _npm_pack([f"{name}@{PACKAGES[name][0]}" for name in wanted], scratch)
        for name in wanted:
            version, integrity = PACKAGES[name]
            tarball = scratch / f"{name}-{version}.tgz"
            if not tarball.is_file():
                raise PluginError(f"npm pack did not write {tarball.name}")
            if _integrity(tarball) != integrity:
                raise PluginError(
                    f"{tarball.name} from the npm registry does not match the integrity "
                    "pinned in docs/hooks/vendor.py (PACKAGES); refusing to serve it."
                )
            _install(name, tarball, vendor)
    return wanted


def on_pre_build(config, **kwargs) -> None:
    # Before mkdocs collects docs_dir, so the fetched files are published with the site.
    fetched = fetch()
    if fetched:
        logging.getLogger("mkdocs.hooks.vendor").info(
            "Fetched %s from the npm registry into %s",
            ", ".join(f"{name} {PACKAGES[name][0]}" for name in fetched),
            os.path.relpath(VENDOR),
        )


if __name__ == "__main__":  # `python docs/hooks/vendor.py`: re-fetch without building
    for name in fetch(force=True):
        print(f"{name} {PACKAGES[name][0]} is in {VENDOR / name}")
