// deepclust's web page: plain JS against the REST API, charts drawn on <canvas>.
"use strict";

const $ = (selector) => document.querySelector(selector);
const KEY_STORE = "deepclust-key";
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
  "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#ad494a", "#8ca252", "#bd9e39", "#6b6ecf",
  "#d6616b", "#637939", "#e7ba52", "#843c39", "#7b4173"];
const colour = (k) => PALETTE[((k % PALETTE.length) + PALETTE.length) % PALETTE.length];
const state = { auth: "none", datasets: [], methods: [], job: null, stream: null, hoverIndex: -1 };

// ---- the API ----------------------------------------------------------------------------------
function authHeaders() {
  const key = sessionStorage.getItem(KEY_STORE);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
    this.detail = detail;
  }
}

async function api(path, options = {}) {
  const headers = { ...authHeaders(), ...(options.headers || {}) };
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    options = { ...options, body: JSON.stringify(options.json) };
  }
  const response = await fetch(path, { ...options, headers });
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail; } catch (_) { /* not JSON */ }
    throw new ApiError(response.status, detail);
  }
  if (response.status === 204) return null;
  return response.headers.get("content-type")?.includes("json") ? response.json() : response;
}

function say(text, isError = false) {
  const el = $("#message");
  el.textContent = text;
  el.className = isError ? "error" : "";
}

function failed(err) {
  if (err instanceof ApiError && err.status === 401) {
    say("This server needs an API key: enter it at the top.", true);
    $("#api-key").focus();
  } else {
    say(err.message || String(err), true);
  }
}

