/* The admin page: cameras (add, edit, remove, groups) and users (role, per-camera access),
   through the REST API. */

import { el, api } from "./common.js";

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
    // An edge node analyses its camera where it is: no source here, and no frames to preview.
    const edge = Boolean(cam.status && cam.status.edge);
    const modeSelect = el("select", { name: "mode", "data-testid": `mode-${id}` },
      ...["classroom", "driver"].map((m) => el("option", { value: m, selected: m === cam.mode, text: m })));
    const settings = el("form", { className: "grid-form", "data-testid": `settings-${id}` },
      el("label", {}, "Mode ", modeSelect),
      field("Name", "name", cam.name, { maxlength: "80" }),
      edge ? el("p", { className: "hint", "data-testid": `edge-${id}`,
                       text: "Edge node: analysed beside the camera; only labels reach this machine." })
           : field("Source", "source", cam.source, { "data-testid": `source-${id}` }),
      field("fps", "fps", cam.fps, { type: "number", min: "0.1", max: "30", step: "0.1" }),
      field("Groups", "groups", cam.groups || "", { "data-testid": `groups-${id}` }),
      field("Negative threshold", "negative_threshold", cam.negative_threshold,
            { type: "number", min: "0.05", max: "1", step: "0.05", "data-testid": `negative-threshold-${id}` }),
      field("Negative for (s)", "negative_seconds", cam.negative_seconds,
            { type: "number", min: "0.5", max: "3600", step: "0.5", "data-testid": `negative-seconds-${id}` }),
      field("Out of view for (s)", "absent_seconds", cam.absent_seconds,
            { type: "number", min: "0.5", max: "3600", step: "0.5", "data-testid": `absent-seconds-${id}` }),
      edge ? null : el("label", { className: "check" },
        el("input", { type: "checkbox", name: "preview", checked: cam.preview, "data-testid": `preview-${id}` }),
        " Live preview with face boxes"),
      el("button", { type: "submit", "data-testid": `save-${id}`, text: "Save" }));
    settings.addEventListener("submit", async (event) => {
      event.preventDefault();
      const data = Object.fromEntries(new FormData(settings).entries());
      const preview = settings.querySelector('input[name="preview"]');
      if (preview) data.preview = preview.checked;
      if (!data.source) delete data.source;  // a camera that an ingest announced by itself
      try {
        await api("PATCH", `/api/cameras/${encodeURIComponent(id)}`, data);
        say(`Saved ${id}.`, "info");
      } catch (e) { say(`Could not save ${id}: ${e.message}`, "error"); }
    });
    const remove = el("button", { type: "button", className: "danger", "data-testid": `remove-${id}`,
                                  text: "Remove" });
    const erase = el("input", { type: "checkbox", "data-testid": `erase-history-${id}` });
    remove.addEventListener("click", async () => {
      const what = erase.checked ? "its live data and its whole history are deleted"
                                 : "its live data is deleted (its history is kept)";
      if (!window.confirm(`Remove camera ${id}? Its ingest stops and ${what}.`)) return;
      try {
        await api("DELETE", `/api/cameras/${encodeURIComponent(id)}${erase.checked ? "?history=erase" : ""}`);
        say(erase.checked ? `Removed ${id} and erased its history.` : `Removed ${id}.`, "info");
        await refresh();
      } catch (e) { say(`Could not remove ${id}: ${e.message}`, "error"); }
    });
    return el("article", { className: "admin-camera", "data-testid": `admin-camera-${id}`, "data-camera": id },
      el("header", {},
        el("h2", {}, el("a", { href: `/cameras/${encodeURIComponent(id)}`, text: id })),
        el("code", { className: "source", text: edge ? "(edge node)" : cam.source || "(not registered)" }),
        el("span", statusSpan(cam)),
        el("label", { className: "check" }, erase, "also erase its history"),
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
      // Per-camera access: comma-separated camera ids and camera groups, saved on change.
      const access = (name) => {
        const input = el("input", { value: (u[name] || []).join(", "), size: "18",
                                    "data-testid": `user-${name}-${u.name}` });
        input.addEventListener("change", async () => {
          try {
            await api("PATCH", `/api/users/${encodeURIComponent(u.name)}`, { [name]: input.value });
            say(`Saved the ${name} of ${u.name}.`, "info");
          } catch (e) { say(`Could not change ${u.name}: ${e.message}`, "error"); }
          refreshUsers();
        });
        return input;
      };
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
        el("td", { text: u.name }), el("td", {}, role), el("td", {}, access("cameras")),
        el("td", {}, access("groups")), el("td", {}, remove)));
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

adminPage();
