/* moodstream dashboard: live panels over Socket.IO, REST for everything else.
   No build step: plain ES2020, served as is. Socket.IO and Chart.js come from npm through
   /vendor/..., so the page works offline. */
"use strict";

const EXPRESSIONS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"];
const NEGATIVE = new Set(["angry", "disgust", "fear", "sad"]);
const POSITIVE = new Set(["happy", "surprise"]);
const STALE_S = 10;
const body = document.body;
const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
const isAdmin = body.dataset.role === "admin";

// ---------------------------------------------------------------- helpers

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "className") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

async function api(method, url, data) {
  const options = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
  if (method !== "GET") options.headers["X-CSRFToken"] = csrfToken;
  if (data !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(data);
  }
  const response = await fetch(url, options);
  if (response.status === 401) {
    window.location.href = "/login?next=" + encodeURIComponent(window.location.pathname);
    throw new Error("logged out");
  }
  let payload = null;
  try { payload = await response.json(); } catch (e) { payload = null; }
  if (!response.ok) {
    const error = new Error((payload && payload.error) || response.statusText);
    error.status = response.status;
    throw error;
  }
  return payload;
}

function facesText(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "– faces";
  const count = Math.round(n);
  return `${count} ${count === 1 ? "face" : "faces"}`;
}

function clock(ts) {
  return new Date(ts * 1000).toLocaleTimeString([], { hour12: false });
}

function fmtValence(v) {
  if (typeof v !== "number") return "–";
  return (v > 0 ? "+" : "") + v.toFixed(2);
}

function valenceClass(v) {
  if (typeof v !== "number") return "";
  return v > 0.15 ? "pos" : v < -0.15 ? "neg" : "neu";
}

function every(ms, fn) {
  fn();
  return setInterval(() => { if (!document.hidden) fn(); }, ms);
}

// Distribution bars: one row per expression, width = share of the labels in the window.
function renderBars(container, counts, testPrefix) {
  counts = counts || {};
  const total = EXPRESSIONS.reduce((sum, e) => sum + (counts[e] || 0), 0);
  if (!container.dataset.built) {
    container.textContent = "";
    for (const expr of EXPRESSIONS) {
      const fill = el("span", { className: `fill ${expr}` });
      container.append(el("div", { className: "bar", "data-expr": expr,
                                   "data-testid": `${testPrefix}-${expr}` },
        el("span", { className: "label", text: expr }),
        el("span", { className: "track" }, fill),
        el("span", { className: "count", text: "0" })));
    }
    container.dataset.built = "1";
  }
  for (const row of container.children) {
    const n = counts[row.dataset.expr] || 0;
    row.dataset.count = String(n);
    row.querySelector(".fill").style.width = total ? `${(100 * n / total).toFixed(1)}%` : "0";
    row.querySelector(".count").textContent = String(Math.round(n * 10) / 10);
  }
  container.dataset.total = String(total);
}

// Valence timeline (Chart.js when installed; the numbers elsewhere work without it).
function makeTimeline(canvas, spanS, withShifts) {
  if (!window.Chart || !canvas) return null;
  const datasets = [{ label: "valence", data: [], borderColor: "#3b82f6", borderWidth: 1.5,
                      pointRadius: 0, cubicInterpolationMode: "monotone", fill: false }];
  if (withShifts) {
    datasets.push({ label: "shift", type: "scatter", data: [], pointStyle: "rectRot",
                    pointRadius: 7, backgroundColor: "#f59e0b", borderColor: "#b45309" });
  }
  const chart = new window.Chart(canvas, {
    type: "line",
    data: { datasets },
    options: {
      animation: false, responsive: true, maintainAspectRatio: false, parsing: false,
      normalized: true,
      scales: {
        x: { type: "linear", ticks: { maxTicksLimit: 6, callback: (v) => clock(v) } },
        y: { min: -1, max: 1, ticks: { stepSize: 0.5 } },
      },
      plugins: { legend: { display: false },
                 tooltip: { callbacks: { title: (items) => clock(items[0].parsed.x) } } },
    },
  });
  return { chart, spanS, lastX: 0 };
}