const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "onclick") node.addEventListener("click", value);
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
};
const bytes = (n) => (n > 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB`
  : `${(n / 1024).toFixed(1)} KiB`);
const when = (iso) => iso ? new Date(iso).toLocaleString() : "";
const fmt = (v) => (typeof v === "number" && !Number.isInteger(v) ? v.toFixed(4) : String(v));

// ---- keys ---------------------------------------------------------------------------------------
async function setupKeys() {
  const health = await api("/health");
  state.auth = health.auth;
  const form = $("#key-form");
  form.hidden = state.auth !== "keys";
  $("#api-key").value = sessionStorage.getItem(KEY_STORE) || "";
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_STORE, $("#api-key").value.trim());
    say("Key saved for this browser tab.");
    refreshAll();
  });
  $("#forget-key").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORE);
    $("#api-key").value = "";
    say("Key forgotten.");
  });
}

// ---- datasets -----------------------------------------------------------------------------------
function upload(file) {
  const bar = $("#upload-progress");
  const status = $("#upload-status");
  bar.hidden = false;
  bar.value = 0;
  const body = new FormData();
  body.append("file", file);
  const request = new XMLHttpRequest();
  request.open("POST", "/datasets");
  for (const [name, value] of Object.entries(authHeaders())) request.setRequestHeader(name, value);
  request.upload.addEventListener("progress", (event) => {
    if (event.lengthComputable) bar.value = event.loaded / event.total;
    status.textContent = `sending ${bytes(event.loaded)}`;
  });
  request.upload.addEventListener("load", () => { status.textContent = "checking the data..."; });
  request.addEventListener("load", () => {
    bar.hidden = true;
    let reply = {};
    try { reply = JSON.parse(request.responseText); } catch (_) { /* not JSON */ }
    if (request.status === 201) {
      const shape = reply.shape.join("x");
      status.textContent = `stored ${reply.name}: ${reply.n} samples, shape ${shape}`;
      loadDatasets().then(() => {
        $("#job-dataset").value = reply.id;
        $("#compare-dataset").value = reply.id;
        return loadCompare();
      }).catch(failed);
    } else {
      const detail = Array.isArray(reply.detail) ? reply.detail.map((d) => d.msg).join("; ")
        : reply.detail || request.statusText;
      status.textContent = `upload refused (${request.status}): ${detail}`;
      status.className = "error";
    }
  });
  request.addEventListener("error", () => { status.textContent = "the upload failed"; });
  status.className = "";
  request.send(body);
}

function setupUpload() {
  $("#upload-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const file = $("#upload-file").files[0];
    if (file) upload(file); else $("#upload-status").textContent = "choose a file first";
  });
  const zone = $("#drop-zone");
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    if (event.dataTransfer.files.length) upload(event.dataTransfer.files[0]);
  });
}

async function loadDatasets() {
  const page = await api("/datasets?limit=500");
  state.datasets = page.items;
  const body = $("#dataset-table tbody");
  body.replaceChildren(...page.items.map((d) => el("tr", {},
    el("td", { text: d.name }), el("td", { text: `${d.shape.join(" x ")} (${d.kind})` }),
    el("td", { text: bytes(d.size_bytes) }),
    el("td", { text: d.has_labels ? `yes, ${d.n_classes} classes` : "no" }),
    el("td", { text: when(d.created_at) }),
    el("td", {},
      el("button", { type: "button", onclick: () => preview(d), "aria-label": `Preview ${d.name}` },
        "Preview"), " ",
      el("button", { type: "button", "aria-label": `New job on ${d.name}`, onclick: () => {
        $("#job-dataset").value = d.id; location.hash = "#new-job"; $("#job-method").focus();
      } }, "New job"), " ",
      el("button", { type: "button", "aria-label": `Compare jobs on ${d.name}`, onclick: () => {
        $("#compare-dataset").value = d.id; loadCompare(); location.hash = "#compare";
      } }, "Compare")))));
  for (const select of [$("#job-dataset"), $("#compare-dataset")]) {
    const chosen = select.value;
    select.replaceChildren(...page.items.map((d) => el("option", { value: d.id },
      `${d.name} (${d.shape.join("x")})`)));
    if (chosen) select.value = chosen;
  }
}

async function samples(datasetId, indices) {
  const query = indices.map((i) => `index=${i}`).join("&");
  return api(`/datasets/${datasetId}/samples?${query}`);
}

// One image (H, W[, C]) as a small canvas, grey levels scaled to its own range.
function imageCanvas(pixels, shape, scale = 3) {
  const [h, w] = shape;
  const c = shape.length > 2 ? shape[2] : 1;
  const flat = pixels.flat(2);
  let lo = Infinity, hi = -Infinity;
  for (const v of flat) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  const span = hi > lo ? hi - lo : 1;
  const canvas = el("canvas", { width: w, height: h, class: "thumb" });
  canvas.style.width = `${w * scale}px`;
  canvas.style.height = `${h * scale}px`;
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(w, h);
  for (let p = 0; p < h * w; p++) {
    for (let k = 0; k < 3; k++) {
      image.data[4 * p + k] = 255 * (flat[p * c + (c >= 3 ? k : 0)] - lo) / span;
    }
    image.data[4 * p + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
  return canvas;
}

const isImage = (shape) => shape.length >= 2;

function swatch(kind, background, width) {
  const node = el("span", { class: kind });
  node.style.background = background;
  if (width) node.style.width = width;
  return node;
}

async function preview(dataset) {
  try {
    const count = Math.min(dataset.n, 40);
    const data = await api(`/datasets/${dataset.id}/samples?start=0&count=${count}`);
    $("#preview").hidden = false;
    $("#preview-title").textContent = `Preview of ${dataset.name}: the first ${count} samples`;
    const body = $("#preview-body");
    if (isImage(data.shape)) {
      const scale = Math.max(1, Math.round(48 / data.shape[0]));
      body.replaceChildren(el("div", { class: "grid" }, ...data.rows.map((row, i) =>
        el("figure", {}, imageCanvas(row, data.shape, scale),
          el("figcaption", { text: `#${data.index[i]}`
            + (data.labels ? ` y=${data.labels[i]}` : "") })))));
    } else {
      const columns = Math.min(data.shape[0], 12);
      const head = el("tr", {}, el("th", { text: "#" }),
        ...Array.from({ length: columns }, (_, j) => el("th", { text: `x${j}` })),
        ...(data.labels ? [el("th", { text: "y" })] : []));
      const rows = data.rows.slice(0, 15).map((row, i) => el("tr", {},
        el("td", { text: data.index[i] }),
        ...row.slice(0, columns).map((v) => el("td", { text: v.toFixed(3) })),
        ...(data.labels ? [el("td", { text: data.labels[i] })] : [])));
      body.replaceChildren(el("table", { class: "numbers" }, el("thead", {}, head),
        el("tbody", {}, ...rows)));
    }
    $("#preview").scrollIntoView();
  } catch (err) { failed(err); }
}

