// scoresde serve: the page. Plain JavaScript and canvas, no build step.
"use strict";

const NFE_STEPS = [1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 75, 100, 150, 200, 250, 300, 400, 500, 750, 1000];
const DEFAULT = { source: "oracle:25gaussians", samplers: ["ddpm", "dpm-solver++", "", ""], nfe: 20 };
const $ = (id) => document.getElementById(id);
let meta = null, sources = [], currentJob = null, runStart = 0;
window.__firstFrameMs = null;   // time from navigation start to the first drawn frame

async function api(path, body) {
  const opts = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const r = await fetch(path, opts);
  const j = await r.json();
  if (!r.ok) throw new Error(j.error || ("HTTP " + r.status));
  return j;
}

function b64bytes(s) {
  const bin = atob(s), out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
const b64f32 = (s) => new Float32Array(b64bytes(s).buffer);

function samplerRow(i) {
  const div = document.createElement("div");
  div.className = "row";
  const names = meta.samplers.map((s) => `<option value="${s.name}" title="${s.help.replace(/"/g, "&quot;")}">${s.name}</option>`).join("");
  const scheds = meta.schedules.map((s) => `<option value="${s.name}" title="${s.description}">${s.name}</option>`).join("");
  div.innerHTML = `<label>sampler ${i + 1} <select id="sampler${i}"><option value="">(none)</option>${names}</select></label>
    <label>schedule <select id="schedule${i}"><option value="">(its default)</option>${scheds}</select></label>
    <label>params <input id="params${i}" class="params" placeholder="e.g. eta=0.5,noise=brownian"></label>`;
  return div;
}

function specOf(i) {
  const name = $("sampler" + i).value;
  if (!name) return null;
  const parts = [];
  const sch = $("schedule" + i).value;
  if (sch) parts.push("schedule=" + sch);
  const p = $("params" + i).value.trim();
  if (p) parts.push(p);
  return parts.length ? name + ":" + parts.join(",") : name;
}

function request() {
  const src = sources.find((s) => s.id === $("source").value);
  const req = {
    source: $("source").value,
    samplers: [0, 1, 2, 3].map(specOf).filter((s) => s),
    nfe: NFE_STEPS[+$("nfe").value],
    seed: +$("seed").value,
    n: +$("n").value,
  };
  if (src && src.takes_sde) req.sde = $("sde").value;
  return req;
}

function setRunning(on) {
  $("run").disabled = on;
  $("cancel").disabled = !on;
}

async function run() {
  $("error").textContent = "";
  runStart = performance.now();
  let started;
  try {
    started = await api("/api/jobs", request());
  } catch (e) {
    $("error").textContent = e.message;
    return;
  }
  currentJob = started.id;
  setRunning(true);
  poll(started.id);
}

async function poll(id) {
  let st;
  try {
    st = await api("/api/jobs/" + id);
  } catch (e) {
    $("error").textContent = e.message;
    setRunning(false);
    return;
  }
  if (id !== currentJob) return;
  $("progress").value = st.total ? st.done / st.total : 0;
  $("status").textContent = `job ${id}: ${st.state}, ${st.done}/${st.total} samples, ${st.seconds.toFixed(1)} s`;
  if (st.state === "running") {
    setTimeout(() => poll(id), 200);
    return;
  }
  setRunning(false);
  if (st.state === "failed") $("error").textContent = st.error;
  if (st.state === "done") show(st.result);
}

async function cancel() {
  if (currentJob !== null) {
    try { await api("/api/jobs/" + currentJob + "/cancel", {}); } catch (e) { $("error").textContent = e.message; }
  }
}

// ---- panels ----------------------------------------------------------

function show(result) {
  const root = $("panels");
  root.innerHTML = "";
  const points = result.kind === "points";
  // One view box for every panel, from all final samples (99.5% quantile of |x|).
  let range = 4;
  if (points) {
    const abs = [];
    for (const p of result.panels) for (const v of b64f32(p.samples)) abs.push(Math.abs(v));
    abs.sort((a, b) => a - b);
    range = Math.max(1, 1.15 * abs[Math.floor(0.995 * (abs.length - 1))]);
  }
  result.panels.forEach((p, i) => root.appendChild(points ? pointsPanel(p, i, range, result) : imagePanel(p, i, result)));
  if (window.__firstFrameMs === null) window.__firstFrameMs = performance.now();
  $("status").textContent += ` — drawn in ${(performance.now() - runStart).toFixed(0)} ms`;
}

function panelShell(p, i) {
  const div = document.createElement("div");
  div.className = "panel";
  div.id = "panel" + i;
  div.dataset.spec = p.spec;
  div.innerHTML = `<h2>${p.label} · NFE ${p.nfe}</h2>`;
  return div;
}

function scrubber(div, p, draw) {
  const k = p.frames.x.length;
  const row = document.createElement("div");
  row.innerHTML = `<input type="range" class="scrub" min="0" max="${k}" value="${k}">
    <button class="play">▶</button> <span class="time small"></span>`;
  div.appendChild(row);
  const slider = row.querySelector(".scrub"), label = row.querySelector(".time");
  const update = () => {
    const f = +slider.value;
    label.textContent = f === k ? `samples (t = ε), all ${p.steps === null ? "" : p.steps + " steps"}` : `frame ${f + 1}/${k}, t = ${p.frames.times[f].toFixed(3)}`;
    draw(f === k ? null : f);
  };
  slider.addEventListener("input", update);
  row.querySelector(".play").addEventListener("click", () => {
    let f = 0;
    const tick = () => { slider.value = f; update(); if (++f <= k) setTimeout(tick, 80); };
    tick();
  });
  update();
}

function pointsPanel(p, i, range, result) {
  const div = panelShell(p, i);
  const cv = document.createElement("canvas");
  cv.width = 320; cv.height = 320; cv.className = "view";
  div.appendChild(cv);
  const samples = b64f32(p.samples);
  const frames = p.frames.x.map(b64f32);
  const ctx = cv.getContext("2d");
  const draw = (f) => {
    const xs = f === null ? samples : frames[f];
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, 320, 320);
    ctx.fillStyle = "rgba(30, 80, 180, 0.35)";
    const s = 160 / range;
    for (let j = 0; j + 1 < xs.length; j += 2) {
      const u = 160 + xs[j] * s, v = 160 - xs[j + 1] * s;
      if (u >= 0 && u < 320 && v >= 0 && v < 320) ctx.fillRect(u - 1, v - 1, 2, 2);
    }
    ctx.fillStyle = "#666"; ctx.font = "11px monospace";
    ctx.fillText(`[-${range.toFixed(1)}, ${range.toFixed(1)}]²`, 4, 314);
  };
  scrubber(div, p, draw);
  div.appendChild(metricsBox(p));
  return div;
}

