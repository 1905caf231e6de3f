/* The system page: workers and pipeline accounting, from the REST API. */

import { el, api, every } from "./common.js";

const body = document.body;

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
        ["Classified / carried from the track", `${s.classified ?? 0} / ${s.reused ?? 0}`],
        ["Dead letters", s.dead_letters],
        ["Latency p50 / p99", s.latency_ms && s.latency_ms.samples
          ? `${s.latency_ms.p50} / ${s.latency_ms.p99} ms` : "–"],
      ];
      for (const [stage, st] of Object.entries(s.stages || {})) {
        rows.push([`${stage} pending (lag)`, st.pending]);
      }
      const h = s.history || {};
      rows.push(["History rows written", h.written],
                ["History rows dropped (buffer full)", (h.dropped || {}).full],
                ["History rows waiting for the database", h.pending]);
      // Edge cameras: labels sent, waiting on the node (memory + spill file), dropped past
      // its spill cap, and late (counted in history, not live).
      for (const [cam, e] of Object.entries(s.edge || {})) {
        rows.push([`Edge ${cam} (${e.state || "unknown"})`,
                   `${e.sent} sent, ${e.queued + e.spilled} waiting, ${e.dropped} dropped, ${e.late} late`]);
      }
      for (const [label, value] of rows) {
        stats.append(el("dt", { text: label }), el("dd", { text: value === undefined ? "–" : String(value) }));
      }
    } catch (e) { /* next tick */ }
  }
  every(2000, refresh);
}

systemPage();
