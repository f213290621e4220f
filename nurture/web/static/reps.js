// The rep's pages: keep each SLA countdown current without reloading (the server's text is
// the starting point and what shows without JavaScript).
(function () {
  "use strict";

  function words(seconds) {
    var minutes = seconds >= 30 ? Math.max(1, Math.floor(seconds / 60)) : 0;
    if (minutes === 0) { return "under a minute"; }
    var days = Math.floor(minutes / 1440);
    var hours = Math.floor((minutes % 1440) / 60);
    var mins = minutes % 60;
    if (days) { return hours ? days + " d " + hours + " h" : days + " d"; }
    if (hours) { return mins ? hours + " h " + mins + " min" : hours + " h"; }
    return mins + " min";
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-due]").forEach(function (el) {
      var due = Date.parse(el.getAttribute("data-due"));
      if (isNaN(due)) { return; }
      var left = Math.round((due - now) / 1000);
      var text = el.querySelector(".sla-left");
      if (!text) { return; }
      text.textContent = left < 0 ? "overdue by " + words(-left) : words(left) + " left";
      el.classList.toggle("sla-overdue", left < 0);
      el.classList.toggle("sla-urgent", left >= 0 && left < 900);
    });
  }

  tick();
  window.setInterval(tick, 30000);
}());
