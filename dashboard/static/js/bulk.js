/* The bulk page: each upload's row follows its jobs' progress until they end. */

function render(row, s) {
  row.querySelector(".state").textContent = s.state;
  const none = document.querySelector('[data-testid="bulk-no-worker"]');
  if (none) none.hidden = s.workers !== 0;
  row.querySelector("progress").value = s.progress;
  row.querySelector(".pct").textContent = `${Math.round(s.progress * 100)}%`;
  const links = row.querySelector(".outputs");
  links.textContent = "";
  for (const o of s.outputs) {
    const a = document.createElement("a");
    a.href = o.url; a.textContent = o.name; a.setAttribute("download", "");
    links.append(a, " ");
  }
  const errs = row.querySelector(".errors");
  errs.textContent = "";
  for (const e of s.errors) {
    const li = document.createElement("li");
    li.textContent = `${e.file.split("/").pop()}: ${e.error}`;
    errs.append(li);
  }
  return s.state === "finished" || s.state === "failed";
}

async function poll(row) {
  try {
    const response = await fetch(row.dataset.status, {
      credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!render(row, await response.json())) setTimeout(() => poll(row), 1000);
  } catch (e) {
    setTimeout(() => poll(row), 3000);
  }
}

for (const row of document.querySelectorAll("tr[data-upload]")) {
  if (row.dataset.done !== "1") poll(row);
}