// No labels in the window means no valence: a gap in the line, not a misleading zero.
function plotted(counts, valence) {
  const total = EXPRESSIONS.reduce((sum, e) => sum + ((counts || {})[e] || 0), 0);
  return total > 0 && typeof valence === "number" ? valence : null;
}

function timelineAdd(timeline, ts, valence, shift) {
  if (!timeline || typeof ts !== "number") return;
  if (ts <= timeline.lastX) return;  // snapshots can repeat; keep x strictly increasing
  timeline.lastX = ts;
  const [line, shifts] = timeline.chart.data.datasets;
  line.data.push({ x: ts, y: valence });
  if (shift && shifts) shifts.data.push({ x: ts, y: typeof shift.to === "number" ? shift.to : (valence || 0) });
  timelineTrim(timeline);
}

// History arrives after live snapshots may have: put it before them, never after.
function timelineLoad(timeline, points) {
  if (!timeline) return;
  const [line, shifts] = timeline.chart.data.datasets;
  const firstLive = line.data.length ? line.data[0].x : Infinity;
  const older = points.filter((p) => p.ts < firstLive);
  line.data = older.map((p) => ({ x: p.ts, y: plotted(p.counts, p.valence) })).concat(line.data);
  if (shifts) {
    const marks = older.filter((p) => p.shift).map((p) => ({
      x: p.ts, y: typeof p.shift.to === "number" ? p.shift.to : p.valence }));
    shifts.data = marks.concat(shifts.data);
  }
  if (line.data.length) timeline.lastX = Math.max(timeline.lastX, line.data[line.data.length - 1].x);
  timelineTrim(timeline);
  timelineDraw(timeline);
}

function timelineTrim(timeline) {
  const [line, shifts] = timeline.chart.data.datasets;
  const from = timeline.lastX - timeline.spanS;
  while (line.data.length && line.data[0].x < from) line.data.shift();
  while (shifts && shifts.data.length && shifts.data[0].x < from) shifts.data.shift();
  const x = timeline.chart.options.scales.x;
  x.min = line.data.length ? Math.max(from, line.data[0].x) : from;
  x.max = Math.max(timeline.lastX, x.min + 10);
}

function timelineDraw(timeline) { if (timeline) timeline.chart.update("none"); }

// ---------------------------------------------------------------- live connection

const moodHandlers = [];
function onMood(fn) { moodHandlers.push(fn); }

function connectLive() {
  const state = document.getElementById("live-state");
  state.hidden = false;
  if (!window.io) {
    if (state) { state.textContent = "no live client"; state.className = "live off"; }
    return null;
  }
  const socket = window.io({ withCredentials: true });
  socket.on("connect", () => {
    state.textContent = "live"; state.className = "live on";
  });
  socket.on("disconnect", () => { state.textContent = "offline"; state.className = "live off"; });
  socket.on("connect_error", (error) => {
    state.textContent = "offline"; state.className = "live off";
    if (error && /unauthori[sz]ed/i.test(error.message || "")) window.location.href = "/login";
  });
  socket.on("mood", (mood) => {
    if (!mood || typeof mood !== "object") return;
    for (const fn of moodHandlers) fn(mood);
  });
  return socket;
}

// ---------------------------------------------------------------- overview page

