// A local reader for /openapi.json: every operation with its roles, parameters and body.
(function () {
  "use strict";
  var H = window.Hotline, t = H.t, $ = H.$, el = H.el;

  function ref(schema) {
    if (!schema) return "";
    if (schema.$ref) return schema.$ref.split("/").pop();
    if (schema.type === "array") return ref(schema.items) + "[]";
    return schema.type || "";
  }

  H.api("GET", "/openapi.json").then(function (spec) {
    var box = H.clear($("docs"));
    var byTag = {};
    Object.keys(spec.paths).sort().forEach(function (path) {
      Object.keys(spec.paths[path]).forEach(function (method) {
        var op = spec.paths[path][method];
        var tag = (op.tags || ["—"])[0];
        (byTag[tag] = byTag[tag] || []).push({ path: path, method: method.toUpperCase(), op: op });
      });
    });
    Object.keys(byTag).sort().forEach(function (tag) {
      var table = el("table", { class: "grid" }, [el("thead", {}, [el("tr", {}, [
        el("th", { text: t("docs.method") }), el("th", { text: t("docs.path") }), el("th", { text: t("docs.roles") }),
        el("th", { text: t("docs.params") }), el("th", { text: t("docs.body") }), el("th", { text: t("docs.summary") }),
      ])])]);
      var body = el("tbody");
      byTag[tag].forEach(function (item) {
        var params = (item.op.parameters || []).map(function (p) { return p.name + (p.required ? "*" : ""); }).join(", ");
        var req = item.op.requestBody && item.op.requestBody.content && item.op.requestBody.content["application/json"];
        var roles = item.op["x-roles"];
        body.appendChild(el("tr", {}, [
          el("td", { class: "mono", text: item.method }), el("td", { class: "mono", text: item.path }),
          el("td", { text: roles && roles.length ? roles.join(", ") : t("docs.open") }),
          el("td", { class: "mono", text: params }), el("td", { class: "mono", text: req ? ref(req.schema) : "" }),
          el("td", { text: item.op.summary || "" }),
        ]));
      });
      table.appendChild(body);
      box.appendChild(el("h3", { text: tag }));
      box.appendChild(table);
    });
  }, function (e) { H.toast(H.errorText(e), "error"); });
})();
