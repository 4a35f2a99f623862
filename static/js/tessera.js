// Small progressive enhancements; every page works without this file.
(function () {
  "use strict";

  // Toasts fade out after a few seconds (errors stay until the next page).
  function dismissToasts(root) {
    root.querySelectorAll(".toast:not(.toast--error)").forEach(function (toast) {
      setTimeout(function () { toast.classList.add("toast--gone"); }, 4000);
    });
  }

  // Drag-and-drop ordering: a list inside a form marked data-sortable. On drop the form
  // is told "sorted"; htmx posts the new order (hidden inputs follow their rows).
  function enableSorting(root) {
    root.querySelectorAll("form[data-sortable]").forEach(function (form) {
      if (form.dataset.sortableReady) { return; }
      form.dataset.sortableReady = "1";
      var dragged = null;
      form.addEventListener("dragstart", function (e) {
        dragged = e.target.closest("li[draggable]");
        if (!dragged) { return; }
        dragged.classList.add("dragging");
        e.dataTransfer.effectAllowed = "move";
        e.dataTransfer.setData("text/plain", dragged.dataset.attribute || "");
      });
      form.addEventListener("dragover", function (e) {
        var over = e.target.closest("li[draggable]");
        if (!dragged || !over || over === dragged) { return; }
        e.preventDefault();
        var box = over.getBoundingClientRect();
        var after = e.clientY > box.top + box.height / 2;
        over.parentNode.insertBefore(dragged, after ? over.nextSibling : over);
      });
      form.addEventListener("dragend", function () {
        if (!dragged) { return; }
        dragged.classList.remove("dragging");
        dragged = null;
        if (window.htmx) { window.htmx.trigger(form, "sorted"); } else { form.submit(); }
      });
    });
  }

  function enhance(root) {
    dismissToasts(root);
    enableSorting(root);
  }

  // A button with data-confirm asks before its form goes (archiving cannot be undone).
  document.addEventListener("submit", function (e) {
    var button = e.submitter;
    if (button && button.dataset.confirm && !window.confirm(button.dataset.confirm)) {
      e.preventDefault();
    }
  }, true);

  document.addEventListener("DOMContentLoaded", function () { enhance(document); });
  document.addEventListener("htmx:load", function (e) { enhance(e.detail.elt); });
})();