// ---- new job: a form from the method's JSON schema ---------------------------------------------
async function loadMethods() {
  state.methods = await api("/methods");
  $("#job-method").replaceChildren(...state.methods.map((m) =>
    el("option", { value: m.name }, m.name)));
  $("#job-method").value = "kmeans";
  showMethod();
}

function fieldKind(spec) {
  const options = spec.anyOf ? spec.anyOf.filter((s) => s.type !== "null") : [spec];
  return { ...options[0], nullable: Boolean(spec.anyOf), description: spec.description,
    default: spec.default, title: spec.title };
}

function showMethod() {
  const method = state.methods.find((m) => m.name === $("#job-method").value);
  if (!method) return;
  $("#method-info").textContent = `${method.summary} Reference: ${method.reference}.`;
  const nClusters = $("#job-n-clusters");
  nClusters.placeholder = method.accepts.finds_n_clusters ? "found by the method" : "";
  const fields = Object.entries(method.params_schema.properties).map(([name, raw]) => {
    const spec = fieldKind(raw);
    const id = `param-${name}`;
    let input;
    if (spec.enum) {
      input = el("select", { id, name });
      if (spec.nullable) input.append(el("option", { value: "" }, "(default)"));
      for (const value of spec.enum) input.append(el("option", { value }, value));
      input.value = spec.default ?? "";
    } else if (spec.type === "boolean") {
      if (spec.nullable) {
        input = el("select", { id, name },
          el("option", { value: "" }, "(default)"), el("option", { value: "true" }, "true"),
          el("option", { value: "false" }, "false"));
        input.value = spec.default === null || spec.default === undefined ? ""
          : String(spec.default);
      } else {
        input = el("input", { id, name, type: "checkbox" });
        input.checked = Boolean(spec.default);
      }
    } else if (spec.type === "integer" || spec.type === "number") {
      const step = spec.type === "integer" ? "1" : "any";
      input = el("input", { id, name, type: "number", step });
      if (spec.minimum !== undefined) input.min = spec.minimum;
      if (spec.maximum !== undefined) input.max = spec.maximum;
      input.value = spec.default ?? "";
    } else {  // arrays of numbers and strings: comma-separated / free text
      input = el("input", { id, name, type: "text" });
      input.value = Array.isArray(spec.default) ? spec.default.join(", ") : (spec.default ?? "");
      if (spec.type === "array") input.placeholder = "comma-separated numbers";
    }
    input.dataset.kind = spec.type || "string";
    input.dataset.nullable = spec.nullable;
    input.dataset.default = JSON.stringify(spec.default ?? null);
    return el("div", { class: "row" }, el("label", { for: id, title: spec.description || "" },
      name), input, el("small", { text: spec.description || "" }),
    el("span", { class: "field-error", "data-for": `params.${name}` }));
  });
  $("#params-fields").replaceChildren(...fields);
}

function readParams() {
  const params = {};
  for (const input of $("#params-fields").querySelectorAll("input, select")) {
    const { kind } = input.dataset;
    const fallback = JSON.parse(input.dataset.default);
    let value;
    if (input.type === "checkbox") value = input.checked;
    else if (input.value.trim() === "") {
      value = input.dataset.nullable === "true" ? null : undefined;
    }
    else if (kind === "integer" || kind === "number") value = Number(input.value);
    else if (kind === "boolean") value = input.value === "true";
    else if (kind === "array") value = input.value.split(",").map((s) => Number(s.trim()));
    else value = input.value;
    // only what differs from the default: the job's params then show what was chosen
    if (value !== undefined && JSON.stringify(value) !== JSON.stringify(fallback)) {
      params[input.name] = value;
    }
  }
  return params;
}

function showFieldErrors(detail) {
  for (const span of document.querySelectorAll(".field-error")) span.textContent = "";
  if (!Array.isArray(detail)) {
    document.querySelector('.field-error[data-for="body"]').textContent = String(detail);
    return;
  }
  for (const problem of detail) {
    const loc = problem.loc.filter((part) => part !== "body");
    const key = loc[0] === "params" ? `params.${loc[1]}` : String(loc[0] ?? "body");
    const span = document.querySelector(`.field-error[data-for="${key}"]`)
      || document.querySelector('.field-error[data-for="body"]');
    span.textContent = `${span.textContent} ${problem.msg}`.trim();
  }
}

