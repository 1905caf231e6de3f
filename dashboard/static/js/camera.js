/* A camera's page: live snapshots of this camera only (its room), history, summary,
   driver alerts and the optional preview. */

import { NEGATIVE, POSITIVE, STALE_S, el, api, facesText, clock, fmtValence, valenceClass, every, renderBars, makeTimeline, plotted, timelineAdd, timelineLoad, timelineDraw, currentExpression } from "./common.js";
import { connectLive } from "./live.js";

const body = document.body;

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

  api("GET", `/api/cameras/${enc}/live`).then((h) => {
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
      const current = currentExpression(mood);
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
  connectLive((mood) => { if (mood.camera === id) renderMood(mood); }).watch([id]);

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

cameraPage();
