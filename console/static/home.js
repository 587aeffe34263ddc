// Landing page for roles without a page of their own: the links the topbar shows, listed.
(function () {
  "use strict";
  var H = window.Hotline;
  var list = H.$("home-links");
  document.querySelectorAll(".topbar nav.links a").forEach(function (a) {
    list.appendChild(H.el("li", {}, [H.el("a", { href: a.getAttribute("href"), text: a.textContent })]));
  });
  if (!list.firstChild) list.appendChild(H.el("li", { class: "muted", text: H.t("home.nothing") }));
})();
