// Redraws the page when a request it shows changes (decided elsewhere,
// expired, a stage opened), unless the reader is typing a reason.
(function () {
  "use strict";
  if (!window.EventSource || !document.querySelector("header form.who")) return;
  var shown = document.body.getAttribute("data-request");
  var events = new EventSource("/inbox/events");
  var busy = false;
  function typing() {
    var r = document.getElementById("reason");
    return r && r === document.activeElement && r.value !== "";
  }
  function redraw() {
    if (busy) return;
    if (typing()) { document.getElementById("live").textContent = "This request changed; reload to see how."; return; }
    busy = true;
    fetch(location.pathname.replace(/\/decide$/, ""), { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var next = doc.getElementById("content");
        if (next) {
          document.getElementById("content").replaceWith(next);
          document.getElementById("live").textContent = "Updated.";
        }
      })
      .finally(function () { busy = false; });
  }
  var opened = 0;
  // After a reconnect, changes may have been missed: redraw once.
  events.addEventListener("open", function () { if (opened++ > 0) redraw(); });
  events.addEventListener("changed", function (e) {
    if (!shown || e.data === shown) redraw();
  });
})();
