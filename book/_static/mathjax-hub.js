// ipywidgets' HTML manager typesets widget labels through MathJax 2's `MathJax.Hub.Queue`; MathJax 3, which renders
// the book's equations, has no Hub. Whatever object `window.MathJax` becomes (MathJax 3 replaces it while it starts),
// give it that one call, mapped onto MathJax 3's typesetPromise (a no-op until MathJax is ready).
// Loaded before MathJax and the widget manager (book/conf.py).
(function () {
  let current;
  const hub = {
    Queue() {
      if (current && typeof current.typesetPromise === "function") {
        return current.typesetPromise();
      }
      return undefined;
    },
  };
  Object.defineProperty(window, "MathJax", {
    configurable: true,
    get() {
      return current;
    },
    set(value) {
      current = value;
      if (value && typeof value === "object" && !value.Hub) {
        value.Hub = hub;
      }
    },
  });
})();
