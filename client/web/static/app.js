// The page of `python -m client web`: images, numbers, the stack, this session's jobs.
// Everything it shows comes from the JSON API under /api/. Text from users or workers is
// only ever set with textContent, never parsed as HTML.
import { deadLetterPanel } from "./dlq.js";
import { drawHistogram } from "./histogram.js";
import { cancelAll, cancelJob, isFinished, showLifecycle, stateText } from "./lifecycle.js";

const POLL_BUSY_MS = 1000;
const POLL_IDLE_MS = 5000;
const STATUS_MS = 3000;

const state = {
  kinds: new Map(),      // name -> description from /api/kinds
  cards: new Map(),      // job id -> card element
  uploads: 0,            // uploads in progress
  statsShown: new Set(), // stats job ids with a finished entry
  pollTimer: null,
  deadLetters: null,     // the dead-letter panel, when /api/info says it is available
};

const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

// A table body's rows, or, when there are none, one row saying so across its `columns`.
function rowsOrNote(rows, note, columns) {
  if (rows.length) return rows;
  const row = el("tr");
  const cell = el("td", "note", note);
  cell.colSpan = columns;
  row.append(cell);
  return [row];
}

async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  let body = null;
  try {
    body = await response.json();
  } catch (_error) {
    body = null;
  }
  if (!response.ok) {
    const message = body && body.error ? body.error.message : `HTTP ${response.status}`;
    if (response.status === 401) showConnection("this page's token is not valid any more: open the URL that 'python -m client web' printed");
    throw new Error(message);
  }
  showConnection("");
  return body;
}

function showConnection(message) {
  const node = $("connection");
  node.textContent = message;
  node.classList.toggle("bad", Boolean(message));
}

// ---- the operation list and its argument fields --------------------------------------

function imageKinds() {
  return [...state.kinds.values()].filter((k) => k.output === "image" && k.main_input);
}

function fillKinds(defaultKind) {
  const select = $("kind");
  select.replaceChildren();
  for (const kind of imageKinds()) {
    const option = el("option", null, kind.name);
    option.value = kind.name;
    select.append(option);
  }
  if (state.kinds.has(defaultKind)) select.value = defaultKind;
  select.addEventListener("change", showKindArgs);
  showKindArgs();
}

function showKindArgs() {
  const kind = state.kinds.get($("kind").value);
  const box = $("kind-args");
  box.replaceChildren();
  $("kind-summary").textContent = kind ? kind.summary : "";
  if (!kind) return;
  for (const arg of kind.args) {
    if (arg.name === kind.main_input) continue;
    const row = el("div", "arg");
    const id = `arg-${arg.name}`;
    const label = el("label", null, arg.name);
    label.htmlFor = id;
    const input = argInput(arg);
    input.id = id;
    input.dataset.arg = arg.name;
    const hint = el("span", "hint", `${arg.help} (${arg.allowed}${arg.required ? ", required" : ""})`);
    row.append(label, input);
    if (arg.type === "steps") row.append(stepPicker(input));
    row.append(hint);
    box.append(row);
  }
}

function argInput(arg) {
  let input;
  if (arg.choices) {
    input = el("select");
    for (const choice of arg.choices) {
      const option = el("option", null, choice);
      option.value = String(choice);
      input.append(option);
    }
    if (arg.default !== null) input.value = String(arg.default);
  } else if (arg.type === "bool") {
    input = el("input");
    input.type = "checkbox";
    input.checked = arg.default === true;
  } else if (arg.type === "file") {
    input = el("input");
    input.type = "file";
    input.accept = "image/*";
  } else {
    input = el("input");
    input.type = arg.type === "int" || arg.type === "float" ? "number" : "text";
    if (arg.type === "int") input.step = "1";
    if (arg.type === "float") input.step = "any";
    if (arg.minimum !== null && !arg.exclusive) input.min = String(arg.minimum);
    if (arg.maximum !== null && !arg.exclusive) input.max = String(arg.maximum);
    if (arg.default !== null) input.value = String(arg.default);
  }
  return input;
}

// A pipeline's steps from the operation list: each pick adds `kind` (and a required
// choice's first value) to the text field, where its arguments are typed as `:name=value`.
function stepPicker(input) {
  const select = el("select", "steps");
  select.append(el("option", null, "add a step…"));
  for (const kind of state.kinds.values()) if (kind.step) select.append(el("option", null, kind.name));
  select.addEventListener("change", () => {
    const kind = state.kinds.get(select.value);
    if (!kind) return;
    const required = kind.args.filter((a) => a.required && a.name !== kind.main_input && a.choices);
    const step = [kind.name, ...required.map((a) => `${a.name}=${a.choices[0]}`)].join(":");
    input.value = input.value.trim() ? `${input.value.trim()},${step}` : step;
    select.selectedIndex = 0;
  });
  return select;
}

