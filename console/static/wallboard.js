// The supervisor wallboard: waiting line, live calls with listen/whisper/barge, the floor as
// a map of seats, today's KPIs, alarms and the callback backlog. The snapshot draws the page,
// then every bus event updates it; clocks tick locally.
(function () {
  "use strict";
  var H = window.Hotline, t = H.t, $ = H.$, el = H.el;
  var cfg = H.config;
  var calls = {};   // call_id -> call
  var agents = {};  // agent id -> agent
  var seats = {};   // extension -> seat
  var alarms = [];
  var SL = cfg.service_level_s || 15;

  function callOf(m) {
    var c = calls[m.call_id];
    if (!c) c = calls[m.call_id] = { call_id: m.call_id, state: "new", started_at: m.at };
    return c;
  }

  function onMessage(m) {
    var c;
    H.transcript.onMessage(m);  // the live transcript of the call picked (transcript.js)
    switch (m.type) {
      case "Snapshot":
        calls = {}; agents = {}; seats = {};
        (m.calls || []).forEach(function (x) { calls[x.call_id] = x; });
        (m.agents || []).forEach(function (a) { agents[a.id] = a; });
        (m.seats || []).forEach(function (s) { seats[s.extension] = s; });
        alarms = (m.alarms || []).slice().reverse();
        nodes(m.nodes || {});
        renderCti(m.cti);
        fillMySeat();
        renderAll();
        loadKpis();
        loadCallbacks();
        return;
      case "CallStarted":
        c = callOf(m);
        c.caller = m.caller; c.caller_name = m.caller_name; c.did = m.did; c.started_at = m.at;
        c.node = m.node;
        break;
      case "CallRouted":
        c = callOf(m);
        c.topic = m.topic; c.leader = m.leader; c.ticket_id = m.ticket_id;
        if (c.state === "new") c.state = "routed";
        break;
      case "CallQueued":
        callOf(m).state = "waiting";
        break;
      case "CallRinging":
        c = callOf(m);
        c.state = "ringing"; c.seat = m.seat;
        break;
      case "CallAnswered":
        c = callOf(m);
        c.state = "talking"; c.seat = m.seat; c.agent_id = m.agent_id; c.answered_at = m.at;
        c.caller = m.caller || c.caller; c.topic = m.topic || c.topic; c.wait_s = m.wait_s;
        loadKpis();
        break;
      case "CallEnded":
        delete calls[m.call_id];
        loadKpis();
        break;
      case "AgentStateChanged":
        var a = agents[m.agent_id] || (agents[m.agent_id] = { id: m.agent_id, name: cfg.agents[m.agent_id] || m.agent_id });
        a.state = m.new; a.reason = m.reason; a.seat = m.seat; a.since = m.at;
        Object.keys(seats).forEach(function (ext) {
          if (seats[ext].agent_id === m.agent_id && ext !== m.seat) seats[ext].agent_id = "";
        });
        if (m.seat && seats[m.seat]) seats[m.seat].agent_id = m.new === "logged_out" ? "" : m.agent_id;
        break;
      case "SeatStatusChanged":
        var s = seats[m.seat];
        if (s) { s.contact = m.contact; s.device = m.device; s.rtt_ms = m.rtt_us / 1000; s.node = m.node; }
        break;
      case "SeatAlarm":
      case "Alarm":
      case "AmiDisconnected":
        alarms.unshift(m);
        alarms = alarms.slice(0, 50);
        if (m.type === "AmiDisconnected") nodes(Object.fromEntries([[m.node, false]]));
        break;
      case "AmiConnected":
        nodes(Object.fromEntries([[m.node, true]]));
        break;
      case "CallbackTaskChanged":
        loadCallbacks();
        return;
      default:
        return;
    }
    schedule();
  }

  var down = {};
  var known = {};  // every node the CTI has, connected or not
  function nodes(state) {
    Object.keys(state).forEach(function (n) { known[n] = true; if (state[n]) delete down[n]; else down[n] = true; });
    var names = Object.keys(down);
    $("ami-banner").hidden = !names.length;
    H.setText("ami-banner", names.length ? t("wallboard.pbx_down", { nodes: names.join(", ") }) : "");
  }

  var pending = false;
  function schedule() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(function () { pending = false; renderAll(); });
  }

  // --- rendering ---------------------------------------------------------------------

  function renderAll() {
    renderNodes();
    renderCalls();
    renderFloor();
    renderAlarms();
    renderSummary();
  }

  function waitOf(c) {
    if (c.answered_at) return c.wait_s || 0;
    return H.since(c.started_at);
  }

  function renderCalls() {
    var list = Object.keys(calls).map(function (k) { return calls[k]; });
    var waiting = list.filter(function (c) { return !c.answered_at && c.state !== "ended"; })
      .sort(function (a, b) { return waitOf(b) - waitOf(a); });
    var talking = list.filter(function (c) { return c.answered_at; })
      .sort(function (a, b) { return Date.parse(a.answered_at) - Date.parse(b.answered_at); });
    var body = H.clear($("waiting"));
    waiting.forEach(function (c) {
      var wait = waitOf(c);
      body.appendChild(el("tr", { class: wait > SL ? "late" : "", "data-call": c.call_id }, [
        el("td", { text: c.caller || t("call.withheld") }),
        el("td", { text: [c.topic || c.did, c.leader ? t("agent.leader_badge") : ""].filter(Boolean).join(" · ") }),
        el("td", { class: "timer", "data-since": c.started_at, text: H.duration(wait) }),
      ]));
    });
    H.setText("waiting-count", waiting.length ? String(waiting.length) : "");
    body = H.clear($("calls"));
    talking.forEach(function (c) {
      var agent = agents[c.agent_id];
      body.appendChild(el("tr", { "data-call": c.call_id }, [
        el("td", { text: c.caller || t("call.withheld") }),
        el("td", { text: c.topic || c.did || "" }),
        el("td", { text: (agent ? agent.name : c.agent_id || "") + (c.seat ? " · " + c.seat : "") }),
        el("td", { class: "timer", "data-since": c.answered_at, text: H.duration(H.since(c.answered_at)) }),
        el("td", { class: "spy" }, ["listen", "whisper", "barge"].map(function (mode) {
          return el("button", { type: "button", class: "small-btn", "data-mode": mode, text: t("spy." + mode),
            onclick: function () { spy(c, mode); } });
        })),
      ]));
    });
    H.setText("calls-count", talking.length ? String(talking.length) : "");
  }

  // The supervisor's own phone rings first, then listens to (or joins) the agent's call.
  function fillMySeat() {
    var select = H.clear($("my-seat")), saved = localStorage.getItem("hotline.mySeat") || "";
    select.appendChild(el("option", { value: "", text: "—" }));
    Object.keys(seats).sort(function (a, b) {
      return (seats[a].kind === "supervisor" ? 0 : 1) - (seats[b].kind === "supervisor" ? 0 : 1) || a.localeCompare(b);
    }).forEach(function (ext) {
      var s = seats[ext];
      select.appendChild(el("option", { value: s.id, text: s.id + " · " + s.extension, selected: s.id === saved }));
    });
  }
  $("my-seat").addEventListener("change", function () { localStorage.setItem("hotline.mySeat", this.value); });

  function spy(c, mode) {
    var seat = $("my-seat").value;
    if (!seat) { H.toast(t("spy.need_seat"), "error"); $("my-seat").focus(); return; }
    H.api("POST", "/api/control/spy", { seat: seat, agent_id: c.agent_id, mode: mode }).then(function () {
      H.toast(t("spy.started", { mode: t("spy." + mode) }), "ok");
    }, function (e) { H.toast(H.errorText(e), "error"); });
  }

  function phoneClass(s) {
    if (s.contact === "Unreachable" || s.contact === "Removed" || s.device === "UNAVAILABLE" || s.device === "INVALID") return "down";
    if (s.device === "INUSE" || s.device === "BUSY" || s.device === "ONHOLD") return "busy";
    if (s.device === "RINGING" || s.device === "RINGINUSE") return "ringing";
    if (s.contact === "Unknown" && s.device === "UNKNOWN") return "unknown";
    return "idle";
  }

  // Each node's health: its link, the seats whose phones are registered on it, its calls.
  var REGISTERED = { Reachable: 1, NonQualified: 1, Created: 1, Updated: 1 };
  function renderNodes() {
    var names = Object.keys(known).sort();
    var box = H.clear($("node-health"));
    if (names.length < 2) return;
    names.forEach(function (n) {
      var seatCount = Object.keys(seats).filter(function (ext) {
        return seats[ext].node === n && REGISTERED[seats[ext].contact] && !down[n];
      }).length;
      var callCount = Object.keys(calls).filter(function (id) { return calls[id].node === n; }).length;
      box.appendChild(el("span", { class: "node " + (down[n] ? "node-down" : "node-up"), "data-node": n,
        text: t("wallboard.node_health", { node: n, state: t(down[n] ? "wallboard.node_down" : "wallboard.node_up"),
          seats: seatCount, calls: callCount }) }));
    });
  }

  // Which CTI process leads (two on one database: one leads, the other waits on standby).
  function renderCti(cti) {
    H.setText("cti-leader", cti && cti.leader ? t("wallboard.cti_leader", {
      leader: cti.leader_address || cti.leader, term: cti.term }) : "");
  }

  function renderFloor() {
    var floor = H.clear($("floor"));
    var rooms = {};
    Object.keys(seats).sort().forEach(function (ext) {
      var s = seats[ext];
      (rooms[s.room || ""] = rooms[s.room || ""] || []).push(s);
    });
    Object.keys(rooms).sort().forEach(function (room) {
      var tiles = rooms[room].sort(function (a, b) { return (a.position || a.id).localeCompare(b.position || b.id); })
        .map(function (s) {
          var a = s.agent_id ? agents[s.agent_id] : null;
          var state = a ? a.state : "empty";
          return el("div", { class: "seat s-" + state + " k-" + s.kind, "data-seat": s.id, "data-ext": s.extension, title: s.phone_model || "" }, [
            el("div", { class: "seat-head" }, [
              el("span", { class: "seat-id", text: s.position || s.id }),
              el("span", { class: "phone p-" + phoneClass(s), title: s.contact + " / " + s.device, text: t("phone." + phoneClass(s)) }),
            ]),
            el("div", { class: "seat-agent", text: a ? a.name : (s.kind === "window" ? t("wallboard.window") : t("wallboard.empty")) }),
            el("div", { class: "seat-state" }, a ? [
              el("span", { class: "agent-state", "data-state": a.state, text: H.stateLabel(a.state, a.reason) }),
              el("span", { class: "timer", "data-since": a.since, text: H.duration(H.since(a.since)) }),
            ] : [el("span", { class: "muted", text: s.extension })]),
          ]);
        });
      floor.appendChild(el("div", { class: "room" }, [
        el("h3", { text: room || t("wallboard.no_room") }),
        el("div", { class: "tiles" }, tiles),
      ]));
    });
  }

  function renderAlarms() {
    var list = H.clear($("alarms"));
    alarms.forEach(function (a) {
      var text;
      if (a.type === "SeatAlarm") text = t(a.cleared ? "alarm.seat_back" : "alarm.seat", { seat: a.seat, agent: a.agent_id, reason: a.reason });
      else if (a.type === "AmiDisconnected") text = t("alarm.pbx", { node: a.node });
      else text = (H.has("alarm.kind." + a.kind) ? t("alarm.kind." + a.kind) + ": " : "") + a.message;
      list.appendChild(el("li", { class: a.cleared ? "cleared" : "" }, [
        el("span", { class: "muted small", text: H.clock(a.at) + " " }), text,
      ]));
    });
    H.setText("alarm-count", alarms.length ? String(alarms.length) : "");
    if (!alarms.length) list.appendChild(el("li", { class: "muted", text: t("wallboard.no_alarms") }));
  }

  // The wallboard holds every call and agent: its counters come from them, at once.
  function renderSummary() {
    var list = Object.keys(calls).map(function (k) { return calls[k]; });
    var waiting = list.filter(function (c) { return !c.answered_at; });
    var longest = waiting.reduce(function (m, c) { return Math.max(m, waitOf(c)); }, 0);
    H.setText("k-waiting", waiting.length);
    H.setText("k-longest", H.duration(longest));
    H.setText("k-talking", list.length - waiting.length);
    H.setText("k-ready", Object.keys(agents).filter(function (id) { return agents[id].state === "ready"; }).length);
    $("k-longest").parentNode.classList.toggle("late", longest > SL);
  }

  // Timers tick every second from their data-since attribute; no request is made.
  function tickTimers() {
    document.querySelectorAll("#main [data-since]").forEach(function (node) {
      node.textContent = H.duration(H.since(node.getAttribute("data-since")));
    });
    document.querySelectorAll("#waiting tr").forEach(function (row) {
      var c = calls[row.getAttribute("data-call")];
      if (c) row.classList.toggle("late", waitOf(c) > SL);
    });
    renderSummary();
  }

  // --- data the events do not carry -------------------------------------------------

  var loadKpis = H.debounce(1500, function () {
    H.api("GET", "/api/kpi/today").then(function (k) {
      H.setText("k-offered", k.offered);
      H.setText("k-answered", k.answered);
      H.setText("k-connection", H.percent(k.connection_rate));
      H.setText("k-sl", H.percent(k.service_level_15s));
      H.setText("k-abandoned", k.abandoned);
      H.setText("k-asa", k.asa_s === null ? "—" : t("unit.seconds", { n: k.asa_s }));
      H.explainKpis(document.querySelectorAll("#kpis [data-period=today]"), t("kpi.period.today", { day: k.day, tz: H.boot.tz }));
      // The floor's occupancy over the last half hour, and each agent's beside it.
      var occ = k.occupancy;
      H.setText("k-occupancy", H.percent(occ.occupancy));
      H.setText("k-occupancy-agents", occ.agents.map(function (a) {
        return ((agents[a.agent_id] && agents[a.agent_id].name) || a.agent_id) + " " + H.percent(a.occupancy);
      }).join(" · "));
      H.explainKpis(document.querySelectorAll("#kpis [data-period=recent]"), t("kpi.period.recent", { minutes: Math.round(occ.window_s / 60) }));
    }, function () {});
  });

  var loadCallbacks = H.debounce(500, function () {
    H.api("GET", "/api/callbacks?limit=20").then(function (tasks) {
      var list = H.clear($("callbacks"));
      H.setText("callback-count", tasks.length ? String(tasks.length) : "");
      tasks.forEach(function (task) {
        list.appendChild(el("li", {}, [
          el("span", { text: task.caller + " " }),
          el("span", { class: "muted small", text: H.dateTime(task.first_call_at) + " · " + t("agent.missed", { n: task.missed_calls }) }),
        ]));
      });
      if (!tasks.length) list.appendChild(el("li", { class: "muted", text: t("agent.none") }));
    }, function () {});
  });

  ["ready", "not_ready", "ringing", "on_call", "wrap_up", "logged_out"].forEach(function (s) {
    $("legend").appendChild(el("span", { class: "agent-state", "data-state": s, text: t("state." + s) }));
  });
  H.explainKpis(document.querySelectorAll("#kpis [data-period=live]"), t("kpi.period.live"));
  H.every(1000, tickTimers);
  H.transcript.attach("wb-transcript");
  H.transcript.pickFrom("calls");
  H.live(onMessage);
})();
