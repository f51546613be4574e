// Progressive enhancement only: every form works without this file.
// On the seal form, show only the secret inputs of the chosen credential type.
"use strict";
document.documentElement.classList.add("js");
document.addEventListener("DOMContentLoaded", function () {
  var radios = document.querySelectorAll('input[name="credential_type"]');
  function sync() {
    var chosen = document.querySelector('input[name="credential_type"]:checked');
    if (!chosen) { return; }
    document.querySelectorAll("[data-credential-type]").forEach(function (g) {
      if (g.getAttribute("data-credential-type") === chosen.value) {
        g.removeAttribute("data-inactive");
      } else {
        g.setAttribute("data-inactive", "");
      }
    });
  }
  radios.forEach(function (r) { r.addEventListener("change", sync); });
  sync();
});