function formFor(file) {
  const form = new FormData();
  form.append("kind", $("kind").value);
  for (const input of $("kind-args").querySelectorAll("[data-arg]")) {
    const name = input.dataset.arg;
    if (input.type === "checkbox") form.append(name, input.checked ? "true" : "false");
    else if (input.type === "file") {
      if (input.files.length) form.append(name, input.files[0]);
    } else form.append(name, input.value);
  }
  form.append("file", file, file.name);
  return form;
}

// ---- image cards ---------------------------------------------------------------------

function newCard(name, kind) {
  const card = $("card-template").content.firstElementChild.cloneNode(true);
  card.querySelector(".card-name").textContent = name;
  card.querySelector(".card-kind").textContent = kind;
  $("cards").append(card);
  $("no-images").hidden = true;
  return card;
}

function setState(card, stateName, text) {
  const badge = card.querySelector(".state");
  badge.title = "";
  badge.textContent = text || stateName;
  badge.dataset.state = stateName;
  card.dataset.state = stateName;
}

function uploadImage(file) {
  const card = newCard(file.name, $("kind").value);
  const preview = URL.createObjectURL(file);
  card.querySelector(".img-input").src = preview;
  setState(card, "uploading");
  state.uploads += 1;
  const request = new XMLHttpRequest();
  request.open("POST", "/api/images");
  request.responseType = "json";
  request.upload.addEventListener("progress", (event) => {
    if (event.lengthComputable) {
      setState(card, "uploading", `uploading ${Math.round((100 * event.loaded) / event.total)}%`);
    }
  });
  const finish = () => {
    state.uploads -= 1;
    schedulePoll(0);
  };
  request.addEventListener("load", () => {
    const body = request.response;
    if (request.status === 202 && body && body.job_id) {
      card.dataset.jobId = body.job_id;
      state.cards.set(body.job_id, card);
      setState(card, "queued");
    } else {
      const message = body && body.error ? body.error.message : `HTTP ${request.status}`;
      setState(card, "failed");
      card.querySelector(".card-error").textContent = message;
    }
    finish();
  });
  request.addEventListener("error", () => {
    setState(card, "failed");
    card.querySelector(".card-error").textContent = "the upload did not reach the server";
    finish();
  });
  request.send(formFor(file));
}

function updateCard(job) {
  let card = state.cards.get(job.job_id);
  if (!card) {
    card = newCard(job.name || job.job_id, job.kind);
    card.dataset.jobId = job.job_id;
    card.querySelector(".img-input").src = job.input_url;
    state.cards.set(job.job_id, card);
  }
  setState(card, job.state, stateText(job));
  showLifecycle(card, job, { api, onChange: () => schedulePoll(0) });
  if (job.error) card.querySelector(".card-error").textContent = `${job.error.code}: ${job.error.message}`;
  const output = card.querySelector(".img-output");
  if (job.output_url && !output.getAttribute("src")) {
    output.src = job.output_url;
    const link = card.querySelector(".download");
    link.href = `${job.output_url}?download=1`;
    link.download = job.download_name;
    link.textContent = `Download ${job.download_name}`;
    link.hidden = false;
  }
  if (job.timing) card.querySelector(".timing").textContent = timingText(job);
  if (job.histogram && !card.dataset.histogram) {
    drawHistogram(card.querySelector(".hist-input"), job.histogram.input);
    drawHistogram(card.querySelector(".hist-output"), job.histogram.output);
    card.dataset.histogram = job.histogram.source || "worker";
  }
}

function seconds(value) {
  return `${value < 10 ? value.toFixed(3) : value.toFixed(1)} s`;
}

function timingText(job) {
  const parts = [];
  if (job.timing.queued_s !== undefined) parts.push(`queued ${seconds(job.timing.queued_s)}`);
  if (job.timing.run_s !== undefined) parts.push(`run ${seconds(job.timing.run_s)}`);
  if (job.finished_at) parts.push(`total ${seconds(job.finished_at - job.submitted_at)}`);
  return parts.join(" · ");
}

// ---- numbers ---------------------------------------------------------------------------

async function submitStats(event) {
  event.preventDefault();
  $("stats-error").textContent = "";
  const picked = $("numbers-file").files;
  let text = $("numbers-text").value;
  if (picked.length) text = await picked[0].text();
  try {
    const body = await api("/api/stats", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ text }),
    });
    statsEntry({ job_id: body.job_id, state: "queued" });
    $("numbers-file").value = "";
    schedulePoll(0);
  } catch (error) {
    $("stats-error").textContent = error.message;
  }
}

