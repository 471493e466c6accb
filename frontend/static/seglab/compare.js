// Compare page: every run's training loss and validation mIoU overlaid (one trace per run,
// downsampled by the metrics API), the same validation images' predictions from every run
// side by side at one evaluation step (one slider over the steps all runs share), and
// mIoU against inference speed with the Pareto front (computed by webapp/experiments/compare.py).
// The per-class table and the sweep's table are rendered by the server. While a run trains, the
// curves refresh every few seconds (zoom kept), and a run that ends says so, with a reload for
// the tables that are drawn from its final evaluation.

import { el } from "./dom.js";
import { decode, maskColor, paint, rgb } from "./index_masks.js";
import { fetchJson } from "./fetch_json.js";
import { plotlyText } from "./plotly_text.js";

const data = JSON.parse(document.getElementById("compare-data").textContent);
const palette = JSON.parse(document.getElementById("compare-class-colors").textContent).map(rgb);
const MAX_POINTS = 500;
const MASK_OPACITY = 0.6;
// One colour per run, the same in every chart (Plotly's ten, then two more: MAX_RUNS is 12).
const RUN_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
  "#bcbd22", "#17becf", "#0b3d91", "#a0522d"];
const colorOf = (index) => RUN_COLORS[index % RUN_COLORS.length];
// Run names are user text: plotlyText keeps Plotly from reading their markup characters as tags.
const runName = new Map(data.runs.map((run) => [run.id, plotlyText(run.name)]));
const PLOT_CONFIG = { responsive: true, displaylogo: false };
const REFRESH_MS = 5000;
const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
const training = new Set(data.runs.filter((run) => !FINISHED.has(run.status)).map((run) => run.id));

const $ = (id) => document.getElementById(id);

function layout(title, xTitle, yTitle, extra = {}) {
  return {
    title: { text: title, font: { size: 14 } },
    margin: { t: 40, r: 10, b: 90, l: 55 },
    xaxis: { title: { text: xTitle } },
    yaxis: { title: { text: yTitle }, ...extra.yaxis },
    legend: { orientation: "h", y: -0.3 },
    uirevision: "compare", // a refresh keeps the user's zoom and hidden traces
  };
}

// -- curves ------------------------------------------------------------------------------

async function drawCurves() {
  const bodies = await Promise.all(data.runs.map((run) =>
    fetchJson(`${run.metrics_url}?names=loss,val_miou&max_points=${MAX_POINTS}`)));
  const trace = (run, index, series, scale) => ({
    name: runName.get(run.id), x: series ? series.steps : [], y: series ? series.values.map((v) => (v === null ? null : scale * v)) : [],
    mode: "lines+markers", marker: { size: 3 }, line: { color: colorOf(index) },
  });
  Plotly.react("compare-loss-chart", data.runs.map((run, i) => trace(run, i, bodies[i].metrics.loss, 1)),
    layout("Training loss", "iteration", "loss"), PLOT_CONFIG);
  Plotly.react("compare-miou-chart", data.runs.map((run, i) => trace(run, i, bodies[i].metrics.val_miou, 100)),
    layout("Validation mIoU", "iteration", "mIoU (%)", { yaxis: { rangemode: "tozero" } }), PLOT_CONFIG);
}

let ended = 0;

async function refreshTraining() {
  const ids = [...training];
  const body = await fetchJson(`${data.experiments_api}?ids=${ids.join(",")}&limit=${ids.length}`);
  for (const run of body.results) {
    if (FINISHED.has(run.status)) {
      training.delete(run.id);
      ended += 1;
    }
  }
  await drawCurves();
  if (ended) {
    const note = $("compare-live");
    note.replaceChildren(`${ended} run${ended > 1 ? "s" : ""} finished since this page was opened; `,
      el("a", { href: window.location.href }, "reload"), " for the final tables and the speed chart.");
    note.hidden = false;
  }
}

function pollTraining() {
  if (!training.size) return;
  setTimeout(() => refreshTraining().catch((error) => console.warn("refreshing the curves failed", error))
    .finally(pollTraining), REFRESH_MS);
}

// -- predictions side by side ------------------------------------------------------------

const predictions = new Map(); // `${run}:${step}` -> Promise of {id -> sample}
let drawing = 0;

function samplesOf(run, step) {
  const key = `${run.id}:${step}`;
  if (!predictions.has(key)) {
    predictions.set(key, fetchJson(`${run.evaluations_url}${step}/predictions/`)
      .then((body) => new Map(body.samples.map((sample) => [sample.id, sample]))));
  }
  return predictions.get(key);
}

