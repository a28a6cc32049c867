// agentcap report: search and open/close. Everything works without this script; it only filters.
"use strict";
(function () {
  const toolbar = document.getElementById("toolbar");
  const search = document.getElementById("search");
  const count = document.getElementById("count");
  const tasks = Array.from(document.querySelectorAll("details.task"));
  const calls = Array.from(document.querySelectorAll("article.call"));
  let texts = null; // lowercased text of each call, read once on the first search
  toolbar.hidden = false;

  function filter() {
    const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    if (texts === null) texts = calls.map((call) => call.textContent.toLowerCase());
    let shown = 0;
    calls.forEach((call, index) => {
      const match = words.every((word) => texts[index].includes(word));
      call.classList.toggle("hidden", !match);
      shown += match;
    });
    tasks.forEach((task) => {
      const visible = task.querySelector("article.call:not(.hidden)") !== null;
      task.classList.toggle("hidden", !visible);
      if (words.length) task.open = visible;
    });
    count.textContent = words.length ? `${shown} of ${calls.length} calls` : `${calls.length} calls`;
  }

  let pending = 0;
  search.addEventListener("input", () => {
    clearTimeout(pending);
    pending = setTimeout(filter, 120);
  });
  document.getElementById("expand").addEventListener("click", () => tasks.forEach((t) => (t.open = true)));
  document.getElementById("collapse").addEventListener("click", () => tasks.forEach((t) => (t.open = false)));
  // A link to a call inside a closed task opens the task first.
  function reveal() {
    const target = location.hash && document.getElementById(location.hash.slice(1));
    const task = target && target.closest("details.task");
    if (task) {
      task.open = true;
      target.scrollIntoView();
    }
  }
  window.addEventListener("hashchange", reveal);
  reveal();
})();
