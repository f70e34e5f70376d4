// tailor's shared page code (the demo storefront and the dashboard), served at /assets/lib.js.
// Plain JavaScript, no dependencies, nothing from the network but this server's API.
(function () {
  "use strict";

  // Script errors and failed requests are counted where tests (and people) can see them.
  var errors = [];
  window.tailorErrors = errors;
  function note(msg) {
    errors.push(String(msg));
    if (document.body) document.body.dataset.errors = errors.length;
  }
  addEventListener("error", function (e) {
    note(e.message);
  });
  addEventListener("unhandledrejection", function (e) {
    note(e.reason);
  });
  var consoleError = console.error;
  console.error = function () {
    note(Array.prototype.join.call(arguments, " "));
    consoleError.apply(console, arguments);
  };

  // The API key of the page (`?key=`), sent with every request.
  var key = new URLSearchParams(location.search).get("key") || "";

  // Calls the API: JSON in and out; an error answer becomes an Error with the API's message.
  function api(method, path, body) {
    var headers = {};
    if (key) headers["X-Api-Key"] = key;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    var init = { method: method, headers: headers, body: body === undefined ? undefined : JSON.stringify(body) };
    return fetch(path, init).then(function (r) {
      var json = (r.headers.get("content-type") || "").indexOf("json") >= 0;
      if (!r.ok) {
        var fallback = method + " " + path + ": HTTP " + r.status;
        return (json ? r.json() : Promise.reject()).then(
          function (b) {
            throw new Error((b.error && b.error.message) || fallback);
          },
          function () {
            throw new Error(fallback);
          },
        );
      }
      if (r.status === 204) return null;
      return json ? r.json() : r.text();
    });
  }

  // Requests the browser would log as failed (status 400 and above).
  function failedRequests() {
    performance.getEntriesByType("resource").forEach(function (r) {
      var msg = "HTTP " + r.responseStatus + " " + r.name;
      if (r.responseStatus >= 400 && errors.indexOf(msg) < 0) note(msg);
    });
  }

  // Text as HTML.
  function esc(s) {
    var d = document.createElement("div");
    d.textContent = s == null ? "" : String(s);
    return d.innerHTML;
  }

  // A number with at most `d` decimals (2 by default); "–" when there is none.
  function fmt(x, d) {
    if (x == null || isNaN(x)) return "–";
    return Number(x).toLocaleString("en", { maximumFractionDigits: d == null ? 2 : d });
  }

  // A share as a percentage with `d` decimals (2 by default).
  function pct(x, d) {
    return x == null || isNaN(x) ? "–" : (100 * x).toFixed(d == null ? 2 : d) + "%";
  }

  function pad2(n) {
    return (n < 10 ? "0" : "") + n;
  }

  // YYYY-MM-DD (UTC) of a time in ms.
  function day(t) {
    var d = new Date(t);
    return d.getUTCFullYear() + "-" + pad2(d.getUTCMonth() + 1) + "-" + pad2(d.getUTCDate());
  }

  // YYYY-MM-DD HH:MM (UTC) of a time in ms.
  function when(t) {
    var d = new Date(t);
    return day(t) + " " + pad2(d.getUTCHours()) + ":" + pad2(d.getUTCMinutes());
  }

  window.tailorLib = {
    api: api,
    key: key,
    errors: errors,
    failedRequests: failedRequests,
    esc: esc,
    fmt: fmt,
    pct: pct,
    pad2: pad2,
    day: day,
    when: when,
  };
})();
