// The scoring pages' own script: the rules table reorders, moves and removes rows in the page
// (drag, or the ↑ ↓ ✕ buttons) instead of a round trip; without it the same buttons post the
// form and the server does it. A running backtest's page refreshes itself until it is done.
(function () {
  "use strict";

  function renumber(section) {
    var kind = section.getAttribute("data-kind");
    var rows = section.querySelectorAll("tbody tr.rule-row");
    var pattern = new RegExp("^" + kind + "-\\d+-");
    rows.forEach(function (row, index) {
      row.querySelectorAll("[name]").forEach(function (el) {
        if (el.name === "op") { return; }
        var renamed = el.name.replace(pattern, kind + "-" + index + "-");
        el.name = renamed;
        el.id = renamed;
        var label = el.getAttribute("aria-label");
        if (label) { el.setAttribute("aria-label", label.replace(/rule \d+$/, "rule " + (index + 1))); }
      });
      row.querySelectorAll("button[name=op]").forEach(function (button) {
        var parts = button.value.split(":");
        button.value = parts[0] + ":" + kind + ":" + index;
        var label = button.getAttribute("aria-label");
        if (label) { button.setAttribute("aria-label", label.replace(/rule \d+/, "rule " + (index + 1))); }
        if (parts[0] === "up") { button.disabled = index === 0; }
        if (parts[0] === "down") { button.disabled = index === rows.length - 1; }
      });
    });
    section.querySelector("input.row-count").value = String(rows.length);
    var counter = section.querySelector("h2 .muted");
    if (counter) { counter.textContent = String(rows.length); }
  }

  function move(row, action) {
    var body = row.parentNode;
    if (action === "up" && row.previousElementSibling) {
      body.insertBefore(row, row.previousElementSibling);
    } else if (action === "down" && row.nextElementSibling) {
      body.insertBefore(row.nextElementSibling, row);
    } else if (action === "remove") {
      body.removeChild(row);
    }
  }

  function editor(form) {
    form.addEventListener("click", function (event) {
      var button = event.target.closest("button[name=op]");
      if (!button) { return; }
      var action = button.value.split(":")[0];
      if (["up", "down", "remove"].indexOf(action) < 0) { return; }
      event.preventDefault();
      var row = button.closest("tr");
      var section = button.closest(".rules-section");
      var focusTarget = action === "remove" ? null : button;
      move(row, action);
      renumber(section);
      if (focusTarget && !focusTarget.disabled) { focusTarget.focus(); }
    });

    var dragged = null;
    form.addEventListener("dragstart", function (event) {
      var row = event.target.closest && event.target.closest("tr.rule-row");
      if (!row || ["INPUT", "TEXTAREA"].indexOf(event.target.tagName) >= 0) { return; }
      dragged = row;
      row.classList.add("dragging");
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", "");
    });
    form.addEventListener("dragover", function (event) {
      var row = event.target.closest && event.target.closest("tr.rule-row");
      if (!dragged || !row || row.parentNode !== dragged.parentNode) { return; }
      event.preventDefault();
      form.querySelectorAll(".drop-target").forEach(function (r) { r.classList.remove("drop-target"); });
      row.classList.add("drop-target");
    });
    form.addEventListener("drop", function (event) {
      var row = event.target.closest && event.target.closest("tr.rule-row");
      if (!dragged || !row || row.parentNode !== dragged.parentNode) { return; }
      event.preventDefault();
      row.parentNode.insertBefore(dragged, row);
      renumber(row.closest(".rules-section"));
    });
    form.addEventListener("dragend", function () {
      if (dragged) { dragged.classList.remove("dragging"); }
      form.querySelectorAll(".drop-target").forEach(function (r) { r.classList.remove("drop-target"); });
      dragged = null;
    });
  }

  document.querySelectorAll("form.rules-editor").forEach(editor);

  var running = document.querySelector("[data-refresh]");
  if (running) {
    var seconds = parseInt(running.getAttribute("data-refresh"), 10) || 5;
    window.setTimeout(function () { window.location.reload(); }, seconds * 1000);
  }
}());
