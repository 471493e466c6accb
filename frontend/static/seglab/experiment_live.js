// Live experiment page: polls the versioned API for points after the last step seen
// and extends the Plotly traces in place (no reload, no redraw of old points).
// Polls every second while the tab is visible, every 10 s when hidden (after
// healthchecks' adaptive-setinterval), and stops once the run has finished.

import { el } from "./dom.js";

const root = document.getElementById("experiment");
const metricsUrl = root.dataset.metricsUrl;
const evaluationsUrl = root.dataset.evaluationsUrl;
const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
const VISIBLE_MS = 1000;
const HIDDEN_MS = 10000;

// Each metric name goes to the first chart that accepts it; the rest are not drawn.
const charts = {
  loss: { el: "loss-chart", title: "Training losses", traces: new Map(), accepts: (n) => n.startsWith("loss") },
  miou: { el: "miou-chart", title: "Validation mIoU", traces: new Map(), accepts: (n) => n === "val_miou", range: [0, 1] },
  pseudo: { el: "pseudo-chart", title: "Pseudo-labels on the unlabelled pool", traces: new Map(),
            accepts: (n) => n.startsWith("pseudo_label_"), range: [0, 1], hideEmpty: true },
  system: { el: "system-chart", title: "System (CPU %, RAM MiB, GPU, images/s)", traces: new Map(),
            accepts: (n) => n.startsWith("system/"), hideEmpty: true },
};
let afterStep = -1;
let afterEvaluation = -1;
let timer = null;

function initCharts() {
  for (const chart of Object.values(charts)) {
    document.getElementById(chart.el).hidden = Boolean(chart.hideEmpty);
    Plotly.newPlot(chart.el, [], {
      title: { text: chart.title, font: { size: 14 } },
      margin: { t: 40, r: 10, b: 90, l: 50 },
      xaxis: { title: { text: "iteration" } },
      yaxis: chart.range ? { range: chart.range } : {},
      legend: { orientation: "h", y: -0.35 },
    }, { responsive: true, displaylogo: false });
  }
}

function extend(chart, name, steps, values) {
  const element = document.getElementById(chart.el);
  if (element.hidden) {
    element.hidden = false;
    Plotly.Plots.resize(element);
  }
  if (!chart.traces.has(name)) {
    chart.traces.set(name, chart.traces.size);
    Plotly.addTraces(chart.el, { name, x: steps, y: values, mode: "lines+markers", marker: { size: 3 } });
    return;
  }
  Plotly.extendTraces(chart.el, { x: [steps], y: [values] }, [chart.traces.get(name)]);
}

// Scores in percent with one decimal, as the papers and every SegLab page show them.
function formatScore(value) {
  return value === null || value === undefined ? "—" : (100 * value).toFixed(1);
}

function showStatus(body) {
  const status = document.getElementById("status");
  status.textContent = body.status.charAt(0).toUpperCase() + body.status.slice(1);
  status.className = `big status status-${body.status}`;
  document.getElementById("step").textContent = body.current_step;
  document.getElementById("progress").value = body.current_step;
  document.getElementById("best-miou").textContent = formatScore(body.best_miou);
  document.getElementById("final-miou").textContent = formatScore(body.final_miou);
  const cancel = document.getElementById("cancel-form");
  if (cancel && FINISHED.has(body.status)) cancel.hidden = true;
  const error = document.getElementById("error");
  error.hidden = !body.error;
  error.textContent = body.error || "";
}

function showEvaluation(evaluation) {
  const throughput = evaluation.throughput ? `, ${evaluation.throughput.toFixed(1)} images/s` : "";
  const summary = el("p", {}, `Step ${evaluation.step}: `, el("strong", {}, `mIoU ${formatScore(evaluation.miou)}`),
    `, pixel accuracy ${formatScore(evaluation.pixel_accuracy)}${throughput}`);
  const rows = evaluation.class_names.map((name, i) =>
    el("tr", {}, el("td", {}, name), el("td", {}, formatScore(evaluation.iou[i]))));
  const table = el("table", { class: "table compact", id: "class-iou" },
    el("thead", {}, el("tr", {}, el("th", {}, "Class"), el("th", {}, "IoU"))), el("tbody", {}, rows));
  document.getElementById("evaluation").replaceChildren(summary, table, confusionTable(evaluation));
}

// Rows: ground truth, columns: prediction, each row in percent of its pixels; the shade
// of a cell follows its share, so a class that loses its pixels to another stands out.
// Cells carry their classes and step: overlay_viewer.js lists the images behind a click.
function confusionTable(evaluation) {
  const names = evaluation.class_names;
  const head = el("tr", {}, el("th", {}, "truth \\ prediction"), names.map((name) => el("th", {}, name)));
  const rows = evaluation.confusion_matrix.map((counts, i) => {
    const total = counts.reduce((sum, count) => sum + count, 0);
    return el("tr", {}, el("th", {}, names[i]), counts.map((count, j) => {
      const share = total ? count / total : 0;
      const clickable = i !== j && count > 0;
      return el("td", { style: `background: rgba(37, 99, 235, ${share.toFixed(3)})`, "data-step": evaluation.step,
                        "data-true-class": i, "data-predicted-class": j, class: clickable ? "clickable" : null,
                        title: clickable ? `images where ${names[i]} is predicted as ${names[j]}` : null },
                total ? (100 * share).toFixed(1) : "—");
    }));
  });
  return el("details", { id: "confusion", open: "" }, el("summary", {}, "Confusion matrix (% of each true class's pixels)"),
    el("table", { class: "table compact confusion" }, el("thead", {}, head), el("tbody", {}, rows)));
}

async function poll() {
  const response = await fetch(`${metricsUrl}?after_step=${afterStep}`, { headers: { Accept: "application/json" } });
  if (!response.ok) return false;
  const body = await response.json();
  for (const [name, series] of Object.entries(body.metrics)) {
    const chart = Object.values(charts).find((c) => c.accepts(name));
    if (chart) extend(chart, name, series.steps, series.values);
  }
  afterStep = body.last_step;
  showStatus(body);
  const evaluations = await fetch(`${evaluationsUrl}?after_step=${afterEvaluation}`).then((r) => r.json());
  if (evaluations.evaluations.length) {
    const latest = evaluations.evaluations[evaluations.evaluations.length - 1];
    afterEvaluation = latest.step;
    showEvaluation(latest);
    document.dispatchEvent(new CustomEvent("seglab:evaluations", { detail: evaluations.evaluations }));
  }
  return FINISHED.has(body.status);
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

document.addEventListener("visibilitychange", () => { if (!document.hidden) schedule(); });
const config = JSON.parse(document.getElementById("config").textContent);
document.getElementById("config-view").textContent = JSON.stringify(config, null, 2);
initCharts();
poll().then((finished) => { if (!finished) schedule(); });
