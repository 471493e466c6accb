// Overlay viewer and per-image scores of the experiment page, drawn in the browser from
// the stored masks (grey index PNGs: a pixel's value in every channel is its class, 255
// is ignored), so classes can be toggled and the opacity changed without new files.
//
// Four panels: the image, the ground truth and the prediction over it in the dataset's
// class colours, and an error map. Class 0 is the background; the error map colours a
// pixel that is not ignored as
//   correct      prediction equals the truth (background included),
//   wrong class  truth and prediction are different foreground classes,
//   missed       truth is a foreground class, the prediction background,
//   false alarm  truth is background, the prediction a foreground class.
// Ignored pixels are neither right nor wrong: the error map leaves them as the image.
// A class toggled off is drawn nowhere: not in the masks, and not in the error map when
// it is the pixel's truth or its prediction.
//
// Evaluations arrive from experiment_live.js's polling (a `seglab:evaluations` event), so
// the page polls once; a click on the confusion matrix arrives as a `seglab:confusion` event. Keys: ←/→ step through the samples; a slider steps through the
// evaluations. The per-image grid and the confusion list read the per-image scores API.

import { el } from "./dom.js";
import { fetchJson } from "./fetch_json.js";
import { IGNORE_INDEX, decode, maskColor as sharedMaskColor, paint as paintOver, rgb } from "./index_masks.js";

const root = document.getElementById("overlay-viewer");
const imagesUrl = (step) => `${root.dataset.evaluationsUrl}${step}/images/`;
const ERROR_KINDS = [
  { name: "correct", color: [22, 163, 74], help: "prediction equals the truth" },
  { name: "wrong class", color: [220, 38, 38], help: "both foreground, different classes" },
  { name: "missed", color: [245, 158, 11], help: "truth foreground, predicted background (class 0)" },
  { name: "false alarm", color: [147, 51, 234], help: "truth background (class 0), predicted foreground" },
];
const GRID_LIMIT = 48;
const CONFUSION_LIMIT = 20;

const evaluations = []; // ascending by step, each {step, class_names, predictions}
const enabled = new Set(); // classes drawn; all until toggled off
let classNames = [];
let stepIndex = 0;
let sampleIndex = 0;
let drawing = 0;

const $ = (id) => document.getElementById(id);

const palette = JSON.parse(document.getElementById("viewer-class-colors").textContent).map(rgb);

function formatScore(value) {
  return value === null || value === undefined ? "—" : (100 * value).toFixed(1);
}

function paint(canvas, image, colorOf) {
  paintOver(canvas, image, colorOf, Number($("viewer-opacity").value) / 100);
}

function maskColor(mask) {
  return sharedMaskColor(mask, palette, (label) => enabled.has(label));
}

function errorKind(truth, prediction) {
  if (truth === prediction) return ERROR_KINDS[0];
  if (truth !== 0 && prediction !== 0) return ERROR_KINDS[1];
  return truth !== 0 ? ERROR_KINDS[2] : ERROR_KINDS[3];
}

function errorColor(truth, prediction) {
  return (i) => {
    const t = truth.pixels[i];
    const p = prediction.pixels[i];
    if (t === IGNORE_INDEX || !enabled.has(t) || !enabled.has(p)) return null;
    return errorKind(t, p).color;
  };
}

function samples() {
  const evaluation = evaluations[stepIndex];
  return evaluation ? evaluation.predictions.filter((p) => p.prediction_url || p.overlay_url) : [];
}

async function draw() {
  const evaluation = evaluations[stepIndex];
  const list = samples();
  const sample = list[sampleIndex];
  $("viewer-step-label").textContent = evaluation ? `step ${evaluation.step}` : "";
  $("viewer-position").textContent = sample ? `sample ${sampleIndex + 1} of ${list.length}` : "";
  $("viewer-caption").textContent = sample ? sample.id : "No prediction samples yet.";
  $("viewer-legacy").hidden = !(sample && !sample.prediction_url);
  $("viewer-panels").hidden = !(sample && sample.prediction_url);
  if (!sample) return;
  if (!sample.prediction_url) {
    $("viewer-legacy").src = sample.overlay_url; // a run from before mask samples: its baked strip
    return;
  }
  const ticket = ++drawing;
  const [image, truth, prediction] = await Promise.all(
    [sample.image_url, sample.ground_truth_url, sample.prediction_url].map(decode));
  if (ticket !== drawing) return; // a newer sample was asked for meanwhile
  paint($("viewer-image"), image, null);
  paint($("viewer-truth"), image, maskColor(truth));
  paint($("viewer-prediction"), image, maskColor(prediction));
  paint($("viewer-errors"), image, errorColor(truth, prediction));
  root.dataset.shown = `${evaluation.step}:${sample.id}`;
}

function redraw() {
  draw().catch((error) => console.warn("drawing the sample failed", error));
}

function refreshGrid() {
  loadGrid().catch((error) => console.warn("image grid failed", error));
}

// Open image `id` at evaluation `step` in the viewer, or say why it cannot be shown.
function show(step, id) {
  const index = evaluations.findIndex((e) => e.step === step);
  if (index < 0) return;
  if (index !== stepIndex) {
    stepIndex = index;
    $("viewer-step").value = index;
    refreshGrid();
  }
  const found = samples().findIndex((p) => p.id === id);
  $("viewer-note").textContent = found >= 0 ? "" : `The prediction for ${id} is not stored at step ${step}: ` +
    "each step keeps its first validation images and its hardest ones.";
  sampleIndex = found >= 0 ? found : Math.min(sampleIndex, Math.max(samples().length - 1, 0));
  redraw();
  $("viewer-panels").scrollIntoView({ block: "nearest" });
}

