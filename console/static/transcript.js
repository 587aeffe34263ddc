// The live transcript of calls (console/transcripts.py): one line per utterance and speaker,
// a partial replaced by the next partial and then by its final. Used by the agent desktop
// (its own call) and the wallboard (the call a supervisor picks). The page's onMessage hands
// every message to H.transcript.onMessage; the page names its box with attach().
(function () {
  "use strict";
  var H = window.Hotline, t = H.t, $ = H.$, el = H.el;
  var calls = {};      // call_id -> { "citizen:3": line }
  var shown = null;    // the call on screen
  var box = null;
  var listeners = [];
  var WHO = { citizen: "transcript.citizen", agent: "transcript.agent", mixed: "transcript.mixed" };

  function take(line) {
    var lines = calls[line.call_id] || (calls[line.call_id] = {});
    var key = line.speaker + ":" + line.seq;
    if (line.final && !line.text) delete lines[key];
    else lines[key] = line;
    if (line.call_id === shown) render();
    listeners.forEach(function (fn) { fn(line); });
  }

  function ordered(callId) {
    var lines = calls[callId] || {};
    return Object.keys(lines).map(function (k) { return lines[k]; }).sort(function (a, b) {
      return a.start - b.start || (a.speaker < b.speaker ? -1 : 1) || a.seq - b.seq;
    });
  }

  function render() {
    if (!box) return;
    var list = H.clear(box);
    var lines = shown ? ordered(shown) : [];
    lines.forEach(function (l) {
      list.appendChild(el("li", {
        class: "tline who-" + l.speaker + (l.final ? "" : " partial"),
        "data-speaker": l.speaker, "data-seq": l.seq, "data-final": l.final ? "1" : "0",
      }, [
        el("span", { class: "who", text: t(WHO[l.speaker] || "transcript.mixed") }),
        el("span", { class: "said", text: l.text }),
      ]));
    });
    if (!lines.length) list.appendChild(el("li", { class: "muted", text: t("transcript.waiting") }));
    box.scrollTop = box.scrollHeight;
  }

  H.transcript = {
    attach: function (id) { box = $(id); render(); },
    show: function (callId) { if (shown !== callId) { shown = callId; render(); } },
    shown: function () { return shown; },
    lines: ordered,
    onLine: function (fn) { listeners.push(fn); },
    // The wallboard: a click on a call's row shows its transcript; until then, the call
    // heard last.
    pickFrom: function (id) {
      $(id).addEventListener("click", function (e) {
        var row = e.target.closest ? e.target.closest("tr[data-call]") : null;
        if (row) H.transcript.show(row.getAttribute("data-call"));
      });
      listeners.push(function (line) { if (!shown || !calls[shown]) H.transcript.show(line.call_id); });
    },
    onMessage: function (m) {
      if (m.type === "LiveTranscript") { take(m); return; }
      if (m.type === "Snapshot") {
        if (m.call && m.transcript) m.transcript.forEach(take);
        Object.keys(m.transcripts || {}).forEach(function (id) { m.transcripts[id].forEach(take); });
        render();
      }
      if (m.type === "CallEnded" && m.call_id !== shown) delete calls[m.call_id];
    },
  };
})();
