// ANSI SGR colours for log lines, without innerHTML: a line becomes text nodes inside spans
// whose classes name the colours. Log text is untrusted, so it only ever reaches textContent;
// the only style set directly is a 24-bit colour built from three clamped integers.
(function (root) {
  "use strict";

  // CSI sequences (colours and cursor moves), OSC titles and lone escapes.
  var ESCAPES = /\x1b\[([0-9;:?]*)([A-Za-z])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]/g;

  function freshState() {
    return { fg: null, bg: null, bold: false, dim: false, italic: false, underline: false, rgb: null };
  }

  function colour(code, base) {
    if (code >= base && code <= base + 7) return code - base;
    if (code >= base + 60 && code <= base + 67) return code - base - 60 + 8;
    return null;
  }

  function applySgr(state, params) {
    var codes = params === "" ? [0] : params.split(/[;:]/).map(function (p) { return parseInt(p || "0", 10); });
    for (var i = 0; i < codes.length; i++) {
      var c = codes[i];
      if (c === 0) { var s = freshState(); for (var k in s) state[k] = s[k]; }
      else if (c === 1) state.bold = true;
      else if (c === 2) state.dim = true;
      else if (c === 3) state.italic = true;
      else if (c === 4) state.underline = true;
      else if (c === 22) { state.bold = false; state.dim = false; }
      else if (c === 23) state.italic = false;
      else if (c === 24) state.underline = false;
      else if (c === 39) { state.fg = null; state.rgb = null; }
      else if (c === 49) state.bg = null;
      else if (c === 38 || c === 48) {
        // 38;5;N (256 colours: the first 16 map to classes) or 38;2;R;G;B (24-bit).
        var target = c === 38 ? "fg" : "bg";
        if (codes[i + 1] === 5) {
          var n = codes[i + 2];
          if (n >= 0 && n < 16) state[target] = n;
          i += 2;
        } else if (codes[i + 1] === 2) {
          if (target === "fg") {
            state.rgb = [codes[i + 2], codes[i + 3], codes[i + 4]].map(function (v) {
              return Math.max(0, Math.min(255, v | 0));
            });
            state.fg = null;
          }
          i += 4;
        }
      } else {
        var fg = colour(c, 30), bg = colour(c, 40);
        if (fg !== null) { state.fg = fg; state.rgb = null; }
        else if (bg !== null) state.bg = bg;
      }
    }
  }

  function classesOf(state) {
    var classes = [];
    if (state.fg !== null) classes.push("ansi-fg-" + state.fg);
    if (state.bg !== null) classes.push("ansi-bg-" + state.bg);
    if (state.bold) classes.push("ansi-bold");
    if (state.dim) classes.push("ansi-dim");
    if (state.italic) classes.push("ansi-italic");
    if (state.underline) classes.push("ansi-underline");
    return classes.join(" ");
  }

  function pushText(target, text, state) {
    if (!text) return;
    var cls = classesOf(state);
    if (!cls && !state.rgb) {
      target.appendChild(document.createTextNode(text));
      return;
    }
    var span = document.createElement("span");
    if (cls) span.className = cls;
    if (state.rgb) span.style.color = "rgb(" + state.rgb.join(",") + ")";
    span.textContent = text;
    target.appendChild(span);
  }

  // Append one line's text to `target`, colouring it; `state` carries colours across lines
  // as a terminal would.
  function render(target, text, state) {
    // A carriage return redraws the line (progress bars): keep what was drawn last.
    var cr = text.lastIndexOf("\r", text.length - 2);
    if (cr >= 0) text = text.slice(cr + 1);
    var last = 0;
    ESCAPES.lastIndex = 0;
    var match;
    while ((match = ESCAPES.exec(text)) !== null) {
      pushText(target, text.slice(last, match.index), state);
      if (match[2] === "m") applySgr(state, match[1] || "");
      last = ESCAPES.lastIndex;
    }
    pushText(target, text.slice(last).replace(/\r$/, ""), state);
  }

  function strip(text) {
    return text.replace(ESCAPES, "");
  }

  root.SdAnsi = { render: render, freshState: freshState, strip: strip };
})(window);
