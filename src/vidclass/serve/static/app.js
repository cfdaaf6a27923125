"use strict";
const $ = (id) => document.getElementById(id);
const COLOURS = ["#2563eb", "#16a34a", "#db2777", "#ea580c", "#7c3aed", "#0891b2", "#65a30d", "#b45309"];
const UNKNOWN_COLOUR = "#6b7280"; // grey: windows outside what the model knows
const PAGE_SIZE = 24; // videos on a page of the gallery
const TAGS_SHOWN = 16; // tags offered as filters before "More tags"

function status(text, error = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", error);
}

// With `vidclass serve --api-key`, /v1/ needs the key; it is asked for once and kept
// for this tab only. The pictures and videos the page shows (an <img> or <video> cannot
// send a header) are read with a cookie the server sets for it (POST /v1/session).
function authHeaders() {
  const key = sessionStorage.getItem("vidclass-key");
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function pictureCookie() {
  if (sessionStorage.getItem("vidclass-key")) await api("/v1/session", { method: "POST" }).catch(() => {});
}

async function api(url, options = {}) {
  const response = await fetch(url, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  if (response.status === 401) {
    $("key-form").hidden = false;
    $("key").focus();
  }
  return response;
}

// The JSON answer of a GET, or an Error with the server's words.
async function getJson(url, signal) {
  const response = await api(url, { signal });
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new Error(detailText(data, response));
  return data;
}

function detailText(data, response) {
  const detail = data && data.detail;
  if (Array.isArray(detail)) return detail.map((d) => d.msg).join("; ");
  return detail || response.statusText;
}

// Seconds as the page shows them: 2.56, 1, 0.5.
const seconds = (x) => `${Number(x.toFixed(2))}`;
// A time on a clock: 0:07, 2:19, 1:02:05.
function clock(t) {
  const s = Math.floor(t % 60), m = Math.floor(t / 60) % 60, h = Math.floor(t / 3600);
  const ss = String(s).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}
const baseName = (path) => path.split("/").pop();
// A model as the page names it: a hub name whole, a local folder by its last part.
const modelName = (name) => (name && name.startsWith("/") ? baseName(name.replace(/\/+$/, "")) : name);
const mediaUrl = (name) => `/v1/media?video=${encodeURIComponent(name)}`;
const pictureUrl = (path, t) => `/v1/gallery/thumbnail?video=${encodeURIComponent(path)}${t == null ? "" : `&t=${t.toFixed(1)}`}`;

// `text` with the seconds so far, every second, in `element`, until the returned
// function is called.
// The seconds are shown, not announced: a screen reader hears `text` once.
function ticking(element, text) {
  const began = performance.now();
  const clock = document.createElement("span");
  clock.setAttribute("aria-hidden", "true");
  element.replaceChildren(`${text} `, clock);
  const show = () => { clock.textContent = `${Math.round((performance.now() - began) / 1000)} s`; };
  show();
  const timer = setInterval(show, 1000);
  return () => clearInterval(timer);
}

// -- views ----------------------------------------------------------------------------
function showView(name) {
  for (const [view, button] of [["try", "view-try"], ["gallery", "view-gallery"]]) {
    $(view).hidden = view !== name;
    $(button).setAttribute("aria-pressed", String(view === name));
  }
}
$("view-try").addEventListener("click", () => showView("try"));
$("view-gallery").addEventListener("click", () => showView("gallery"));

// -- what plays -------------------------------------------------------------------------
// A video the page works on: a chosen file, or a path under the server's --media.
// `shown` is the one whose timeline the page shows: what a label is explained in.
let shown = null;

function formFor(source) {
  const body = new FormData();
  if (source.file) body.append("file", source.file);
  else body.append("path", source.path);
  return body;
}

function play(source, at = null) {
  const player = $("player");
  clearPlayer();
  player.src = source.file ? URL.createObjectURL(source.file) : mediaUrl(source.path);
  player.hidden = false;
  $("stage-empty").hidden = true;
  $("now-playing").textContent = source.name;
  $("now-playing").hidden = false;
  if (at != null) {
    const seek = () => {
      player.currentTime = at;
      player.play().catch(() => {});
    };
    if (player.readyState >= 1) seek();
    else player.addEventListener("loadedmetadata", seek, { once: true });
  }
}

// A file the browser cannot decode (H.264 in a browser built without it, HEVC, AVI):
// said plainly; its labels and timeline are still shown.
$("player").addEventListener("error", () => {
  const player = $("player");
  if (!player.getAttribute("src")) return;
  const note = $("player-note");
  note.textContent = `This browser cannot play ${$("now-playing").textContent.split(" · ")[0]} (its format); its labels and timeline are still here.`;
  note.hidden = false;
});

function clearPlayer() {
  const player = $("player");
  $("player-note").hidden = true;
  player.pause();
  if (player.src.startsWith("blob:")) URL.revokeObjectURL(player.src);
  player.removeAttribute("src");
  player.load();
  player.hidden = true;
  $("now-playing").hidden = true;
  $("stage-empty").hidden = false;
}

// -- labels -------------------------------------------------------------------------------
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

// -- the timeline -------------------------------------------------------------------------
// Segments over a time axis, with a legend, a playhead that follows the player and
// highlights the segment playing, scores on hover; a label is written in its segment
// only where it fits whole (else the legend, the hover and the screen reader say it).
const TICK_STEPS = [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200];
const MIN_TICK_PX = 64;
let timeline = null; // {duration, segments, buttons}: the one shown

function labelColours(segments) {
  const colour = new Map();
  for (const s of segments) {
    if (!colour.has(s.label)) colour.set(s.label, s.label === "unknown" ? UNKNOWN_COLOUR : COLOURS[[...colour.keys()].filter((l) => l !== "unknown").length % COLOURS.length]);
  }
  return colour;
}

const segmentText = (s) => `${s.label} ${s.start.toFixed(1)}–${s.end.toFixed(1)} s, score ${s.score.toFixed(2)}`;

// `caption`: how the timeline was made; `explain`: whether a press also asks why.
function showTimeline(tl, caption, explain = true) {
  const box = $("timeline");
  box.replaceChildren();
  const duration = tl.duration || Math.max(1, ...tl.segments.map((s) => s.end));
  const colour = labelColours(tl.segments);
  const buttons = [];
  for (const s of tl.segments) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "segment";
    button.setAttribute("role", "listitem");
    button.style.left = `${(100 * s.start) / duration}%`;
    button.style.width = `${(100 * (s.end - s.start)) / duration}%`;
    button.style.background = colour.get(s.label);
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = s.label;
    button.append(name);
    button.title = segmentText(s);
    button.setAttribute("aria-label", `${s.label} from ${s.start.toFixed(1)} s to ${s.end.toFixed(1)} s, score ${s.score.toFixed(2)}, play from there`);
    button.addEventListener("click", () => {
      const player = $("player");
      player.currentTime = s.start;
      player.play().catch(() => {});
      if (explain && s.label !== "unknown") explainLabel(s.label, tl);
    });
    button.addEventListener("mouseenter", () => { $("segment-info").textContent = segmentText(s); });
    button.addEventListener("mouseleave", follow);
    button.addEventListener("focus", () => { $("segment-info").textContent = segmentText(s); });
    box.append(button);
    buttons.push(button);
  }
  const legend = $("legend");
  legend.replaceChildren();
  for (const [label, c] of colour) {
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = c;
    item.append(swatch, label === "unknown" ? "unknown (outside what the model knows)" : label);
    legend.append(item);
  }
  timeline = { duration, segments: tl.segments, buttons };
  $("timeline-caption").textContent = caption;
  $("timeline-box").hidden = $("timeline-heading").hidden = $("timeline-caption").hidden = false;
  layoutTimeline();
  follow();
}

function hideTimeline() {
  timeline = null;
  $("timeline").replaceChildren();
  $("legend").replaceChildren();
  $("segment-info").textContent = "";
  for (const id of ["timeline-box", "timeline-heading", "timeline-caption"]) $(id).hidden = true;
}

// What depends on the drawn width: which labels fit, and the axis's ticks.
function layoutTimeline() {
  if (!timeline) return;
  for (const button of timeline.buttons) {
    const name = button.firstChild;
    name.hidden = false;
    if (button.scrollWidth > button.clientWidth + 0.5) name.hidden = true;
  }
  const axis = $("axis");
  axis.replaceChildren();
  const width = $("timeline").clientWidth;
  if (!width) return;
  const { duration } = timeline;
  // A listed step, or for a length past them (a crafted one) a whole number of hours.
  const step = TICK_STEPS.find((s) => (duration / s) * MIN_TICK_PX <= width) || 3600 * Math.ceil((duration * MIN_TICK_PX) / width / 3600);
  const count = Math.floor(duration / step + 1e-9);
  for (let i = 0; i <= count; i++) {
    const t = i * step;
    const tick = document.createElement("div");
    tick.className = "tick";
    if (i === 0) tick.classList.add("first");
    if ((width * (duration - t)) / duration < MIN_TICK_PX / 2) tick.classList.add("last");
    tick.style.left = `${(100 * t) / duration}%`;
    const text = document.createElement("span");
    text.textContent = duration >= 60 ? clock(t) : `${seconds(t)} s`;
    tick.append(text);
    axis.append(tick);
  }
}
new ResizeObserver(() => layoutTimeline()).observe($("timeline"));

// The playhead where the player is, and the segment playing highlighted.
function follow() {
  const head = $("playhead");
  const player = $("player");
  if (!timeline || player.hidden || !player.src) {
    head.hidden = true;
    return;
  }
  const t = player.currentTime;
  head.hidden = false;
  head.style.left = `${Math.min(100, (100 * t) / timeline.duration)}%`;
  let current = null;
  timeline.segments.forEach((s, i) => {
    const on = s.start <= t && t < s.end;
    timeline.buttons[i].classList.toggle("current", on);
    if (on) {
      timeline.buttons[i].setAttribute("aria-current", "true");
      current = s;
    } else timeline.buttons[i].removeAttribute("aria-current");
  });
  $("segment-info").textContent = current ? `Now ${clock(t)}: ${segmentText(current)}` : "";
}
function following() {
  follow();
  if (!$("player").paused) requestAnimationFrame(following);
}
for (const event of ["timeupdate", "seeked", "loadedmetadata"]) $("player").addEventListener(event, follow);
$("player").addEventListener("play", following);

// -- why a label ----------------------------------------------------------------------------
let asking = null; // the AbortController of the explanation being made

// Why `label`: which seconds and which parts of the picture drive it (POST /v1/explain),
// on a small budget (every window once, or the video's map, which takes fewer passes;
// then each of the two windows that matter most alone and a 2x2 grid of greyed-out
// copies) so that a click answers in seconds on a CPU.
async function explainLabel(label, tl) {
  if (!shown) return;
  if (asking) asking.abort();
  const run = new AbortController();
  asking = run;
  const windows = tl.windows && tl.windows.length ? tl.windows.length : 16;
  const stride = tl.stride || Math.max(1, Math.round((tl.duration || 16) / 16));
  const budget = windows + 10;
  const params = new URLSearchParams({ label, grid: "2", budget: String(budget), stride: String(stride) });
  const labels = $("labels").value.trim(); // the labels the timeline was made with
  if (labels && !shown.indexed) params.set("labels", labels);
  status(`Finding why ${label}: ${budget} passes…`);
  try {
    const response = await api(`/v1/explain?${params}`, { method: "POST", body: formFor(shown), signal: run.signal });
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
  $("why").replaceChildren();
  hideTimeline();
  shown = null;
  if (asking) asking.abort();
  for (const id of ["labels-heading", "labels-caption", "why", "why-heading", "why-caption"]) $(id).hidden = true;
  for (const card of document.querySelectorAll(".card.playing")) card.classList.remove("playing");
}

// -- a video tried: an upload or an example ----------------------------------------------
// One POST /v1/timeline?progress=true: NDJSON lines of progress while its windows are
// scored, then the timeline (with the whole video's top labels), or an error.
async function timelineOf(source, signal, onProgress) {
  const params = new URLSearchParams({ progress: "true", top_k: "5" });
  const labels = $("labels").value.trim();
  if (labels) params.set("labels", labels);
  const response = await api(`/v1/timeline?${params}`, { method: "POST", body: formFor(source), signal });
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

let upload = null; // the AbortController of the video being labelled

async function classify(source) {
  opening += 1; // a video of the gallery still being opened is not wanted now
  stopCamera(true);
  showView("try");
  if (upload) upload.abort(); // a newer video: the older one's answer is not wanted
  const run = new AbortController();
  upload = run;
  clearResults();
  $("strip").hidden = $("strip-heading").hidden = $("live-stats").hidden = true;
  play(source);
  // The status line, with the time so far, every second and as windows are scored.
  const began = performance.now();
  let step = `Sending ${source.name}…`;
  let count = "";
  const show = () => {
    const elapsed = Math.round((performance.now() - began) / 1000);
    status(`${step} ${count}${elapsed} s`);
  };
  const progress = (m) => {
    step = `Finding where things happen in ${source.name}…`;
    if (m) count = m.total == null ? `${m.done} windows, ` : `${m.done} of ${m.total} windows, `;
    show();
  };
  show();
  const timer = setInterval(show, 1000);
  try {
    const tl = await timelineOf(source, run.signal, progress);
    const n = tl.windows.length;
    showBars(tl.predictions || [], `Whole video: mean of ${n} window${n === 1 ? "" : "s"} of ${seconds(tl.window)} s`, tl);
    showTimeline(tl, `Per window: a window of ${seconds(tl.window)} s every ${seconds(tl.stride)} s, runs of one label joined; press one to play from there and see why it has its label.`);
    shown = source;
    status(`Done: ${source.name}`);
  } catch (err) {
    if (run.signal.aborted) return; // replaced by a newer video, which has the page now
    clearPlayer();
    status(`Could not classify ${source.name}: ${err.message}`, true);
  } finally {
    clearInterval(timer);
    if (upload === run) upload = null;
  }
}

const fromFile = (file) => ({ file, name: file.name });

async function loadExamples() {
  let found;
  try {
    found = await getJson("/v1/media/examples?limit=8");
  } catch {
    return; // no examples: the page works without them
  }
  const list = $("examples");
  list.replaceChildren();
  for (const e of found) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = baseName(e.video);
    button.title = e.video;
    button.setAttribute("aria-label", `Try ${e.video}`);
    button.addEventListener("click", () => classify({ path: e.video, name: baseName(e.video) }));
    item.append(button);
    list.append(item);
  }
  $("examples-box").hidden = found.length === 0;
}

// -- the camera ---------------------------------------------------------------------------
// MediaRecorder's chunks of one WebM recording go to WebSocket /v1/live as binary
// messages; the server answers each labelled window, each finished segment and, after
// "stop", a summary (see src/vidclass/serve/live.py).
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
  showView("try");
  opening += 1; // a video of the gallery still being opened is not wanted now
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
  $("stage-empty").hidden = true;
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
  if (!live.colours.has(s.label)) live.colours.set(s.label, s.label === "unknown" ? UNKNOWN_COLOUR : COLOURS[live.colours.size % COLOURS.length]);
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

$("file").addEventListener("change", (e) => { if (e.target.files[0]) classify(fromFile(e.target.files[0])); });
const drop = $("drop");
drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("file").click(); } });
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  if (e.dataTransfer.files[0]) classify(fromFile(e.dataTransfer.files[0]));
});