function setupJobForm() {
  $("#job-method").addEventListener("change", showMethod);
  $("#job-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    showFieldErrors([]);
    const n = $("#job-n-clusters").value;
    const body = { dataset_id: $("#job-dataset").value, method: $("#job-method").value,
      n_clusters: n === "" ? null : Number(n), seed: Number($("#job-seed").value || 0) };
    try {
      body.params = readParams();
      const job = await api("/jobs", { method: "POST", json: body });
      say(`Job ${job.id} queued.`);
      location.hash = `#job/${job.id}`;
      loadJobs().catch(failed);
    } catch (err) {
      if (err instanceof ApiError && err.status === 422) showFieldErrors(err.detail);
      else failed(err);
    }
  });
}

// ---- job list and job page ----------------------------------------------------------------------
async function loadJobs() {
  const page = await api("/jobs?limit=50");
  const names = Object.fromEntries(state.datasets.map((d) => [d.id, d.name]));
  $("#job-table tbody").replaceChildren(...page.items.map((job) => el("tr", {},
    el("td", {}, el("a", { href: `#job/${job.id}` }, job.id.slice(0, 8))),
    el("td", { text: job.method }),
    el("td", { text: names[job.dataset_id] || job.dataset_id.slice(0, 8) }),
    el("td", { text: job.status, class: `status-${job.status}` }),
    el("td", { text: job.metrics?.acc !== undefined ? fmt(job.metrics.acc) : "" }),
    el("td", { text: when(job.created_at) }))));
}

async function openJob(jobId) {
  if (state.stream) state.stream.abort();
  state.job = { id: jobId, history: [] };
  $("#job").hidden = false;
  $("#results").hidden = true;
  $("#job-h").textContent = `Job ${jobId}`;
  try {
    const job = await api(`/jobs/${jobId}`);
    showJob(job);
    $("#job").scrollIntoView();
    await followEvents(jobId);
  } catch (err) { failed(err); }
}

function showJob(job) {
  state.job.row = job;
  const dataset = state.datasets.find((d) => d.id === job.dataset_id);
  const items = [["status", job.status], ["method", job.method],
    ["dataset", dataset ? dataset.name : job.dataset_id], ["clusters", job.n_clusters ?? "found"],
    ["seed", job.seed], ["device", job.device ?? ""],
    ["wall time", job.wall_s ? `${job.wall_s} s` : ""]];
  if (job.error) items.push(["error", job.error]);
  $("#job-summary").replaceChildren(...items.flatMap(([k, v]) => [el("dt", { text: k }),
    el("dd", { text: String(v), id: `job-${k.replace(" ", "-")}` })]));
  $("#cancel-job").disabled = !["queued", "running"].includes(job.status);
  $("#job-live").hidden = !["queued", "running"].includes(job.status);
  showProgress(job.progress);
}

function showProgress(record) {
  if (!record) { $("#job-progress-text").textContent = "waiting for a worker"; return; }
  const done = record.total ? record.step / record.total : 0;
  $("#job-progress").value = done;
  let eta = record.eta_s;
  if (eta === undefined && record.total && record.step) {
    const first = state.job.history.find((r) => r.phase === record.phase) || record;
    const rate = (record.elapsed_s - first.elapsed_s) / Math.max(1, record.step - first.step);
    eta = rate * (record.total - record.step);
  }
  $("#job-progress-text").textContent = `${record.phase}: ${record.step}/${record.total}`
    + (eta > 0 ? `, about ${Math.round(eta)} s left in this phase` : "");
}

// The events stream through fetch (EventSource cannot send the key), polling if it breaks.
async function followEvents(jobId) {
  const controller = new AbortController();
  state.stream = controller;
  let lastSeq = 0;
  try {
    const response = await fetch(`/jobs/${jobId}/events`, { headers: authHeaders(),
      signal: controller.signal });
    if (!response.ok) throw new ApiError(response.status, response.statusText);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const message = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const fields = {};
        for (const line of message.split("\n")) {
          if (line.startsWith(":")) continue;
          const at = line.indexOf(":");
          fields[line.slice(0, at)] = line.slice(at + 1).trim();
        }
        if (fields.id) lastSeq = Number(fields.id);
        if (fields.event === "end") { controller.abort(); return finishJob(jobId); }
        if (fields.data && state.job?.id === jobId) onRecord(JSON.parse(fields.data));
      }
    }
  } catch (err) {
    if (controller.signal.aborted) return undefined;
    console.info(`events stream broke after ${lastSeq}, polling instead`, err);
  }
  return pollJob(jobId, controller);
}