function stepSample(delta) {
  const count = samples().length;
  if (!count) return;
  sampleIndex = (sampleIndex + delta + count) % count;
  $("viewer-note").textContent = "";
  redraw();
}

// One checkbox per class (both classes of a binary dataset), named by the evaluation's class names.
function buildToggles(names) {
  classNames = names;
  names.forEach((_, index) => enabled.add(index));
  $("viewer-class-toggles").replaceChildren(...names.map((name, index) => {
    const box = el("input", { type: "checkbox", checked: true, "data-class": index });
    box.addEventListener("change", () => {
      if (box.checked) enabled.add(index); else enabled.delete(index);
      redraw();
    });
    const [r, g, b] = palette[index] || [255, 255, 255];
    return el("label", { class: "toggle" }, box, el("span", { class: "swatch", style: `background: rgb(${r}, ${g}, ${b})` }),
      name);
  }));
}

function buildControls() {
  $("viewer-legend").replaceChildren(...ERROR_KINDS.map((kind) =>
    el("li", { title: kind.help }, el("span", { class: "swatch", style: `background: rgb(${kind.color.join(", ")})` }),
      `${kind.name}: ${kind.help}`)));
  $("viewer-opacity").addEventListener("input", redraw);
  $("viewer-step").addEventListener("input", () => {
    const id = (samples()[sampleIndex] || {}).id;
    stepIndex = Number($("viewer-step").value);
    const same = samples().findIndex((p) => p.id === id);
    sampleIndex = same >= 0 ? same : 0;
    $("viewer-note").textContent = "";
    redraw();
    refreshGrid();
  });
  $("viewer-prev").addEventListener("click", () => stepSample(-1));
  $("viewer-next").addEventListener("click", () => stepSample(1));
  document.addEventListener("keydown", (event) => {
    const target = event.target;
    const typing = target instanceof HTMLSelectElement || target instanceof HTMLTextAreaElement ||
      (target instanceof HTMLInputElement && target.type !== "checkbox");
    if (typing || event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.key === "ArrowRight") stepSample(1);
    else if (event.key === "ArrowLeft") stepSample(-1);
    else return;
    event.preventDefault();
  });
  $("image-order").addEventListener("change", refreshGrid);
}

function openButton(step, row, ...label) {
  const button = el("button", { type: "button", class: "link-button", "data-image-id": row.image_id }, ...label);
  button.addEventListener("click", () => show(step, row.image_id));
  return button;
}

async function loadGrid() {
  const evaluation = evaluations[stepIndex];
  if (!evaluation) return;
  const ordering = $("image-order").value;
  const body = await fetchJson(`${imagesUrl(evaluation.step)}?ordering=${encodeURIComponent(ordering)}&limit=${GRID_LIMIT}`);
  if (evaluations[stepIndex] !== evaluation || $("image-order").value !== ordering) return;
  $("image-grid-summary").textContent = `Step ${evaluation.step}: ${body.count} validation images` +
    (body.count > body.results.length ? `, the first ${body.results.length} shown` : "");
  $("image-grid").replaceChildren(...body.results.map((row) => el("figure", { class: "tile" },
    openButton(evaluation.step, row,
      row.image_url ? el("img", { src: row.image_url, alt: row.image_id }) : el("span", { class: "no-thumbnail" }, "no sample"),
      el("figcaption", {}, el("span", { class: "tile-id" }, row.image_id),
        el("span", { class: "tile-score" }, `mIoU ${formatScore(row.miou)}`))))));
}

async function listConfusion(step, trueClass, predictedClass) {
  const evaluation = evaluations.find((e) => e.step === step);
  const names = evaluation ? evaluation.class_names : [];
  const url = `${imagesUrl(step)}?true_class=${trueClass}&predicted_class=${predictedClass}&limit=${CONFUSION_LIMIT}`;
  const body = await fetchJson(url);
  const title = $("confusion-images-title");
  title.hidden = false;
  title.textContent = `Step ${step}: images with the most pixels of ${names[trueClass]} predicted as ` +
    `${names[predictedClass]} (${body.count})`;
  $("confusion-images").replaceChildren(...body.results.map((row) => el("li", {},
    openButton(step, row, row.image_id), ` ${row.confusion_pixels} pixels · mIoU ${formatScore(row.miou)}`)));
  title.scrollIntoView({ block: "nearest" });
}

// A click on the confusion matrix (experiment_results.js: a heatmap cell or a table cell)
// sends the step and the two classes.
document.addEventListener("seglab:confusion", (event) => {
  const { step, trueClass, predictedClass } = event.detail;
  if (trueClass === predictedClass) return;
  listConfusion(step, trueClass, predictedClass).catch((error) => console.warn("confusion list failed", error));
});

document.addEventListener("seglab:evaluations", (event) => {
  const atLatest = stepIndex === evaluations.length - 1 || !evaluations.length;
  for (const evaluation of event.detail) {
    const known = evaluations.findIndex((e) => e.step === evaluation.step);
    if (known >= 0) evaluations[known] = evaluation; else evaluations.push(evaluation);
  }
  evaluations.sort((a, b) => a.step - b.step);
  const names = evaluations[evaluations.length - 1].class_names;
  if (names.join("\n") !== classNames.join("\n")) buildToggles(names);
  $("viewer-step").max = Math.max(evaluations.length - 1, 0);
  root.hidden = !evaluations.length;
  if (atLatest) {
    stepIndex = evaluations.length - 1;
    $("viewer-step").value = stepIndex;
    sampleIndex = Math.min(sampleIndex, Math.max(samples().length - 1, 0));
    redraw();
    refreshGrid();
  }
});

buildControls();