// -- the gallery ----------------------------------------------------------------------------
const gallery = { about: null, tags: [], allTags: false, tag: null, offset: 0, asking: null };

// One request for the results at a time: a newer one replaces the older, and the
// caption says what is being done, with the time so far.
async function results(what, url, render) {
  if (gallery.asking) gallery.asking.abort();
  const run = new AbortController();
  gallery.asking = run;
  const caption = $("results-caption");
  caption.classList.remove("error");
  const stop = ticking(caption, `${what}…`);
  try {
    const data = await getJson(url, run.signal);
    stop();
    render(data);
  } catch (err) {
    stop();
    if (run.signal.aborted) return;
    caption.textContent = `${what} failed: ${err.message}`;
    caption.classList.add("error");
  } finally {
    if (gallery.asking === run) gallery.asking = null;
  }
}

function browse(tag = gallery.tag, offset = 0) {
  gallery.tag = tag;
  gallery.offset = offset;
  showTags();
  const params = new URLSearchParams({ offset: String(offset), limit: String(PAGE_SIZE) });
  if (tag) params.set("tag", tag);
  const what = tag ? `Finding the videos tagged ${tag}` : "Loading the gallery";
  results(what, `/v1/gallery/videos?${params}`, (page) => {
    const first = page.total ? page.offset + 1 : 0;
    const last = page.offset + page.videos.length;
    $("results-caption").textContent = tag
      ? `Videos tagged ${tag}, best score first: ${first}–${last} of ${page.total}`
      : `All videos, by name: ${first}–${last} of ${page.total}`;
    showCards(page.videos.map((v) => card(v, { score: v.tag_score })));
    $("pager").hidden = page.total <= page.limit;
    $("page-line").textContent = `Page ${Math.floor(page.offset / page.limit) + 1} of ${Math.max(1, Math.ceil(page.total / page.limit))}`;
    $("page-prev").disabled = page.offset === 0;
    $("page-next").disabled = last >= page.total;
  });
}
$("page-prev").addEventListener("click", () => browse(gallery.tag, Math.max(0, gallery.offset - PAGE_SIZE)));
$("page-next").addEventListener("click", () => browse(gallery.tag, gallery.offset + PAGE_SIZE));
$("show-all").addEventListener("click", () => browse(null, 0));

