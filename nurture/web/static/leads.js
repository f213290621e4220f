// The lead pages' small improvements; every action works without them.
(function () {
  "use strict";

  // The lead list: select every lead of the page at once, and count the selection.
  var all = document.getElementById("select-all");
  var checks = Array.prototype.slice.call(document.querySelectorAll("[data-lead-check]"));
  var counter = document.querySelector("[data-selected-count]");
  function count() {
    var n = checks.filter(function (c) { return c.checked; }).length;
    if (counter) { counter.textContent = n ? "(" + n + ")" : ""; }
    if (all) {
      all.checked = n > 0 && n === checks.length;
      all.indeterminate = n > 0 && n < checks.length;
    }
  }
  if (all && checks.length) {
    all.hidden = false;
    all.addEventListener("change", function () {
      checks.forEach(function (c) { c.checked = all.checked; });
      count();
    });
  }
  checks.forEach(function (c) { c.addEventListener("change", count); });
  count();

  // A task's page: poll its status until it ends, then show the result.
  var task = document.querySelector("[data-task-url]");
  if (!task || task.getAttribute("data-task-finished") === "yes") { return; }
  var bar = task.querySelector("[data-task-progress]");
  var percent = task.querySelector("[data-task-percent]");
  var status = task.querySelector("[data-task-status]");
  var words = task.querySelector("[data-task-words]");
  var refresh = task.querySelector("[data-task-refresh]");
  if (refresh) { refresh.parentNode.hidden = true; }
  function poll() {
    fetch(task.getAttribute("data-task-url"), { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (answer) { return answer.ok ? answer.json() : Promise.reject(answer.status); })
      .then(function (state) {
        if (bar) { bar.value = state.percent; bar.textContent = state.percent + "%"; }
        if (percent) {
          percent.textContent = state.percent + "% " + (state.kind === "import" ? "of the file read"
            : "· " + state.done + " of " + state.total + " leads");
        }
        if (status) { status.textContent = state.status; }
        if (words) { words.textContent = state.status === "queued" ? "Waiting for a worker…" : "Working…"; }
        if (state.status === "done" || state.status === "failed") {
          window.location.reload();
        } else {
          window.setTimeout(poll, 1000);
        }
      })
      .catch(function () {
        if (refresh) { refresh.parentNode.hidden = false; }
        window.setTimeout(poll, 5000);
      });
  }
  window.setTimeout(poll, 500);
})();
