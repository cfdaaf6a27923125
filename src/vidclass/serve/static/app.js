"use strict";
const $ = (id) => document.getElementById(id);
const COLOURS = ["#2563eb", "#16a34a", "#db2777", "#ea580c", "#7c3aed", "#0891b2", "#65a30d", "#b45309"];

function status(text, error = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", error);
}

// With `vidclass serve --api-key`, /v1/ needs the key; it is asked for once and kept
// for this tab only.
function authHeaders() {
  const key = sessionStorage.getItem("vidclass-key");
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function api(url, options = {}) {
  const response = await fetch(url, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  if (response.status === 401) {
    $("key-form").hidden = false;
    $("key").focus();
  }
  return response;
}

function detailText(data, response) {
  const detail = data && data.detail;
  if (Array.isArray(detail)) return detail.map((d) => d.msg).join("; ");
  return detail || response.statusText;
}

async function post(url, file) {
  const body = new FormData();
  body.append("file", file);
  const labels = $("labels").value.trim();
  if (labels) url += `?labels=${encodeURIComponent(labels)}`;
  const response = await api(url, { method: "POST", body });
  const data = await response.json();
  if (!response.ok) throw new Error(detailText(data, response));
  return data;
}

function showBars(predictions) {
  const list = $("bars");
  list.replaceChildren();
  for (const p of predictions) {
    const item = document.createElement("li");
    const name = document.createElement("span");
    name.className = "label";
    name.textContent = p.label;
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.style.width = `${Math.max(1, p.score * 100)}%`;
    bar.setAttribute("role", "meter");
    bar.setAttribute("aria-valuemin", "0");
    bar.setAttribute("aria-valuemax", "1");
    bar.setAttribute("aria-valuenow", p.score.toFixed(3));
    bar.setAttribute("aria-label", p.label);
    const score = document.createElement("span");
    score.textContent = p.score.toFixed(3);
    item.append(name, bar, score);
    list.append(item);
  }
  $("labels-heading").hidden = false;
}

function showTimeline(tl) {
  const box = $("timeline");
  box.replaceChildren();
  const colour = new Map();
  const duration = tl.duration || 1;
  for (const s of tl.segments) {
    if (!colour.has(s.label)) colour.set(s.label, COLOURS[colour.size % COLOURS.length]);
    const button = document.createElement("button");
    button.className = "segment";
    button.setAttribute("role", "listitem");
    button.style.left = `${(100 * s.start) / duration}%`;
    button.style.width = `${(100 * (s.end - s.start)) / duration}%`;
    button.style.background = colour.get(s.label);
    button.textContent = s.label;
    button.title = `${s.label} ${s.start.toFixed(1)}–${s.end.toFixed(1)} s (${s.score.toFixed(2)})`;
    button.setAttribute("aria-label", `${s.label} from ${s.start.toFixed(1)} s to ${s.end.toFixed(1)} s, play from there`);
    button.addEventListener("click", () => {
      const player = $("player");
      player.currentTime = s.start;
      player.play().catch(() => {});
    });
    box.append(button);
  }
  $("timeline-heading").hidden = false;
}

async function classify(file) {
  const player = $("player");
  player.src = URL.createObjectURL(file);
  player.hidden = false;
  status(`Classifying ${file.name}…`);
  try {
    const result = await post("/v1/classify", file);
    showBars(result.predictions);
    status(`Finding where things happen in ${file.name}…`);
    showTimeline(await post("/v1/timeline", file));
    status(`Done: ${file.name}`);
  } catch (err) {
    status(`Could not classify ${file.name}: ${err.message}`, true);
  }
}

$("file").addEventListener("change", (e) => { if (e.target.files[0]) classify(e.target.files[0]); });
const drop = $("drop");
drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("file").click(); } });
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  if (e.dataTransfer.files[0]) classify(e.dataTransfer.files[0]);
});

$("search-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const q = $("query").value;
  const list = $("results");
  list.replaceChildren();
  const by = $("search-by").value;
  const response = await api(`/v1/search?q=${encodeURIComponent(q)}&by=${by}`);
  const hits = await response.json();
  if (!response.ok) { list.textContent = detailText(hits, response); return; }
  if (!hits.length) { list.textContent = `No videos found for "${q}".`; return; }
  for (const h of hits) {
    const item = document.createElement("li");
    const tags = h.tags.map((t) => `${t.label} ${t.score.toFixed(2)}`).join(", ");
    const length = h.duration ? h.duration.toFixed(1) + " s" : "?";
    item.textContent = `${h.video} (${length}, ${h.score.toFixed(2)})${tags ? ": " + tags : ""}`;
    if (h.moments.length) {
      const moments = document.createElement("ul");
      moments.className = "moments";
      for (const m of h.moments) {
        const row = document.createElement("li");
        row.textContent = `${m.start.toFixed(1)}–${m.end.toFixed(1)} s: ${m.label} ${m.score.toFixed(2)}`;
        moments.append(row);
      }
      item.append(moments);
    }
    list.append(item);
  }
});

fetch("/healthz").then((r) => r.json()).then((h) => {
  $("model-line").textContent = `Model: ${h.model}`;
  $("gallery").hidden = !h.gallery;
});

$("key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem("vidclass-key", $("key").value);
  $("key-form").hidden = true;
  status("API key set for this tab; try again.");
});