function showCards(cards) {
  $("results").replaceChildren(...cards);
}

// A video of the gallery as a card: its picture, name, length, best tags; a press
// opens it in the player; search hits add the moments that matched, each its picture.
function card(v, { score = null, scoreName = "score", moments = [] } = {}) {
  const item = document.createElement("li");
  item.className = "card";
  item.dataset.video = v.video;
  const open = document.createElement("button");
  open.type = "button";
  open.className = "open";
  open.title = v.video;
  const length = v.duration ? clock(v.duration) : "";
  open.addEventListener("click", () => openIndexed(v.video));
  open.append(thumbnail(v.video, v.thumbnail === false ? null : undefined));
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = baseName(v.video);
  const meta = document.createElement("span");
  meta.className = "meta";
  meta.textContent = [length, typeof score === "number" ? `${scoreName} ${score.toFixed(2)}` : ""].filter(Boolean).join(" · ");
  open.append(name, meta);
  item.append(open);
  if (v.unknown) {
    const mark = document.createElement("span");
    mark.className = "unknown-mark";
    mark.textContent = "unknown: outside what the model knows";
    item.append(mark);
  }
  if (v.tags && v.tags.length) {
    const tags = document.createElement("span");
    tags.className = "tags";
    tags.textContent = v.tags.map((t) => `${t.label} ${t.score.toFixed(2)}`).join(", ");
    item.append(tags);
    if (v.tags_from) {
      const made = document.createElement("span");
      made.className = "made";
      made.textContent = `tags: ${v.tags_from}`;
      item.append(made);
    }
  }
  if (v.error) {
    const error = document.createElement("span");
    error.className = "error";
    error.textContent = v.error;
    item.append(error);
  }
  if (moments.length) {
    const list = document.createElement("ul");
    list.className = "moments";
    list.setAttribute("aria-label", `Moments of ${baseName(v.video)} that matched`);
    for (const m of moments) {
      const row = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "moment";
      const source = m.source ? ` (${m.source})` : "";
      const text = document.createElement("span");
      text.textContent = `${m.start.toFixed(1)}–${m.end.toFixed(1)} s: ${m.label} ${m.score.toFixed(2)}${source}`;
      button.title = `Play ${baseName(v.video)} from ${m.start.toFixed(1)} s`;
      button.append(thumbnail(v.video, Math.min(m.start + 1, (m.start + m.end) / 2)), text);
      button.addEventListener("click", () => openIndexed(v.video, m.start));
      row.append(button);
      list.append(row);
    }
    item.append(list);
  }
  const similar = document.createElement("button");
  similar.type = "button";
  similar.className = "similar";
  similar.textContent = "Similar";
  similar.setAttribute("aria-label", `Videos similar to ${baseName(v.video)}`);
  similar.addEventListener("click", () => findSimilar(v.video));
  item.append(similar);
  return item;
}

