// Generalisation section of the experiment page: asks for an evaluation of the run's best
// checkpoint on another dataset (POST .../transfer-evaluations/), shows the refusal next to
// the select (the API names the field: the classes that differ are listed), and lists the
// evaluations: in-domain against cross-domain mIoU and per-class IoU side by side (one row
// per class), and the other dataset's samples as image | truth | prediction canvases coloured
// with that dataset's class colours, from the grey index PNGs the worker stores (a pixel's
// value in every channel is its class, 255 is ignored). Polls while one is queued or running.

import { el } from "./dom.js";
import { fetchJson } from "./fetch_json.js";
import { decode, maskColor, paint, rgb } from "./index_masks.js";

const root = document.getElementById("transfer-evaluations");
const url = root.dataset.url;
const form = document.getElementById("transfer-form");
const list = document.getElementById("transfer-list");
const MASK_ALPHA = 0.5;
const POLL_VISIBLE_MS = 1500;
const POLL_HIDDEN_MS = 10000;
let timer = null;

function percent(value) {
  return value === null || value === undefined ? "—" : (100 * value).toFixed(1);
}

function difference(cross, own) {
  if (cross === null || cross === undefined || own === null || own === undefined) return "—";
  const points = 100 * (cross - own);
  return `${points >= 0 ? "+" : ""}${points.toFixed(1)}`;
}

function sampleFigure(sample, palette) {
  const canvases = ["image", "ground truth", "prediction"].map((kind) =>
    el("figure", {}, el("canvas", { "data-kind": kind }), el("figcaption", {}, kind)));
  const figure = el("div", { class: "transfer-sample", "data-sample": sample.id },
    el("p", {}, el("strong", {}, sample.id)), el("div", { class: "transfer-panels" }, canvases));
  Promise.all([sample.image_url, sample.ground_truth_url, sample.prediction_url].map(decode))
    .then(([image, truth, prediction]) => {
      const [imageCanvas, truthCanvas, predictionCanvas] = figure.querySelectorAll("canvas");
      paint(imageCanvas, image, null, MASK_ALPHA);
      paint(truthCanvas, image, maskColor(truth, palette), MASK_ALPHA);
      paint(predictionCanvas, image, maskColor(prediction, palette), MASK_ALPHA);
      figure.dataset.drawn = "true";
    })
    .catch((error) => console.warn("drawing a transfer sample failed", error));
  return figure;
}

function scoresTable(evaluation) {
  const rows = evaluation.class_names.map((name, index) => {
    const own = evaluation.in_domain_iou[index];
    const cross = evaluation.iou[index];
    return el("tr", {}, el("td", {}, name), el("td", { class: "num" }, percent(own)),
      el("td", { class: "num" }, percent(cross)), el("td", { class: "num" }, difference(cross, own)));
  });
  return el("table", { class: "table compact transfer-scores" },
    el("thead", {}, el("tr", {}, el("th", {}, "class"), el("th", { class: "num" }, "in-domain IoU"),
      el("th", { class: "num" }, `on ${evaluation.dataset_name}`), el("th", { class: "num" }, "change"))),
    el("tbody", {}, rows),
    el("tfoot", {}, el("tr", { class: "transfer-miou" }, el("th", {}, "mIoU"),
      el("th", { class: "num" }, percent(evaluation.in_domain_miou)), el("th", { class: "num" }, percent(evaluation.miou)),
      el("th", { class: "num" }, difference(evaluation.miou, evaluation.in_domain_miou)))));
}

function evaluationCard(evaluation) {
  const facts = [evaluation.status, evaluation.step !== null ? `checkpoint of step ${evaluation.step}` : null,
    evaluation.num_images !== null ? `${evaluation.num_images} images` : null,
    evaluation.requested_by ? `asked by ${evaluation.requested_by}` : null].filter(Boolean).join(" · ");
  const card = el("article", { class: "transfer-evaluation", "data-status": evaluation.status, "data-id": evaluation.id },
    el("h3", {}, `On ${evaluation.dataset_name}`, " ",
      el("span", { class: `status status-${evaluation.status}` }, evaluation.status)),
    el("p", { class: "muted" }, facts));
  if (form) {
    const remove = el("button", { type: "button", class: "button small transfer-delete",
      title: "Delete this evaluation and its sample pictures" }, "Delete");
    remove.addEventListener("click", () => deleteEvaluation(evaluation, remove).catch((error) => showError(String(error))));
    card.querySelector("h3").append(" ", remove);
  }
  if (evaluation.error) card.append(el("div", { class: "error-box" }, evaluation.error));
  if (evaluation.status === "succeeded") {
    const palette = evaluation.class_colors.map(rgb);
    card.append(scoresTable(evaluation),
      el("div", { class: "transfer-samples" }, evaluation.predictions.map((sample) => sampleFigure(sample, palette))));
  }
  return card;
}

function render(evaluations) {
  const shown = new Map([...list.querySelectorAll(".transfer-evaluation")].map((card) => [card.dataset.id, card]));
  if (!evaluations.length) {
    list.replaceChildren(el("p", { class: "muted" }, "No evaluation on another dataset yet."));
    return;
  }
  const cards = evaluations.map((evaluation) => {
    const old = shown.get(String(evaluation.id));
    // A finished card does not change: keep it (and its drawn canvases).
    return old && old.dataset.status === evaluation.status ? old : evaluationCard(evaluation);
  });
  list.replaceChildren(...cards);
}

async function refresh() {
  const body = await fetchJson(url);
  render(body.transfer_evaluations);
  const waiting = body.transfer_evaluations.some((e) => e.status === "queued" || e.status === "running");
  clearTimeout(timer);
  if (waiting) timer = setTimeout(poll, document.hidden ? POLL_HIDDEN_MS : POLL_VISIBLE_MS);
}

function poll() {
  refresh().catch((error) => console.warn(error));
}

async function deleteEvaluation(evaluation, button) {
  if (!window.confirm(`Delete the evaluation on ${evaluation.dataset_name} and its sample pictures?`)) return;
  button.disabled = true;
  const response = await fetch(evaluation.url, {
    method: "DELETE",
    headers: { Accept: "application/json", "X-CSRFToken": form.elements.namedItem("csrfmiddlewaretoken").value },
  });
  if (response.status !== 204) {
    const body = await response.json().catch(() => ({}));
    button.disabled = false;
    throw new Error(body.error || `HTTP ${response.status}`);
  }
  await refresh();
}

function showError(message) {
  const box = form.querySelector(".field");
  box.classList.add("has-error");
  box.append(el("p", { class: "error", id: "transfer-error" }, message));
}

async function submit(event) {
  event.preventDefault();
  for (const node of form.querySelectorAll(".error")) node.remove();
  form.querySelector(".field").classList.remove("has-error");
  const button = document.getElementById("transfer-submit");
  button.disabled = true;
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json",
        "X-CSRFToken": form.elements.namedItem("csrfmiddlewaretoken").value },
      body: JSON.stringify({ dataset: Number(form.elements.namedItem("dataset").value) }),
    });
    const body = await response.json().catch(() => ({}));
    if (response.status === 201) {
      await refresh();
    } else {
      const fields = body.fields || {};
      showError(fields.dataset || fields.status || fields.checkpoint || body.error || `HTTP ${response.status}`);
    }
  } finally {
    button.disabled = false;
  }
}

if (form) form.addEventListener("submit", (event) => submit(event).catch((error) => showError(String(error))));
document.addEventListener("visibilitychange", () => { if (!document.hidden && timer) poll(); });
poll();
