/* The overview page: a panel per camera with live snapshots (the cameras' rooms) and
   the camera list (state, fps) from the REST API. */

import { NEGATIVE, STALE_S, el, api, facesText, fmtValence, valenceClass, every, renderBars, makeTimeline, plotted, timelineAdd, timelineLoad, timelineDraw, currentExpression } from "./common.js";
import { connectLive } from "./live.js";

const body = document.body;

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
    api("GET", `/api/cameras/${encodeURIComponent(id)}/live?seconds=300`)
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
    live.watch(views.keys());
    empty.hidden = list.length > 0;
    const now = Date.now() / 1000;
    for (const view of views.values()) {
      if (view.lastTs && now - view.lastTs > STALE_S) view.panel.classList.add("stale");
    }
  }

  const live = connectLive((mood) => {
    const view = views.get(mood.camera);
    if (!view) return;
    view.lastTs = mood.ts;
    view.panel.classList.remove("stale");
    view.faces.textContent = facesText(mood.faces);
    view.row.querySelector(".people").textContent = facesText(mood.faces);
    renderBars(view.bars, mood.counts, `bar-${mood.camera}`);
    const valence = view.panel.querySelector(".valence");
    if (mood.mode === "driver") {
      const current = currentExpression(mood);
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

overviewPage();