// `t`: a moment's picture, decoded by the server; undefined: the video's own; null: none.
function thumbnail(path, t) {
  if (t === null) {
    const none = document.createElement("div");
    none.className = "thumb";
    return none;
  }
  const image = document.createElement("img");
  image.className = "thumb";
  image.alt = "";
  image.loading = "lazy";
  image.src = pictureUrl(path, t);
  return image;
}

let opening = 0; // the latest video asked to open: an older answer arriving late is dropped

async function openIndexed(path, at = null) {
  const mine = ++opening;
  let v;
  try {
    v = await getJson(`/v1/gallery/video?video=${encodeURIComponent(path)}`);
  } catch (err) {
    if (mine !== opening) return;
    if (gallery.asking) gallery.asking.abort();
    $("results-caption").textContent = `Could not open ${baseName(path)}: ${err.message}`;
    $("results-caption").classList.add("error");
    return;
  }
  if (mine !== opening) return;
  if (upload) upload.abort();
  stopCamera(true);
  clearResults();
  for (const c of document.querySelectorAll(".card")) c.classList.toggle("playing", c.dataset.video === path);
  const name = baseName(path);
  if (v.media) {
    play({ path: v.media, name }, at ?? 0);
    shown = { path: v.media, name, indexed: true };
  } else {
    clearPlayer();
    $("stage-empty").hidden = true;
    $("player-note").textContent = `${name} is not under the server's --media folder, so it cannot be played here.`;
    $("player-note").hidden = false;
  }
  const tags = v.tags.map((t) => `${t.label} ${t.score.toFixed(2)}`).join(", ");
  const answer = v.unknown ? "unknown (outside what the model knows); best guesses: " : "";
  $("now-playing").textContent = `${name}${v.duration ? ` · ${clock(v.duration)}` : ""}${tags ? ` · ${answer}${tags}` : ""}`;
  $("now-playing").hidden = false;
  if (v.segments.length) {
    showTimeline(
      { duration: v.duration, segments: v.segments },
      `Stored when the gallery was indexed: ${v.segments.length} segment${v.segments.length === 1 ? "" : "s"}; press one to play from there${v.media ? " and see why it has its label" : ""}.`,
      Boolean(v.media),
    );
  } else {
    hideTimeline();
    $("timeline-caption").textContent = "No timeline is stored for this video (vidclass index --timeline keeps one).";
    $("timeline-caption").hidden = false;
  }
}

