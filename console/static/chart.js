// A small bar chart on <canvas>: grouped bars, a value axis with round steps, labels and a
// legend. Enough for the reports; no library.
(function () {
  "use strict";
  var COLORS = ["#1f6feb", "#2da44e", "#d4a72c", "#cf222e", "#8250df", "#57606a"];

  function niceStep(max, ticks) {
    var raw = max / ticks, mag = Math.pow(10, Math.floor(Math.log10(raw || 1)));
    var norm = raw / mag;
    var step = norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10;
    return step * mag;
  }

  // spec: {labels: [..], series: [{name, values: [..]}], max?: number, format?: fn(v)}
  function bars(canvas, spec) {
    var ratio = window.devicePixelRatio || 1;
    var width = canvas.clientWidth || 600, height = canvas.clientHeight || 240;
    canvas.width = width * ratio;
    canvas.height = height * ratio;
    var ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    var format = spec.format || function (v) { return String(v); };
    var style = getComputedStyle(canvas);
    var font = Math.max(11, parseFloat(style.fontSize) || 12);
    ctx.font = font + "px " + (style.fontFamily || "sans-serif");
    var labels = spec.labels || [], series = spec.series || [];
    var top = 8 + font * 1.6, bottom = font * 2.2, left = 8, right = 8;
    var peak = 0;
    series.forEach(function (s) { s.values.forEach(function (v) { if (v !== null && v > peak) peak = v; }); });
    var max = spec.max || peak || 1;
    var step = niceStep(max, 4);
    max = Math.ceil(max / step) * step || step;
    var ticks = [];
    for (var v = 0; v <= max + step / 2; v += step) ticks.push(v);
    ticks.forEach(function (tick) { left = Math.max(left, ctx.measureText(format(tick)).width + 12); });
    var plotW = width - left - right, plotH = height - top - bottom;
    ctx.strokeStyle = "#d0d7de";
    ctx.fillStyle = "#57606a";
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    ticks.forEach(function (tick) {
      var y = top + plotH - (tick / max) * plotH;
      ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(width - right, y); ctx.stroke();
      ctx.fillText(format(tick), left - 6, y);
    });
    var groupW = plotW / Math.max(1, labels.length);
    var barW = Math.max(2, (groupW * 0.8) / Math.max(1, series.length));
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    var every = Math.ceil((labels.length * font * 2.5) / plotW) || 1;
    labels.forEach(function (label, i) {
      var x0 = left + i * groupW + groupW * 0.1;
      series.forEach(function (s, k) {
        var value = s.values[i];
        if (value === null || value === undefined) return;
        var h = (value / max) * plotH;
        ctx.fillStyle = s.color || COLORS[k % COLORS.length];
        ctx.fillRect(x0 + k * barW, top + plotH - h, barW - 1, h);
      });
      if (i % every === 0) {
        ctx.fillStyle = "#24292f";
        ctx.fillText(String(label), left + i * groupW + groupW / 2, top + plotH + 4);
      }
    });
    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    var x = left;
    series.forEach(function (s, k) {
      ctx.fillStyle = s.color || COLORS[k % COLORS.length];
      ctx.fillRect(x, 6, font, font * 0.8);
      ctx.fillStyle = "#24292f";
      ctx.fillText(s.name, x + font + 4, 6 + font * 0.4);
      x += font + 12 + ctx.measureText(s.name).width;
    });
    canvas.setAttribute("data-drawn", String(labels.length));
  }

  window.HotlineChart = { bars: bars };
})();
