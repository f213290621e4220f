// The approvers' pages' own script: requesting changes without a comment is stopped in the
// page with the same message the server gives (the server checks it either way).
(function () {
  "use strict";
  document.querySelectorAll("form.decide-changes").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      var comment = form.querySelector("textarea[name=comment]");
      if (comment && comment.value.trim() === "") {
        event.preventDefault();
        var field = comment.closest(".field");
        var error = field.querySelector(".error");
        if (!error) {
          error = document.createElement("p");
          error.className = "error";
          error.id = "comment-error";
          field.appendChild(error);
          comment.setAttribute("aria-describedby", "comment-hint comment-error");
        }
        error.textContent = "required when requesting changes";
        field.classList.add("field-invalid");
        comment.setAttribute("aria-invalid", "true");
        comment.focus();
      }
    });
  });
}());