async function pollJob(jobId, controller) {
  while (!controller.signal.aborted && state.job?.id === jobId) {
    const job = await api(`/jobs/${jobId}`);
    showJob(job);
    if (!["queued", "running"].includes(job.status)) return finishJob(jobId);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  return undefined;
}

let redrawPending = false;
function onRecord(record) {
  state.job.history.push(record);
  if (state.job.row && state.job.row.status === "queued") {
    state.job.row.status = "running";
    $("#job-status").textContent = "running";
  }
  showProgress(record);
  if (!redrawPending) {  // many records a second: draw at most once a frame
    redrawPending = true;
    requestAnimationFrame(() => { redrawPending = false; drawHistory(state.job.history); });
  }
}

async function finishJob(jobId) {
  if (state.job?.id !== jobId) return;
  const job = await api(`/jobs/${jobId}`);
  showJob(job);
  loadJobs().catch(failed);
  loadCompare();
  if (job.status !== "succeeded") return;
  state.job.history = await api(`/jobs/${jobId}/history`);
  drawHistory(state.job.history);
  await showResults(job);
}

// ---- line charts -------------------------------------------------------------------------------
function lineChart(canvas, series, { xLabel = "step", yRange } = {}) {
  const ctx = canvas.getContext("2d");
  const { width, height } = canvas;
  const pad = { left: 52, right: 10, top: 10, bottom: 34 };
  ctx.clearRect(0, 0, width, height);
  const points = series.flatMap((s) => s.points);
  if (!points.length) return;
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs);
  let [y0, y1] = yRange || [Math.min(...ys), Math.max(...ys)];
  if (y0 === y1) [y0, y1] = [y0 - (Math.abs(y0) * 0.05 || 1), y1 + (Math.abs(y1) * 0.05 || 1)];
  const sx = (x) => pad.left + (x - x0) / ((x1 - x0) || 1) * (width - pad.left - pad.right);
  const plotHeight = height - pad.top - pad.bottom;
  const sy = (y) => height - pad.bottom - (y - y0) / ((y1 - y0) || 1) * plotHeight;
  ctx.strokeStyle = "#999";
  ctx.strokeRect(pad.left, pad.top, width - pad.left - pad.right, height - pad.top - pad.bottom);
  ctx.fillStyle = "#333";
  ctx.font = "11px sans-serif";
  ctx.textAlign = "right";
  for (const y of [y0, (y0 + y1) / 2, y1]) {
    ctx.fillText(Number(y.toPrecision(3)), pad.left - 4, sy(y) + 4);
  }
  ctx.textAlign = "center";
  ctx.fillText(`${x0}`, pad.left, height - pad.bottom + 14);
  ctx.fillText(`${x1}`, width - pad.right - 8, height - pad.bottom + 14);
  ctx.fillText(xLabel, width / 2, height - 4);
  let legendX = pad.left + 6;
  series.forEach((s, k) => {
    ctx.strokeStyle = colour(k);
    ctx.beginPath();
    s.points.forEach(([x, y], i) => (i ? ctx.lineTo(sx(x), sy(y)) : ctx.moveTo(sx(x), sy(y))));
    ctx.stroke();
    ctx.fillStyle = colour(k);
    if (s.points.length < 30) {  // few points: mark each (a single one draws no line)
      for (const [x, y] of s.points) ctx.fillRect(sx(x) - 2, sy(y) - 2, 4, 4);
    }
    ctx.textAlign = "left";
    ctx.fillText(s.name, legendX, pad.top + 12);
    legendX += ctx.measureText(s.name).width + 12;
  });
}

