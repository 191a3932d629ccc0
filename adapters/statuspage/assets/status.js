// Refreshes the status page in place: fetches its body part every few
// seconds and swaps it in, without reloading the page.
(function () {
  "use strict";
  var every = parseInt(document.body.dataset.every, 10) || 2000;
  var body = document.getElementById("body");
  var dot = document.getElementById("live-dot");
  var text = document.getElementById("live-text");
  var refreshes = 0;
  function tick() {
    fetch("/?part=body", { cache: "no-store" })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.text();
      })
      .then(function (html) {
        body.innerHTML = html;
        refreshes++;
        document.body.dataset.refreshes = String(refreshes);
        dot.className = "dot";
        text.textContent = "live · every " + every + " ms";
      })
      .catch(function (e) {
        dot.className = "dot stale";
        text.textContent = "figway not answering (" + e.message + "); retrying";
      })
      .finally(function () { setTimeout(tick, every); });
  }
  setTimeout(tick, every);
})();
