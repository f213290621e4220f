/* The sequence builder, improved: live validation by the server's validator, steps moved by
   drag and drop or by the arrow buttons without a reload, wait fields by mode. Without this
   script every action still works: the buttons post the form and the page comes back. */
(function () {
  "use strict";
  var form = document.getElementById("builder");
  if (!form) { return; }
  document.documentElement.classList.add("js");

  var CARD = /stages\[\d+\]\.steps\[\d+\]/g;
  var CARD_SLUG = /stages-\d+-steps-\d+/g;
  var status = document.getElementById("live-status");
  var token = form.querySelector("input[name=csrf_token]").value;

  /* wait steps: show the fields of the chosen mode */
  function syncWaitModes() {
    form.querySelectorAll("[data-wait-mode]").forEach(function (box) {
      var checked = box.querySelector("input:checked");
      box.setAttribute("data-current", checked ? checked.value : "duration");
    });
  }
  syncWaitModes();

  /* live validation: the draft through the API's validator, errors put on their fields */
  var timer = null;
  var sent = 0;

  function clearErrors() {
    form.querySelectorAll("[data-errors-for]").forEach(function (box) {
      box.textContent = "";
    });
    form.querySelectorAll("[aria-invalid]").forEach(function (el) {
      el.removeAttribute("aria-invalid");
    });
    form.querySelectorAll(".is-invalid").forEach(function (el) {
      el.classList.remove("is-invalid");
    });
  }

  function boxFor(anchor) {
    return form.querySelector('[data-errors-for="' + CSS.escape(anchor) + '"]') ||
      form.querySelector('[data-errors-for="document"]');
  }

  function showErrors(placed, count) {
    clearErrors();
    Object.keys(placed).forEach(function (anchor) {
      var box = boxFor(anchor);
      if (!box) { return; }
      placed[anchor].forEach(function (error) {
        var line = document.createElement("p");
        line.className = "error";
        var path = document.createElement("code");
        path.className = "path";
        path.textContent = error.path;
        line.appendChild(path);
        line.appendChild(document.createTextNode(" " + error.message));
        box.appendChild(line);
      });
      var field = form.querySelector('[name="' + CSS.escape(anchor) + '"]');
      if (field && field.type !== "hidden") { field.setAttribute("aria-invalid", "true"); }
      var holder = box.closest(".bfield, .route, .picker, .card, .stage, .group");
      if (holder) { holder.classList.add("is-invalid"); }
    });
    if (status) {
      status.classList.toggle("has-problems", count > 0);
      status.classList.toggle("is-clean", count === 0);
      status.textContent = count > 0
        ? count + (count === 1 ? " problem" : " problems") + " to fix, marked on the fields"
        : "No problems: ready to save as a new version";
    }
  }

  function validate() {
    var mine = ++sent;
    var body = new URLSearchParams(new FormData(form));
    fetch(form.getAttribute("data-validate-url"), {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": token, "Accept": "application/json" },
      body: body
    }).then(function (answer) {
      return answer.ok ? answer.json() : null;
    }).then(function (result) {
      if (result && mine === sent) { showErrors(result.errors, result.count); }
    }).catch(function () { /* offline: Save still validates on the server */ });
  }

  function soon() {
    window.clearTimeout(timer);
    timer = window.setTimeout(validate, 350);
  }

  form.addEventListener("input", soon);
  form.addEventListener("change", function (event) {
    if (event.target.closest("[data-wait-mode]")) { syncWaitModes(); }
    if (event.target.classList.contains("step-id")) { refreshBranches(); }
    soon();
  });

  /* moving steps: renumber every field's path after the DOM order changed */
  function renumber() {
    var cards = form.querySelectorAll("[data-card]");
    form.querySelectorAll("[data-steps]").forEach(function (list, si) {
      list.querySelectorAll(":scope > [data-card]").forEach(function (card, ti) {
        var prefix = "stages[" + si + "].steps[" + ti + "]";
        var slug = "stages-" + si + "-steps-" + ti;
        card.setAttribute("data-card", prefix);
        card.querySelectorAll("*").forEach(function (el) {
          ["name", "id", "for", "aria-describedby", "data-errors-for"].forEach(function (attr) {
            var value = el.getAttribute(attr);
            if (value) {
              el.setAttribute(attr, value.replace(CARD, prefix).replace(CARD_SLUG, slug));
            }
          });
          if (el.tagName === "BUTTON" && /^step-[a-z]+:\d+:\d+$/.test(el.value)) {
            el.value = el.value.replace(/:\d+:\d+$/, ":" + si + ":" + ti);
          }
        });
      });
    });
    form.querySelectorAll("[data-card]").forEach(function (card, k) {
      var order = card.querySelector(".step-order");
      if (order) { order.textContent = String(k + 1); }
      var up = card.querySelector('[data-move="up"]');
      var down = card.querySelector('[data-move="down"]');
      if (up) { up.disabled = k === 0; }
      if (down) { down.disabled = k === cards.length - 1; }
    });
    refreshBranches();
    soon();
  }

  /* a branch's lists follow the order: earlier emails for its condition, later steps for
     its two paths (what the server would render for the new order) */
  function refreshBranches() {
    var cards = Array.prototype.slice.call(form.querySelectorAll("[data-card]"));
    var ids = cards.map(function (card) {
      var input = card.querySelector(".step-id");
      return input ? input.value.trim() : "";
    });
    cards.forEach(function (card, k) {
      if (!card.classList.contains("card-branch")) { return; }
      var earlier = ids.slice(0, k).filter(function (id, j) {
        return cards[j].classList.contains("card-email");
      });
      var later = ids.slice(k + 1);
      card.querySelectorAll("select").forEach(function (select) {
        var name = select.getAttribute("name") || "";
        var choices = /\.condition\.step$/.test(name) ? earlier
          : (/\.(then|else)$/.test(name) ? later : null);
        if (!choices) { return; }
        var current = select.value;
        var isElse = /\.else$/.test(name);
        select.textContent = "";
        var add = function (value, label) {
          var option = document.createElement("option");
          option.value = value;
          option.textContent = label;
          option.selected = value === current;
          select.appendChild(option);
        };
        if (isElse) { add("", "the next step" + (later.length ? " (" + later[0] + ")" : "")); }
        if (current && choices.indexOf(current) < 0) { add(current, current); }
        else if (!current && !isElse) { add("", "\u2014 choose \u2014"); }
        choices.forEach(function (id) { add(id, id); });
      });
    });
  }

  function lists() { return Array.prototype.slice.call(form.querySelectorAll("[data-steps]")); }

  function move(card, direction) {
    var list = card.parentElement;
    var all = lists();
    var at = all.indexOf(list);
    if (direction === "up") {
      var before = card.previousElementSibling;
      if (before) { list.insertBefore(card, before); }
      else if (at > 0) { all[at - 1].appendChild(card); }
      else { return false; }
    } else {
      var after = card.nextElementSibling;
      if (after) { list.insertBefore(after, card); }
      else if (at < all.length - 1) { all[at + 1].insertBefore(card, all[at + 1].firstChild); }
      else { return false; }
    }
    renumber();
    return true;
  }

  form.addEventListener("click", function (event) {
    var button = event.target.closest("[data-move]");
    if (!button) { return; }
    event.preventDefault();
    var card = button.closest("[data-card]");
    var direction = button.getAttribute("data-move");
    if (move(card, direction)) {
      var again = card.querySelector('[data-move="' + direction + '"]');
      (again && !again.disabled ? again : card.querySelector("[data-move]:not(:disabled)") || card).focus();
      if (status) { status.textContent = "Moved " + card.id.replace(/^step-/, "") + " " + direction + ": save to keep it"; }
    }
  });

  /* drag and drop by the handle */
  var dragged = null;
  form.querySelectorAll("[data-card]").forEach(function (card) {
    var handle = card.querySelector(".drag-handle");
    if (!handle) { return; }
    /* the handle is what is dragged (text in the card's fields stays selectable); the card
       moves with it */
    handle.hidden = false;
    handle.setAttribute("draggable", "true");
    handle.addEventListener("dragstart", function (event) {
      dragged = card;
      card.classList.add("dragging");
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", card.id);
      if (event.dataTransfer.setDragImage) { event.dataTransfer.setDragImage(card, 20, 20); }
    });
    handle.addEventListener("dragend", function () {
      card.classList.remove("dragging");
      lists().forEach(function (l) { l.classList.remove("drop-target"); });
      if (dragged) { renumber(); }
      dragged = null;
    });
  });

  lists().forEach(function (list) {
    list.addEventListener("dragover", function (event) {
      if (!dragged) { return; }
      event.preventDefault();
      list.classList.add("drop-target");
      var after = null;
      list.querySelectorAll(":scope > [data-card]:not(.dragging)").forEach(function (card) {
        var box = card.getBoundingClientRect();
        if (after === null && event.clientY < box.top + box.height / 2) { after = card; }
      });
      if (after) { list.insertBefore(dragged, after); } else { list.appendChild(dragged); }
    });
    list.addEventListener("dragleave", function () { list.classList.remove("drop-target"); });
    list.addEventListener("drop", function (event) {
      event.preventDefault();
      list.classList.remove("drop-target");
      renumber();
    });
  });
})();
