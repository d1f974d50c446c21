// Herald dashboard: a little plain JavaScript. Every page works without it; it only saves clicks.
(function () {
  "use strict";
  // Forms marked data-autosubmit submit when one of their controls changes (e.g. "See in Table").
  document.addEventListener("change", function (e) {
    var form = e.target.closest && e.target.closest("form[data-autosubmit]");
    if (form) { form.requestSubmit ? form.requestSubmit() : form.submit(); }
  });
  // Buttons with data-confirm ask first (deleting a user, revoking a key).
  document.addEventListener("click", function (e) {
    var button = e.target.closest && e.target.closest("[data-confirm]");
    if (button && !window.confirm(button.getAttribute("data-confirm"))) { e.preventDefault(); }
  });
  // "Add a condition" in the users filter: clone the last row, emptied.
  document.addEventListener("click", function (e) {
    var add = e.target.closest && e.target.closest("[data-add-filter]");
    if (!add) { return; }
    e.preventDefault();
    var rows = document.querySelectorAll(".filter-row");
    var last = rows[rows.length - 1];
    if (!last) { return; }
    var copy = last.cloneNode(true);
    copy.querySelectorAll("input").forEach(function (i) { i.value = ""; });
    copy.querySelectorAll("select").forEach(function (s) { s.selectedIndex = 0; });
    copy.querySelectorAll("[id]").forEach(function (el) { el.id = el.id + "-" + rows.length; });
    copy.querySelectorAll("label[for]").forEach(function (l) { l.htmlFor = l.htmlFor + "-" + rows.length; });
    last.parentNode.insertBefore(copy, last.nextSibling);
    var first = copy.querySelector("select, input");
    if (first) { first.focus(); }
  });
})();
