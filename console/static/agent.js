// The agent desktop (and the leader seat): state buttons, the screen pop, the ticket form,
// call control, callbacks and the knowledge base. Everything live comes over the websocket.
(function () {
  "use strict";
  var H = window.Hotline, t = H.t, $ = H.$, el = H.el;
  var cfg = H.config;
  var me = null;        // /api/agents/me
  var call = null;      // the current call (Call.to_dict) or null
  var ticket = null;    // the ticket on screen (TicketView.to_dict) or null
  var departments = [];
  var FIELDS = ["citizen_name", "contact_phone", "occurred", "category", "location", "description"];

  // --- the agent's state ---------------------------------------------------------------

  function fillSelects() {
    var seats = $("seat-select");
    cfg.seats.forEach(function (s) {
      seats.appendChild(el("option", { value: s.id, text: s.id + " · " + s.extension + (s.position ? " · " + s.position : "") }));
    });
    var reasons = $("reason-select");
    cfg.reasons.forEach(function (r) {
      reasons.appendChild(el("option", { value: r, text: t("reason." + r) }));
    });
    var windows = $("window-select");
    cfg.windows.forEach(function (w) {
      windows.appendChild(el("option", { value: w.id, text: w.name + (w.department ? " · " + w.department : "") }));
    });
  }

  function setMe(data) {
    me = data;
    if (data && "call" in data) setCall(data.call);
    renderState();
    renderShift();
  }

  function renderState() {
    if (!me) return;
    var badge = $("state-badge");
    badge.textContent = H.stateLabel(me.state, me.reason);
    badge.className = "state s-" + me.state;
    badge.setAttribute("data-state", me.state);
    var loggedIn = me.state !== "logged_out";
    $("seat-login").hidden = loggedIn;
    $("state-buttons").hidden = !loggedIn;
    H.setText("seat-text", me.seat ? t("agent.at_seat", { seat: me.seat }) : "");
    $("btn-ready").disabled = me.state === "ready";
    $("wrapup").hidden = me.state !== "wrap_up";
    tick();
  }

  function tick() {
    if (me && me.since) {
      var inState = H.since(me.since);
      H.setText("state-time", H.duration(inState));
      if (me.state === "wrap_up") H.setText("wrapup-left", H.duration(Math.max(0, cfg.wrapup_s - inState)));
    }
    if (call && call.answered_at && call.state !== "ended") {
      H.setText("call-duration", H.duration(H.since(call.answered_at)));
    }
  }

  function renderShift() {
    if (!cfg.leader || !me) return;
    var shifts = me.shifts || [];
    var banner = $("leader-banner");
    banner.hidden = false;
    if (!shifts.length) {
      H.setText("shift-text", t("agent.no_shift"));
      return;
    }
    var s = shifts[0];
    H.setText("shift-text", t(s.on_duty ? "agent.shift_on" : "agent.shift_next", {
      title: s.title || "", seat: s.seat, start: H.dateTime(s.start), end: H.dateTime(s.end),
      topics: s.topics.join("、"),
    }));
  }

  function agentAction(path, body) {
    return H.api("POST", "/api/agents/me/" + path, body).then(setMe, function (e) {
      H.toast(H.errorText(e), "error");
    });
  }

  // --- the call and the screen pop ---------------------------------------------------

  function setCall(data) {
    var previous = call;
    call = data;
    $("no-call").hidden = !!call;
    $("call-info").hidden = !call;
    $("call-actions").hidden = !(call && call.state === "talking");
    $("leader-badge").hidden = !(call && call.leader);
    if (!call) return;
    H.setText("call-caller", (call.caller_name ? call.caller_name + " " : "") + (call.caller || t("call.withheld")));
    H.setText("call-line", [call.did, call.topic].filter(Boolean).join(" · "));
    H.setText("call-state", t("call.state." + call.state));
    if (!previous || previous.call_id !== call.call_id) pop(call);
    if (call.ticket_id && (!ticket || ticket.id !== call.ticket_id)) loadTicket(call.ticket_id, true);
    tick();
  }

  function pop(c) {
    // The caller's earlier tickets and open callbacks, shown as soon as the call is known.
    H.assist.call(c);
    renderHistory([]);
    H.clear($("caller-callbacks"));
    if (!c.caller) return;
    H.api("GET", "/api/callers/" + encodeURIComponent(c.caller) + "/tickets?limit=20").then(renderHistory, function () {});
    H.api("GET", "/api/callbacks?caller=" + encodeURIComponent(c.caller)).then(function (tasks) {
      var list = H.clear($("caller-callbacks"));
      tasks.forEach(function (task) { list.appendChild(callbackItem(task, false)); });
      if (!tasks.length) list.appendChild(el("li", { class: "muted", text: t("agent.none") }));
    }, function () {});
  }

  function renderHistory(items) {
    var list = H.clear($("history"));
    var earlier = items.filter(function (x) { return !call || x.id !== call.ticket_id; });
    H.setText("history-count", earlier.length ? String(earlier.length) : "");
    earlier.forEach(function (x) {
      list.appendChild(el("li", { class: "history-item" }, [
        el("div", { class: "row between" }, [
          el("span", { class: "mono", text: x.id }),
          el("span", { class: "tag", text: x.state_label }),
          el("span", { class: "muted small", text: H.dateTime(x.opened_at) }),
        ]),
        el("div", { class: "small", text: [x.category, x.location].filter(Boolean).join(" · ") }),
        el("div", { class: "clip", text: x.description || x.reply_text || "" }),
      ]));
    });
    if (!earlier.length) list.appendChild(el("li", { class: "muted", text: t("agent.no_history") }));
  }

  // --- the ticket ----------------------------------------------------------------------

  function loadTicket(id, retry) {
    return H.api("GET", "/api/tickets/" + encodeURIComponent(id)).then(showTicket, function (e) {
      // The ticket opens a moment after the answer (written behind the call): try again.
      if (retry && e.status === 404) setTimeout(function () { loadTicket(id, false); }, 800);
    });
  }

  function showTicket(data) {
    var fresh = !ticket || ticket.id !== data.id;
    ticket = data;
    $("no-ticket").hidden = true;
    $("ticket-form").hidden = false;
    H.setText("ticket-id", data.id);
    var state = $("ticket-state");
    state.textContent = data.state_code + " " + data.state_label;
    state.setAttribute("data-state", data.state);
    H.assist.ticket(data, fresh);
    if (fresh) {
      FIELDS.forEach(function (name) { $("f-" + name).value = data[name] || ""; });
      $("answer-text").value = data.reply_text || "";
      H.setText("ticket-msg", "");
    }
    var editable = data.state === "intake";
    FIELDS.forEach(function (name) { $("f-" + name).disabled = !editable; });
    ["btn-save", "btn-answer", "btn-dispatch", "answer-text", "dept-select", "dispatch-note"].forEach(function (id) {
      $(id).disabled = !editable;
    });
    $("attachments").hidden = false;
    var files = H.clear($("attachment-list"));
    (data.attachments || []).forEach(function (a) {
      var href = "/api/tickets/" + encodeURIComponent(data.id) + "/attachments/" + a.id;
      files.appendChild(el("li", {}, [
        el("a", { href: href, text: a.name, target: "_blank", rel: "noopener" }),
        el("span", { class: "muted small", text: " " + Math.ceil(a.size / 1024) + " KB · " + H.clock(a.at) }),
      ]));
    });
    var outcomes = data.window_outcomes || [];
    $("window-outcomes").hidden = !outcomes.length;
    var list = H.clear($("window-outcome-list"));
    outcomes.forEach(function (o) {
      list.appendChild(el("li", {}, [
        el("span", { class: "muted small", text: o.window_id + " · " + H.clock(o.at) }),
        el("div", { text: o.text }),
      ]));
    });
  }

  function formFields() {
    var out = {};
    FIELDS.forEach(function (name) {
      var value = $("f-" + name).value.trim();
      if (value !== (ticket[name] || "")) out[name] = value;
    });
    return out;
  }

  function save() {
    var fields = formFields();
    if (!Object.keys(fields).length) return Promise.resolve(ticket);
    return H.api("PATCH", "/api/tickets/" + encodeURIComponent(ticket.id), fields).then(function (data) {
      showTicket(data);
      H.assist.saved(data);
      H.setText("ticket-saved", t("ticket.saved_at", { time: H.clock(new Date().toISOString()) }));
      return data;
    });
  }

  function transition(action, reason, data) {
    return save().then(function () {
      return H.api("POST", "/api/tickets/" + encodeURIComponent(ticket.id) + "/transitions", {
        action: action, reason: reason || "", data: data || {},
      });
    }).then(function (view) {
      showTicket(view);
      H.setText("ticket-msg", t("ticket.done." + action, { id: view.id }));
      return view;
    }, function (e) {
      H.setText("ticket-msg", H.errorText(e));
      throw e;
    });
  }

  function loadDepartments() {
    H.api("GET", "/api/departments").then(function (rows) {
      departments = rows.filter(function (d) { return d.active; });
      var select = H.clear($("dept-select"));
      select.appendChild(el("option", { value: "", text: t("ticket.choose_department") }));
      departments.forEach(function (d) { select.appendChild(el("option", { value: d.id, text: d.name })); });
    }, function () {});
    var list = $("categories");
    (cfg.categories || (t("ticket.category_list") || "").split("|")).forEach(function (c) {
      if (c) list.appendChild(el("option", { value: c }));
    });
  }

  // --- call control (cti/control_api.py: the agent acts on her own call) ----------------

  function control(action, body) {
    return H.api("POST", "/api/control/" + action, body || {}).then(function (result) {
      H.toast(t("call.done." + action), "ok");
      return result;
    }, function (e) {
      H.toast(H.errorText(e), "error");
      throw e;
    });
  }

  function loadWindows() {
    // Opening hours come from the window directory; a closed window is shown as such.
    H.api("GET", "/api/windows").then(function (data) {
      var select = H.clear($("window-select"));
      data.windows.forEach(function (w) {
        var label = w.name + (w.department ? " · " + w.department : "") + (w.open === false ? " · " + t("call.window_closed") : "");
        select.appendChild(el("option", { value: w.id, text: label }));
      });
    }, function () {});
  }

  // --- callbacks -----------------------------------------------------------------------

  function callbackItem(task, withButton) {
    var label = (task.caller_name ? task.caller_name + " " : "") + task.caller;
    return el("li", { class: "callback", "data-id": task.id }, [
      el("div", { class: "row between" }, [
        el("span", { text: label }),
        el("span", { class: "muted small", text: t("agent.missed", { n: task.missed_calls }) }),
      ]),
      el("div", { class: "row between small" }, [
        el("span", { class: "muted", text: H.dateTime(task.first_call_at) + (task.topic ? " · " + task.topic : "") }),
        withButton ? el("button", {
          type: "button", class: "small-btn", text: t("agent.call_back"),
          onclick: function () {
            H.api("POST", "/api/callbacks/" + task.id + "/call", {}).then(function () {
              H.toast(t("agent.calling_back", { caller: task.caller }), "ok");
            }, function (e) { H.toast(H.errorText(e), "error"); });
          },
        }) : null,
      ]),
    ]);
  }

  var loadCallbacks = H.debounce(300, function () {
    H.api("GET", "/api/callbacks?limit=50").then(function (tasks) {
      var list = H.clear($("callbacks"));
      H.setText("callback-count", tasks.length ? String(tasks.length) : "");
      tasks.forEach(function (task) { list.appendChild(callbackItem(task, true)); });
      if (!tasks.length) list.appendChild(el("li", { class: "muted", text: t("agent.none") }));
    }, function () {});
  });

  // --- requests by SMS, the web form, WeChat, 110 (tickets.intake) ---------------------

  var CHANNELS = {
    sms: "channel.sms", web: "channel.web", wechat: "channel.wechat",
    api: "channel.api", police110: "channel.police110",
  };

  var loadInbox = H.debounce(300, function () {
    H.api("GET", "/api/tickets?state=intake&limit=100").then(function (tickets) {
      var waiting = tickets.filter(function (x) { return x.channel !== "phone"; });
      var list = H.clear($("inbox"));
      H.setText("inbox-count", waiting.length ? String(waiting.length) : "");
      waiting.forEach(function (x) {
        list.appendChild(el("li", { class: "inbox-item", "data-ticket": x.id }, [
          el("div", { class: "row between" }, [
            el("a", {
              href: "#", class: "mono", text: x.id,
              onclick: function (e) { e.preventDefault(); loadTicket(x.id, false); },
            }),
            el("span", { class: "tag", text: CHANNELS[x.channel] ? t(CHANNELS[x.channel]) : x.channel }),
            el("span", { class: "muted small", text: H.clock(x.opened_at) }),
          ]),
          el("div", { class: "clip", text: x.description }),
        ]));
      });
      if (!waiting.length) list.appendChild(el("li", { class: "muted", text: t("agent.none") }));
    }, function () {});
  });

  // --- knowledge base ------------------------------------------------------------------

  function searchKb(query) {
    H.api("GET", "/api/kb/search?q=" + encodeURIComponent(query)).then(function (data) {
      var list = H.clear($("kb-results"));
      data.results.forEach(function (a) {
        var body = el("div", { class: "kb-body", hidden: true, text: a.body });
        list.appendChild(el("li", {}, [
          el("div", { class: "row between" }, [
            el("a", { href: "#", class: "kb-title", text: a.title, onclick: function (e) { e.preventDefault(); body.hidden = !body.hidden; } }),
            el("span", { class: "tag", text: a.category }),
          ]),
          body,
          el("button", {
            type: "button", class: "small-btn", text: t("kb.use"),
            onclick: function () {
              var box = $("answer-text");
              box.value = (box.value ? box.value + "\n" : "") + t("kb.quote", { title: a.title });
            },
          }),
        ]));
      });
      if (!data.results.length) list.appendChild(el("li", { class: "muted", text: t("kb.nothing") }));
    }, function (e) { H.toast(H.errorText(e), "error"); });
  }

  // --- live events ---------------------------------------------------------------------

  function refreshMe() { return H.api("GET", "/api/agents/me").then(setMe, function () {}); }

  function onMessage(m) {
    H.assist.onMessage(m);
    switch (m.type) {
      case "Snapshot":
        if (m.me) setMe(Object.assign({}, me || {}, m.me, { call: m.call }));
        summary(m.summary);
        break;
      case "AgentStateChanged":
        if (me && m.agent_id === me.id) {
          me.state = m.new; me.reason = m.reason; me.seat = m.seat; me.since = m.at;
          renderState();
        }
        break;
      case "CallTransferred":
        if (m.kind === "three_way") {
          var ok = String(m.result).indexOf("Success") === 0;
          H.toast(t(ok ? "call.window_joined" : "call.window_failed"), ok ? "ok" : "error");
          $("btn-leave").hidden = !ok;
        }
        refreshMe();
        break;
      case "CallRinging":
      case "CallAnswered":
        refreshMe();
        break;
      case "TicketOpened":
        refreshMe().then(function () { loadTicket(m.ticket_id, true); });
        break;
      case "CallEnded":
        if (call && call.call_id === m.call_id) {
          call.state = "ended";
          H.setText("call-state", t("call.state.ended"));
          $("call-actions").hidden = true;
          // the next call starts recorded and not on hold
          $("btn-mute").setAttribute("data-muted", "0");
          H.setText("btn-mute", t("call.mute"));
          $("btn-hold").setAttribute("data-held", "0");
          H.setText("btn-hold", t("call.hold"));
        }
        break;
      case "TicketChanged":
      case "TicketUpdated":
        if (ticket && ticket.id === m.ticket_id) loadTicket(m.ticket_id, false);
        loadInbox();
        break;
      case "CallbackTaskChanged":
        loadCallbacks();
        break;
      case "FloorSummary":
        summary(m);
        break;
      case "AmiDisconnected":
        $("ami-banner").hidden = false;
        break;
      case "AmiConnected":
        $("ami-banner").hidden = true;
        break;
    }
  }

  function summary(s) {
    if (!s) return;
    H.setText("floor-line", t("agent.floor", {
      waiting: s.waiting, longest: H.duration(s.longest_wait_s), ready: (s.agents || {}).ready || 0,
    }));
  }

  // --- wiring ----------------------------------------------------------------------------

  fillSelects();
  loadWindows();
  loadDepartments();
  loadCallbacks();
  loadInbox();
  $("btn-seat-login").addEventListener("click", function () {
    agentAction("login", { seat: $("seat-select").value, ready: true });
  });
  $("btn-ready").addEventListener("click", function () { agentAction("ready"); });
  $("btn-not-ready").addEventListener("click", function () {
    agentAction("not-ready", { reason: $("reason-select").value });
  });
  $("btn-seat-logout").addEventListener("click", function () { agentAction("logout"); });
  $("btn-wrapup-done").addEventListener("click", function () { agentAction("wrapup-done"); });
  $("btn-save").addEventListener("click", function () {
    save().then(null, function (e) { H.setText("ticket-msg", H.errorText(e)); });
  });
  $("btn-answer").addEventListener("click", function () {
    var text = $("answer-text").value.trim();
    if (!text) { H.setText("ticket-msg", t("ticket.answer_required")); return; }
    transition("answer", "", { text: text }).then(null, function () {});
  });
  $("btn-dispatch").addEventListener("click", function () {
    var dept = $("dept-select").value;
    if (!dept) { H.setText("ticket-msg", t("ticket.department_required")); return; }
    transition("dispatch", $("dispatch-note").value.trim(), { department: dept }).then(null, function () {});
  });
  function target() { return $("transfer-target").value.trim(); }
  $("btn-transfer").addEventListener("click", function () {
    if (target()) control("blind-transfer", { target: target() }).then(null, function () {});
  });
  $("btn-consult").addEventListener("click", function () {
    if (target()) control("attended-transfer", { target: target() }).then(null, function () {});
  });
  $("btn-three-way").addEventListener("click", function () {
    control("three-way", { window_id: $("window-select").value, ticket_id: call && call.ticket_id || null })
      .then(null, function () {});
  });
  $("btn-leave").addEventListener("click", function () {
    control("three-way/leave").then(function () { $("btn-leave").hidden = true; }, function () {});
  });
  $("btn-hold").addEventListener("click", function () {
    var held = $("btn-hold").getAttribute("data-held") === "1";
    control(held ? "unhold" : "hold").then(function () {
      $("btn-hold").setAttribute("data-held", held ? "0" : "1");
      H.setText("btn-hold", t(held ? "call.hold" : "call.unhold"));
    }, function () {});
  });
  // Privacy: the recording stops taking audio while the citizen gives, e.g., a bank card
  // number; the pause is recorded on the recording (MixMonitorMute), the file is not cut.
  $("btn-mute").addEventListener("click", function () {
    var muted = $("btn-mute").getAttribute("data-muted") === "1";
    control("recording-mute", { muted: !muted }).then(function () {
      $("btn-mute").setAttribute("data-muted", muted ? "0" : "1");
      H.setText("btn-mute", t(muted ? "call.mute" : "call.unmute"));
    }, function () {});
  });
  $("btn-police").addEventListener("click", function () {
    var ticketId = (call && call.ticket_id) || (ticket && ticket.id);
    if (!ticketId) { H.toast(t("call.police_needs_ticket"), "error"); return; }
    if (confirm(t("call.police_confirm", { number: cfg.police_number }))) {
      control("police", { ticket_id: ticketId }).then(null, function () {});
    }
  });
  $("btn-hangup").addEventListener("click", function () { control("hangup").then(null, function () {}); });
  $("kb-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var q = $("kb-q").value.trim();
    if (q) searchKb(q);
  });
  refreshMe();
  H.every(1000, tick);
  H.live(onMessage);
  $("attach-file").addEventListener("change", function () {
    var input = $("attach-file");
    if (!ticket || !input.files.length) return;
    var form = new FormData();
    form.append("file", input.files[0]);
    fetch("/api/tickets/" + encodeURIComponent(ticket.id) + "/attachments", {
      method: "POST",
      headers: { Accept: "application/json", "X-CSRF-Token": H.csrf() },
      credentials: "same-origin",
      body: form,
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        input.value = "";
        if (!response.ok) { H.setText("ticket-msg", data.message || "HTTP " + response.status); return; }
        showTicket(data);
        H.setText("ticket-msg", t("ticket.attached"));
      });
    });
  });
})();