function drawHistory(history) {
  const phases = [...new Set(history.filter((r) => r.losses).map((r) => r.phase))];
  const wrap = $("#loss-charts");
  for (const phase of phases) {
    const id = `loss-${phase.replace(/\W/g, "_")}`;
    let canvas = document.getElementById(id);
    if (!canvas) {
      canvas = el("canvas", { id, width: 420, height: 200, role: "img",
        "aria-label": `losses of ${phase}` });
      wrap.append(el("div", { class: "chart" },
        el("div", { class: "chart-title", text: phase }), canvas));
    }
    const records = history.filter((r) => r.phase === phase && r.losses);
    const names = [...new Set(records.flatMap((r) => Object.keys(r.losses)))];
    lineChart(canvas, names.map((name) => ({ name, points: records
      .filter((r) => typeof r.losses[name] === "number").map((r) => [r.step, r.losses[name]]) })));
  }
  if (!phases.length) wrap.replaceChildren(el("p", { text: "This method reports no losses." }));
  else wrap.querySelector("p")?.remove();
  const scored = history.filter((r) => r.metrics && typeof r.metrics.acc === "number");
  $("#live-metrics-figure").hidden = !scored.length;
  if (scored.length) {
    lineChart($("#live-metrics"), ["acc", "nmi"].map((name) => ({ name,
      points: scored.map((r, i) => [i, r.metrics[name]]) })), { xLabel: "report", yRange: [0, 1] });
  }
}

// ---- results ------------------------------------------------------------------------------------
async function showResults(job) {
  $("#results").hidden = false;
  const dataset = state.datasets.find((d) => d.id === job.dataset_id)
    || await api(`/datasets/${job.dataset_id}`);
  state.job.dataset = dataset;
  showMetrics(job);
  try {
    const map = await api(`/jobs/${job.id}/projection`);
    state.job.map = map;
    $("#map-caption").textContent = `2-D map (${map.method.toUpperCase()}) of ${map.index.length}`
      + ` of ${map.total} samples, coloured by cluster`;
    drawMap();
    await showTopSamples(job, map, dataset);
  } catch (err) {
    $("#map-caption").textContent = `no 2-D map: ${err.message}`;
  }
  $("#confusion-wrap").hidden = !dataset.has_labels;
  if (dataset.has_labels) showConfusion(await api(`/jobs/${job.id}/confusion`));
}

function showMetrics(job) {
  const m = job.metrics || {};
  const rows = ["acc", "nmi", "ari", "f1_macro", "f1_micro", "silhouette"].filter((k) => k in m)
    .map((k) => [k.toUpperCase(), fmt(m[k])]);
  rows.push(["wall time", `${job.wall_s} s`], ["peak memory", `${job.peak_mb} MB`]);
  if (m.timings?.projection_s !== undefined) rows.push(["2-D map", `${m.timings.projection_s} s`]);
  $("#metrics-table tbody").replaceChildren(...rows.map(([k, v]) =>
    el("tr", {}, el("th", { scope: "row", text: k }), el("td", { text: v }))));
  const sizes = m.cluster_sizes || [];
  const biggest = Math.max(1, ...sizes);
  $("#cluster-sizes").replaceChildren(...sizes.map((size, k) => el("div", { class: "bar-row" },
    el("span", { class: "bar-label", text: `cluster ${k}` }),
    swatch("bar", colour(k), `${180 * size / biggest}px`),
    el("span", { text: String(size) }))));
}

function mapScale() {
  const { map } = state.job;
  const canvas = $("#map");
  const pad = 12;
  const [x0, x1] = [Math.min(...map.x), Math.max(...map.x)];
  const [y0, y1] = [Math.min(...map.y), Math.max(...map.y)];
  return {
    x: (v) => pad + (v - x0) / ((x1 - x0) || 1) * (canvas.width - 2 * pad),
    y: (v) => canvas.height - pad - (v - y0) / ((y1 - y0) || 1) * (canvas.height - 2 * pad),
  };
}

function drawMap() {
  const { map } = state.job;
  const canvas = $("#map");
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const s = mapScale();
  const radius = map.index.length > 5000 ? 1.2 : 2.2;
  for (let i = 0; i < map.index.length; i++) {
    ctx.fillStyle = colour(map.cluster[i]);
    ctx.globalAlpha = 0.35 + 0.65 * map.confidence[i];
    ctx.beginPath();
    ctx.arc(s.x(map.x[i]), s.y(map.y[i]), radius, 0, 2 * Math.PI);
    ctx.fill();
  }
  ctx.globalAlpha = 1;
  if (state.hoverIndex >= 0) {
    ctx.strokeStyle = "#000";
    ctx.beginPath();
    ctx.arc(s.x(map.x[state.hoverIndex]), s.y(map.y[state.hoverIndex]), 5, 0, 2 * Math.PI);
    ctx.stroke();
  }
  const clusters = [...new Set(map.cluster)].sort((a, b) => a - b);
  $("#legend").replaceChildren(...clusters.map((k) => el("span", { class: "legend-item" },
    swatch("dot", colour(k)),
    `cluster ${k}`)));
}

