// paystreams dashboard: live accrual and live refresh. No dependencies, no build step.
//
// Money is never a float here: amounts arrive as decimal strings in data- attributes and are
// computed with BigInt. Time is whole chain seconds: the page carries the chain's latest block
// time, the browser advances it with its own clock, and every new block (server-sent event
// "head") re-anchors it.
(function () {
  "use strict";

  var body = document.body;
  var anchorChain = Number(body.dataset.chainTime || "0");
  var anchorPerf = performance.now();
  var shownChain = anchorChain;

  function chainNow() {
    var t = anchorChain + Math.floor((performance.now() - anchorPerf) / 1000);
    if (t > shownChain) { shownChain = t; }
    return shownChain;
  }

  function group(digits) {
    return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function formatTime(secs) {
    var d = new Date(secs * 1000);
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " +
      pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds()) + " UTC";
  }

  function formatDuration(secs) {
    var d = Math.floor(secs / 86400), h = Math.floor((secs % 86400) / 3600), m = Math.floor((secs % 3600) / 60), s = secs % 60;
    var parts = [];
    if (d > 0) { parts.push(d + "d"); }
    if (h > 0) { parts.push(h + "h"); }
    if (m > 0 && d === 0) { parts.push(m + "m"); }
    if ((s > 0 || parts.length === 0) && d === 0 && h === 0) { parts.push(s + "s"); }
    return parts.join(" ");
  }

  function setText(root, selector, text) {
    var el = root.querySelector(selector);
    if (el && el.textContent !== text) { el.textContent = text; }
  }

  // Accrued at chain second `now`, from the values the chain folded at `as-of`:
  // accrued + rate * (min(now, stop) - as_of), capped at the allocation, only while active.
  function live(el, now) {
    var d = el.dataset;
    var accrued = BigInt(d.accrued || "0");
    var allocation = BigInt(d.allocation || "0");
    var state = d.state;
    if (state === "active") {
      var t = BigInt(now);
      var asOf = BigInt(d.asOf || "0");
      if (d.stop) {
        var stop = BigInt(d.stop);
        if (t >= stop) { t = stop; state = "paused"; }
      }
      if (t > asOf) {
        accrued = accrued + BigInt(d.rate || "0") * (t - asOf);
        if (accrued >= allocation) { accrued = allocation; state = "paused"; }
      }
    }
    return { accrued: accrued, unaccrued: allocation - accrued, state: state };
  }

  function tick() {
    var now = chainNow();
    var sums = {};
    document.querySelectorAll("[data-stream-live]").forEach(function (el) {
      var v = live(el, now);
      setText(el, '[data-live="accrued"]', group(v.accrued.toString()));
      setText(el, '[data-live="unaccrued"]', group(v.unaccrued.toString()));
      setText(el, '[data-live="state"]', v.state);
      var d = el.dataset;
      if (d.state === "active" && d.stop) {
        var stop = Number(d.stop);
        setText(el, '[data-live="stop"]', stop > now ? formatTime(stop) + " (in " + formatDuration(stop - now) + ")" : formatTime(stop) + " (stopped)");
      }
      if (d.sum) { sums[d.sum] = (sums[d.sum] || 0n) + v.accrued; }
    });
    document.querySelectorAll("[data-live-sum]").forEach(function (el) {
      var total = sums[el.dataset.liveSum];
      if (total !== undefined) {
        var text = group(total.toString());
        if (el.textContent !== text) { el.textContent = text; }
      }
    });
    document.querySelectorAll('[data-live="chain-time"]').forEach(function (el) {
      var text = formatTime(now);
      if (el.textContent !== text) { el.textContent = text; }
    });
  }

  // ----- refreshing fragments -----

  var pending = new Set();

  function refreshElement(el) {
    var url = el.dataset.fragment;
    if (!url || pending.has(el)) { return; }
    pending.add(el);
    fetch(url, { headers: { "Accept": "text/html" }, cache: "no-store" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        pending.delete(el);
        if (html === null || !el.isConnected) { return; }
        var tpl = document.createElement("template");
        tpl.innerHTML = html.trim();
        var node = tpl.content.firstElementChild;
        if (node) { el.replaceWith(node); tick(); }
      })
      .catch(function () { pending.delete(el); });
  }

  function refreshKeys(keys) {
    var found = [];
    keys.forEach(function (key) {
      document.querySelectorAll("[data-refresh-key]").forEach(function (el) {
        if (el.dataset.refreshKey === key && found.indexOf(el) < 0) { found.push(el); }
      });
    });
    // An element inside another one being refreshed comes along with it.
    found.filter(function (el) {
      return !found.some(function (other) { return other !== el && other.contains(el); });
    }).forEach(refreshElement);
  }

  function refreshAll() {
    var all = Array.prototype.slice.call(document.querySelectorAll("[data-refresh-key]"));
    all.filter(function (el) {
      return !all.some(function (other) { return other !== el && other.contains(el); });
    }).forEach(refreshElement);
  }

  function announce(text) {
    var el = document.querySelector('[data-live="announce"]');
    if (!el) { return; }
    el.textContent = text;
    el.classList.add("show");
    clearTimeout(announce.timer);
    announce.timer = setTimeout(function () { el.classList.remove("show"); }, 4000);
  }

  function setStatus(liveNow, text) {
    document.querySelectorAll('[data-live="status"]').forEach(function (el) {
      el.textContent = liveNow ? "live" : text;
      el.classList.toggle("is-live", liveNow);
    });
  }

  // ----- server-sent events -----

  // One EventSource per shown page. It is closed when the page is hidden or left: a browser
  // keeps at most six connections per host, and pages kept in the back-forward cache would
  // otherwise hold theirs open and starve this page's requests.
  var wasLive = true;
  var source = null;

  function connect() {
    if (!window.EventSource || source) { return; }
    source = new EventSource("/events");
    source.addEventListener("head", function (e) {
      var head = JSON.parse(e.data);
      anchorChain = Math.max(head.time, chainNow());
      anchorPerf = performance.now();
      document.querySelectorAll('[data-live="height"]').forEach(function (el) { el.textContent = String(head.height); });
      body.dataset.height = String(head.height);
      tick();
    });
    source.addEventListener("touch", function (e) {
      var message = JSON.parse(e.data);
      refreshKeys(message.keys || []);
      if (message.text) { announce(message.text); }
    });
    source.addEventListener("status", function (e) {
      var s = JSON.parse(e.data);
      setStatus(s.live, s.text);
      if (s.live && !wasLive) { refreshAll(); }
      wasLive = s.live;
    });
    source.addEventListener("resync", refreshAll);
    source.onerror = function () {
      setStatus(false, "live updates interrupted; reconnecting…");
      wasLive = false;
    };
    source.onopen = function () {
      if (!wasLive) { refreshAll(); }
    };
  }

  function disconnect() {
    if (source) { source.close(); source = null; }
  }

  window.addEventListener("pagehide", disconnect);
  window.addEventListener("pageshow", function (e) {
    if (e.persisted) { wasLive = false; }
    connect();
  });
  connect();

  // Parts that change off-chain (provider sessions) are polled.
  document.querySelectorAll("[data-poll]").forEach(function (el) {
    var key = el.dataset.refreshKey;
    var every = Math.max(2, Number(el.dataset.poll) || 10) * 1000;
    setInterval(function () { if (key) { refreshKeys([key]); } }, every);
  });

  tick();
  setInterval(tick, 250);
})();
