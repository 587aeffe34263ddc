// The public web form: the request, then the code sent by SMS; the ticket number at the end.
(function () {
  "use strict";
  var H = window.Hotline;
  var pending = null;
  // The API's sentences are for systems; the citizen reads these.
  var ERRORS = {
    "rate-limited": "intake.error.rate_limited",
    "wrong-code": "intake.error.wrong_code",
    "code-expired": "intake.error.code_expired",
    "too-many-attempts": "intake.error.too_many_attempts",
    "too-large": "intake.error.too_large",
    "mobile-required": "intake.error.mobile_required",
    "invalid-phone": "intake.error.mobile_required",
    "phone-required": "intake.error.mobile_required",
    "empty-description": "intake.error.empty_description",
    "field-too-long": "intake.error.too_large",
    "control-character": "intake.error.unreadable",
  };

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "omit",
    }).then(function (r) {
      return r.json().then(function (data) {
        if (r.ok) return data;
        throw { status: r.status, id: data.error, message: data.message || "" };
      }, function () { throw { status: r.status, message: "" }; });
    });
  }

  function fail(button) {
    return function (error) {
      button.disabled = false;
      var key = ERRORS[error.id];
      H.setText("intake-error", key ? H.t(key) : H.t("intake.failed"));
    };
  }

  H.$("intake-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var button = H.$("intake-submit");
    button.disabled = true;
    H.setText("intake-error", "");
    var body = {};
    ["phone", "citizen_name", "location", "occurred", "description"].forEach(function (name) {
      body[name] = H.$("in-" + name).value.trim();
    });
    post("/api/intake/web", body).then(function (data) {
      pending = data.id;
      H.$("intake-form").hidden = true;
      H.$("confirm-form").hidden = false;
      H.setText("confirm-sent", H.t("intake.code_sent", { phone: data.phone, minutes: H.config.code_minutes }));
      H.$("in-code").focus();
    }, fail(button));
  });

  H.$("confirm-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var button = H.$("confirm-submit");
    button.disabled = true;
    H.setText("intake-error", "");
    post("/api/intake/web/confirm", { id: pending, code: H.$("in-code").value.trim() }).then(function (data) {
      H.$("confirm-form").hidden = true;
      var done = H.$("intake-done");
      done.hidden = false;
      done.textContent = H.t(data.kind === "attached" ? "intake.attached" : "intake.opened", { ticket: data.ticket_id });
    }, fail(button));
  });
})();
