// The login form: the anonymous session's CSRF token is in the boot data.
(function () {
  "use strict";
  var H = window.Hotline;
  var form = H.$("login-form");
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var button = H.$("login-submit");
    button.disabled = true;
    H.setText("login-error", "");
    H.api("POST", "/api/login", {
      username: H.$("username").value.trim(),
      password: H.$("password").value,
    }).then(function (data) {
      location.href = H.config.next || data.user.home;
    }, function (error) {
      button.disabled = false;
      var text;
      if (error.status === 429) {
        text = H.t("login.too_many", { seconds: (error.details || {}).retry_after_s || 60 });
      } else if (error.status === 401) {
        text = H.t("login.bad");
      } else if (error.id === "csrf") {
        text = H.t("login.expired");
      } else {
        text = H.errorText(error);
      }
      H.setText("login-error", text);
      H.$("password").value = "";
      H.$("password").focus();
    });
  });
})();
