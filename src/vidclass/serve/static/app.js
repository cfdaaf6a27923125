"use strict";
const $ = (id) => document.getElementById(id);
const COLOURS = ["#2563eb", "#16a34a", "#db2777", "#ea580c", "#7c3aed", "#0891b2", "#65a30d", "#b45309"];
const UNKNOWN_COLOUR = "#6b7280"; // grey: windows outside what the model knows

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

// Seconds as the page shows them: 2.56, 1, 0.5.
const seconds = (x) => `${Number(x.toFixed(2))}`;

// One upload to POST /v1/timeline?progress=true: NDJSON lines of progress while its
// windows are scored, then the timeline (with the whole video's top labels), or an error.
async function timelineOf(file, signal, onProgress) {
  const params = new URLSearchParams({ progress: "true", top_k: "5" });
  const labels = $("labels").value.trim();
  if (labels) params.set("labels", labels);
  const body = new FormData();
  body.append("file", file);
  const response = await api(`/v1/timeline?${params}`, { method: "POST", body, signal });
  if (!response.ok) {
    const data = await response.json().catch(() => null);
    throw new Error(detailText(data, response));
  }
  onProgress(null);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, end).trim();
        buffer = buffer.slice(end + 1);
        if (!line) continue;
        const m = JSON.parse(line);
        if (m.type === "progress") onProgress(m);
        else if (m.type === "error") throw new Error(m.detail);
        else if (m.type === "timeline") return m;
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
  throw new Error("the server closed the connection before the timeline was done");
}

// `caption`: where the labels come from (the whole video, or the camera's last window);
// `answer`: its {unknown, ood_score}: "unknown" goes first where the model is not sure.
function showBars(predictions, caption, answer = {}) {
  const list = $("bars");
  list.replaceChildren();
  if (answer.unknown) {
    const item = document.createElement("li");
    item.className = "unknown";
    const name = document.createElement("span");
    name.className = "label";
    name.textContent = "unknown";
    const why = document.createElement("span");
    why.textContent = `outside what the model knows (ood ${answer.ood_score.toFixed(3)}); its best guesses:`;
    item.append(name, why);
    list.append(item);
  }
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
  $("labels-caption").textContent = caption;
  $("labels-heading").hidden = $("labels-caption").hidden = false;
}

function showTimeline(tl) {
  const box = $("timeline");
  box.replaceChildren();
  box.hidden = false;
  const colour = new Map();
  const duration = tl.duration || 1;
  for (const s of tl.segments) {
    if (!colour.has(s.label)) colour.set(s.label, s.label === "unknown" ? UNKNOWN_COLOUR : COLOURS[colour.size % COLOURS.length]);
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
      if (s.label !== "unknown") explainLabel(s.label, tl);
    });
    box.append(button);
  }
  $("timeline-caption").textContent = `Per window: a window of ${seconds(tl.window)} s every ${seconds(tl.stride)} s, runs of one label joined; press one to play from there and see why it has its label.`;
  $("timeline-heading").hidden = $("timeline-caption").hidden = false;
}

let shownFile = null; // the file whose timeline the page shows: what a label is explained in
let asking = null; // the AbortController of the explanation being made

// Why `label`: which seconds and which parts of the picture drive it (POST /v1/explain),
// on a small budget (every window once, then a 2x2 grid of the two windows that matter
// most) so that a click answers in seconds on a CPU.
async function explainLabel(label, tl) {
  if (!shownFile) return;
  if (asking) asking.abort();
  const run = new AbortController();
  asking = run;
  const budget = tl.windows.length + 8;
  const params = new URLSearchParams({ label, grid: "2", budget: String(budget), stride: String(tl.stride) });
  const labels = $("labels").value.trim(); // the labels the timeline was made with
  if (labels) params.set("labels", labels);
  const body = new FormData();
  body.append("file", shownFile);
  status(`Finding why ${label}: ${budget} passes…`);
  try {
    const response = await api(`/v1/explain?${params}`, { method: "POST", body, signal: run.signal });
    const data = await response.json().catch(() => null);
    if (!response.ok) throw new Error(detailText(data, response));
    showWhy(data, tl.duration || 1);
    status(`Why ${label}: ${data.passes} passes`);
  } catch (err) {
    if (run.signal.aborted) return;
    status(`Could not explain ${label}: ${err.message}`, true);
  }
}

