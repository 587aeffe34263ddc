// The administrator's audit page: who replayed or downloaded which recording, the live
// sessions (each can be ended), and logins.
(function () {
  "use strict";
  var H = window.Hotline, t = H.t, $ = H.$, el = H.el;

  function row(cells) { return el("tr", {}, cells.map(function (c) { return typeof c === "object" ? el("td", {}, [c]) : el("td", { text: c }); })); }

  H.api("GET", "/api/audit/replay?limit=500").then(function (data) {
    var body = H.clear($("replay-audit"));
    data.entries.forEach(function (a) {
      body.appendChild(row([H.dateTime(a.at), a.username, t("audit.action." + a.action),
        el("a", { href: "/replay/" + encodeURIComponent(a.recording_id), text: "#" + a.recording_id }), a.remote_addr]));
    });
    if (!data.entries.length) body.appendChild(el("tr", {}, [el("td", { colspan: 5, class: "muted", text: t("audit.empty") })]));
  }, function (e) { H.toast(H.errorText(e), "error"); });

  // Live sessions: the administrator ends one (logs that browser out at once).
  function loadSessions() {
    H.api("GET", "/api/sessions").then(function (rows) {
      var body = H.clear($("sessions"));
      rows.forEach(function (s) {
        var end = s.current ? el("span", { class: "muted", text: t("audit.session_current") })
          : el("button", { type: "button", class: "ghost", text: t("audit.session_end"), onclick: function () {
            H.api("DELETE", "/api/sessions/" + encodeURIComponent(s.id)).then(loadSessions, function (e) {
              H.toast(H.errorText(e), "error");
            });
          } });
        body.appendChild(row([s.display_name + " (" + s.username + ")", H.dateTime(s.created_at),
          H.dateTime(s.last_seen_at), s.remote_addr, s.user_agent, end]));
      });
      if (!rows.length) body.appendChild(el("tr", {}, [el("td", { colspan: 6, class: "muted", text: t("audit.empty") })]));
    }, function (e) { H.toast(H.errorText(e), "error"); });
  }
  loadSessions();

  H.api("GET", "/api/audit/logins?limit=500").then(function (rows) {
    var body = H.clear($("login-audit"));
    rows.forEach(function (a) {
      var tr = row([H.dateTime(a.at), a.username, t("audit.outcome." + a.outcome), a.remote_addr]);
      if (!a.ok && a.outcome !== "logout") tr.className = "late";
      body.appendChild(tr);
    });
  }, function (e) { H.toast(H.errorText(e), "error"); });
})();
