// Live experiment page: loads each curve as the API's downsampled series, then polls the
// versioned API for points after the last step seen (extending the Plotly traces in
// place), for lifecycle events after the last one shown and the run's state (status,
// worker, heartbeat, ETA, error, traceback, log tail, checkpoints), and for evaluations.
// Polls every second while the tab is visible, every 10 s when hidden (after
// healthchecks' adaptive-setinterval), and stops once the run has finished.

import { el } from "./dom.js";
import { fetchJson } from "./fetch_json.js";
import { MetricCharts } from "./experiment_charts.js";
import { formatScore, showEvaluation } from "./experiment_results.js";

const root = document.getElementById("experiment");
const { metricsUrl, evaluationsUrl, eventsUrl } = root.dataset;
const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
const VISIBLE_MS = 1000;
const HIDDEN_MS = 10000;

const charts = new MetricCharts(metricsUrl);
let afterStep = -1;
let afterEvaluation = -1;
let afterEvent = Math.max(-1, ...[...document.querySelectorAll("#events li")].map((li) => Number(li.dataset.eventId)));
let timer = null;

const $ = (id) => document.getElementById(id);

function capitalized(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

// An ISO timestamp as the page prints it (UTC): "2025-01-31 12:00:05".
function utc(iso) {
  return new Date(iso).toISOString().slice(0, 19).replace("T", " ");
}

function showMetricsStatus(body) {
  $("step").textContent = body.current_step;
  $("progress").value = body.current_step;
  $("best-miou").textContent = formatScore(body.best_miou);
  $("final-miou").textContent = formatScore(body.final_miou);
  if (body.last_step >= 0) $("download-csv").hidden = false;
}

function showRun(run) {
  const status = $("status");
  status.textContent = capitalized(run.status);
  status.className = `big status status-${run.status}`;
  const cancel = $("cancel-form");
  if (cancel && FINISHED.has(run.status)) cancel.hidden = true;
  $("attempt").textContent = `${run.attempt}` +
    (run.crashes ? ` (${run.crashes} restart${run.crashes === 1 ? "" : "s"} after a crash)` : "");
  const device = run.device_name ? ` · ${run.device_name}` + (run.device_memory_mb ? ` (${run.device_memory_mb} MiB)` : "") : "";
  $("worker").textContent = `${run.worker || "—"}${device}`;
  $("heartbeat").textContent = run.heartbeat_at ? `${utc(run.heartbeat_at)} UTC` : "—";
  $("eta").textContent = run.steps_per_second ? `${run.steps_per_second.toFixed(1)} steps/s` +
    (run.eta_seconds === null ? "" : ` · ${run.eta_seconds.toFixed(0)} s left`) : "—";
  $("error").hidden = !run.error;
  $("error").textContent = run.error;
  $("traceback").hidden = !run.traceback;
  $("traceback-text").textContent = run.traceback;
  $("log-tail").hidden = !run.log_tail;
  $("log-tail-text").textContent = run.log_tail;
  $("download-best").hidden = !run.checkpoints.best;
  $("download-last").hidden = !run.checkpoints.last;
}

function showEvents(events) {
  $("events").append(...events.map((event) => el("li", { "data-event-id": event.id, "data-kind": event.kind },
    el("span", { class: "muted" }, utc(event.created_at).slice(11)), ` ${event.kind_display} ${event.message}`)));
}

async function poll() {
  const metrics = await fetchJson(`${metricsUrl}?after_step=${afterStep}`);
  charts.append(metrics.metrics);
  afterStep = metrics.last_step;
  showMetricsStatus(metrics);
  const events = await fetchJson(`${eventsUrl}?after=${afterEvent}`);
  showEvents(events.events);
  afterEvent = events.last_event;
  showRun(events.run);
  const evaluations = await fetchJson(`${evaluationsUrl}?after_step=${afterEvaluation}`);
  if (evaluations.evaluations.length) {
    const latest = evaluations.evaluations[evaluations.evaluations.length - 1];
    afterEvaluation = latest.step;
    showEvaluation(latest);
    document.dispatchEvent(new CustomEvent("seglab:evaluations", { detail: evaluations.evaluations }));
  }
  // Finished once the run says so and nothing more came: the last points and events are shown.
  return FINISHED.has(events.run.status) && !events.events.length && !Object.keys(metrics.metrics).length;
}

function schedule() {
  clearTimeout(timer);
  timer = setTimeout(async () => {
    let finished = false;
    try {
      finished = await poll();
    } catch (error) {
      console.warn("poll failed, retrying", error);
    }
    if (!finished) schedule();
  }, document.hidden ? HIDDEN_MS : VISIBLE_MS);
}

async function start() {
  afterStep = await charts.loadOverview();
  return poll();
}

document.addEventListener("visibilitychange", () => { if (!document.hidden) schedule(); });
const config = JSON.parse(document.getElementById("config").textContent);
$("config-view").textContent = JSON.stringify(config, null, 2);
start().then((finished) => { if (!finished) schedule(); }, (error) => {
  console.warn("loading the page's data failed, retrying", error);
  schedule();
});
