// Refreshes the jobs and events of a pipeline page every few seconds while an event is active.
// The new markup comes from our own server-rendered page (already escaped), parsed with
// DOMParser, which never runs scripts; only the #live region is swapped.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live) return;
  var interval = parseInt(live.getAttribute("data-interval"), 10) || 3000;

  function schedule() {
    if (live.getAttribute("data-active") === "true") {
      window.setTimeout(refresh, interval);
    }
  }

  function refresh() {
    if (document.hidden) {
      schedule();
      return;
    }
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("live");
        if (fresh) {
          live.replaceChildren.apply(live, Array.prototype.slice.call(fresh.childNodes).map(function (node) {
            return document.importNode(node, true);
          }));
          live.setAttribute("data-active", fresh.getAttribute("data-active") || "false");
        }
      })
      .catch(function () { /* a missed refresh is retried on the next tick */ })
      .then(schedule);
  }

  schedule();
})();
