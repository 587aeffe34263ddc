// Replay page: waveform (peaks endpoint) on a canvas, <audio> on the Range-capable audio
// endpoint, and the transcript beside it. Plain JS, no build step.
(function () {
  "use strict";
  var id = location.pathname.split("/").filter(Boolean).pop();
  var api = "/api/recordings/" + encodeURIComponent(id);
  // One token per page view: the server logs one "play" per session, not one per seek.
  var session = (self.crypto && crypto.randomUUID) ? crypto.randomUUID()
    : String(Date.now()) + Math.random().toString(16).slice(2);
  var SPEAKERS = { citizen: "市民", agent: "坐席", mixed: "混合" };
  var audio = document.getElementById("audio");
  var canvas = document.getElementById("wave");
  var list = document.getElementById("transcript");
  var status = document.getElementById("status");
  var peaks = [], duration = 0, segments = [], current = -1;

  function fmt(s) {
    s = Math.max(0, Math.floor(s));
    var m = Math.floor(s / 60), r = s % 60;
    return m + ":" + (r < 10 ? "0" : "") + r;
  }

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin" }).then(function (r) {
      if (!r.ok) {
        return r.json().catch(function () { return {}; }).then(function (body) {
          var e = new Error(body.message || ("HTTP " + r.status));
          e.status = r.status; e.id = body.error; throw e;
        });
      }
      return r.json();
    });
  }

  function draw() {
    var ctx = canvas.getContext("2d");
    var w = canvas.width = canvas.clientWidth * (window.devicePixelRatio || 1);
    var h = canvas.height = canvas.clientHeight * (window.devicePixelRatio || 1);
    ctx.clearRect(0, 0, w, h);
    if (!peaks.length) return;
    var mid = h / 2, played = duration ? audio.currentTime / duration : 0;
    for (var x = 0; x < w; x++) {
      var p = peaks[Math.floor(x / w * peaks.length)];
      ctx.fillStyle = x / w <= played ? "#1f4e79" : "#9fb3c8";
      var top = mid - p[1] * mid, bottom = mid - p[0] * mid;
      ctx.fillRect(x, top, 1, Math.max(1, bottom - top));
    }
    // privacy pauses
    (window.__muted || []).forEach(function (span) {
      var a = span[0] / duration * w, b = (span[1] == null ? duration : span[1]) / duration * w;
      ctx.fillStyle = "rgba(192, 86, 33, .15)";
      ctx.fillRect(a, 0, Math.max(2, b - a), h);
    });
    ctx.fillStyle = "#c05621";
    ctx.fillRect(played * w, 0, 2, h);
  }

  function renderTranscript() {
    list.innerHTML = "";
    if (!segments.length) {
      var li = document.createElement("li");
      li.textContent = "暂无转写文本";
      list.appendChild(li);
      return;
    }
    segments.forEach(function (s, i) {
      var li = document.createElement("li");
      li.className = s.speaker + (s.conf < 0.5 ? " low" : "");
      li.dataset.index = i;
      li.title = "置信度 " + Math.round(s.conf * 100) + "%";
      var t = document.createElement("span"); t.className = "t"; t.textContent = fmt(s.start);
      var who = document.createElement("span"); who.className = "who";
      who.textContent = SPEAKERS[s.speaker] || s.speaker;
      var text = document.createElement("span"); text.textContent = s.text;
      li.append(t, who, text);
      li.addEventListener("click", function () {
        audio.currentTime = s.start;
        audio.play().catch(function () {});
      });
      list.appendChild(li);
    });
  }

  function highlight() {
    var t = audio.currentTime, found = -1;
    for (var i = 0; i < segments.length; i++) {
      if (segments[i].start <= t && t <= segments[i].end + 0.3) { found = i; }
    }
    if (found !== current) {
      var old = list.querySelector("li.current");
      if (old) old.classList.remove("current");
      if (found >= 0) {
        var li = list.querySelector('li[data-index="' + found + '"]');
        li.classList.add("current");
        li.scrollIntoView({ block: "nearest" });
      }
      current = found;
    }
    draw();
  }

  canvas.addEventListener("click", function (ev) {
    if (!duration) return;
    var rect = canvas.getBoundingClientRect();
    audio.currentTime = (ev.clientX - rect.left) / rect.width * duration;
  });
  audio.addEventListener("timeupdate", highlight);
  audio.addEventListener("seeked", highlight);
  window.addEventListener("resize", draw);

  document.getElementById("rec-id").textContent = "#" + id;
  getJSON(api).then(function (rec) {
    document.getElementById("m-ticket").textContent = rec.ticket_id || "—";
    document.getElementById("m-agent").textContent = rec.agent_id || "—";
    document.getElementById("m-start").textContent =
      new Date(rec.started_at).toLocaleString("zh-CN", { hour12: false });
    document.getElementById("m-duration").textContent = rec.duration_s ? fmt(rec.duration_s) : "—";
    window.__muted = rec.muted_spans || [];
    if (window.__muted.length) {
      document.getElementById("muted").textContent = "含 " + window.__muted.length + " 段隐私暂停";
    }
    segments = rec.segments || [];
    renderTranscript();
    var job = rec.transcription;
    if (job && job.status !== "done") {
      status.textContent = job.status === "failed" ? "转写失败：" + (job.error || "")
        : "转写进行中…";
    }
    audio.src = api + "/audio?session=" + encodeURIComponent(session);
    document.getElementById("download").href = api + "/audio?download=1";
    return getJSON(api + "/waveform?points=1200");
  }).then(function (w) {
    peaks = w.peaks; duration = w.duration_s;
    draw();
  }).catch(function (e) {
    status.textContent = e.status === 403 ? "无权查看此录音"
      : e.status === 404 ? "录音不存在"
      : e.status === 410 ? "录音文件已按保存期限清理" : "加载失败：" + e.message;
  });
})();