function overviewPage() {
  const tbody = document.querySelector("#camera-list tbody");
  const panels = document.getElementById("panels");
  const empty = document.getElementById("no-cameras");
  const views = new Map();  // id -> {panel, row, timeline, lastTs}

  function statusText(cam) {
    const s = cam.status || {};
    return s.reason ? `${s.state} (${s.reason})` : (s.state || "unknown");
  }

  function build(cam) {
    const id = cam.id;
    const row = el("tr", { "data-testid": `camera-row-${id}`, "data-camera": id },
      el("td", {}, el("a", { href: `/cameras/${encodeURIComponent(id)}`, text: id })),
      el("td", { className: "mode" }),
      el("td", { className: "status", "data-testid": `status-${id}` }),
      el("td", { className: "fps", "data-testid": `fps-${id}` }),
      el("td", { className: "people", "data-testid": `people-${id}` }));
    tbody.append(row);
    const faces = el("span", { className: "faces", "data-testid": `faces-${id}`, text: facesText(cam.faces) });
    const bars = el("div", { className: "bars" });
    const canvas = el("canvas", { "data-testid": `timeline-${id}` });
    const panel = el("article", { className: "panel", "data-testid": `panel-${id}`, "data-camera": id },
      el("header", {},
        el("h2", {}, el("a", { href: `/cameras/${encodeURIComponent(id)}`, className: "camera-id",
                               "data-testid": `panel-id-${id}`, text: id })),
        el("span", { className: "badge mode" })),
      el("p", { className: "meta" }, faces, el("span", { className: "valence" }),
        el("span", { className: "alert-flag", hidden: true })),
      el("p", { className: "status-line" }),
      bars,
      el("div", { className: "chart" }, canvas));
    panels.append(panel);
    renderBars(bars, {}, `bar-${id}`);
    const view = { row, panel, faces, bars, timeline: makeTimeline(canvas, 300, true), lastTs: 0 };
    views.set(id, view);
    api("GET", `/api/cameras/${encodeURIComponent(id)}/history?seconds=300`)
      .then((h) => timelineLoad(view.timeline, h.points)).catch(() => {});
    return view;
  }

  function update(cam) {
    const view = views.get(cam.id) || build(cam);
    view.row.querySelector(".mode").textContent = cam.mode;
    const statusCell = view.row.querySelector(".status");
    statusCell.textContent = cam.status.state || "unknown";
    if (cam.status.reason) statusCell.append(" ", el("span", { className: "reason", text: `(${cam.status.reason})` }));
    statusCell.className = `status ${cam.status.state}`;
    view.row.querySelector(".fps").textContent =
      typeof cam.status.fps === "number" ? cam.status.fps.toFixed(1) : "–";
    view.panel.querySelector(".badge.mode").textContent = cam.mode;
    view.panel.querySelector(".status-line").textContent =
      `${statusText(cam)}${typeof cam.status.fps === "number" ? ` · ${cam.status.fps.toFixed(1)} fps` : ""}`;
    view.panel.dataset.mode = cam.mode;
    if (!view.lastTs && cam.faces !== null && cam.faces !== undefined) {
      view.faces.textContent = facesText(cam.faces);
    }
    view.row.querySelector(".people").textContent = cam.stale ? "–" : facesText(cam.faces);
    view.panel.classList.toggle("stale", !!cam.stale && !view.lastTs);
  }

  async function refresh() {
    let list;
    try { list = await api("GET", "/api/cameras"); } catch (e) { return; }
    const seen = new Set(list.map((c) => c.id));
    for (const [id, view] of views) {
      if (!seen.has(id)) {
        view.row.remove(); view.panel.remove();
        if (view.timeline) view.timeline.chart.destroy();
        views.delete(id);
      }
    }
    for (const cam of list) update(cam);
    empty.hidden = list.length > 0;
    const now = Date.now() / 1000;
    for (const view of views.values()) {
      if (view.lastTs && now - view.lastTs > STALE_S) view.panel.classList.add("stale");
    }
  }

  onMood((mood) => {
    const view = views.get(mood.camera);
    if (!view) return;
    view.lastTs = mood.ts;
    view.panel.classList.remove("stale");
    view.faces.textContent = facesText(mood.faces);
    view.row.querySelector(".people").textContent = facesText(mood.faces);
    renderBars(view.bars, mood.counts, `bar-${mood.camera}`);
    const valence = view.panel.querySelector(".valence");
    if (mood.mode === "driver") {
      const current = mood.current || (mood.faces ? mood.dominant : null);
      valence.textContent = current ? `now ${current}` : (mood.faces ? "" : "no face");
      valence.className = `valence ${current && NEGATIVE.has(current) ? "neg" : "neu"}`;
    } else {
      const v = plotted(mood.counts, mood.valence);
      valence.textContent = `valence ${fmtValence(v)}`;
      valence.className = `valence ${valenceClass(v)}`;
    }
    const flag = view.panel.querySelector(".alert-flag");
    const alerts = Array.isArray(mood.alerts) ? mood.alerts : [];
    flag.hidden = alerts.length === 0;
    flag.textContent = alerts.map((a) => a.message || a.kind).join(" · ");
    timelineAdd(view.timeline, mood.ts, plotted(mood.counts, mood.valence), mood.shift);
    timelineDraw(view.timeline);
  });
  every(2000, refresh);
}