let hoverTimer = null;
function setupMap() {
  const canvas = $("#map");
  canvas.addEventListener("mousemove", (event) => {
    const { map } = state.job || {};
    if (!map) return;
    const box = canvas.getBoundingClientRect();
    const px = (event.clientX - box.left) * canvas.width / box.width;
    const py = (event.clientY - box.top) * canvas.height / box.height;
    const s = mapScale();
    let best = -1, bestDistance = 64;  // within 8 px
    for (let i = 0; i < map.index.length; i++) {
      const d = (s.x(map.x[i]) - px) ** 2 + (s.y(map.y[i]) - py) ** 2;
      if (d < bestDistance) { best = i; bestDistance = d; }
    }
    if (best !== state.hoverIndex) {
      state.hoverIndex = best;
      drawMap();
      showTip(best, event, box);
    }
  });
  canvas.addEventListener("mouseleave", () => {
    state.hoverIndex = -1;
    $("#map-tip").hidden = true;
    drawMap();
  });
  canvas.addEventListener("keydown", (event) => {  // the arrow keys walk through the points
    const { map } = state.job || {};
    if (!map || !["ArrowRight", "ArrowLeft"].includes(event.key)) return;
    event.preventDefault();
    const step = event.key === "ArrowRight" ? 1 : -1;
    state.hoverIndex = (state.hoverIndex + step + map.index.length) % map.index.length;
    drawMap();
    const s = mapScale();
    const box = canvas.getBoundingClientRect();
    const i = state.hoverIndex;
    showTip(i, { clientX: box.left + s.x(map.x[i]) * box.width / canvas.width,
      clientY: box.top + s.y(map.y[i]) * box.height / canvas.height }, box);
  });
}

function showTip(i, event, box) {
  const tip = $("#map-tip");
  if (i < 0) { tip.hidden = true; return; }
  const { map, dataset, id } = state.job;
  tip.hidden = false;
  tip.style.left = `${event.clientX - box.left + 14}px`;
  tip.style.top = `${event.clientY - box.top + 14}px`;
  tip.replaceChildren(el("div", { text: `sample ${map.index[i]}, cluster ${map.cluster[i]}, `
    + `confidence ${map.confidence[i].toFixed(3)}` }));
  if (!isImage(dataset.shape.slice(1))) return;
  clearTimeout(hoverTimer);
  hoverTimer = setTimeout(async () => {
    try {
      const data = await samples(dataset.id, [map.index[i]]);
      if (state.hoverIndex === i && state.job.id === id) {
        const scale = Math.max(1, Math.round(48 / data.shape[0]));
        tip.append(imageCanvas(data.rows[0], data.shape, scale));
      }
    } catch (err) { failed(err); }
  }, 120);
}

async function showTopSamples(job, map, dataset) {
  const perCluster = 8;
  const byCluster = new Map();
  map.index.forEach((index, i) => {
    if (!byCluster.has(map.cluster[i])) byCluster.set(map.cluster[i], []);
    byCluster.get(map.cluster[i]).push([map.confidence[i], index]);
  });
  const clusters = [...byCluster.keys()].sort((a, b) => a - b).slice(0, 200 / perCluster);
  const top = clusters.map((k) =>
    byCluster.get(k).sort((a, b) => b[0] - a[0]).slice(0, perCluster));
  const wrap = $("#top-samples");
  if (!isImage(dataset.shape.slice(1))) {
    wrap.replaceChildren(el("p", { text: "Most confident sample indices: " + clusters.map((k, j) =>
      `cluster ${k}: ${top[j].map(([, index]) => index).join(", ")}`).join("; ") }));
    return;
  }
  const data = await samples(dataset.id, top.flat().map(([, index]) => index));
  const scale = Math.max(1, Math.round(32 / data.shape[0]));
  let at = 0;
  wrap.replaceChildren(...clusters.map((k, j) => el("div", { class: "top-row" },
    el("span", { class: "bar-label", text: `cluster ${k}` }),
    ...top[j].map(([confidence]) => {
      const canvas = imageCanvas(data.rows[at], data.shape, scale);
      canvas.title = `sample ${data.index[at]}, confidence ${confidence.toFixed(3)}`;
      at += 1;
      return canvas;
    }))));
}

