// Live build page: polls the build for its status and step codes, and each open step for new
// log lines. Log lines are untrusted: they are only ever inserted with textContent.
(function () {
  "use strict";
  var banner = document.getElementById("build");
  if (!banner) return;

  var LOG_INTERVAL = 1000;
  var BUILD_INTERVAL = 2000;
  var buildUrl = banner.getAttribute("data-build-url");
  var finished = banner.getAttribute("data-finished") === "true";
  var FINISHED = ["SUCCESS", "FAILURE", "ABORTED", "UNSTABLE", "COLLAPSED"];

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
      touched: false
    };
  });

  function fmtDuration(start, end) {
    if (!start) return "";
    var ms = (end ? Date.parse(end) : Date.now()) - Date.parse(start);
    if (ms < 10000) return (Math.max(0, ms) / 1000).toFixed(1) + "s";
    var s = Math.max(0, Math.floor(ms / 1000));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    function pad(n) { return n < 10 ? "0" + n : String(n); }
    if (h) return h + "h " + pad(m) + "m";
    if (m) return m + "m " + pad(sec) + "s";
    return sec + "s";
  }

  function appendLines(step, lines) {
    var pre = step.pre;
    var atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 24;
    var fragment = document.createDocumentFragment();
    lines.forEach(function (line) {
      var span = document.createElement("span");
      span.className = "line";
      span.textContent = String(line.m) + "\n";
      fragment.appendChild(span);
    });
    pre.appendChild(fragment);
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  }

  function pollLogs(step) {
    if (step.busy || !step.more || !step.details || !step.details.open) return;
    step.busy = true;
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
        if (lines.length) {
          appendLines(step, lines);
          step.next = lines[lines.length - 1].n + 1;
        }
        // A finished build whose step got no new lines has nothing more to send, even if the
        // step never recorded its end (an aborted build).
        step.more = page.more && !(finished && !lines.length);
        step.busy = false;
        if (lines.length && step.more) pollLogs(step);
      })
      .catch(function () { step.busy = false; });
  }

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
    var step = steps.filter(function (s) { return s.name === data.name; })[0];
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
    step.el.querySelector("[data-role=code]").textContent = code;
    step.el.querySelector("[data-role=duration]").textContent = fmtDuration(data.startTime, data.endTime);
    // Follow the running step unless the reader has opened or closed steps themselves.
    if (state === "running" && !step.touched && step.details && !step.details.open) {
      step.details.open = true;
    }
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

  // Live updates: a WebSocket streams log lines and status as they are saved. If it cannot be
  // opened (or keeps dropping), the page falls back to polling the API.
  var socket = null;
  var live = false;
  var failures = 0;

  function subscribe(step) {
    if (socket && live && step.details && step.details.open && !step.subscribed) {
      step.subscribed = true;
      socket.send(JSON.stringify({ type: "subscribe", step: step.name, from: step.next }));
    }
  }

  function receiveLines(message) {
    var step = steps.filter(function (s) { return s.name === message.step; })[0];
    if (!step || !step.subscribed) return;
    // Drop lines we already have: after a reconnect the backlog and live lines may overlap.
    var fresh = (message.lines || []).filter(function (line) { return line.n >= step.next; });
    if (!fresh.length) return;
    appendLines(step, fresh);
    step.next = fresh[fresh.length - 1].n + 1;
  }

  function applyBuild(build) {
    setStatus(String(build.status));
    setText("build-message", build.statusMessage || "");
    (build.steps || []).forEach(function (data) {
      updateStep(data);
      var step = steps.filter(function (s) { return s.name === data.name; })[0];
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

  function connect() {
    var path = banner.getAttribute("data-ws-path");
    if (!path || !window.WebSocket || failures > 5) return;
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + window.location.host + path);
    socket.onopen = function () {
      live = true;
      failures = 0;
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
      step.touched = true;
      if (live) subscribe(step); else pollLogs(step);
    });
  });

  function tick() {
    if (!live) steps.forEach(pollLogs);
  }
  function buildTick() {
    if (!live) pollBuild();
  }
  connect();
  tick();
  window.setInterval(tick, LOG_INTERVAL);
  if (!finished) window.setInterval(buildTick, BUILD_INTERVAL);
})();
