#!/usr/bin/env bash
# Re-fetch the JavaScript the docs site serves itself, so that built pages render
# formulas and diagrams without a network (clusters, air-gapped machines).
#
#   bash docs/javascripts/vendor/update.sh
#
# Needs `npm` (only its `pack`, which downloads a package tarball from the npm
# registry). The result is committed; building the docs needs neither npm nor a network.
# Bump a version here, run the script, check the pages and commit the changed files.
set -euo pipefail

MATHJAX_VERSION=3.2.2  # MathJax 3: the `MathJax = {...}` configuration in ../mathjax.js
MERMAID_VERSION=11.17.2  # the major version mkdocs-material's integration expects

vendor="$(cd "$(dirname "$0")" && pwd)"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

cd "$scratch"
npm pack --silent "mathjax@${MATHJAX_VERSION}" "mermaid@${MERMAID_VERSION}" >/dev/null
mkdir mathjax mermaid
tar -xzf "mathjax-${MATHJAX_VERSION}.tgz" -C mathjax
tar -xzf "mermaid-${MERMAID_VERSION}.tgz" -C mermaid

# MathJax finds its fonts and TeX extensions relative to the script's own URL, so the
# package's es5/ layout is kept below vendor/mathjax/.
rm -rf "$vendor/mathjax" "$vendor/mermaid"
mkdir -p "$vendor/mathjax/input/tex" "$vendor/mathjax/output/chtml/fonts" "$vendor/mermaid"
es5=mathjax/package/es5
cp mathjax/package/LICENSE "$vendor/mathjax/LICENSE"
cp "$es5/tex-chtml.js" "$vendor/mathjax/"
cp -r "$es5/output/chtml/fonts/woff-v2" "$vendor/mathjax/output/chtml/fonts/"
# The extensions that `autoload` fetches for macros outside the core (\boldsymbol,
# \cancel, \color, ...); the all-in-one bundle of them is not needed.
cp -r "$es5/input/tex/extensions" "$vendor/mathjax/input/tex/"
rm "$vendor/mathjax/input/tex/extensions/all-packages.js"

cp mermaid/package/LICENSE "$vendor/mermaid/LICENSE"
cp mermaid/package/dist/mermaid.min.js "$vendor/mermaid/"

echo "MathJax ${MATHJAX_VERSION} and Mermaid ${MERMAID_VERSION} are in ${vendor}."