function showConfusion(c) {
  const biggest = Math.max(1, ...c.matrix.flat());
  const head = el("tr", {}, el("th", { text: "cluster \\ label" }),
    ...c.classes.map((label) => el("th", { scope: "col", text: String(label) })));
  const rows = c.matrix.map((row, i) => el("tr", {},
    el("th", { scope: "row", text: `${c.clusters[i]} → ${c.mapping[c.clusters[i]] ?? "-"}` }),
    ...row.map((count) => {
      const cell = el("td", { text: String(count) });
      const shade = count / biggest;
      cell.style.background = `rgba(31, 119, 180, ${shade.toFixed(3)})`;
      cell.style.color = shade > 0.55 ? "#fff" : "#000";
      return cell;
    })));
  $("#confusion").replaceChildren(el("table", { class: "confusion" }, el("thead", {}, head),
    el("tbody", {}, ...rows)));
}

async function download(path, filename) {
  try {
    const response = await api(path);
    const blob = response instanceof Response ? await response.blob()
      : new Blob([JSON.stringify(response)], { type: "application/json" });
    const link = el("a", { href: URL.createObjectURL(blob), download: filename });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  } catch (err) { failed(err); }
}

function setupJobPage() {
  $("#cancel-job").addEventListener("click", async () => {
    try {
      await api(`/jobs/${state.job.id}/cancel`, { method: "POST" });
      say("Cancel requested.");
    } catch (err) { failed(err); }
  });
  $("#download-csv").addEventListener("click", () =>
    download(`/jobs/${state.job.id}/assignments.csv`, `${state.job.id}-assignments.csv`));
  $("#download-npy").addEventListener("click", () =>
    download(`/jobs/${state.job.id}/embedding.npy`, `${state.job.id}-embedding.npy`));
  $("#download-history").addEventListener("click", () =>
    download(`/jobs/${state.job.id}/history`, `${state.job.id}-history.json`));
}

// ---- compare ------------------------------------------------------------------------------------
async function loadCompare() {
  const datasetId = $("#compare-dataset").value;
  if (!datasetId) return;
  try {
    const page = await api(`/jobs?dataset_id=${datasetId}&limit=100`);
    const keys = ["acc", "nmi", "ari", "silhouette"];
    const head = el("tr", {}, ...["job", "method", "status", ...keys.map((k) => k.toUpperCase()),
      "wall s", "seed", "clusters", "params"].map((t) => el("th", { scope: "col", text: t })));
    const rows = page.items.map((job) => el("tr", {},
      el("td", {}, el("a", { href: `#job/${job.id}` }, job.id.slice(0, 8))),
      el("td", { text: job.method }), el("td", { text: job.status }),
      ...keys.map((k) => el("td", { text: k in (job.metrics || {}) ? fmt(job.metrics[k]) : "" })),
      el("td", { text: job.wall_s ?? "" }), el("td", { text: job.seed }),
      el("td", { text: job.n_clusters ?? "" }),
      el("td", { class: "params", text: Object.entries(job.params)
        .map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(", ") })));
    $("#compare-body").replaceChildren(page.items.length
      ? el("table", { class: "numbers" }, el("thead", {}, head), el("tbody", {}, ...rows))
      : el("p", { text: "No jobs on this dataset yet." }));
  } catch (err) { failed(err); }
}

// ---- start --------------------------------------------------------------------------------------
function route() {
  const match = location.hash.match(/^#job\/([0-9a-f]{32})$/);
  if (match && state.job?.id !== match[1]) openJob(match[1]);
}

async function refreshAll() {
  try {
    await loadDatasets();
    await Promise.all([loadMethods(), loadJobs(), loadCompare()]);
    say("");
    route();
  } catch (err) { failed(err); }
}

async function main() {
  setupUpload();
  setupJobForm();
  setupJobPage();
  setupMap();
  $("#compare-dataset").addEventListener("change", loadCompare);
  window.addEventListener("hashchange", route);
  try {
    await setupKeys();
  } catch (err) { failed(err); return; }
  if (state.auth === "keys" && !sessionStorage.getItem(KEY_STORE)) {
    say("This server needs an API key: enter it at the top.");
    $("#api-key").focus();
    return;
  }
  refreshAll();
}

main();