function showWhy(ex, duration) {
  const box = $("why");
  box.replaceChildren();
  const strip = document.createElement("div");
  strip.id = "why-seconds";
  strip.setAttribute("role", "img");
  for (const s of ex.seconds) {
    const bar = document.createElement("span");
    bar.style.height = `${Math.max(0.02, s.score) * 100}%`;
    if (s.importance < 0) bar.className = "below";
    bar.title = `${s.start.toFixed(1)}–${s.end.toFixed(1)} s: score ${s.score.toFixed(3)}, ${s.importance >= 0 ? "+" : ""}${s.importance.toFixed(3)} against the rest`;
    strip.append(bar);
  }
  strip.setAttribute("aria-label", `importance of each window for ${ex.label}, over ${seconds(duration)} s`);
  const regions = document.createElement("div");
  regions.id = "why-regions";
  for (const r of ex.regions) {
    const figure = document.createElement("figure");
    const cells = document.createElement("div");
    cells.className = "cells";
    cells.style.gridTemplateColumns = `repeat(${r.grid.length}, 1fr)`;
    const most = Math.max(1e-6, ...r.grid.flat());
    for (const value of r.grid.flat()) {
      const cell = document.createElement("span");
      cell.style.opacity = `${Math.max(0.05, Math.max(0, value) / most)}`;
      cell.title = value.toFixed(3);
      cells.append(cell);
    }
    const caption = document.createElement("figcaption");
    caption.textContent = `${r.start.toFixed(1)}–${r.end.toFixed(1)} s`;
    figure.append(cells, caption);
    regions.append(figure);
  }
  box.append(strip, regions);
  $("why-heading").textContent = `Why ${ex.label}`;
  $("why-caption").textContent = "Bars: the label's score in each window, blue where it is above the rest of the video, grey where below. Squares: the parts of the picture that, greyed out, lower it most (darker: more).";
  box.hidden = $("why-heading").hidden = $("why-caption").hidden = false;
}

// What the page showed for the video before: gone before the next one is tried.
function clearResults() {
  $("bars").replaceChildren();
  $("timeline").replaceChildren();
  $("why").replaceChildren();
  shownFile = null;
  if (asking) asking.abort();
  for (const id of ["labels-heading", "labels-caption", "timeline", "timeline-heading", "timeline-caption", "why", "why-heading", "why-caption"]) $(id).hidden = true;
}

function clearPlayer() {
  const player = $("player");
  player.pause();
  if (player.src.startsWith("blob:")) URL.revokeObjectURL(player.src);
  player.removeAttribute("src");
  player.load();
  player.hidden = true;
}

let upload = null; // the AbortController of the upload being labelled

async function classify(file) {
  stopCamera(true);
  if (upload) upload.abort(); // a newer file: the older one's answer is not wanted
  const run = new AbortController();
  upload = run;
  clearResults();
  clearPlayer();
  $("strip").hidden = $("strip-heading").hidden = $("live-stats").hidden = true;
  const player = $("player");
  player.src = URL.createObjectURL(file);
  player.hidden = false;
  // The status line, with the time so far, every second and as windows are scored.
  const began = performance.now();
  let step = `Sending ${file.name}…`;
  let count = "";
  const show = () => {
    const elapsed = Math.round((performance.now() - began) / 1000);
    status(`${step} ${count}${elapsed} s`);
  };
  const progress = (m) => {
    step = `Finding where things happen in ${file.name}…`;
    if (m) count = m.total == null ? `${m.done} windows, ` : `${m.done} of ${m.total} windows, `;
    show();
  };
  show();
  const timer = setInterval(show, 1000);
  try {
    const tl = await timelineOf(file, run.signal, progress);
    const n = tl.windows.length;
    showBars(tl.predictions || [], `Whole video: mean of ${n} window${n === 1 ? "" : "s"} of ${seconds(tl.window)} s`, tl);
    showTimeline(tl);
    shownFile = file;
    status(`Done: ${file.name}`);
  } catch (err) {
    if (run.signal.aborted) return; // replaced by a newer file, which has the page now
    clearPlayer();
    status(`Could not classify ${file.name}: ${err.message}`, true);
  } finally {
    clearInterval(timer);
    if (upload === run) upload = null;
  }
}