function findSimilar(path) {
  gallery.tag = null;
  showTags();
  const params = new URLSearchParams({ video: path, limit: String(PAGE_SIZE) });
  results(`Finding videos like ${baseName(path)}`, `/v1/similar?${params}`, (found) => {
    $("results-caption").textContent = `Videos like ${baseName(path)}, most similar first: ${found.length}`;
    $("pager").hidden = true;
    showCards(found.map((f) => card(f, { score: f.similarity, scoreName: "similarity" })));
  });
}

$("search-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const q = $("query").value.trim();
  if (!q) return;
  const by = $("search-by").value;
  const params = new URLSearchParams({ q, by, limit: String(PAGE_SIZE) });
  gallery.tag = null;
  showTags();
  results(`Searching for "${q}"`, `/v1/search?${params}`, (hits) => {
    $("pager").hidden = true;
    const how = by === "text" ? "moments nearest to the words" : "tags matching the words";
    $("results-caption").textContent = hits.length
      ? `${hits.length} video${hits.length === 1 ? "" : "s"} for "${q}" (${how}), best first`
      : `No videos found for "${q}" (${how}).`;
    showCards(hits.map((h) => card(h, { score: h.score, moments: h.moments })));
  });
});

function showTags() {
  const box = $("tag-filter");
  box.replaceChildren();
  const shownTags = gallery.allTags ? gallery.tags.slice(0, 200) : gallery.tags.slice(0, TAGS_SHOWN);
  for (const t of shownTags) {
    const button = document.createElement("button");
    button.type = "button";
    button.setAttribute("aria-pressed", String(gallery.tag === t.label));
    button.append(t.label);
    const count = document.createElement("span");
    count.className = "count";
    count.textContent = t.videos;
    button.append(count);
    button.setAttribute("aria-label", `${t.label}: ${t.videos} video${t.videos === 1 ? "" : "s"}`);
    button.addEventListener("click", () => browse(gallery.tag === t.label ? null : t.label, 0));
    box.append(button);
  }
  if (gallery.tags.length > TAGS_SHOWN) {
    const more = document.createElement("button");
    more.type = "button";
    more.textContent = gallery.allTags ? "Fewer tags" : `More tags (${gallery.tags.length})`;
    more.addEventListener("click", () => { gallery.allTags = !gallery.allTags; showTags(); });
    box.append(more);
  }
}