// ---------------------------------------------------------------- camera page

function cameraPage() {
  const id = body.dataset.camera;
  const enc = encodeURIComponent(id);
  let mode = body.dataset.mode;
  let lastTs = 0;
  let alertSignature = "";
  let preview = false;
  const $ = (sel) => document.getElementById(sel);
  const timeline = makeTimeline($("valence-chart"), 3600, true);

  function showMode(newMode) {
    mode = newMode;
    body.dataset.mode = mode;
    $("camera-mode").textContent = mode;
    $("classroom-view").hidden = mode !== "classroom";
    $("driver-view").hidden = mode !== "driver";
  }
  showMode(mode);

  function addShift(ts, shift) {
    if (!shift) return;
    const from = typeof shift.from === "number" ? shift.from : null;
    const to = typeof shift.to === "number" ? shift.to : null;
    const item = el("li", { "data-testid": "shift", className: to !== null && from !== null && to < from ? "neg" : "pos",
      text: `${clock(ts)} valence ${fmtValence(from)} → ${fmtValence(to)}` });
    const list = $("shift-list");
    list.prepend(item);
    while (list.children.length > 20) list.lastChild.remove();
  }

  api("GET", `/api/cameras/${enc}/history`).then((h) => {
    timelineLoad(timeline, h.points);
    for (const p of h.points) if (p.shift) addShift(p.ts, p.shift);
  }).catch(() => {});

  async function loadAlerts() {
    let data;
    try { data = await api("GET", `/api/cameras/${enc}/alerts`); } catch (e) { return; }
    const tbody = document.querySelector("#alert-log tbody");
    tbody.textContent = "";
    for (const a of data.alerts) {
      tbody.append(el("tr", { "data-testid": "alert-log-entry", "data-kind": a.kind, "data-state": a.state,
                              className: a.state },
        el("td", { text: clock(a.ts) }), el("td", { text: a.kind }),
        el("td", { text: a.state }), el("td", { text: a.message })));
    }
    if (!data.alerts.length) {
      tbody.append(el("tr", { className: "empty" }, el("td", { colspan: "4", text: "No alerts yet." })));
    }
  }

  function renderMood(mood) {
    lastTs = mood.ts;
    $("stale").hidden = true;
    $("faces").textContent = facesText(mood.faces);
    if (mood.mode && mood.mode !== mode) showMode(mood.mode);
    const windows = mood.windows || {};
    if (mode === "classroom") {
      const v = plotted(mood.counts, mood.valence);
      $("valence-now").textContent = fmtValence(v);
      $("valence-now").className = valenceClass(v);
      $("dominant-now").textContent = mood.dominant || "–";
      renderBars($("bars-10s"), (windows["10s"] || {}).counts || mood.counts, "bar-10s");
      renderBars($("bars-1m"), (windows["1m"] || {}).counts, "bar-1m");
      renderBars($("bars-5m"), (windows["5m"] || {}).counts, "bar-5m");
      timelineAdd(timeline, mood.ts, plotted(mood.counts, mood.valence), mood.shift);
      timelineDraw(timeline);
      if (mood.shift) addShift(mood.ts, mood.shift);
    } else {
      const current = mood.current || (mood.faces ? mood.dominant : null);
      const node = $("driver-current");
      node.textContent = current || (mood.faces ? "–" : "no face");
      node.className = current && NEGATIVE.has(current) ? "neg" : current && POSITIVE.has(current) ? "pos" : "";
      renderBars($("bars-driver"), mood.counts, "bar-driver");
      const alerts = Array.isArray(mood.alerts) ? mood.alerts : [];
      const banner = $("alert-banner");
      banner.hidden = alerts.length === 0;
      banner.textContent = "";
      banner.dataset.kinds = alerts.map((a) => a.kind).join(",");
      for (const a of alerts) {
        banner.append(el("div", { className: `alert ${a.kind}`, "data-testid": `alert-${a.kind}` },
          el("strong", { text: a.kind === "absent" ? "Driver out of view" : "Sustained negative expression" }),
          el("span", { text: ` ${a.message || ""}` }),
          el("span", { className: "since", text: a.since ? ` since ${clock(a.since)}` : "" })));
      }
      const signature = alerts.map((a) => `${a.kind}@${a.since}`).join("|");
      if (signature !== alertSignature) { alertSignature = signature; loadAlerts(); }
    }
  }
  onMood((mood) => { if (mood.camera === id) renderMood(mood); });

  async function refresh() {
    let cam;
    try { cam = await api("GET", `/api/cameras/${enc}`); } catch (e) {
      if (e.status === 404) { $("camera-status").textContent = "removed"; }
      return;
    }
    const s = cam.status || {};
    $("camera-status").textContent = s.reason ? `${s.state} (${s.reason})` : s.state;
    $("camera-status").className = `status ${s.state}`;
    $("camera-fps").textContent = typeof s.fps === "number" ? `${s.fps.toFixed(1)} fps` : "";
    if (cam.mode !== mode) showMode(cam.mode);
    $("driver-thresholds").textContent = `Alerts: negative above ${cam.negative_threshold} for ` +
      `${cam.negative_seconds} s · out of view for ${cam.absent_seconds} s`;
    preview = cam.preview;
    $("preview-card").hidden = !preview;
    if (!lastTs && cam.faces !== null && cam.faces !== undefined) $("faces").textContent = facesText(cam.faces);
    if (!lastTs || Date.now() / 1000 - lastTs > STALE_S) $("stale").hidden = false;
  }
  every(2000, refresh);

  // The last hour at a glance (a lesson, a shift): averaged shares, valence, presence.
  async function loadSummary() {
    let s;
    try { s = await api("GET", `/api/cameras/${enc}/summary`); } catch (e) { return; }
    const node = $("summary");
    if (!s.dominant) { node.textContent = "No faces in the last hour."; return; }
    const pct = Math.round(100 * s.shares[s.dominant]);
    const shifts = s.shifts.length === 1 ? "1 notable shift" : `${s.shifts.length} notable shifts`;
    node.textContent = `Last hour: mostly ${s.dominant} (${pct}%), valence ${fmtValence(s.valence_avg)} ` +
      `on average (${fmtValence(s.valence_min)} to ${fmtValence(s.valence_max)}), ` +
      `${s.faces_avg.toFixed(1)} faces on average, ${shifts}, ` +
      `faces in view ${Math.round(100 * s.seconds_with_faces / Math.max(1, s.seconds))}% of the time.`;
    node.dataset.dominant = s.dominant;
  }
  every(15000, loadSummary);
  if (mode === "driver") loadAlerts();
  setInterval(() => { if (mode === "driver" && !document.hidden) loadAlerts(); }, 5000);
  api("GET", `/api/cameras/${enc}/mood`).then(renderMood).catch(() => {});

  // The preview is fetched frame by frame from Redis (short TTL); nothing touches the disk.
  let previewUrl = null;
  setInterval(async () => {
    if (!preview || document.hidden) return;
    try {
      const response = await fetch(`/api/cameras/${enc}/preview.jpg?t=${Date.now()}`,
                                   { credentials: "same-origin" });
      if (!response.ok) return;
      const url = URL.createObjectURL(await response.blob());
      $("preview-img").src = url;
      if (previewUrl) URL.revokeObjectURL(previewUrl);
      previewUrl = url;
    } catch (e) { /* next tick */ }
  }, 1000);
}