// Camera: MediaRecorder's chunks of one WebM recording go to WebSocket /v1/live as
// binary messages; the server answers each labelled window, each finished segment and,
// after "stop", a summary (see src/vidclass/serve/live.py).
const TIMESLICE_MS = 300; // a chunk every 0.3 s: little delay, few messages
const MAX_BUFFERED = 8 << 20; // bytes the socket has not sent yet: the link is too slow
const MAX_STRIP = 100; // segments kept on screen
const live = { socket: null, recorder: null, stream: null, sending: null, windows: 0, error: "", summary: null, quiet: false, colours: new Map() };

function liveUrl() {
  const params = new URLSearchParams({ stride: "1", top_k: "5" });
  const labels = $("labels").value.trim();
  if (labels) params.set("labels", labels);
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}/v1/live?${params}`;
}

// A browser cannot set headers on a WebSocket: the API key goes as a subprotocol.
function liveProtocols() {
  const key = sessionStorage.getItem("vidclass-key");
  if (!key) return ["vidclass"];
  const bytes = new TextEncoder().encode(key);
  const text = btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  return ["vidclass", `vidclass.key.${text}`];
}

function recordingType() {
  return ["video/webm;codecs=vp8", "video/webm", "video/mp4"].find((t) => MediaRecorder.isTypeSupported(t)) || "";
}

// The focus follows the button that replaces the one pressed (not when a file was chosen).
function cameraControls(running) {
  const from = document.activeElement;
  $("camera-start").disabled = running;
  $("camera-stop").hidden = !running;
  if ([$("camera-start"), $("camera-stop"), document.body, null].includes(from)) {
    (running ? $("camera-stop") : $("camera-start")).focus();
  }
}

async function startCamera() {
  if (live.socket) return;
  if (!navigator.mediaDevices || !window.MediaRecorder) {
    status("This browser cannot record the camera here (it needs https or localhost).", true);
    return;
  }
  status("Starting the camera…");
  $("camera-start").disabled = true; // one session, however often it is pressed
  try {
    live.stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
  } catch (err) {
    status(`No camera: ${err.message}`, true);
    $("camera-start").disabled = false;
    return;
  }
  Object.assign(live, { windows: 0, error: "", summary: null, quiet: false, sending: Promise.resolve() });
  live.colours.clear();
  if (upload) upload.abort();
  clearResults();
  clearPlayer();
  $("strip").replaceChildren();
  $("strip").hidden = $("strip-heading").hidden = false;
  $("live-stats").textContent = "";
  $("live-stats").hidden = false;
  const preview = $("camera");
  preview.srcObject = live.stream;
  preview.hidden = false;
  cameraControls(true);
  status("Connecting…");
  const socket = new WebSocket(liveUrl(), liveProtocols());
  live.socket = socket;
  socket.addEventListener("open", () => record(socket));
  socket.addEventListener("message", (e) => liveMessage(JSON.parse(e.data)));
  socket.addEventListener("close", (e) => cameraClosed(e));
}

function record(socket) {
  status("Waiting for the first window…");
  const recorder = new MediaRecorder(live.stream, { mimeType: recordingType(), videoBitsPerSecond: 1_000_000 });
  // Chunks go out in order (each read, then sent, after the one before), "stop" last.
  recorder.addEventListener("dataavailable", (e) => {
    if (!e.data.size) return;
    live.sending = live.sending.then(async () => {
      const chunk = await e.data.arrayBuffer();
      if (socket.readyState !== WebSocket.OPEN) return;
      if (socket.bufferedAmount > MAX_BUFFERED) {
        live.error = "the connection to the server is too slow for the camera";
        socket.close();
        return;
      }
      socket.send(chunk);
    });
  });
  recorder.addEventListener("stop", () => {
    live.sending = live.sending.then(() => { if (socket.readyState === WebSocket.OPEN) socket.send("stop"); });
  });
  recorder.start(TIMESLICE_MS);
  live.recorder = recorder;
}

function liveMessage(m) {
  if (live.quiet) return; // stopped for an upload, whose results have the page now
  if (m.type === "ready") {
    status(`Live: ${m.model}, a window of ${m.window} s every ${m.stride} s`);
  } else if (m.type === "window") {
    live.windows += 1;
    showBars(m.predictions, `The camera's latest window, ${m.start.toFixed(1)}–${m.end.toFixed(1)} s`, m);
    $("live-stats").textContent = `${live.windows} windows · latest ${m.start.toFixed(1)}–${m.end.toFixed(1)} s · latency ${m.latency.toFixed(2)} s`;
  } else if (m.type === "segment") {
    addSegment(m);
  } else if (m.type === "gap") {
    $("live-stats").textContent = `No video from ${m.start.toFixed(1)} s to ${m.end.toFixed(1)} s (${m.reason})`;
  } else if (m.type === "error") {
    live.error = m.error;
  } else if (m.type === "summary") {
    live.summary = m;
  }
}