function statsEntry(job) {
  let entry = document.querySelector(`[data-stats-job="${CSS.escape(job.job_id)}"]`);
  if (!entry) {
    entry = el("div", "stats-entry");
    entry.dataset.statsJob = job.job_id;
    entry.append(el("div", "stats-head"), el("pre", "stats-text"));
    $("stats-results").prepend(entry);
  }
  if (state.statsShown.has(job.job_id)) return;
  entry.querySelector(".stats-head").textContent = `job ${job.job_id.slice(0, 8)} · ${stateText(job)}`;
  entry.dataset.state = job.state;
  if (job.state === "done") entry.querySelector(".stats-text").textContent = job.text;
  if (job.error) entry.querySelector(".stats-text").textContent = `${job.error.code}: ${job.error.message}`;
  if (job.running !== undefined) showLifecycle(entry, job, { api, onChange: () => schedulePoll(0) });
  if (isFinished(job)) state.statsShown.add(job.job_id);
}

// ---- this session's jobs, polled ---------------------------------------------------

function schedulePoll(delay) {
  clearTimeout(state.pollTimer);
  state.pollTimer = setTimeout(pollJobs, delay);
}

async function pollJobs() {
  let busy = state.uploads > 0;
  try {
    const { jobs } = await api("/api/jobs");
    const rows = [];
    let unfinished = 0;
    for (const job of jobs) {
      if (job.input_url) updateCard(job);
      else if (job.kind === "stats") statsEntry(job);
      const pending = !isFinished(job);
      if (pending) unfinished += 1;
      if (pending || (job.state === "done" && job.output_url && !job.histogram)) busy = true;
      rows.push(jobRow(job));
    }
    $("jobs").replaceChildren(...rows.reverse());
    $("cancel-all").hidden = unfinished === 0;
  } catch (error) {
    showConnection(`cannot read the jobs: ${error.message}`);
  }
  schedulePoll(busy ? POLL_BUSY_MS : POLL_IDLE_MS);
}

function jobRow(job) {
  const row = el("tr");
  const id = el("td", "mono", job.job_id.slice(0, 8));
  id.title = job.job_id;
  const stateCell = el("td");
  const badge = el("span", "state", stateText(job));
  badge.dataset.state = job.state;
  stateCell.append(badge);
  row.append(id, el("td", null, job.kind), el("td", "name", job.name || "numbers"), stateCell);
  return row;
}

// ---- the stack -------------------------------------------------------------------------

async function pollStatus() {
  try {
    const status = await api("/api/status");
    $("waiting").textContent = status.waiting;
    $("in-flight").textContent = status.in_flight;
    $("running").textContent = status.running ?? "–";
    $("dead-letters").textContent = status.dead_letters;
    if (state.deadLetters) state.deadLetters.onStatus(status.dead_letters);
    const rows = status.workers.map((w) => {
      const row = el("tr");
      row.append(el("td", "mono", w.id), el("td", null, w.state), el("td", null, w.health));
      return row;
    });
    $("workers").replaceChildren(...rowsOrNote(rows, "no worker group in this stack's outputs", 3));
    $("status-note").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    $("status-note").textContent = `status unavailable: ${error.message}`;
  }
  setTimeout(pollStatus, STATUS_MS);
}

// ---- start -------------------------------------------------------------------------------

function bindDropZone() {
  const zone = $("drop-zone");
  const input = $("files");
  input.addEventListener("change", () => {
    for (const file of input.files) uploadImage(file);
    input.value = "";
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    for (const file of event.dataTransfer.files) uploadImage(file);
  });
}

async function start() {
  bindDropZone();
  $("stats-form").addEventListener("submit", submitStats);
  $("cancel-all").addEventListener("click", () => cancelAll(api).finally(() => schedulePoll(0)));
  try {
    const [info, catalogue] = await Promise.all([api("/api/info"), api("/api/kinds")]);
    $("stack-name").textContent = info.stack;
    $("upload-limit").textContent = `up to ${Math.round(info.max_upload_bytes / 1048576)} MiB per image`;
    state.deadLetters = deadLetterPanel({ $, api, el, rowsOrNote });
    for (const kind of catalogue.kinds) state.kinds.set(kind.name, kind);
    fillKinds(info.default_kind);
  } catch (error) {
    showConnection(`cannot start: ${error.message}`);
  }
  pollJobs();
  pollStatus();
}

document.addEventListener("DOMContentLoaded", start);
