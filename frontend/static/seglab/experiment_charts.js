// The experiment page's curves. A long run is loaded as the API's downsampled series
// (each bucket's lowest and highest point, about two points per pixel of the chart), and
// live points are appended one by one after it. Zooming in (a Plotly relayout of the x
// axis) fetches the visible steps again at full resolution and draws those instead; a
// reset (autorange, a double click) goes back to the overview with the live tail.

import { fetchJson } from "./fetch_json.js";

const OVERVIEW_POINTS_PER_PIXEL = 2;
const MIN_CHART_PIXELS = 300;
// The API's most points per name and call: a range of up to half as many steps comes back whole.
const FULL_RESOLUTION_POINTS = 5000;
const ZOOM_DEBOUNCE_MS = 250;

// Each metric name goes to the first chart that accepts it; the rest are not drawn.
const CHARTS = [
  { el: "loss-chart", title: "Training losses", accepts: (n) => n.startsWith("loss") },
  { el: "miou-chart", title: "Validation mIoU", accepts: (n) => n === "val_miou", range: [0, 1] },
  { el: "pseudo-chart", title: "Pseudo-labels on the unlabelled pool", accepts: (n) => n.startsWith("pseudo_label_"),
    range: [0, 1], hideEmpty: true },
  { el: "system-chart", title: "System (CPU %, RAM MiB, GPU, images/s)", accepts: (n) => n.startsWith("system/"),
    hideEmpty: true },
  { el: "lr-chart", title: "Learning rate", accepts: (n) => n === "lr" || n.startsWith("lr/"), hideEmpty: true },
].map((spec) => ({ ...spec, names: [], series: new Map(), view: null, ticket: 0, timer: null }));

function trace(name, steps, values) {
  return { name, x: steps.slice(), y: values.slice(), mode: "lines+markers", marker: { size: 3 } };
}

// The steps a relayout shows: [from, to], null for autorange, undefined if the x axis did not change.
function shownSteps(element, update) {
  if (update["xaxis.autorange"]) return null;
  if (!("xaxis.range" in update || "xaxis.range[0]" in update || "xaxis.range[1]" in update)) return undefined;
  const [low, high] = element.layout.xaxis.range;
  return [Math.max(0, Math.ceil(low)), Math.floor(high)];
}

export class MetricCharts {
  constructor(metricsUrl) {
    this.metricsUrl = metricsUrl;
    for (const chart of CHARTS) {
      const element = document.getElementById(chart.el);
      element.hidden = Boolean(chart.hideEmpty);
      Plotly.newPlot(element, [], {
        title: { text: chart.title, font: { size: 14 } },
        margin: { t: 40, r: 10, b: 90, l: 50 },
        xaxis: { title: { text: "iteration" } },
        yaxis: chart.range ? { range: chart.range } : {},
        legend: { orientation: "h", y: -0.35 },
      }, { responsive: true, displaylogo: false });
      element.on("plotly_relayout", (update) => this.relayout(chart, update));
    }
  }

  // The downsampled series of every name, sized to the widest chart; returns the last step it holds.
  async loadOverview() {
    const pixels = Math.max(MIN_CHART_PIXELS, ...CHARTS.map((chart) => document.getElementById(chart.el).clientWidth));
    const maxPoints = Math.min(FULL_RESOLUTION_POINTS, OVERVIEW_POINTS_PER_PIXEL * pixels);
    const body = await fetchJson(`${this.metricsUrl}?max_points=${maxPoints}`);
    this.append(body.metrics);
    return body.last_step;
  }

  // Live points ({name: {steps, values}}, after the last step seen) at the end of their curves.
  append(metrics) {
    for (const [name, points] of Object.entries(metrics)) {
      const chart = CHARTS.find((c) => c.accepts(name));
      if (chart) this.extend(chart, name, points);
    }
  }

  extend(chart, name, points) {
    const element = document.getElementById(chart.el);
    if (element.hidden) {
      element.hidden = false;
      Plotly.Plots.resize(element);
    }
    let series = chart.series.get(name);
    if (!series) {
      series = { steps: [], values: [] };
      chart.series.set(name, series);
      chart.names.push(name);
      Plotly.addTraces(element, trace(name, chart.view ? [] : points.steps, chart.view ? [] : points.values));
    } else if (!chart.view) {
      Plotly.extendTraces(element, { x: [points.steps.slice()], y: [points.values.slice()] }, [chart.names.indexOf(name)]);
    }
    series.steps.push(...points.steps);
    series.values.push(...points.values);
  }

  relayout(chart, update) {
    const element = document.getElementById(chart.el);
    const steps = shownSteps(element, update);
    if (steps === undefined) return;
    clearTimeout(chart.timer);
    chart.timer = setTimeout(() => {
      this.show(chart, steps).catch((error) => console.warn("loading the zoomed range failed", error));
    }, ZOOM_DEBOUNCE_MS);
  }

  // Draw steps [from, to] at full resolution, or the overview again (null).
  async show(chart, steps) {
    const ticket = ++chart.ticket;
    const element = document.getElementById(chart.el);
    if (!chart.names.length) return;
    let shown = Object.fromEntries(chart.series);
    if (steps) {
      const [from, to] = steps;
      if (to < from) return;
      const names = encodeURIComponent(chart.names.join(","));
      const url = `${this.metricsUrl}?names=${names}&from_step=${from}&to_step=${to}&max_points=${FULL_RESOLUTION_POINTS}`;
      shown = (await fetchJson(url)).metrics;
      if (ticket !== chart.ticket) return; // the user moved on meanwhile
    }
    chart.view = steps;
    const empty = { steps: [], values: [] };
    const series = chart.names.map((name) => shown[name] || empty);
    Plotly.restyle(element, { x: series.map((s) => s.steps.slice()), y: series.map((s) => s.values.slice()) },
      chart.names.map((_, index) => index));
    element.dataset.view = steps ? steps.join("-") : "overview";
  }
}