// The search box and its modes say what this gallery can do.
function describeGallery(about) {
  const select = $("search-by");
  select.replaceChildren();
  const modes = {
    text: `words: moments that look like them (${modelName(about.text_model)})`,
    tags: "tags: labels whose words match",
  };
  for (const by of about.searches) select.append(new Option(modes[by], by));
  select.hidden = $("search-by-label").hidden = about.searches.length < 2; // one way: no choice
  const query = $("query");
  query.placeholder = about.searches[0] === "text" ? "a person lifting weights" : "a tag's words, e.g. squat";
  query.disabled = about.searches.length === 0;
  const parts = [`${about.videos} video${about.videos === 1 ? "" : "s"}`];
  if (about.model) parts.push(`tagged by ${about.model}`);
  if (about.text_model) parts.push(`moments of ${seconds(about.moment_seconds)} s by ${modelName(about.text_model)}`);
  $("gallery-line").textContent = parts.join(" · ");
  $("search-help").textContent = about.text_model
    ? "Search by words finds the moments that look most like them; by tags, the videos whose labels match the words (prefixes, stems, a few synonyms)."
    : about.model
      ? "Search finds the videos whose tags match the words (prefixes, stems, a few synonyms); this gallery has no moments for free-text search (index it with a vision-language model for that)."
      : "This gallery has nothing indexed yet: vidclass index FOLDER --db GALLERY.";
}

async function startGallery() {
  try {
    gallery.about = await getJson("/v1/gallery");
    describeGallery(gallery.about);
    gallery.tags = await getJson("/v1/gallery/tags");
  } catch (err) {
    $("gallery-line").textContent = `The gallery cannot be read: ${err.message}`;
    return;
  }
  browse(null, 0);
}

fetch("/healthz").then((r) => r.json()).then(async (h) => {
  $("model-line").textContent = `Model: ${h.model}`;
  $("views").hidden = !h.gallery;
  await pictureCookie();
  if (h.gallery) {
    showView("gallery");
    startGallery();
  }
  loadExamples();
});

$("key-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  sessionStorage.setItem("vidclass-key", $("key").value);
  $("key-form").hidden = true;
  status("API key set for this tab; try again.");
  await pictureCookie();
  if (gallery.about === null && !$("views").hidden) startGallery();
  loadExamples();
});