function imagePanel(p, i, result) {
  const div = panelShell(p, i);
  const [c, h, w] = result.shape;
  const per = h * w * c;
  const cols = (k) => Math.ceil(Math.sqrt(k));
  const scale = Math.max(1, Math.floor(320 / (cols(result.n) * (w + 1))));
  const cv = document.createElement("canvas");
  cv.className = "view";
  const cv0 = document.createElement("canvas");
  cv0.className = "x0";
  div.appendChild(cv);
  const cap = document.createElement("div");
  cap.className = "small";
  cap.textContent = "x̂0 (denoised estimate) of the frame:";
  div.appendChild(cap);
  div.appendChild(cv0);
  const f32 = b64f32(p.samples);
  const sampleBytes = Uint8Array.from(f32, (v) => Math.max(0, Math.min(255, Math.round((v + 1) * 127.5))));
  const frames = p.frames.x.map(b64bytes), x0s = (p.frames.x0 || []).map(b64bytes);
  const grid = (canvas, bytes, k) => {
    const g = cols(k), rows = Math.ceil(k / g);
    canvas.width = g * (w + 1) * scale; canvas.height = rows * (h + 1) * scale;
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, canvas.width, canvas.height);
    const img = ctx.createImageData(w, h);
    const tmp = document.createElement("canvas"); tmp.width = w; tmp.height = h;
    const tctx = tmp.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    for (let r = 0; r < k; r++) {
      for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
        const o = 4 * (y * w + x);
        for (let ch = 0; ch < 3; ch++) img.data[o + ch] = bytes[r * per + (c === 1 ? 0 : ch) * h * w + y * w + x];
        img.data[o + 3] = 255;
      }
      tctx.putImageData(img, 0, 0);
      ctx.drawImage(tmp, (r % g) * (w + 1) * scale, Math.floor(r / g) * (h + 1) * scale, w * scale, h * scale);
    }
  };
  const draw = (f) => {
    if (f === null) { grid(cv, sampleBytes, result.n); grid(cv0, sampleBytes, Math.min(result.n, p.frames.rows)); }
    else { grid(cv, frames[f], p.frames.rows); grid(cv0, x0s[f], p.frames.rows); }
  };
  scrubber(div, p, draw);
  div.appendChild(metricsBox(p));
  return div;
}

