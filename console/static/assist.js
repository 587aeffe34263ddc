// The agent desktop's help during the call (console/assist.py): the caller line of the
// screen pop, the live transcript of the call, and the ticket drafted from the citizen's
// words. A suggestion never touches a field by itself: the agent accepts it (the field is
// then filled) or not, and what they did is recorded when they accept and when they save.
(function () {
  "use strict";
  var H = window.Hotline, t = H.t, $ = H.$, el = H.el;
  var LABELS = {
    description: "suggest.description", category: "suggest.category",
    location: "suggest.location", repeat: "suggest.repeat",
  };
  var WHY = { caller: "suggest.same_caller", place: "suggest.same_place" };
  var ticketId = null, callId = null;
  var offered = {};   // field -> the suggested value on screen
  var taken = {};     // field -> the value the agent accepted
  var told = {};      // field -> the outcome last recorded

  function tell(field, outcome, suggested, final) {
    if (!ticketId || told[field] === outcome + "\u0000" + final) return;
    told[field] = outcome + "\u0000" + final;
    H.api("POST", "/api/tickets/" + encodeURIComponent(ticketId) + "/suggestions", {
      field: field, suggested: suggested, final: final, outcome: outcome,
    }).then(null, function () {});
  }

  function accept(field, value) {
    var input = field === "repeat" ? $("f-description") : $("f-" + field);
    if (field === "repeat") {
      var note = t("suggest.repeat_note", { id: value });
      if (input.value.indexOf(note) < 0) input.value = (input.value ? input.value + "\n" : "") + note;
    } else {
      input.value = value;
    }
    taken[field] = value;
    tell(field, "accepted", value, value);
    render(last);
  }

  var last = null;
  function item(field, value, reason, extra) {
    var done = taken[field] === value;
    return el("li", { class: "suggestion", "data-field": field }, [
      el("div", { class: "row between" }, [
        el("span", { class: "tag", text: t(LABELS[field]) }),
        el("button", {
          type: "button", class: "small-btn", "data-accept": field, disabled: done,
          text: t(done ? "suggest.accepted" : "suggest.accept"),
          onclick: function () { accept(field, value); },
        }),
      ]),
      el("div", { class: "value", text: extra || value }),
      reason && reason.length ? el("div", { class: "muted small", text: t("suggest.because", { words: reason.join("、") }) }) : null,
    ]);
  }

  function render(data) {
    last = data;
    var list = H.clear($("suggestions"));
    if (!data) return;
    offered = {};
    ["description", "category", "location"].forEach(function (field) {
      var s = data[field];
      if (!s || !s.value) return;
      offered[field] = s.value;
      list.appendChild(item(field, s.value, s.reason));
    });
    (data.repeats || []).slice(0, 3).forEach(function (r) {
      offered.repeat = offered.repeat || r.ticket_id;
      list.appendChild(item("repeat", r.ticket_id, null,
        t("suggest.repeat_of", { id: r.ticket_id, why: t(WHY[r.why] || "suggest.same_place"), when: H.dateTime(r.opened_at) })));
    });
    if (!list.childNodes.length) list.appendChild(el("li", { class: "muted", text: t("suggest.none") }));
  }

  var load = H.debounce(800, function () {
    if (!ticketId) return;
    var id = ticketId;
    H.api("GET", "/api/tickets/" + encodeURIComponent(id) + "/suggestions").then(function (data) {
      if (id === ticketId) render(data);
    }, function () {});
  });

  var caller = null;  // the caller line of the call on the desk (/api/callers/.../summary)
  function renderCaller(s) {
    caller = s;
    var box = H.clear($("caller-summary"));
    box.hidden = false;
    if (s.flag) {
      box.setAttribute("data-flag", s.flag.kind);
      box.appendChild(el("span", { class: "tag alarm", text: t("callers.kind." + s.flag.kind), title: s.flag.note }));
      if (s.flag.note) box.appendChild(el("span", { class: "small", text: " " + s.flag.note + " " }));
    }
    if (s.repeat_caller) box.appendChild(el("span", { class: "tag alarm", text: t("pop.repeat_caller") }));
    // This call's own ticket is no earlier request.
    var open = s.open.filter(function (o) { return o.id !== ticketId; });
    box.setAttribute("data-open", String(open.length));
    box.setAttribute("data-last-contact", s.last_contact || "");
    if (open.length) {
      box.appendChild(el("span", { class: "tag", text: t("pop.open", { n: open.length }) }));
      open.slice(0, 5).forEach(function (o) { box.appendChild(el("span", { class: "mono small", text: " " + o.id })); });
    } else {
      box.appendChild(el("span", { class: "muted small", text: t("pop.no_open") }));
    }
    box.appendChild(el("div", { class: "muted small", text: s.last_contact ? t("pop.last_contact", { at: H.dateTime(s.last_contact) }) : t("pop.first_contact") }));
  }

  H.assist = {
    // A new call on the desk (the screen pop).
    call: function (c) {
      callId = c.call_id;
      caller = null;
      H.transcript.show(callId);
      H.clear($("caller-summary")).hidden = true;
      if (!c.caller) return;
      H.api("GET", "/api/callers/" + encodeURIComponent(c.caller) + "/summary").then(renderCaller, function () {});
    },
    // The ticket on the form; fresh: another ticket than before.
    ticket: function (data, fresh) {
      if (!fresh) return;
      ticketId = data.id; offered = {}; taken = {}; told = {};
      if (caller) renderCaller(caller);
      render(null);
      load();
    },
    // The form was saved with these values: what became of each suggestion on screen.
    saved: function (values) {
      Object.keys(offered).forEach(function (field) {
        if (field === "repeat") {
          if (!taken.repeat) tell("repeat", "ignored", offered.repeat, "");
          return;
        }
        var now = values[field] || "";
        if (!(field in taken)) tell(field, "ignored", offered[field], now);
        else tell(field, now === taken[field] ? "accepted" : "edited", taken[field], now);
      });
    },
    onMessage: function (m) {
      H.transcript.onMessage(m);
      if ((m.type === "TranscriptReady" || m.type === "CallEnded") && ticketId) load();
    },
  };

  H.transcript.onLine(function (line) {
    // The citizen finished a sentence on this call: draft again.
    if (line.call_id === callId && line.final && line.speaker !== "agent") load();
  });
  H.transcript.attach("transcript");
})();
