// Herald dashboard: a little plain JavaScript. Every page works without it; it only saves clicks.
(function () {
  "use strict";
  // Forms marked data-autosubmit submit when one of their controls changes (e.g. "See in Table").
  document.addEventListener("change", function (e) {
    var form = e.target.closest && e.target.closest("form[data-autosubmit]");
    if (form) { form.requestSubmit ? form.requestSubmit() : form.submit(); }
  });
  // A filtered users page fetches its count after loading (it may take a moment at scale).
  document.querySelectorAll("[data-count-url]").forEach(function (el) {
    el.textContent = "Counting…";
    fetch(el.getAttribute("data-count-url"), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (text) { el.textContent = text; })
      .catch(function () { el.textContent = "Count unavailable"; });
  });
  // Type-aware value input on a user's page: the type decides the input (a number field, a
  // date-and-time picker, true/false), and a key the registry knows picks its type.
  var typeSelect = document.getElementById("prop-type");
  var valueInput = document.getElementById("prop-value");
  var keyInput = document.getElementById("prop-key");
  function fitValue() {
    var kind = typeSelect.value;
    valueInput.type = kind === "number" ? "number" : kind === "datetime" ? "datetime-local" : "text";
    if (kind === "number") { valueInput.step = "any"; }
    valueInput.placeholder = kind === "boolean" ? "true or false" : kind === "json" ? "[1, 2] or {\"a\": 1}" : "";
  }
  if (typeSelect && valueInput) {
    typeSelect.addEventListener("change", fitValue);
    fitValue();
  }
  if (keyInput && typeSelect) {
    keyInput.addEventListener("input", function () {
      var known = document.querySelector("#known-keys option[value=\"" + CSS.escape(keyInput.value) + "\"]");
      if (known && known.getAttribute("data-type")) {
        typeSelect.value = known.getAttribute("data-type");
        fitValue();
      }
    });
  }
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
