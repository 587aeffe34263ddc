// The login form: the anonymous session's CSRF token is in the boot data.
(function () {
  "use strict";
  var H = window.Hotline;
  var form = H.$("login-form");

  // Where to go after login: a page of this site only. The browser, not the server, parses
  // the URL in the end (it drops tabs and newlines, reads "\\" as "/"): "/\t/evil.example/"
  // would leave the site, so the parsed URL's origin must be this page's.
  function sameOrigin(next) {
    if (typeof next !== "string" || next.charAt(0) !== "/") return "";
    var url;
    try {
      url = new URL(next, location.href);
    } catch (e) {
      return "";
    }
    return url.origin === location.origin ? url.pathname + url.search + url.hash : "";
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var button = H.$("login-submit");
    button.disabled = true;
    H.setText("login-error", "");
    H.api("POST", "/api/login", {
      username: H.$("username").value.trim(),
      password: H.$("password").value,
    }).then(function (data) {
      location.href = sameOrigin(H.config.next) || sameOrigin(data.user.home) || "/";
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
