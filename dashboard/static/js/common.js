/* moodstream dashboard, shared by every page: DOM and API helpers, expression bars, the
   valence timeline. Native ES modules, no build step; Socket.IO and Chart.js come from npm
   through /vendor/... (classic scripts: window.io, window.Chart), so pages work offline. */

const body = document.body;
// The expression classes, which of them count as positive and negative, and when a camera is
// stale come from the server (moodstream.contract, moodstream.expressions, the settings).
export const EXPRESSIONS = body.dataset.expressions.split(",");
export const NEGATIVE = new Set(body.dataset.negative.split(","));
export const POSITIVE = new Set(body.dataset.positive.split(","));
export const STALE_S = parseFloat(body.dataset.staleS);
export const isAdmin = body.dataset.role === "admin";
const csrfToken = document.querySelector('meta[name="csrf-token"]').content;


export function el(tag, attrs = {}, ...children) {
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

export async function api(method, url, data) {
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

export function facesText(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "– faces";
  const count = Math.round(n);
  return `${count} ${count === 1 ? "face" : "faces"}`;
}

export function clock(ts) {
  return new Date(ts * 1000).toLocaleTimeString([], { hour12: false });
}

export function fmtValence(v) {
  if (typeof v !== "number") return "–";
  return (v > 0 ? "+" : "") + v.toFixed(2);
}

export function valenceClass(v) {
  if (typeof v !== "number") return "";
  return v > 0.15 ? "pos" : v < -0.15 ? "neg" : "neu";
}

export function every(ms, fn) {
  fn();
  return setInterval(() => { if (!document.hidden) fn(); }, ms);
}

// Distribution bars: one row per expression, width = share of the labels in the window.
export function renderBars(container, counts, testPrefix) {
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
export function makeTimeline(canvas, spanS, withShifts) {
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
export function plotted(counts, valence) {
  const total = EXPRESSIONS.reduce((sum, e) => sum + ((counts || {})[e] || 0), 0);
  return total > 0 && typeof valence === "number" ? valence : null;
}

export function timelineAdd(timeline, ts, valence, shift) {
  if (!timeline || typeof ts !== "number") return;
  if (ts <= timeline.lastX) return;  // snapshots can repeat; keep x strictly increasing
  timeline.lastX = ts;
  const [line, shifts] = timeline.chart.data.datasets;
  line.data.push({ x: ts, y: valence });
  if (shift && shifts) shifts.data.push({ x: ts, y: typeof shift.to === "number" ? shift.to : (valence || 0) });
  timelineTrim(timeline);
}

// History arrives after live snapshots may have: put it before them, never after.
export function timelineLoad(timeline, points) {
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

export function timelineTrim(timeline) {
  const [line, shifts] = timeline.chart.data.datasets;
  const from = timeline.lastX - timeline.spanS;
  while (line.data.length && line.data[0].x < from) line.data.shift();
  while (shifts && shifts.data.length && shifts.data[0].x < from) shifts.data.shift();
  const x = timeline.chart.options.scales.x;
  x.min = line.data.length ? Math.max(from, line.data[0].x) : from;
  x.max = Math.max(timeline.lastX, x.min + 10);
}

export function timelineDraw(timeline) { if (timeline) timeline.chart.update("none"); }

// The main face's expression now: smoothed by the aggregator, else the window's dominant one.
export function currentExpression(mood) {
  return mood.current || (mood.faces ? mood.dominant : null);
}
