// MathJax settings for pymdownx.arithmatex (generic mode). The MathJax library itself is
// served with the site (javascripts/vendor/mathjax/), so formulas render offline.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex",
  },
};

// Re-typeset after material's instant navigation swaps the page content. `document$`
// also emits once for the first page, which MathJax typesets on its own at startup;
// the served (not fetched) MathJax is already running then, and clearing its cache in
// the middle of that typeset leaves every glyph blank, so the first emission is skipped.
// Later ones wait for any typeset still running.
if (typeof document$ !== "undefined") {
  let firstPage = true;
  document$.subscribe(() => {
    if (firstPage) {
      firstPage = false;
      return;
    }
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
      MathJax.startup.promise = MathJax.startup.promise.then(() => {
        MathJax.startup.output.clearCache();
        MathJax.typesetClear();
        MathJax.texReset();
        return MathJax.typesetPromise();
      });
    }
  });
}
