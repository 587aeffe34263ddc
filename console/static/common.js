// Shared by every console page: the boot data, t(key), the JSON API with the CSRF token,
// the live websocket with reconnect, and small DOM helpers that only ever set textContent.
(function () {
  "use strict";
  var boot = JSON.parse(document.getElementById("boot").textContent);
  var H = (window.Hotline = { boot: boot, user: boot.user, config: boot.config || {} });
  var skew = 0; // server clock minus browser clock, in ms

  // A key the catalogue lacks shows as itself (or, in test mode, as boot.missing's mark).
  H.has = function (key) { return Object.prototype.hasOwnProperty.call(boot.messages, key); };

  H.t = function (key, params) {
    var text = H.has(key) ? boot.messages[key] : boot.missing ? boot.missing.replace("{key}", key) : key;
    if (params) {
      text = text.replace(/\{(\w+)\}/g, function (m, name) {
        return Object.prototype.hasOwnProperty.call(params, name) ? String(params[name]) : m;
      });
    }
    return text;
  };

  H.$ = function (id) { return document.getElementById(id); };

  // el("li", {class: "x", "data-id": 3, onclick: fn}, ["text", child]) - text is never HTML.
  H.el = function (tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      var value = attrs[name];
      if (value === null || value === undefined || value === false) return;
      if (name.slice(0, 2) === "on" && typeof value === "function") {
        node.addEventListener(name.slice(2), value);
      } else if (name === "text") {
        node.textContent = String(value);
      } else {
        node.setAttribute(name, value === true ? "" : String(value));
      }
    });
    (children || []).forEach(function (child) {
      if (child === null || child === undefined) return;
      node.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
    });
    return node;
  };

  H.clear = function (node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  };

  H.setText = function (id, text) {
    var node = typeof id === "string" ? H.$(id) : id;
    if (node) node.textContent = text === null || text === undefined ? "" : String(text);
  };

  H.csrf = function () { return boot.csrf; };

  H.api = function (method, url, body) {
    var headers = { Accept: "application/json" };
    if (method !== "GET") headers["X-CSRF-Token"] = boot.csrf;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(url, {
      method: method,
      headers: headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then(function (response) {
      if (response.status === 204) return null;
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (response.ok) return data;
        if (response.status === 401 && boot.page !== "login") {
          location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
        }
        var error = new Error(data.message || "HTTP " + response.status);
        error.status = response.status;
        error.id = data.error || "";
        error.details = data.details || {};
        throw error;
      });
    });
  };

  H.errorText = function (error) {
    var key = "error.id." + (error.id || "");
    return H.has(key) ? H.t(key) : H.t("error.generic", { message: error.message });
  };

  // --- time -------------------------------------------------------------------------

  H.now = function () { return Date.now() + skew; };
  H.syncClock = function (iso) { if (iso) skew = Date.parse(iso) - Date.now(); };
  H.since = function (iso) { return iso ? Math.max(0, (H.now() - Date.parse(iso)) / 1000) : 0; };

  H.duration = function (seconds) {
    seconds = Math.max(0, Math.floor(seconds || 0));
    var h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    var mm = (h && m < 10 ? "0" : "") + m, ss = (s < 10 ? "0" : "") + s;
    return (h ? h + ":" : "") + mm + ":" + ss;
  };

  // Times are shown in the site's time zone, whatever the browser's is.
  H.clock = function (iso) {
    if (!iso) return "";
    return new Date(iso).toLocaleTimeString(boot.lang, { hour12: false, timeZone: boot.tz });
  };

  H.dateTime = function (iso) {
    if (!iso) return "";
    return new Date(iso).toLocaleString(boot.lang, { hour12: false, timeZone: boot.tz });
  };

  H.percent = function (value) {
    return value === null || value === undefined ? "—" : (value * 100).toFixed(1) + "%";
  };

  // Every KPI shown carries its definition and period: [data-kpi="offered"] has the label
  // key kpi.offered and the definition kpi.def.offered (tickets/kpi.py gives the formulas).
  // The title shows them on hover; a notes list, when given, shows them in the page.
  H.explainKpis = function (root, period, notes) {
    if (notes) H.clear(notes);
    var nodes = root.querySelectorAll ? root.querySelectorAll("[data-kpi]") : root;
    Array.prototype.forEach.call(nodes, function (node) {
      var name = node.getAttribute("data-kpi");
      node.title = H.t("kpi.def." + name) + "\n" + period;
      if (notes) {
        notes.appendChild(H.el("dt", { text: H.t("kpi." + name) }));
        notes.appendChild(H.el("dd", { "data-kpi-note": name, text: H.t("kpi.def." + name) }));
      }
    });
    if (notes) notes.appendChild(H.el("dd", { class: "muted", "data-kpi-period": "", text: period }));
  };

  H.stateLabel = function (state, reason) {
    var text = H.t("state." + state);
    if (state === "not_ready" && reason) text += " · " + H.t("reason." + reason);
    return text;
  };

  // --- notices ----------------------------------------------------------------------

  H.toast = function (message, kind) {
    var box = H.$("toasts");
    if (!box) {
      box = H.el("div", { id: "toasts", role: "status", "aria-live": "polite" });
      document.body.appendChild(box);
    }
    var item = H.el("div", { class: "toast " + (kind || "info"), text: message });
    box.appendChild(item);
    setTimeout(function () { if (item.parentNode) item.parentNode.removeChild(item); }, 5000);
  };

  // --- the live connection ----------------------------------------------------------

  H.live = function (onMessage) {
    var delay = 500, socket = null;
    var badge = H.$("conn");
    function show(state) {
      if (!badge) return;
      badge.hidden = false;
      badge.className = "conn " + state;
      badge.textContent = H.t("conn." + state);
      badge.setAttribute("data-state", state);
    }
    function open() {
      var scheme = location.protocol === "https:" ? "wss://" : "ws://";
      socket = new WebSocket(scheme + location.host + "/ws");
      show("connecting");
      socket.onopen = function () { delay = 500; show("live"); };
      socket.onmessage = function (event) {
        var message;
        try { message = JSON.parse(event.data); } catch (e) { return; }
        if (message.now) H.syncClock(message.now);
        try { onMessage(message); } catch (e) { console.error(e); }
      };
      socket.onclose = function (event) {
        show("offline");
        if (event.code === 1008) {
          location.href = "/login?next=" + encodeURIComponent(location.pathname);
          return;
        }
        setTimeout(open, delay);
        delay = Math.min(delay * 2, 10000);
      };
    }
    open();
    return function () { return socket; };
  };

  // Re-render on a timer for clocks that tick (time in state, waits); not a server poll.
  H.every = function (ms, fn) { fn(); return setInterval(fn, ms); };

  // Runs fn at most once per `ms`, trailing.
  H.debounce = function (ms, fn) {
    var timer = null;
    return function () {
      if (timer) return;
      timer = setTimeout(function () { timer = null; fn(); }, ms);
    };
  };

  var logout = H.$("logout");
  if (logout) {
    logout.addEventListener("click", function () {
      H.api("POST", "/api/logout").then(
        function () { location.href = "/login"; },
        function () { location.href = "/login"; }
      );
    });
  }
})();
