// Runs in <head> so the page never flashes the wrong theme: "light", "dark" or (absent) the system's.
(function () {
  try {
    var theme = localStorage.getItem("llm-usage-theme");
    if (theme === "light" || theme === "dark") document.documentElement.dataset.theme = theme;
  } catch (e) { /* storage disabled: follow the system */ }
})();
