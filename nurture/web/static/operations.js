// The operators' pages' own script: a Copy button beside a token shown once (without this
// script the token is selected by hand; the button stays hidden).
(function () {
  "use strict";
  document.querySelectorAll(".js-copy").forEach(function (button) {
    var input = document.getElementById(button.getAttribute("data-copy"));
    if (!input) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      input.select();
      var done = function () { button.textContent = "Copied"; };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(input.value).then(done, function () { document.execCommand("copy"); done(); });
      } else {
        document.execCommand("copy");
        done();
      }
    });
  });
  document.querySelectorAll(".token-input").forEach(function (input) {
    input.addEventListener("focus", function () { input.select(); });
  });
}());