// A metric: its rounded text, and the exact value in data-value (the API's number).
const m = (name, v, text) => `<span class="metric" data-name="${name}" data-value="${v}">${text}</span>`;
const fx = (v, d) => (v === null || v === undefined ? "-" : v.toFixed(d));
const pct = (v) => (v === null || v === undefined ? "-" : (100 * v).toFixed(1) + "%");

function metricsBox(p) {
  const box = document.createElement("div");
  box.className = "metrics";
  const q = p.metrics;
  let html = `NFE ${m("nfe", p.nfe, p.nfe)}, ${p.seconds.toFixed(2)} s\n`;
  if (q.kind === "points") {
    html += `SWD ${m("swd.mean", q.swd.mean, fx(q.swd.mean, 4))} ± ${m("swd.se", q.swd.se, fx(q.swd.se, 4))}` +
      ` (${m("swd_over_floor", q.swd_over_floor, fx(q.swd_over_floor, 2))}× floor ${m("floor.mean", q.floor.mean, fx(q.floor.mean, 4))} ± ${m("floor.se", q.floor.se, fx(q.floor.se, 4))})\n` +
      `MMD² ${m("mmd", q.mmd, q.mmd.toExponential(2))}`;
    if (q.in_support !== null) html += `\nin squares ${m("in_support", q.in_support, pct(q.in_support))}, in [-4,4]² ${m("in_box", q.in_box, pct(q.in_box))}`;
  } else if (q.kind === "images") {
    html += `Fréchet distance (${q.features}) ${m("fd", q.fd, fx(q.fd, 4))}, floor ${m("fd_floor", q.fd_floor, fx(q.fd_floor, 4))}\n` +
      `NN L2 to train, mean / min (first ${q.nn_count}): ${m("nn.mean", q.nn[0][0], fx(q.nn[0][0], 3))} / ${fx(q.nn[0][1], 3)}, held-out ${fx(q.nn[1][0], 3)} / ${fx(q.nn[1][1], 3)}`;
    if (q.labels) html += `\nclassifier max-prob ${m("labels.maxprob", q.labels[0][0], fx(q.labels[0][0], 4))} (train ${fx(q.labels[1][0], 4)}), entropy ${fx(q.labels[0][1], 4)}, classes ${q.labels[0][2]}`;
  } else {
    html += "(no reference data for metrics)";
  }
  box.innerHTML = html;
  return box;
}

// ---- start -------------------------------------------------------------

function syncSource() {
  const src = sources.find((s) => s.id === $("source").value);
  $("sde").disabled = !(src && src.takes_sde);
  const images = src && src.kind === "images";
  const max = images ? meta.limits.max_n_images : meta.limits.max_n_points;
  $("n").max = max;
  if (+$("n").value > max || (images && +$("n").value > 64)) $("n").value = Math.min(36, max);
  if (!images && +$("n").value < 100) $("n").value = 2000;
}

async function init() {
  [meta, { sources }] = await Promise.all([api("/api/samplers"), api("/api/sources")]);
  $("source").innerHTML = sources.map((s) => `<option value="${s.id}">${s.label}</option>`).join("");
  $("source").value = DEFAULT.source;
  $("source").addEventListener("change", syncSource);
  const rows = $("sampler-rows");
  for (let i = 0; i < meta.limits.max_samplers; i++) rows.appendChild(samplerRow(i));
  DEFAULT.samplers.forEach((s, i) => { if ($("sampler" + i)) $("sampler" + i).value = s; });
  const steps = NFE_STEPS.filter((v) => v <= meta.limits.max_nfe);
  $("nfe").max = steps.length - 1;
  $("nfe").value = steps.indexOf(DEFAULT.nfe);
  const showNfe = () => { $("nfe-value").textContent = NFE_STEPS[+$("nfe").value]; };
  $("nfe").addEventListener("input", showNfe);
  showNfe();
  $("run").addEventListener("click", run);
  $("cancel").addEventListener("click", cancel);
  syncSource();
  document.body.dataset.ready = "1";
  if (new URLSearchParams(location.search).get("autorun") !== "0") run();
}

init().catch((e) => { $("error").textContent = "loading the page: " + e.message; });