// ---------------------------------------------------------------- admin page

function adminPage() {
  const form = document.getElementById("add-camera-form");
  const message = document.getElementById("admin-message");
  const list = document.getElementById("admin-cameras");

  function say(text, kind) {
    message.textContent = text;
    message.className = `flash ${kind}`;
    message.hidden = false;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = Object.fromEntries(new FormData(form).entries());
    try {
      const cam = await api("POST", "/api/cameras", data);
      say(`Added camera ${cam.id}.`, "info");
      form.reset();
      await refresh();
    } catch (e) {
      say(`Could not add the camera: ${e.message}`, "error");
    }
  });

  function field(label, name, value, attrs = {}) {
    return el("label", {}, label, el("input", { name, value: String(value), ...attrs }));
  }

  function card(cam) {
    const id = cam.id;
    const modeSelect = el("select", { name: "mode", "data-testid": `mode-${id}` },
      ...["classroom", "driver"].map((m) => el("option", { value: m, selected: m === cam.mode, text: m })));
    const settings = el("form", { className: "grid-form", "data-testid": `settings-${id}` },
      el("label", {}, "Mode ", modeSelect),
      field("Name", "name", cam.name, { maxlength: "80" }),
      field("Source", "source", cam.source, { "data-testid": `source-${id}` }),
      field("fps", "fps", cam.fps, { type: "number", min: "0.1", max: "30", step: "0.1" }),
      field("Negative threshold", "negative_threshold", cam.negative_threshold,
            { type: "number", min: "0.05", max: "1", step: "0.05", "data-testid": `negative-threshold-${id}` }),
      field("Negative for (s)", "negative_seconds", cam.negative_seconds,
            { type: "number", min: "0.5", max: "3600", step: "0.5", "data-testid": `negative-seconds-${id}` }),
      field("Out of view for (s)", "absent_seconds", cam.absent_seconds,
            { type: "number", min: "0.5", max: "3600", step: "0.5", "data-testid": `absent-seconds-${id}` }),
      el("label", { className: "check" },
        el("input", { type: "checkbox", name: "preview", checked: cam.preview, "data-testid": `preview-${id}` }),
        " Live preview with face boxes"),
      el("button", { type: "submit", "data-testid": `save-${id}`, text: "Save" }));
    settings.addEventListener("submit", async (event) => {
      event.preventDefault();
      const data = Object.fromEntries(new FormData(settings).entries());
      data.preview = settings.querySelector('input[name="preview"]').checked;
      if (!data.source) delete data.source;  // a camera that an ingest announced by itself
      try {
        await api("PATCH", `/api/cameras/${encodeURIComponent(id)}`, data);
        say(`Saved ${id}.`, "info");
      } catch (e) { say(`Could not save ${id}: ${e.message}`, "error"); }
    });
    const remove = el("button", { type: "button", className: "danger", "data-testid": `remove-${id}`,
                                  text: "Remove" });
    remove.addEventListener("click", async () => {
      if (!window.confirm(`Remove camera ${id}? Its ingest stops and its live data is deleted.`)) return;
      try {
        await api("DELETE", `/api/cameras/${encodeURIComponent(id)}`);
        say(`Removed ${id}.`, "info");
        await refresh();
      } catch (e) { say(`Could not remove ${id}: ${e.message}`, "error"); }
    });
    return el("article", { className: "admin-camera", "data-testid": `admin-camera-${id}`, "data-camera": id },
      el("header", {},
        el("h2", {}, el("a", { href: `/cameras/${encodeURIComponent(id)}`, text: id })),
        el("code", { className: "source", text: cam.source || "(not registered)" }),
        el("span", statusSpan(cam)),
        remove),
      settings);
  }

  function statusSpan(cam) {
    const s = cam.status || {};
    return { className: `status ${s.state}`, text: s.reason ? `${s.state} (${s.reason})` : s.state };
  }

  // Rebuild the cards when cameras come or go; otherwise only refresh their status, so that
  // a half-edited form is never overwritten.
  async function refresh(rebuild = true) {
    let cams;
    try { cams = await api("GET", "/api/cameras"); } catch (e) { return; }
    const ids = cams.map((c) => c.id).join(",");
    if (rebuild || ids !== list.dataset.ids) {
      list.textContent = "";
      for (const cam of cams) list.append(card(cam));
      if (!cams.length) list.append(el("p", { className: "empty", text: "No cameras yet." }));
      list.dataset.ids = ids;
      return;
    }
    for (const cam of cams) {
      const node = list.querySelector(`[data-camera="${CSS.escape(cam.id)}"] header .status`);
      if (node) {
        const st = statusSpan(cam);
        node.className = st.className;
        node.textContent = st.text;
      }
    }
  }
  refresh();
  setInterval(() => { if (!document.hidden) refresh(false); }, 3000);

  // Users: add, change role, remove (the API refuses to remove yourself or the last admin).
  const userForm = document.getElementById("add-user-form");
  const userRows = document.querySelector("#users tbody");
  async function refreshUsers() {
    let list;
    try { list = await api("GET", "/api/users"); } catch (e) { return; }
    userRows.textContent = "";
    for (const u of list) {
      const role = el("select", { "data-testid": `user-role-${u.name}` },
        ...["viewer", "admin"].map((r) => el("option", { value: r, selected: r === u.role, text: r })));
      role.addEventListener("change", async () => {
        try {
          await api("PATCH", `/api/users/${encodeURIComponent(u.name)}`, { role: role.value });
          say(`${u.name} is now ${role.value}.`, "info");
        } catch (e) { say(`Could not change ${u.name}: ${e.message}`, "error"); }
        refreshUsers();
      });
      const remove = el("button", { type: "button", className: "danger", text: "Remove",
                                    "data-testid": `remove-user-${u.name}` });
      remove.addEventListener("click", async () => {
        if (!window.confirm(`Remove user ${u.name}?`)) return;
        try {
          await api("DELETE", `/api/users/${encodeURIComponent(u.name)}`);
          say(`Removed user ${u.name}.`, "info");
        } catch (e) { say(`Could not remove ${u.name}: ${e.message}`, "error"); }
        refreshUsers();
      });
      userRows.append(el("tr", { "data-testid": `user-${u.name}` },
        el("td", { text: u.name }), el("td", {}, role), el("td", {}, remove)));
    }
  }
  userForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = Object.fromEntries(new FormData(userForm).entries());
    try {
      await api("POST", "/api/users", data);
      say(`Added user ${data.name}.`, "info");
      userForm.reset();
    } catch (e) { say(`Could not add the user: ${e.message}`, "error"); }
    refreshUsers();
  });
  refreshUsers();
}

