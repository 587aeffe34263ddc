// Reports: today's calls (the calls table) and the department KPIs of a period (the ticket
// slice's report API), drawn with the local chart helper; the recordings of a day, each
// linking to the replay page.
(function () {
  "use strict";
  var H = window.Hotline, t = H.t, $ = H.$, el = H.el;
  var KPIS = ["connection_rate", "answered_15s_rate", "direct_answer_rate", "timely_response_rate",
    "on_time_completion_rate", "timely_feedback_rate", "satisfaction_rate", "service_index",
    "return_rate", "rehandling_rate"];
  var rows = [];

  // Today in the site's time zone, as YYYY-MM-DD.
  var today = new Intl.DateTimeFormat("en-CA", { timeZone: H.boot.tz, year: "numeric", month: "2-digit", day: "2-digit" })
    .format(new Date());
  $("period").value = today.slice(0, 7);
  $("rec-date").value = today;
  KPIS.forEach(function (k) { $("kpi-select").appendChild(el("option", { value: k, text: t("kpi." + k) })); });
  $("kpi-select").value = "service_index";

  function loadToday() {
    H.api("GET", "/api/kpi/today").then(function (k) {
      H.setText("today-day", k.day);
      var box = H.clear($("today-kpis"));
      [["kpi.offered", k.offered], ["kpi.answered", k.answered], ["kpi.connection_rate", H.percent(k.connection_rate)],
        ["kpi.service_level", H.percent(k.service_level_15s)], ["kpi.abandoned", k.abandoned],
        ["kpi.asa", k.asa_s === null ? "—" : t("unit.seconds", { n: k.asa_s })],
        ["kpi.occupancy", H.percent(k.occupancy_today.occupancy)]].forEach(function (pair) {
        box.appendChild(el("div", { class: "kpi", "data-kpi": pair[0].slice(4) }, [
          el("span", { class: "k", text: t(pair[0]) }), el("span", { class: "v", text: pair[1] })]));
      });
      H.explainKpis(box, t("kpi.period.today", { day: k.day, tz: H.boot.tz }), $("today-notes"));
      window.HotlineChart.bars($("hourly-chart"), {
        labels: k.hours.map(function (h) { return h.hour; }),
        series: [
          { name: t("kpi.offered"), values: k.hours.map(function (h) { return h.offered; }) },
          { name: t("kpi.answered"), values: k.hours.map(function (h) { return h.answered; }) },
        ],
      });
    }, function (e) { H.toast(H.errorText(e), "error"); });
  }

  function loadReport() {
    H.setText("report-msg", "");
    H.api("GET", "/api/reports/kpi?period=" + encodeURIComponent($("period").value.trim())).then(function (data) {
      rows = data.departments;
      var head = H.clear($("kpi-head"));
      head.appendChild(el("th", { text: t("ticket.department") }));
      KPIS.forEach(function (k) { head.appendChild(el("th", { "data-kpi": k, text: t("kpi." + k) })); });
      H.explainKpis(head, t("kpi.period.report", { period: data.period, tz: H.boot.tz }), $("period-notes"));
      var body = H.clear($("kpi-body"));
      rows.forEach(function (r) {
        body.appendChild(el("tr", { class: r.bottom_three ? "late" : "" }, [el("td", { text: r.department_name || r.department_id })].concat(
          KPIS.map(function (k) {
            return el("td", { class: "num", text: k === "service_index" ? (r[k] === null ? "—" : r[k].toFixed(1)) : H.percent(r[k]) });
          }))));
      });
      if (!rows.length) H.setText("report-msg", t("reports.empty"));
      drawDepartments();
      showOccupancy(data.occupancy, t("kpi.period.report", { period: data.period, tz: H.boot.tz }));
      H.api("GET", "/api/reports/suggestions?period=" + encodeURIComponent($("period").value.trim())).then(showSuggestions, function () {
        H.clear($("suggest-body"));
      });
    }, function (e) { H.setText("report-msg", H.errorText(e)); });
  }

  // What the agents did with the ticket suggestions in the period, per field: how good they are.
  function showSuggestions(data) {
    var body = H.clear($("suggest-body"));
    ["description", "category", "location", "repeat"].forEach(function (name) {
      var f = data.fields[name];
      if (!f) return;
      body.appendChild(el("tr", { "data-field": name }, [el("td", { text: t("suggest." + name) }),
        el("td", { class: "num", text: String(f.accepted) }),
        el("td", { class: "num", text: String(f.edited) }),
        el("td", { class: "num", text: String(f.ignored) }),
        el("td", { class: "num", text: H.percent(f.taken_rate) })]));
    });
    if (!body.childNodes.length) body.appendChild(el("tr", {}, [el("td", { colspan: 5, class: "muted", text: t("suggest.none") })]));
  }

  // The agents' occupancy in the period: the floor first, then each agent.
  function showOccupancy(occ, period) {
    H.explainKpis(document.querySelectorAll("#main h3[data-kpi]"), period);
    var body = H.clear($("occupancy-body"));
    if (!occ) return;
    [{ agent_id: "", name: t("reports.occupancy_floor"), occupancy: occ.occupancy, handling_s: occ.handling_s, available_s: occ.available_s }]
      .concat(occ.agents).forEach(function (a) {
        body.appendChild(el("tr", {}, [el("td", { text: a.name || a.agent_id }),
          el("td", { class: "num", text: H.percent(a.occupancy) }),
          el("td", { class: "num", text: H.duration(a.handling_s) }),
          el("td", { class: "num", text: H.duration(a.available_s) })]));
      });
  }

  function drawDepartments() {
    var kpi = $("kpi-select").value, index = kpi === "service_index";
    window.HotlineChart.bars($("dept-chart"), {
      labels: rows.map(function (r) { return r.department_name || r.department_id; }),
      series: [{ name: t("kpi." + kpi), values: rows.map(function (r) { return r[kpi] === null ? null : (index ? r[kpi] : r[kpi] * 100); }) }],
      max: 100,
      format: function (v) { return index ? String(v) : v + "%"; },
    });
  }

  function loadRecordings() {
    var query = "?limit=200&date=" + encodeURIComponent($("rec-date").value);
    var ticket = $("rec-ticket").value.trim();
    if (ticket) query = "?limit=200&ticket_id=" + encodeURIComponent(ticket);
    H.api("GET", "/api/recordings" + query).then(function (data) {
      var body = H.clear($("recordings"));
      data.recordings.forEach(function (r) {
        body.appendChild(el("tr", { "data-recording": r.id }, [
          el("td", { class: "mono", text: r.id }),
          el("td", { text: H.dateTime(r.started_at) }),
          el("td", { class: "mono", text: r.ticket_id }),
          el("td", { text: r.agent_id }),
          el("td", { text: H.duration(r.duration_s) }),
          el("td", { text: t("recording.status." + r.status) }),
          el("td", {}, [el("a", { href: "/replay/" + encodeURIComponent(r.id), class: "replay-link", text: t("reports.replay") })]),
        ]));
      });
      if (!data.recordings.length) body.appendChild(el("tr", {}, [el("td", { colspan: 7, class: "muted", text: t("reports.no_recordings") })]));
    }, function (e) { H.toast(H.errorText(e), "error"); });
  }

  $("period-form").addEventListener("submit", function (e) { e.preventDefault(); loadReport(); });
  $("kpi-select").addEventListener("change", drawDepartments);
  $("rec-form").addEventListener("submit", function (e) { e.preventDefault(); loadRecordings(); });
  window.addEventListener("resize", H.debounce(200, function () { drawDepartments(); loadToday(); }));
  loadToday();
  loadReport();
  loadRecordings();
})();
