// The window clerk's page: the ticket of the three-way call the window's phone is in, and a
// form to write the window's answer onto it. The websocket says when the phone's state changes.
(function () {
  "use strict";
  var H = window.Hotline, t = H.t, $ = H.$, el = H.el;
  var current = null, windowId = H.user.window_id;

  function load() {
    H.api("GET", "/api/window/current").then(function (data) {
      H.setText("window-name", data.window.name);
      H.setText("window-status", data.call ? t("window.in_call", { topic: data.call.topic || "" }) : t("window.idle"));
      var id = data.ticket_id || (current && current.id) || (data.recent[0] && data.recent[0].ticket_id);
      if (id) showTicket(id);
      var recent = H.clear($("recent"));
      $("recent-box").hidden = data.recent.length < 2;
      data.recent.forEach(function (r) {
        recent.appendChild(el("li", {}, [el("a", { href: "#", text: r.ticket_id + " · " + H.clock(r.at),
          onclick: function (e) { e.preventDefault(); showTicket(r.ticket_id); } })]));
      });
    }, function (e) { H.setText("window-status", H.errorText(e)); });
  }

  function showTicket(id) {
    H.api("GET", "/api/tickets/" + encodeURIComponent(id)).then(function (tk) {
      var fresh = !current || current.id !== tk.id;
      current = tk;
      $("window-ticket").hidden = false;
      H.setText("w-ticket-id", tk.id);
      H.setText("w-ticket-state", tk.state_code + " " + tk.state_label);
      H.setText("w-category", tk.category);
      H.setText("w-location", tk.location);
      H.setText("w-occurred", tk.occurred);
      H.setText("w-description", tk.description);
      var list = H.clear($("w-outcomes"));
      (tk.window_outcomes || []).forEach(function (o) {
        list.appendChild(el("li", {}, [el("span", { class: "muted small", text: H.clock(o.at) + " " + o.actor }), el("div", { class: "pre", text: o.text })]));
      });
      if (fresh) { $("outcome-text").value = ""; H.setText("outcome-msg", ""); }
    }, function (e) { H.setText("outcome-msg", H.errorText(e)); });
  }

  $("outcome-form").addEventListener("submit", function (e) {
    e.preventDefault();
    if (!current) return;
    var text = $("outcome-text").value.trim();
    if (!text) return;
    H.api("POST", "/api/tickets/" + encodeURIComponent(current.id) + "/window-outcomes", { window_id: windowId, text: text })
      .then(function () {
        $("outcome-text").value = "";
        H.setText("outcome-msg", t("window.saved"));
        showTicket(current.id);
      }, function (err) { H.setText("outcome-msg", H.errorText(err)); });
  });

  var reload = H.debounce(300, load);
  H.live(function (m) {
    if (m.type === "Snapshot" || m.type === "SeatStatusChanged" || m.type === "CallTransferred" || m.type === "CallEnded") reload();
    if ((m.type === "TicketChanged" || m.type === "TicketUpdated") && current && m.ticket_id === current.id) {
      showTicket(current.id);
    }
  });
})();