// ---------------------------------------------------------------- system page

function systemPage() {
  const tbody = document.querySelector("#workers tbody");
  const stats = document.getElementById("stats");

  async function refresh() {
    try {
      const workers = await api("GET", "/api/workers");
      tbody.textContent = "";
      for (const w of workers) {
        const rate = parseFloat(w.rate);
        // lag: entries waiting for the worker's group (unread + unacknowledged)
        const lag = w.lag !== undefined ? `${w.lag} waiting`
          : w.lag_ms !== undefined ? `${Math.round(parseFloat(w.lag_ms))} ms` : "–";
        tbody.append(el("tr", { "data-testid": `worker-${w.kind}`, "data-worker": w.id },
          el("td", { text: w.id }), el("td", { text: w.kind }),
          el("td", { text: `${w.host} · ${w.pid}` }),
          el("td", { text: Number.isFinite(rate) ? `${rate.toFixed(1)}/s` : "–" }),
          el("td", { text: w.processed || "0" }), el("td", { text: lag }),
          el("td", { text: w.age_s !== null && w.age_s !== undefined ? `${w.age_s.toFixed(0)} s ago` : "–" })));
      }
      document.getElementById("no-workers").hidden = workers.length > 0;
      const s = await api("GET", "/api/stats");
      stats.textContent = "";
      const f = s.frames || {};
      const dropped = Object.entries(f.dropped || {}).map(([k, v]) => `${k} ${v}`).join(", ") || "0";
      const rows = [
        ["Frames in", f.in], ["Frames processed", f.processed], ["Frames dropped", dropped],
        ["Frames pending (lag)", f.pending], ["Faces found", s.faces], ["Faces labelled", s.labels],
        ["Dead letters", s.dead_letters],
        ["Latency p50 / p99", s.latency_ms && s.latency_ms.samples
          ? `${s.latency_ms.p50} / ${s.latency_ms.p99} ms` : "–"],
      ];
      for (const [stage, st] of Object.entries(s.stages || {})) {
        rows.push([`${stage} pending (lag)`, st.pending]);
      }
      for (const [label, value] of rows) {
        stats.append(el("dt", { text: label }), el("dd", { text: value === undefined ? "–" : String(value) }));
      }
    } catch (e) { /* next tick */ }
  }
  every(2000, refresh);
}

// ---------------------------------------------------------------- start

const page = body.dataset.page;
if (page === "overview" || page === "camera") connectLive();
if (page === "overview") overviewPage();
else if (page === "camera") cameraPage();
else if (page === "admin") adminPage();
else if (page === "system") systemPage();
