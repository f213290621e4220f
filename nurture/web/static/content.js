/* Email templates and collateral: small improvements over pages that work without script.
   - the preview shows one width at a time, with a Desktop / Phone switch;
   - an error's "line N" link puts the cursor on that line of its field;
   - the collateral form shows the file or the link field, as chosen. */
(function () {
  "use strict";

  function widthSwitch() {
    var group = document.querySelector(".segmented");
    var frames = document.querySelector(".frames");
    if (!group || !frames) return;
    group.hidden = false;
    frames.classList.add("frames-one", "show-desktop");
    group.addEventListener("click", function (event) {
      var button = event.target.closest("button[data-width]");
      if (!button) return;
      var width = button.getAttribute("data-width");
      frames.classList.toggle("show-desktop", width === "desktop");
      frames.classList.toggle("show-phone", width === "phone");
      group.querySelectorAll("button[data-width]").forEach(function (b) {
        b.setAttribute("aria-pressed", String(b === button));
      });
    });
  }

  function goToLine(field, line) {
    var area = document.getElementById(field);
    if (!area || typeof area.setSelectionRange !== "function") return false;
    var lines = area.value.split("\n");
    var start = 0;
    for (var i = 0; i < Math.min(line - 1, lines.length); i++) start += lines[i].length + 1;
    var end = start + (lines[line - 1] || "").length;
    area.focus();
    area.setSelectionRange(start, end);
    var lineHeight = parseFloat(window.getComputedStyle(area).lineHeight) || 20;
    area.scrollTop = Math.max(0, (line - 3) * lineHeight);
    return true;
  }

  function errorLinks() {
    document.querySelectorAll("a[data-line][data-field]").forEach(function (link) {
      link.addEventListener("click", function (event) {
        if (goToLine(link.getAttribute("data-field"), parseInt(link.getAttribute("data-line"), 10))) {
          event.preventDefault();
        }
      });
    });
  }

  function sourceChoice() {
    var choice = document.querySelectorAll("input[name='source']");
    if (!choice.length) return;
    function show() {
      var picked = document.querySelector("input[name='source']:checked");
      var value = picked ? picked.value : "file";
      document.querySelectorAll("[data-source]").forEach(function (part) {
        part.hidden = part.getAttribute("data-source") !== value;
      });
    }
    choice.forEach(function (input) { input.addEventListener("change", show); });
    show();
  }

  // a file over the limit is refused before it is sent (the server refuses it too)
  function sizeCheck() {
    document.querySelectorAll("input[type='file'][data-max-bytes]").forEach(function (input) {
      var limit = parseInt(input.getAttribute("data-max-bytes"), 10);
      var note = document.createElement("p");
      note.className = "error";
      note.id = input.id + "-size";
      note.setAttribute("role", "alert");
      note.hidden = true;
      input.parentNode.appendChild(note);
      input.addEventListener("change", function () {
        var file = input.files && input.files[0];
        var tooBig = !!file && file.size > limit;
        note.hidden = !tooBig;
        note.textContent = tooBig ? file.name + " is larger than " +
          Math.floor(limit / 1048576) + " MiB: choose a smaller file." : "";
        input.setCustomValidity(tooBig ? note.textContent : "");
        if (input.form) {
          input.form.querySelectorAll("button[type='submit']").forEach(function (b) { b.disabled = tooBig; });
        }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    widthSwitch();
    errorLinks();
    sourceChoice();
    sizeCheck();
  });
})();
