/* A camera's History page: a range (this lesson, a day, a week, a term, custom) and,
   side by side, the period before; timelines of valence, expression shares, faces present
   and alerts from the history database, a summary per range and the lessons in it. */

import { EXPRESSIONS, el, api, fmtValence, valenceClass } from "./common.js";

const body = document.body;
const DAY = 86400;
// Steps per range (seconds): a week at 10-minute steps, a term at day steps.
const STEPS = { lesson: null, day: 300, week: 600, term: DAY, custom: null };
const EVENT_KINDS = ["negative", "absent", "shift"];
const LESSONS_SHOWN = 60;
const EVENTS_SHOWN = 200;
const css = getComputedStyle(document.documentElement);
const color = (name, fallback) => (css.getPropertyValue(`--${name}`) || fallback).trim();

function historyPage() {
  const id = body.dataset.camera;
  const enc = encodeURIComponent(id);
  const $ = (sel) => document.getElementById(sel);
  const columns = { a: $("range-a"), b: $("range-b") };
  const charts = { a: {}, b: {} };
  let current = "lesson";
  let generation = 0;  // the latest show(): answers to an older one are dropped

  const now = () => Date.now() / 1000;
  // Seconds east of UTC at a time: day steps start at the viewer's midnight.
  const offset = (ts) => -new Date(ts * 1000).getTimezoneOffset() * 60;
  const midnight = (ts) => { const d = new Date(ts * 1000); d.setHours(0, 0, 0, 0); return d.getTime() / 1000; };
  const monday = (ts) => { const m = midnight(ts); return m - ((new Date(m * 1000).getDay() + 6) % 7) * DAY; };

  function fmtTime(ts, span) {
    const d = new Date(ts * 1000);
    if (span <= 2 * DAY) return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
    if (span <= 15 * DAY) return `${d.toLocaleDateString([], { weekday: "short" })} ${d.getDate()}`;
    return d.toLocaleDateString([], { day: "numeric", month: "short" });
  }

  function fmtRange(r) {
    const from = new Date(r.from * 1000), to = new Date(r.to * 1000);
    const date = (d) => d.toLocaleDateString([], { weekday: "short", day: "numeric", month: "short", year: "numeric" });
    const time = (d) => d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
    if (r.to - r.from <= DAY && from.toDateString() === new Date((r.to - 1) * 1000).toDateString()) {
      return `${date(from)}, ${time(from)}–${time(to)}`;
    }
    return `${date(from)} – ${date(new Date((r.to - 1) * 1000))}`;
  }

  function fmtLength(s) {
    if (s >= DAY) return `${(s / DAY).toFixed(1)} days`;
    const h = Math.floor(s / 3600), m = Math.round((s % 3600) / 60);
    return h ? `${h} h ${String(m).padStart(2, "0")} min` : `${m} min`;
  }

  // The two ranges for a choice: [the range, the period before it].
  async function rangesFor(kind) {
    const t = now();
    if (kind === "lesson") {
      let lessons = [];
      try {
        lessons = (await api("GET", `/api/cameras/${enc}/lessons?from=${t - 7 * DAY}&to=${t + 60}`)).lessons;
      } catch (e) { /* no history yet: fall back to the last 45 minutes */ }
      const last = lessons[lessons.length - 1];
      const before = lessons[lessons.length - 2];
      const a = last ? { from: last.from, to: last.to, label: "This lesson" }
                     : { from: t - 2700, to: t, label: "The last 45 minutes (no lesson found)" };
      const b = before ? { from: before.from, to: before.to, label: "The lesson before" }
                       : { from: a.from - (a.to - a.from), to: a.from, label: "Before" };
      return [a, b];
    }
    if (kind === "day") {
      const m = midnight(t);
      return [{ from: m, to: m + DAY, label: "Today" }, { from: m - DAY, to: m, label: "Yesterday" }];
    }
    if (kind === "week") {
      const m = monday(t);
      return [{ from: m, to: m + 7 * DAY, label: "This week" },
              { from: m - 7 * DAY, to: m, label: "Last week" }];
    }
    if (kind === "term") {
      const end = midnight(t) + DAY;
      return [{ from: end - 91 * DAY, to: end, label: "This term (13 weeks)" },
              { from: end - 182 * DAY, to: end - 91 * DAY, label: "The 13 weeks before" }];
    }
    const from = new Date($("custom-from").value).getTime() / 1000;
    const to = new Date($("custom-to").value).getTime() / 1000;
    if (!(from < to)) return null;
    return [{ from, to, label: "Custom range" }, { from: from - (to - from), to: from, label: "The period before" }];
  }

  // Ticks on local boundaries: hours in a lesson or a day, midnights in a week, Mondays in a
  // term (Chart.js would pick round numbers of seconds since 1970).
  function tickValues(r) {
    const span = r.to - r.from;
    const every = span <= 3 * 3600 ? 900 : span <= 2 * DAY ? 3 * 3600 : span <= 15 * DAY ? DAY : 7 * DAY;
    let t = every === 7 * DAY ? monday(r.from) : midnight(r.from);
    while (t < r.from) t += every;
    const out = [];
    for (; t <= r.to && out.length < 200; t += every) out.push(t);
    // Days across a daylight-saving change are not 86,400 s: snap to the local midnight.
    return every >= DAY ? out.map((v) => midnight(v + 3 * 3600)) : out;
  }

  function xScale(r) {
    const span = r.to - r.from;
    const values = tickValues(r);
    const keep = Math.ceil(values.length / 8);  // at most ~8 labels
    return { type: "linear", min: r.from, max: r.to,
             afterBuildTicks: (axis) => { axis.ticks = values.filter((_, i) => i % keep === 0).map((value) => ({ value })); },
             ticks: { autoSkip: false, maxRotation: 0, callback: (v) => fmtTime(v, span) } };
  }

  function draw(side, name, config) {
    const canvas = columns[side].querySelector(`canvas[data-chart="${name}"]`);
    if (charts[side][name]) charts[side][name].destroy();
    charts[side][name] = window.Chart ? new window.Chart(canvas, config) : null;
  }

  function baseOptions(r, y, legend = false) {
    const span = r.to - r.from;
    return { animation: false, responsive: true, maintainAspectRatio: false, parsing: false,
             normalized: true, spanGaps: false, scales: { x: xScale(r), y },
             plugins: { legend: { display: legend, position: "bottom", labels: { boxWidth: 10 } },
                        tooltip: { callbacks: { title: (items) => fmtTime(items[0].parsed.x, span) } } } };
  }

  function renderCharts(side, r, points, events, step) {
    // A missing step (camera off) is a gap in the line, not a zero.
    const withGaps = (values) => {
      const out = [];
      let last = null;
      for (const v of values) {
        if (last !== null && v.x - last > step * 1.5) out.push({ x: last + step, y: null });
        out.push(v);
        last = v.x;
      }
      return out;
    };
    const seen = points.filter((p) => EXPRESSIONS.some((e) => p.counts[e] > 0));
    draw(side, "valence", { type: "line", data: { datasets: [{
      label: "valence", data: withGaps(seen.map((p) => ({ x: p.ts, y: p.valence }))),
      borderColor: "#3b82f6", borderWidth: 1.5, pointRadius: seen.length < 60 ? 2 : 0 }] },
      options: baseOptions(r, { min: -1, max: 1, ticks: { stepSize: 0.5 } }) });
    draw(side, "shares", { type: "line", data: { datasets: EXPRESSIONS.map((e) => ({
      label: e, fill: true, pointRadius: 0, borderWidth: 0, backgroundColor: color(e, "#999"),
      data: withGaps(seen.map((p) => {
        const total = EXPRESSIONS.reduce((s, x) => s + p.counts[x], 0);
        return { x: p.ts, y: p.counts[e] / total };
      })) })) },
      options: baseOptions(r, { stacked: true, min: 0, max: 1, ticks: { stepSize: 0.25,
        callback: (v) => `${Math.round(v * 100)}%` } }, true) });
    draw(side, "faces", { type: "line", data: { datasets: [{
      label: "faces", data: withGaps(points.map((p) => ({ x: p.ts, y: p.faces }))),
      borderColor: "#0f766e", backgroundColor: "rgba(15,118,110,0.15)", fill: true,
      borderWidth: 1.5, pointRadius: points.length < 60 ? 2 : 0 }] },
      options: baseOptions(r, { min: 0, ticks: { precision: 0 } }) });
    draw(side, "events", { type: "scatter", data: { datasets: [
      { label: "raised", pointStyle: "triangle", pointRadius: 6, backgroundColor: color("neg", "#b91c1c"),
        data: events.filter((e) => e.state === "raised" && e.kind !== "shift")
          .map((e) => ({ x: e.ts, y: EVENT_KINDS.indexOf(e.kind) })) },
      { label: "cleared", pointStyle: "circle", pointRadius: 4, backgroundColor: color("pos", "#15803d"),
        data: events.filter((e) => e.state === "cleared").map((e) => ({ x: e.ts, y: EVENT_KINDS.indexOf(e.kind) })) },
      { label: "valence shift", pointStyle: "rectRot", pointRadius: 6, backgroundColor: "#f59e0b",
        data: events.filter((e) => e.kind === "shift").map((e) => ({ x: e.ts, y: 2 })) }] },
      options: baseOptions(r, { min: -0.5, max: 2.5, ticks: { stepSize: 1,
        callback: (v) => EVENT_KINDS[v] || "" } }, true) });
    const column = columns[side];
    for (const [name, n] of [["valence", seen.length], ["shares", seen.length],
                             ["faces", points.length], ["events", events.length]]) {
      column.querySelector(`canvas[data-chart="${name}"]`).dataset.points = String(n);
    }
  }

  function summaryText(s) {
    if (!s.seconds) return "No history in this range.";
    const presence = Math.round(100 * s.seconds_with_faces / Math.max(1, s.seconds));
    const parts = [`${fmtLength(s.seconds)} recorded, faces in view ${presence}% of it`,
                   `${s.faces_avg.toFixed(1)} faces on average`];
    if (s.dominant) {
      parts.push(`mostly ${s.dominant} (${Math.round(100 * s.shares[s.dominant])}%)`);
      parts.push(`valence ${fmtValence(s.valence_avg)} (${fmtValence(s.valence_min)} to ${fmtValence(s.valence_max)})`);
    }
    parts.push(`${s.alerts_raised} alert${s.alerts_raised === 1 ? "" : "s"}`);
    parts.push(`${s.shifts.length} valence shift${s.shifts.length === 1 ? "" : "s"}`);
    return parts.join(" · ") + ".";
  }

  async function loadColumn(side, r, step, mine) {
    const column = columns[side];
    const q = `from=${r.from}&to=${r.to}`;
    const summaryNode = column.querySelector(".summary");
    try {
      const [h, s, ev] = await Promise.all([
        api("GET", `/api/cameras/${enc}/history?${q}${step ? `&step=${step}` : ""}&offset=${offset(r.to)}`),
        api("GET", `/api/cameras/${enc}/summary?${q}`),
        api("GET", `/api/cameras/${enc}/events?${q}`)]);
      if (mine !== generation) return;
      column.querySelector(".range-title").textContent = `${r.label}: ${fmtRange(r)}`;
      renderCharts(side, r, h.points, ev.events, h.step);
      if (side === "a") renderEvents(ev.events);
      summaryNode.textContent = summaryText(s);
      summaryNode.dataset.seconds = String(s.seconds);
      summaryNode.dataset.dominant = s.dominant || "";
      column.dataset.step = String(h.step);
    } catch (e) {
      if (mine !== generation) return;
      column.querySelector(".range-title").textContent = `${r.label}: ${fmtRange(r)}`;
      summaryNode.textContent = `History unavailable: ${e.message}`;
    }
    column.dataset.loaded = `${r.from}-${r.to}`;
  }

  function renderEvents(events) {
    const tbody = document.querySelector('[data-testid="events"] tbody');
    tbody.textContent = "";
    const newest = events.slice(-EVENTS_SHOWN).reverse();
    for (const e of newest) {
      const when = new Date(e.ts * 1000);
      tbody.append(el("tr", { "data-testid": "event", "data-kind": e.kind, "data-state": e.state,
                              className: e.state },
        el("td", { text: `${when.toLocaleDateString([], { day: "numeric", month: "short" })} ${when.toLocaleTimeString([], { hour12: false })}` }),
        el("td", { text: e.kind }), el("td", { text: e.state }), el("td", { text: e.message })));
    }
    if (!events.length) {
      tbody.append(el("tr", { className: "empty" }, el("td", { colspan: "4", text: "No alerts or shifts in this range." })));
    } else if (events.length > EVENTS_SHOWN) {
      tbody.append(el("tr", { className: "empty" }, el("td", { colspan: "4",
        text: `… and ${events.length - EVENTS_SHOWN} earlier (the CSV and /events have them all).` })));
    }
  }

  async function loadLessons(r, mine) {
    const tbody = document.querySelector('[data-testid="lessons"] tbody');
    let lessons = [];
    try {
      lessons = (await api("GET", `/api/cameras/${enc}/lessons?from=${r.from}&to=${r.to}`)).lessons;
    } catch (e) { /* shown as none */ }
    if (mine !== generation) return;
    tbody.textContent = "";
    const newest = lessons.slice(-LESSONS_SHOWN).reverse();
    for (const l of newest) {
      const v = l.valence_avg;
      tbody.append(el("tr", { "data-testid": "lesson", "data-from": String(l.from) },
        el("td", {}, el("a", { href: "#", text: fmtRange(l), onclick: (event) => {
          event.preventDefault();
          show("custom-lesson", [{ from: l.from, to: l.to, label: "Lesson" },
                                 { from: l.from - 7 * DAY, to: l.to - 7 * DAY, label: "A week before" }]);
        } })),
        el("td", { text: fmtLength(l.to - l.from) }),
        el("td", { text: l.faces_avg.toFixed(1) }),
        el("td", { className: valenceClass(v), text: `${fmtValence(v)} (${fmtValence(l.valence_min)} to ${fmtValence(l.valence_max)})` }),
        el("td", { text: l.dominant ? `${l.dominant} ${Math.round(100 * l.shares[l.dominant])}%` : "–" })));
    }
    if (!lessons.length) {
      tbody.append(el("tr", { className: "empty" }, el("td", { colspan: "5", text: "No lessons in this range." })));
    } else if (lessons.length > LESSONS_SHOWN) {
      tbody.append(el("tr", { className: "empty" }, el("td", { colspan: "5",
        text: `… and ${lessons.length - LESSONS_SHOWN} earlier lessons (choose a shorter range to see them).` })));
    }
    tbody.dataset.count = String(lessons.length);
  }

  async function show(kind, given) {
    current = kind;
    const mine = ++generation;
    for (const b of document.querySelectorAll("button.range")) {
      b.setAttribute("aria-pressed", String(b.dataset.range === kind));
    }
    $("custom-range").hidden = kind !== "custom";
    const ranges = given || await rangesFor(kind);
    if (!ranges || mine !== generation) return;
    const [a, b] = ranges;
    const step = STEPS[kind] || null;
    $("csv-link").href = `/api/cameras/${enc}/history.csv?from=${a.from}&to=${a.to}&offset=${offset(a.to)}`;
    const compare = $("compare").checked;
    columns.b.hidden = !compare;
    $("ranges").classList.toggle("single", !compare);
    await Promise.all([loadColumn("a", a, step, mine),
                       compare ? loadColumn("b", b, step, mine) : null, loadLessons(a, mine)]);
    if (mine === generation) body.dataset.range = kind;
  }

  for (const b of document.querySelectorAll("button.range")) {
    b.addEventListener("click", () => {
      if (b.dataset.range === "custom") {
        $("custom-range").hidden = false;
        const toLocal = (ts) => new Date((ts - new Date().getTimezoneOffset() * 60) * 1000).toISOString().slice(0, 16);
        if (!$("custom-from").value) $("custom-from").value = toLocal(now() - 3 * DAY);
        if (!$("custom-to").value) $("custom-to").value = toLocal(now());
        return;
      }
      show(b.dataset.range);
    });
  }
  $("custom-range").addEventListener("submit", (event) => { event.preventDefault(); show("custom"); });
  $("compare").addEventListener("change", () => show(current));
  show("lesson");
  // A range that reaches now grows: look again every minute (new rows come every 10 s).
  setInterval(() => {
    if (!document.hidden && ["lesson", "day", "week", "term"].includes(current)) show(current);
  }, 60000);
}

historyPage();
