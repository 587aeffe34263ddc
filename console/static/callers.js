// The supervisor's caller flags: set a flag on a number with a reason, clear it (a reason
// again), and the history of every change (the audit trail).
(function () {
  "use strict";
  var H = window.Hotline, t = H.t, $ = H.$, el = H.el;

  function row(cells) { return el("tr", {}, cells.map(function (c) { return typeof c === "object" ? el("td", {}, [c]) : el("td", { text: c }); })); }
  function failed(e) { H.toast(H.errorText(e), "error"); }

  function clear(flag) {
    var reason = window.prompt(t("callers.clear_reason"));
    if (!reason) return;
    H.api("POST", "/api/caller-flags/" + encodeURIComponent(flag.caller) + "/clear", { reason: reason })
      .then(load, failed);
  }

  function load() {
    H.api("GET", "/api/caller-flags").then(function (flags) {
      var body = H.clear($("flags"));
      flags.forEach(function (f) {
        body.appendChild(row([f.caller, t("callers.kind." + f.kind), f.reason, f.updated_by, H.dateTime(f.updated_at),
          el("button", { type: "button", class: "ghost", text: t("callers.clear"), onclick: function () { clear(f); } })]));
      });
      if (!flags.length) body.appendChild(el("tr", {}, [el("td", { colspan: 6, class: "muted", text: t("audit.empty") })]));
    }, failed);
    H.api("GET", "/api/audit/caller-flags?limit=500").then(function (events) {
      var body = H.clear($("flag-history"));
      events.forEach(function (e) {
        body.appendChild(row([H.dateTime(e.at), e.caller, t("callers.action." + e.action),
          t("callers.kind." + e.kind), e.reason, e.actor]));
      });
      if (!events.length) body.appendChild(el("tr", {}, [el("td", { colspan: 6, class: "muted", text: t("audit.empty") })]));
    }, failed);
  }

  $("flag-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var caller = $("flag-caller").value.trim();
    H.api("PUT", "/api/caller-flags/" + encodeURIComponent(caller), {
      kind: $("flag-kind").value, reason: $("flag-reason").value,
    }).then(function () { $("flag-reason").value = ""; load(); }, failed);
  });
  load();
})();
