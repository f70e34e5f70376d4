/*! tailor widget: personalised recommendation slots for any page. MIT licence.
 *
 *   <div data-tailor-slot="home" data-tailor-k="8"></div>
 *   <div data-tailor-slot="product" data-tailor-item="SKU-1" data-tailor-kind="similar"></div>
 *   <script async src="https://tailor.example/widget.js" data-api-key="KEY"
 *           data-user="U00001" data-consent="true"></script>
 *
 * Slots load when they scroll into view, render a carousel, grid or list, report
 * impressions (items actually visible) and clicks with the list's rec_id, and stay empty
 * (or show their <template data-tailor-fallback>) when the API is down or slow. Nothing
 * here throws into the host page and nothing is requested from third parties.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  var cfg = (script && script.dataset) || {};
  var endpoint = (cfg.endpoint || (script && script.src ? new URL(script.src).origin : location.origin)).replace(/\/$/, "");
  var key = cfg.apiKey || "";
  var timeoutMs = +cfg.timeout || 2000;
  var consent = cfg.consent !== "false";
  var queue = [];
  var flushTimer = 0;

  function safe(f) {
    return function () {
      try { return f.apply(this, arguments); } catch (e) { if (window.console) console.warn("tailor:", e); }
    };
  }

  function randomId() {
    var a = new Uint8Array(12);
    (window.crypto || {}).getRandomValues ? crypto.getRandomValues(a) : a.forEach(function (_, i) { a[i] = Math.random() * 256; });
    return "s" + Array.prototype.map.call(a, function (b) { return (b + 256).toString(16).slice(1); }).join("");
  }

  var memorySession = randomId();
  function sessionId() {
    if (!consent) return memorySession;
    try {
      var s = localStorage.getItem("tailor_sid");
      if (!s) { s = randomId(); localStorage.setItem("tailor_sid", s); }
      return s;
    } catch (e) { return memorySession; }
  }

  function userId(slot) {
    return (slot && slot.dataset.tailorUser) || cfg.user || window.tailorUser || "";
  }

  function recentItems() {
    try { return JSON.parse(sessionStorage.getItem("tailor_recent") || "[]"); } catch (e) { return []; }
  }

  function remember(item) {
    if (!consent || !item) return;
    try {
      var r = recentItems().filter(function (x) { return x !== item; });
      r.unshift(item);
      sessionStorage.setItem("tailor_recent", JSON.stringify(r.slice(0, 20)));
    } catch (e) { /* storage full or blocked */ }
  }

  function request(method, path, body) {
    var ctl = window.AbortController ? new AbortController() : null;
    var timer = setTimeout(function () { if (ctl) ctl.abort(); }, timeoutMs);
    var headers = { "Content-Type": "application/json" };
    if (key) headers["X-Api-Key"] = key;
    return fetch(endpoint + path, {
      method: method, headers: headers, body: body ? JSON.stringify(body) : undefined,
      signal: ctl ? ctl.signal : undefined, credentials: "omit", mode: "cors"
    }).then(function (r) {
      clearTimeout(timer);
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    }, function (e) { clearTimeout(timer); throw e; });
  }

  // Events go out in batches by a keepalive fetch, which survives navigation like a beacon
  // and can send the JSON content type and the key header the server requires (the host
  // page's origin must be in serve.cors_origins). Browsers without keepalive use
  // sendBeacon, whose key travels in the query string.
  function send(events) {
    var body = JSON.stringify(events);
    var headers = { "Content-Type": "application/json" };
    if (key) headers["X-Api-Key"] = key;
    try {
      fetch(endpoint + "/v1/events", {
        method: "POST", body: body, headers: headers, keepalive: true, mode: "cors", credentials: "omit"
      }).catch(function () {});
      return;
    } catch (e) { /* no keepalive: fall through */ }
    var url = endpoint + "/v1/events" + (key ? "?key=" + encodeURIComponent(key) : "");
    if (navigator.sendBeacon) navigator.sendBeacon(url, new Blob([body], { type: "application/json" }));
  }

  var flush = safe(function () {
    clearTimeout(flushTimer);
    flushTimer = 0;
    while (queue.length) send(queue.splice(0, 500));
  });

  function enqueue(ev, now) {
    var u = userId();
    if (u) ev.user = u; else ev.session = sessionId();
    ev.ts = Date.now();
    ev.context = ev.context || {};
    ev.context.channel = "web";
    ev.context.device = /Mobi|Android/i.test(navigator.userAgent) ? "mobile" : "desktop";
    if (ev.slot) { ev.context.slot = ev.slot; delete ev.slot; }
    queue.push(ev);
    if (now) flush();
    else if (!flushTimer) flushTimer = setTimeout(flush, 1000);
  }

  function money(x, cur) {
    if (x == null) return "";
    try { return new Intl.NumberFormat(undefined, { style: "currency", currency: cur || cfg.currency || "EUR" }).format(x); }
    catch (e) { return x.toFixed(2); }
  }

  var styled = false;
  function style() {
    if (styled) return;
    styled = true;
    var s = document.createElement("style");
    s.textContent =
      ".tailor{position:relative;font:inherit;overflow:hidden}.tailor-carousel{padding:0 2.4em}.tailor h3{font-size:1.05em;margin:0 0 .5em}" +
      ".tailor-track{display:grid;gap:12px;list-style:none;margin:0;padding:0}" +
      ".tailor-carousel .tailor-track{grid-auto-flow:column;grid-auto-columns:minmax(150px,1fr);overflow-x:auto;scroll-snap-type:x mandatory;scroll-behavior:smooth}" +
      ".tailor-grid .tailor-track{grid-template-columns:repeat(auto-fill,minmax(150px,1fr))}" +
      ".tailor-list .tailor-track{grid-template-columns:1fr}" +
      ".tailor-card{scroll-snap-align:start;border:1px solid #ddd;border-radius:6px;padding:8px;background:#fff}" +
      ".tailor-card a{color:inherit;text-decoration:none;display:block}.tailor-card img{width:100%;aspect-ratio:1;object-fit:cover;background:#f3f3f3}" +
      ".tailor-ph{display:flex;align-items:center;justify-content:center;width:100%;aspect-ratio:4/3;background:#eef1f5;color:#8391a7;font-size:1.6em;letter-spacing:.1em}" +
      ".tailor-title{display:block;font-weight:600;margin:.3em 0}.tailor-price s{color:#888;margin-left:.4em}" +
      ".tailor-sale{color:#b00}.tailor-reason{display:block;font-size:.85em;color:#555;margin-top:.3em}" +
      ".tailor-nav{position:absolute;top:40%;border:1px solid #bbb;background:#fff;color:#333;border-radius:50%;width:2em;height:2em;padding:0;cursor:pointer;font:bold 16px/1 sans-serif}" +
      ".tailor-prev{left:0}.tailor-next{right:0}";
    document.head.appendChild(s);
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  function href(slot, id) {
    var t = slot.dataset.tailorHref || cfg.href || "#{id}";
    return t.replace("{id}", encodeURIComponent(id));
  }

  function render(slot, data, layout, visibleAt) {
    var items = (data && data.items) || [];
    if (!items.length) return fallback(slot);
    style();
    var recId = data.rec_id || "";
    var name = slot.dataset.tailorSlot;
    var box = el("section", "tailor tailor-" + layout);
    box.setAttribute("aria-label", slot.dataset.tailorTitle || "Recommended for you");
    if (slot.dataset.tailorTitle) box.appendChild(el("h3", null, slot.dataset.tailorTitle));
    var track = el("ul", "tailor-track");
    track.setAttribute("role", "list");
    track.tabIndex = 0;
    items.forEach(function (it, pos) {
      var card = el("li", "tailor-card");
      card.dataset.tailorItem = it.id;
      card.dataset.position = pos;
      var a = el("a");
      a.href = href(slot, it.id);
      if (it.image) {
        var img = el("img");
        img.alt = it.title || it.id;
        img.loading = "lazy";
        img.src = it.image;
        a.appendChild(img);
      } else {
        // No picture in the catalog: a quiet placeholder with the initials, not a broken image.
        var ph = el("span", "tailor-ph", (it.title || it.id).split(/\s+/).slice(0, 2).map(function (w) { return w.charAt(0); }).join(""));
        ph.setAttribute("aria-hidden", "true");
        a.appendChild(ph);
      }
      a.appendChild(el("span", "tailor-title", it.title || it.id));
      var price = el("span", "tailor-price");
      var onSale = it.sale_price != null && it.price != null && it.sale_price < it.price;
      price.appendChild(el("span", onSale ? "tailor-sale" : null, money(onSale ? it.sale_price : it.price)));
      if (onSale) price.appendChild(el("s", null, money(it.price)));
      a.appendChild(price);
      if (it.reason && it.reason.text) a.appendChild(el("span", "tailor-reason", it.reason.text));
      a.addEventListener("click", safe(function () {
        enqueue({ kind: "click", item: it.id, rec_id: recId || undefined, slot: name }, true);
        remember(it.id);
      }));
      card.appendChild(a);
      track.appendChild(card);
    });
    box.appendChild(track);
    if (layout === "carousel") {
      var step = function (dir) { return safe(function () { track.scrollBy({ left: dir * track.clientWidth * 0.8 }); }); };
      var prev = el("button", "tailor-nav tailor-prev", "<");
      prev.setAttribute("aria-label", "Previous items");
      prev.addEventListener("click", step(-1));
      var next = el("button", "tailor-nav tailor-next", ">");
      next.setAttribute("aria-label", "Next items");
      next.addEventListener("click", step(1));
      track.addEventListener("keydown", safe(function (e) {
        if (e.key === "ArrowRight") step(1)();
        if (e.key === "ArrowLeft") step(-1)();
      }));
      box.appendChild(prev);
      box.appendChild(next);
    }
    slot.textContent = "";
    slot.appendChild(box);
    slot.dataset.tailorState = "loaded";
    slot.dataset.tailorRecId = recId;
    slot.dataset.tailorLayout = layout;
    // Painted on the next frame: time from becoming visible to items on screen.
    requestAnimationFrame(function () {
      var ms = performance.now() - visibleAt;
      slot.dataset.tailorPaintMs = ms.toFixed(1);
    });
    watchImpressions(slot, track, recId, name);
  }

  function watchImpressions(slot, track, recId, name) {
    if (!window.IntersectionObserver) return;
    var seen = {};
    var io = new IntersectionObserver(safe(function (entries) {
      entries.forEach(function (e) {
        var id = e.target.dataset.tailorItem;
        if (e.isIntersecting && !seen[id]) {
          seen[id] = 1;
          enqueue({ kind: "impression", item: id, rec_id: recId || undefined, slot: name });
          io.unobserve(e.target);
        }
      });
    }), { threshold: 0.5 });
    Array.prototype.forEach.call(track.children, function (c) { io.observe(c); });
  }

  function fallback(slot) {
    slot.dataset.tailorState = "failed";
    var t = slot.querySelector("template[data-tailor-fallback]");
    if (t) slot.appendChild(t.content.cloneNode(true));
  }

  var load = safe(function (slot, visibleAt) {
    var d = slot.dataset;
    if (d.tailorState) return;
    d.tailorState = "loading";
    var k = Math.min(Math.max(+d.tailorK || 8, 1), 100);
    var user = userId(slot);
    var kind = d.tailorKind || (d.tailorItem ? "similar" : "personal");
    var q = "k=" + k + "&slot=" + encodeURIComponent(d.tailorSlot || "");
    var wanted = d.tailorLayout || "auto";
    var layoutP = wanted === "auto" && user
      ? request("GET", "/v1/users/" + encodeURIComponent(user) + "/layout?slot=" + encodeURIComponent(d.tailorSlot || "default"))
          .catch(function () { return { layout: "carousel" }; })
      : Promise.resolve({ layout: wanted === "auto" ? "carousel" : wanted });
    layoutP.then(function (lay) {
      var qd = lay.decision_id ? q + "&decision=" + encodeURIComponent(lay.decision_id) : q;
      var listP;
      if (kind === "similar" || kind === "bought-together") {
        listP = request("GET", "/v1/items/" + encodeURIComponent(d.tailorItem) + "/" + kind + "?k=" + k);
      } else if (user) {
        listP = request("GET", "/v1/users/" + encodeURIComponent(user) + "/recommendations?" + qd);
      } else {
        listP = request("POST", "/v1/sessions/" + encodeURIComponent(sessionId()) + "/recommendations?" + qd, { items: recentItems() });
      }
      return listP.then(function (data) {
        var layout = (data.variant && data.variant.layout) || lay.layout || "carousel";
        render(slot, data, ["carousel", "grid", "list"].indexOf(layout) >= 0 ? layout : "carousel", visibleAt);
      });
    }).catch(safe(function () { fallback(slot); }));
  });

  var start = safe(function () {
    var slots = document.querySelectorAll("[data-tailor-slot]");
    if (!window.IntersectionObserver) {
      Array.prototype.forEach.call(slots, function (s) { load(s, performance.now()); });
      return;
    }
    var io = new IntersectionObserver(safe(function (entries) {
      entries.forEach(function (e) {
        if (e.isIntersecting) {
          io.unobserve(e.target);
          load(e.target, performance.now());
        }
      });
    }), { rootMargin: "100px 0px" });
    Array.prototype.forEach.call(slots, function (s) {
      // An empty slot has no height, and a box without area never intersects.
      if (!s.offsetHeight) s.style.minHeight = "1px";
      io.observe(s);
    });
  });

  window.tailor = {
    /** Records an event for this page: tailor.track("view", "SKU-1"), ("add_to_cart", id, {quantity: 2}). */
    track: safe(function (kind, item, extra) {
      var ev = { kind: kind, item: item };
      for (var k in extra || {}) ev[k] = extra[k];
      if (kind === "view") remember(item);
      enqueue(ev, kind === "purchase" || kind === "add_to_cart");
    }),
    flush: flush,
    /** Renders slots added to the page after load. */
    scan: start
  };
  addEventListener("pagehide", flush);
  addEventListener("visibilitychange", function () { if (document.visibilityState === "hidden") flush(); });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
