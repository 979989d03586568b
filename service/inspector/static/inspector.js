// The activation inspector: three tabs over lnserve's own API (GET /v1/models, POST /v1/chat, POST /v1/forecast,
// GET /v1/models/{name}/activations). With an API key configured the server answers 401; the page then asks for the
// key, keeps it for this tab only (sessionStorage) and sends it as a bearer token.
"use strict";

const STATISTICS_ORDER = ["mean", "std", "rms", "abs_mean", "abs_max"];
const LIVE_STEP_S = 5, LIVE_COLUMNS = 36;
const EXAMPLE_SERIES = [112, 118, 132, 129, 121, 135, 148, 148, 136, 119, 104, 118, 115, 126, 141, 135, 125, 149,
  170, 170, 158, 133, 114, 140, 145, 150, 178, 163, 172, 178, 199, 199, 184, 162, 146, 166, 171, 180, 193, 181, 183,
  218, 230, 242, 209, 191, 172, 194];

const $ = (selector) => document.querySelector(selector);
const state = { models: [], references: new Map(), liveTimer: null, liveColumns: [], liveRun: 0 };

class Unauthorized extends Error {}

async function api(path, body) {
  const headers = { Accept: "application/json" };
  const key = sessionStorage.getItem("lnserve-api-key");
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method: body === undefined ? "GET" : "POST", headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {
    askForKey(key ? "that key was refused" : "");
    throw new Unauthorized("missing or invalid API key");
  }
  const payload = await response.json();
  if (!response.ok) throw new Error(payload.error || `HTTP ${response.status}`);
  return payload;
}

function askForKey(message) {
  $("#auth").hidden = false;
  $("#auth-error").textContent = message;
  $("#api-key").focus();
}

function setStatus(text) {
  $("#status").textContent = text;
}

// --- models and references ---------------------------------------------------------------------------------------
async function loadModels() {
  const { data } = await api("/v1/models");
  state.models = data.filter((m) => m.alias_of === null);
  $("#auth").hidden = true;
  fillSelect($("#forecast-model"), state.models.filter((m) => m.kind === "forecaster"));
  fillSelect($("#live-model"), state.models);
  setStatus(`${state.models.length} models`);
}

function fillSelect(select, models) {
  select.replaceChildren(...models.map((m) => new Option(`${m.id}${m.ready ? "" : " (not ready)"}`, m.id)));
}

function chatbots() {
  return state.models.filter((m) => m.kind === "chatbot" && m.ready);
}

async function reference(model) {
  if (!state.references.has(model)) {
    const snapshot = await api(`/v1/models/${encodeURIComponent(model)}/activations?window_s=1`);
    state.references.set(model, snapshot);
  }
  return state.references.get(model);
}

// Per statistic: one line per model (its request's values) over the band reference mean ± 2 std.
function drawLayerCharts(container, runs) {
  container.replaceChildren();
  const statistics = STATISTICS_ORDER.filter((s) => runs.some((r) => s in r.activations.layers[0]));
  const longest = runs.reduce((a, b) => (b.activations.layers.length > a.activations.layers.length ? b : a));
  const layers = longest.activations.layers.map((l) => l.name);
  for (const stat of statistics) {
    const series = runs.map((run) => ({
      name: run.model,
      color: run.color,
      values: run.activations.layers.map((l) => l[stat]),
      band: run.reference.layers.map((l) => {
        const r = l.reference[stat];
        return r && r.mean !== null && r.std !== null ? { lo: r.mean - 2 * r.std, hi: r.mean + 2 * r.std } : null;
      }),
    }));
    const figure = document.createElement("figure");
    Charts.layerChart(figure, { title: stat, stat, layers, series });
    container.appendChild(figure);
  }
  const legend = document.createElement("div");
  legend.className = "legend";
  for (const run of runs) {
    const item = document.createElement("span");
    item.innerHTML = `<i style="background:${run.color}"></i>`;
    item.append(`${run.model} (${run.placement})`);
    legend.appendChild(item);
  }
  container.prepend(legend);
  container.dataset.layers = String(layers.length);
}

// --- Chat tab ------------------------------------------------------------------------------------------------------
async function chat(message) {
  const models = chatbots();
  const answers = $("#chat-answers"), charts = $("#chat-charts");
  answers.dataset.state = charts.dataset.state = "loading";
  setStatus(`asking ${models.length} chatbots…`);
  const runs = await Promise.all(models.map(async (m, i) => {
    const [answer, ref] = await Promise.all([
      api("/v1/chat", { message, model: m.id, return_activations: true }), reference(m.id),
    ]);
    return {
      model: m.id, color: Charts.PALETTE[i % Charts.PALETTE.length], answer, reference: ref,
      activations: answer.activations, placement: answer.activations.norm_placement || "?",
    };
  }));
  answers.replaceChildren(...runs.map(answerCard));
  drawLayerCharts(charts, runs);
  answers.dataset.state = charts.dataset.state = "done";
  setStatus(`${runs.length} chatbots answered`);
}

function answerCard(run) {
  const card = document.createElement("article");
  card.className = "variant";
  card.dataset.model = run.model;
  card.style.borderColor = run.color;
  const a = run.answer;
  card.innerHTML = `<h3></h3><p class="meta"></p><p><b class="intent"></b> <span class="confidence"></span></p><p class="reply"></p>`;
  card.querySelector("h3").textContent = run.model;
  card.querySelector(".meta").textContent = `${run.placement}-LN · ${a.activations.norm_type || ""}`;
  card.querySelector(".intent").textContent = a.intent;
  card.querySelector(".confidence").textContent = `${(a.confidence * 100).toFixed(1)}%`;
  card.querySelector(".confidence").dataset.value = a.confidence;
  card.querySelector(".reply").textContent = a.reply;
  return card;
}

