/* Partner Gateway console: the one script (no inline script anywhere; CSP script-src 'self').
   Live figures: an element with data-live="URL" subscribes to that server-sent events stream;
   each "figures" event carries {name: value}; elements inside with data-field="name" show the value. */
(function () {
  "use strict";
  function subscribe(box) {
    var source = new EventSource(box.getAttribute("data-live"));
    source.addEventListener("figures", function (event) {
      var data = JSON.parse(event.data);
      Object.keys(data).forEach(function (name) {
        box.querySelectorAll('[data-field="' + name + '"]').forEach(function (el) {
          var text = data[name] === null ? "" : String(data[name]);
          if (el.textContent !== text) {
            el.textContent = text;
            el.classList.add("changed");
            if (el.classList.contains("breaker")) {
              el.className = "breaker changed b-" + text;
            }
          }
        });
      });
    });
    source.addEventListener("ended", function () {
      source.close();
      window.location.assign("/console/sign-in");
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live]").forEach(subscribe);
    document.querySelectorAll("button.danger").forEach(function (button) {
      button.form.addEventListener("submit", function (event) {
        if (event.submitter === button && !window.confirm(button.textContent + "?")) {
          event.preventDefault();
        }
      });
    });
  });
})();
