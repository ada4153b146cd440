// Live build page. A WebSocket streams log lines and status as they are saved; if it cannot
// be opened (or keeps dropping) the page polls the API instead. After a reconnect each step
// subscribes again from the line after the last one it shows, so nothing is lost or repeated.
// Log lines are untrusted: they reach the page only as text nodes (see ansi.js).
(function () {
  "use strict";
  var banner = document.getElementById("build");
  if (!banner) return;

  var LOG_INTERVAL = 1000;
  var BUILD_INTERVAL = 2000;
  var buildUrl = banner.getAttribute("data-build-url");
  var finished = banner.getAttribute("data-finished") === "true";
  var buildStart = Date.parse(banner.getAttribute("data-start") || "") || null;
  var FINISHED = ["SUCCESS", "FAILURE", "ABORTED", "UNSTABLE", "COLLAPSED"];
  var stepsBox = document.getElementById("steps");
  var followBox = document.getElementById("follow");
  var timeSelect = document.getElementById("timestamps");
  var target = null; // the line named by the URL's #step:N, until it is shown

  var steps = Array.prototype.map.call(document.querySelectorAll(".step[data-step]"), function (el) {
    return {
      el: el,
      name: el.getAttribute("data-step"),
      url: el.getAttribute("data-logs-url"),
      details: el.querySelector("details"),
      pre: el.querySelector("pre.log"),
      next: 0,
      more: true,
      busy: false,
      touched: false,
      ansi: window.SdAnsi.freshState(),
      firstTime: null,
      // A step that has not ended may print at any moment: it is followed even while closed.
      done: /step-(success|failure)/.test(el.className)
    };
  });

  // Opening a step for the reader must not count as the reader's own choice.
  function autoOpen(step) {
    if (!step.details || step.details.open) return;
    step.autoOpened = true;
    step.details.open = true;
  }

  function stepNamed(name) {
    return steps.filter(function (s) { return s.name === name; })[0];
  }

  // --- preferences: follow mode and timestamps, remembered per browser -------------------

  function stored(key, fallback) {
    try { return window.localStorage.getItem(key) || fallback; } catch (e) { return fallback; }
  }
  function store(key, value) {
    try { window.localStorage.setItem(key, value); } catch (e) { /* private mode */ }
  }
  if (followBox) {
    followBox.checked = stored("sd.follow", "on") === "on";
    followBox.addEventListener("change", function () {
      store("sd.follow", followBox.checked ? "on" : "off");
      if (followBox.checked) steps.forEach(scrollToEnd);
    });
  }
  function following() { return !!(followBox && followBox.checked); }

  function setTimeMode(mode) {
    if (!stepsBox) return;
    stepsBox.classList.remove("ts-none", "ts-wall", "ts-elapsed");
    stepsBox.classList.add("ts-" + mode);
  }
  if (timeSelect) {
    timeSelect.value = stored("sd.timestamps", "none");
    setTimeMode(timeSelect.value);
    timeSelect.addEventListener("change", function () {
      store("sd.timestamps", timeSelect.value);
      setTimeMode(timeSelect.value);
    });
  }

  // --- rendering ------------------------------------------------------------------------

  function pad(n, width) {
    var s = String(n);
    while (s.length < (width || 2)) s = "0" + s;
    return s;
  }

  function wallClock(ms) {
    var d = new Date(ms);
    return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()) + "." + pad(d.getMilliseconds(), 3);
  }

  function elapsed(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    return pad(Math.floor(s / 3600)) + ":" + pad(Math.floor((s % 3600) / 60)) + ":" + pad(s % 60);
  }

  function fmtDuration(start, end) {
    if (!start) return "";
    var ms = (end ? Date.parse(end) : Date.now()) - Date.parse(start);
    if (ms < 10000) return (Math.max(0, ms) / 1000).toFixed(1) + "s";
    var s = Math.max(0, Math.floor(ms / 1000));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    if (h) return h + "h " + pad(m) + "m";
    if (m) return m + "m " + pad(sec) + "s";
    return sec + "s";
  }

  function atBottom(pre) {
    return pre.scrollHeight - pre.scrollTop - pre.clientHeight < 24;
  }

  function scrollToEnd(step) {
    if (!step.pre || !step.details || !step.details.open) return;
    step.pre.scrollTop = step.pre.scrollHeight;
  }

  function lineElement(step, line) {
    var number = line.n + 1;
    var row = document.createElement("span");
    row.className = "line";
    row.id = step.name + ":" + number;
    var link = document.createElement("a");
    link.className = "ln";
    link.href = "#" + encodeURIComponent(step.name) + ":" + number;
    link.textContent = String(number);
    link.setAttribute("aria-label", "Line " + number);
    row.appendChild(link);
    if (typeof line.t === "number") {
      if (step.firstTime === null) step.firstTime = line.t;
      var wall = document.createElement("span");
      wall.className = "ts ts-w";
      wall.textContent = wallClock(line.t);
      var since = document.createElement("span");
      since.className = "ts ts-e";
      since.textContent = elapsed(line.t - (buildStart || step.firstTime));
      row.appendChild(wall);
      row.appendChild(since);
    }
    var text = document.createElement("span");
    text.className = "msg";
    window.SdAnsi.render(text, String(line.m), step.ansi);
    row.appendChild(text);
    row.appendChild(document.createTextNode("\n"));
    return row;
  }

  function appendLines(step, lines) {
    var pre = step.pre;
    var wasAtBottom = atBottom(pre);
    var fragment = document.createDocumentFragment();
    lines.forEach(function (line) { fragment.appendChild(lineElement(step, line)); });
    pre.appendChild(fragment);
    if (following() || wasAtBottom) scrollToEnd(step);
    showTarget();
  }

  // --- links to lines: #step:N opens the step, highlights the line and scrolls to it --------

  function readTarget() {
    var hash = decodeURIComponent(window.location.hash.slice(1));
    var at = hash.lastIndexOf(":");
    if (at <= 0) return null;
    var step = stepNamed(hash.slice(0, at));
    var number = parseInt(hash.slice(at + 1), 10);
    if (!step || !(number > 0)) return null;
    return { step: step, id: step.name + ":" + number };
  }

  function showTarget() {
    if (!target) return;
    var el = document.getElementById(target.id);
    if (!el) return;
    Array.prototype.forEach.call(document.querySelectorAll(".line.highlight"), function (old) {
      old.classList.remove("highlight");
    });
    el.classList.add("highlight");
    // Reading a linked line: stop following, or the next batch would scroll it away.
    if (followBox) followBox.checked = false;
    el.scrollIntoView({ block: "center" });
    target = null;
  }

  function goToHash() {
    target = readTarget();
    if (!target) return;
    var step = target.step;
    step.touched = true;
    if (step.details && !step.details.open) step.details.open = true; // its toggle subscribes
    showTarget();
  }
  window.addEventListener("hashchange", goToHash);

  // --- polling fallback -------------------------------------------------------------------

  function pollLogs(step) {
    if (!step.more || !step.details || !step.details.open) return;
    fetchLogs(step);
  }

  // The step's lines from the database, from the one after the last shown, in order.
  function fetchLogs(step) {
    if (step.busy) {
      step.refetch = true; // lines came meanwhile that this fetch may not hold: fetch again
      return;
    }
    step.busy = true;
    step.refetch = false;
    fetch(step.url + "?from=" + step.next, {
      credentials: "same-origin",
      headers: { Accept: "application/json" }
    })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        var more = response.headers.get("X-More-Data") === "true";
        return response.json().then(function (lines) { return { lines: lines, more: more }; });
      })
      .then(function (page) {
        var lines = Array.isArray(page.lines) ? page.lines : [];
        var fresh = lines.filter(function (line) { return line.n >= step.next; });
        if (fresh.length) {
          appendLines(step, fresh);
          step.next = fresh[fresh.length - 1].n + 1;
        }
        // A finished build whose step got no new lines has nothing more to send, even if the
        // step never recorded its end (an aborted build).
        step.more = page.more && !(finished && !lines.length);
        step.busy = false;
        if ((fresh.length && step.more) || step.refetch) fetchLogs(step);
      })
      .catch(function () { step.busy = false; });
  }

  // --- status -----------------------------------------------------------------------------

  function setStatus(status) {
    banner.setAttribute("data-status", status);
    banner.className = banner.className.replace(/status-border-\S+/, "status-border-" + status.toLowerCase());
    var holder = document.getElementById("build-status");
    var badge = holder && holder.querySelector(".badge");
    if (badge && badge.textContent !== status) {
      badge.textContent = status;
      badge.className = "badge status-" + status.toLowerCase();
    }
  }

  function setText(id, text) {
    var el = document.getElementById(id);
    if (el && text && el.textContent !== text) el.textContent = text;
  }

  function updateStep(data) {
    var step = stepNamed(data.name);
    if (!step) return;
    var state = "pending", code = "not started";
    if (data.code !== null && data.code !== undefined) {
      state = data.code === 0 ? "success" : "failure";
      code = "exit " + data.code;
    } else if (data.startTime) {
      state = "running";
      code = "running";
    }
    step.el.className = "step step-" + state;
    step.done = state === "success" || state === "failure";
    step.el.querySelector("[data-role=code]").textContent = code;
    step.el.querySelector("[data-role=duration]").textContent = fmtDuration(data.startTime, data.endTime);
    // Follow the running step unless the reader has opened or closed steps themselves.
    if (state === "running" && !step.touched) autoOpen(step);
  }

  function pollBuild() {
    if (finished) return;
    fetch(buildUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(applyBuild)
      .catch(function () { /* retried on the next tick */ });
  }

  function applyBuild(build) {
    setStatus(String(build.status));
    setText("build-message", build.statusMessage || "");
    if (build.startTime && !buildStart) buildStart = Date.parse(build.startTime);
    (build.steps || []).forEach(function (data) {
      updateStep(data);
      var step = stepNamed(data.name);
      if (step) subscribe(step);
    });
    setText("build-duration", fmtDuration(build.startTime, build.endTime));
    if (build.startTime) setText("build-start", build.startTime);
    if (build.endTime) setText("build-end", build.endTime);
    if (FINISHED.indexOf(build.status) >= 0) {
      finished = true;
      banner.setAttribute("data-finished", "true");
      var stop = document.getElementById("stop-form");
      if (stop) stop.hidden = true;
    }
  }

  // --- the WebSocket ----------------------------------------------------------------------

  var socket = null;
  var live = false;
  var failures = 0;

  function wanted(step) {
    return !!step.details && (step.details.open || (!step.done && !finished));
  }

  function subscribe(step) {
    if (socket && live && wanted(step) && !step.subscribed) {
      step.subscribed = true;
      socket.send(JSON.stringify({ type: "subscribe", step: step.name, from: step.next }));
    }
  }

  function receiveLines(message) {
    var step = stepNamed(message.step);
    if (!step || !step.subscribed) return;
    // Drop lines we already have: after a reconnect the backlog and live lines may overlap.
    var fresh = (message.lines || []).filter(function (line) { return line.n >= step.next; });
    if (!fresh.length) return;
    // Follow the step that is printing unless the reader has opened or closed steps.
    if (!step.touched) autoOpen(step);
    if (fresh[0].n > step.next) {
      // Lines saved while we were away come first, and their backlog is still on its way:
      // take them all from the database, in order, rather than leave a hole.
      fetchLogs(step);
      return;
    }
    appendLines(step, fresh);
    step.next = fresh[fresh.length - 1].n + 1;
  }

  function connect() {
    var path = banner.getAttribute("data-ws-path");
    if (!path || !window.WebSocket || failures > 5) return;
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + window.location.host + path);
    socket.onopen = function () {
      live = true;
      failures = 0;
      banner.setAttribute("data-live", "true");
      steps.forEach(function (step) { step.subscribed = false; subscribe(step); });
      pollBuild();
    };
    socket.onmessage = function (event) {
      var message;
      try { message = JSON.parse(event.data); } catch (e) { return; }
      if (message.type === "lines") receiveLines(message);
      else if (message.type === "build") applyBuild(message.build);
    };
    socket.onclose = function () {
      live = false;
      socket = null;
      banner.setAttribute("data-live", "false");
      steps.forEach(function (step) { step.subscribed = false; });
      failures += 1;
      if (!finished || steps.some(function (s) { return s.more; })) {
        window.setTimeout(connect, Math.min(10000, 500 * Math.pow(2, failures)));
      }
    };
  }

  steps.forEach(function (step) {
    if (!step.details) return;
    step.details.addEventListener("toggle", function () {
      if (step.autoOpened) step.autoOpened = false;
      else step.touched = true;
      if (live) subscribe(step); else pollLogs(step);
    });
    // Scrolling a log up means reading it: stop following until the box is ticked again.
    step.pre.addEventListener("wheel", function (event) {
      if (event.deltaY < 0 && followBox && followBox.checked) followBox.checked = false;
    }, { passive: true });
  });

  function tick() {
    if (!live) steps.forEach(pollLogs);
  }
  function buildTick() {
    if (!live) pollBuild();
  }
  goToHash();
  connect();
  tick();
  window.setInterval(tick, LOG_INTERVAL);
  if (!finished) window.setInterval(buildTick, BUILD_INTERVAL);
})();