// --- Forecast tab --------------------------------------------------------------------------------------------------
function parseSeries(text) {
  return text.split(/[\s,;]+/).filter(Boolean).map(Number);
}

async function forecast() {
  const model = $("#forecast-model").value;
  const series = parseSeries($("#forecast-series").value);
  const body = {
    model, series, horizon: Number($("#forecast-horizon").value), season_length: Number($("#forecast-season").value),
    return_activations: true,
  };
  $("#forecast-error").textContent = "";
  $("#forecast-charts").dataset.state = "loading";
  try {
    const [answer, ref] = await Promise.all([api("/v1/forecast", body), reference(model)]);
    $("#forecast-fan").replaceChildren();
    Charts.fanChart($("#forecast-fan"), { history: series, quantiles: answer.quantiles });
    drawLayerCharts($("#forecast-charts"), [{
      model, color: Charts.PALETTE[0], answer, reference: ref, activations: answer.activations, placement: "LSTM",
    }]);
    $("#forecast-charts").dataset.state = "done";
  } catch (error) {
    $("#forecast-error").textContent = error.message;
    $("#forecast-charts").dataset.state = "error";
  }
}

// --- Live tab ------------------------------------------------------------------------------------------------------
function column(snapshot, label) {
  return { label, samples: snapshot.samples, drift: snapshot.layers.map((l) => l.drift) };
}

async function liveStart() {
  liveStop();
  const model = $("#live-model").value, windowS = Number($("#live-window").value);
  if (!model) return;
  const run = state.liveRun; // a newer start (another model or window) makes this one stop drawing
  const path = (offset) => `/v1/models/${encodeURIComponent(model)}/activations?window_s=${windowS}&offset_s=${offset}`;
  // The last minutes at once: one window per column, ending LIVE_STEP_S apart (as far as the server keeps history).
  const offsets = [];
  for (let k = LIVE_COLUMNS - 1; k >= 1; k--) offsets.push(k * LIVE_STEP_S);
  const past = await Promise.all(offsets.map((o) => api(path(o)).catch(() => null)));
  if (state.liveRun !== run) return;
  state.liveColumns = past.map((s, i) => (s ? column(s, `-${offsets[i]} s`) : null)).filter(Boolean);
  await liveTick(run, path);
  if (state.liveRun === run) state.liveTimer = setInterval(() => liveTick(run, path).catch(() => {}), LIVE_STEP_S * 1000);
}

function liveStop() {
  if (state.liveTimer) clearInterval(state.liveTimer);
  state.liveTimer = null;
  state.liveRun += 1;
}

async function liveTick(run, path) {
  const snapshot = await api(path(0));
  if (state.liveRun !== run) return;
  state.liveColumns.push(column(snapshot, new Date().toLocaleTimeString()));
  state.liveColumns = state.liveColumns.slice(-LIVE_COLUMNS);
  Charts.heatmap($("#live-heatmap"), { layers: snapshot.layers.map((l) => l.name), columns: state.liveColumns });
  $("#live-samples").textContent = `${snapshot.samples} sampled requests in the last ${snapshot.window_s} s` +
    ` (${snapshot.samples_total} since start, sample rate ${snapshot.sample_rate})`;
  $("#live-samples").dataset.samples = snapshot.samples;
  const rows = snapshot.layers.map((l) => {
    const tr = document.createElement("tr");
    tr.dataset.layer = l.name;
    for (const v of [l.name, Charts.fmt(l.drift), Charts.fmt(l.mean_shift), Charts.fmt(l.psi), l.nonfinite, l.nonfinite_total]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.appendChild(td);
    }
    if (l.nonfinite_total > 0) tr.className = "alarm";
    return tr;
  });
  $("#live-table tbody").replaceChildren(...rows);
  $("#live-heatmap").dataset.state = "done";
}

// --- wiring --------------------------------------------------------------------------------------------------------
function showTab(name) {
  for (const tab of document.querySelectorAll("[role=tab]")) tab.setAttribute("aria-selected", String(tab.dataset.tab === name));
  for (const panel of document.querySelectorAll("[role=tabpanel]")) panel.hidden = panel.id !== `panel-${name}`;
  if (name === "live") liveStart().catch(report); else liveStop();
}

function report(error) {
  if (!(error instanceof Unauthorized)) setStatus(`error: ${error.message}`);
}

function init() {
  for (const tab of document.querySelectorAll("[role=tab]")) tab.addEventListener("click", () => showTab(tab.dataset.tab));
  $("#auth").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem("lnserve-api-key", $("#api-key").value.trim());
    state.references.clear();
    loadModels().catch(report);
  });
  $("#chat-form").addEventListener("submit", (event) => {
    event.preventDefault();
    chat($("#chat-message").value).catch(report);
  });
  $("#forecast-example").addEventListener("click", () => { $("#forecast-series").value = EXAMPLE_SERIES.join(", "); });
  $("#forecast-form").addEventListener("submit", (event) => {
    event.preventDefault();
    forecast();
  });
  $("#live-model").addEventListener("change", () => liveStart().catch(report));
  $("#live-window").addEventListener("change", () => liveStart().catch(report));
  loadModels().catch(report);
}

init();