function panel(caption) {
  const canvas = el("canvas", {});
  return { canvas, figure: el("figure", {}, canvas, el("figcaption", {}, caption)) };
}

async function drawStep(index) {
  const entry = data.steps[index];
  const ticket = ++drawing;
  $("compare-step-label").textContent = `step ${entry.step}`;
  const byRun = await Promise.all(data.runs.map((run) => samplesOf(run, entry.step)));
  if (ticket !== drawing) return; // the slider moved on meanwhile
  const columns = 2 + data.runs.length;
  const header = el("div", { class: "compare-row compare-head", style: `grid-template-columns: repeat(${columns}, minmax(0, 1fr))` },
    el("span", {}, "image"), el("span", {}, "ground truth"),
    data.runs.map((run, i) => el("span", { style: `border-color: ${colorOf(i)}` }, run.name)));
  const jobs = [];
  const rows = entry.ids.map((id) => {
    const first = byRun[0].get(id);
    const image = panel(id);
    const truth = panel("ground truth");
    const runs = data.runs.map((run) => panel(run.name));
    runs.forEach((p, i) => p.canvas.setAttribute("data-run", data.runs[i].id));
    jobs.push((async () => {
      const [picture, mask, ...predicted] = await Promise.all(
        [first.image_url, first.ground_truth_url, ...byRun.map((samples) => samples.get(id).prediction_url)].map(decode));
      if (ticket !== drawing) return;
      paint(image.canvas, picture, null, MASK_OPACITY);
      paint(truth.canvas, picture, maskColor(mask, palette), MASK_OPACITY);
      predicted.forEach((prediction, i) => paint(runs[i].canvas, picture, maskColor(prediction, palette), MASK_OPACITY));
    })());
    return el("div", { class: "compare-row", "data-sample": id, style: `grid-template-columns: repeat(${columns}, minmax(0, 1fr))` },
      image.figure, truth.figure, runs.map((p) => p.figure));
  });
  $("compare-samples").replaceChildren(header, ...rows);
  await Promise.all(jobs);
  if (ticket === drawing) $("compare-predictions").dataset.shown = `${entry.step}:${entry.ids.join(",")}`;
}

function setUpPredictions() {
  const slider = $("compare-step");
  if (!data.steps.length) {
    slider.disabled = true;
    $("compare-predictions-note").textContent = data.runs.length
      ? "No evaluation step is shared by every compared run with stored prediction samples (different schedules or datasets)."
      : "";
    return;
  }
  slider.max = data.steps.length - 1;
  slider.value = data.steps.length - 1;
  $("compare-predictions-note").textContent = `${data.steps.length} shared step${data.steps.length === 1 ? "" : "s"}: ` +
    data.steps.map((entry) => entry.step).join(", ");
  const redraw = () => drawStep(Number(slider.value)).catch((error) => console.warn("drawing the samples failed", error));
  slider.addEventListener("input", redraw);
  redraw();
}

// -- mIoU against speed ------------------------------------------------------------------

function drawSpeed() {
  const points = data.speed.points;
  const colors = new Map(data.runs.map((run, i) => [run.id, colorOf(i)]));
  const byId = new Map(points.map((point) => [point.id, point]));
  const front = data.speed.front.map((id) => byId.get(id));
  const runs = {
    name: "runs", mode: "markers+text", type: "scatter", textposition: "top center",
    x: points.map((p) => p.throughput), y: points.map((p) => 100 * p.miou), text: points.map((p) => runName.get(p.id)),
    marker: { size: 11, color: points.map((p) => colors.get(p.id)) },
    hovertemplate: "%{text}: %{y:.1f} %% at %{x:.1f} images/s<extra></extra>",
  };
  const pareto = {
    name: "Pareto front", mode: "lines+markers", type: "scatter", x: front.map((p) => p.throughput),
    y: front.map((p) => 100 * p.miou), line: { color: "#111827", dash: "dot" },
    marker: { size: 16, symbol: "circle-open", color: "#111827" }, hoverinfo: "skip",
  };
  Plotly.newPlot("compare-speed-chart", [runs, pareto],
    layout("Final mIoU vs inference speed", "images/s", "mIoU (%)", { yaxis: { rangemode: "tozero" } }), PLOT_CONFIG);
}

drawCurves().catch((error) => console.warn("curves failed", error)).finally(pollTraining);
setUpPredictions();
drawSpeed();