function addSegment(s) {
  if (!live.colours.has(s.label)) live.colours.set(s.label, COLOURS[live.colours.size % COLOURS.length]);
  const item = document.createElement("li");
  item.className = "live-segment";
  item.style.background = live.colours.get(s.label);
  item.textContent = s.label;
  item.title = `${s.label} ${s.start.toFixed(1)}–${s.end.toFixed(1)} s (${s.score.toFixed(2)})`;
  item.setAttribute("aria-label", `${s.label} from ${s.start.toFixed(1)} s to ${s.end.toFixed(1)} s`);
  const strip = $("strip");
  strip.append(item);
  while (strip.children.length > MAX_STRIP) strip.firstElementChild.remove();
  strip.scrollLeft = strip.scrollWidth;
}

// `quiet`: the page moves on to something else, which has the status line.
function stopCamera(quiet = false) {
  const { socket, recorder } = live;
  if (!socket) return;
  live.quiet = quiet;
  if (!quiet) status("Stopping…");
  if (recorder && recorder.state !== "inactive") recorder.stop(); // its last chunk, then "stop"
  else if (socket.readyState === WebSocket.OPEN) socket.send("stop");
  else socket.close();
  setTimeout(() => { if (live.socket === socket) socket.close(); }, 15000);
}

function cameraClosed(e) {
  if (live.recorder && live.recorder.state !== "inactive") live.recorder.stop();
  for (const track of live.stream ? live.stream.getTracks() : []) track.stop();
  $("camera").srcObject = null;
  $("camera").hidden = true;
  live.socket = live.recorder = live.stream = null;
  cameraControls(false);
  if (e.code === 4401) {
    $("key-form").hidden = false;
    $("key").focus();
  }
  const s = live.summary;
  if (live.quiet) return;
  if (live.error) status(`Live labels stopped: ${live.error}`, true);
  else if (s && e.code === 1000) {
    const latency = s.latency_median == null ? "–" : `${s.latency_median.toFixed(2)} s`;
    status(`Stopped: ${s.windows} windows labelled over ${s.stream_seconds.toFixed(1)} s, median latency ${latency}`);
  } else status(`The live connection closed (${e.code}${e.reason ? `: ${e.reason}` : ""})`, true);
}

$("camera-start").addEventListener("click", startCamera);
$("camera-stop").addEventListener("click", () => stopCamera());
window.addEventListener("pagehide", () => { if (live.socket) live.socket.close(); });

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
  for (const h of hits) list.append(hitItem(h));
});

// A search hit; `tags_from` (how its tags were made) and each moment's `source`
// ("timeline" or "text") where the gallery has them.
function hitItem(h) {
  const item = document.createElement("li");
  const tags = (h.tags || []).map((t) => `${t.label} ${t.score.toFixed(2)}`).join(", ");
  const made = tags && h.tags_from ? ` (tags: ${h.tags_from})` : "";
  const length = h.duration ? h.duration.toFixed(1) + " s" : "?";
  const score = typeof h.score === "number" ? `, ${h.score.toFixed(2)}` : "";
  item.textContent = `${h.video} (${length}${score})${tags ? ": " + tags + made : ""}`;
  if (h.moments && h.moments.length) {
    const moments = document.createElement("ul");
    moments.className = "moments";
    for (const m of h.moments) {
      const row = document.createElement("li");
      const source = m.source ? ` (${m.source})` : "";
      row.textContent = `${m.start.toFixed(1)}–${m.end.toFixed(1)} s: ${m.label} ${m.score.toFixed(2)}${source}`;
      moments.append(row);
    }
    item.append(moments);
  }
  return item;
}

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
