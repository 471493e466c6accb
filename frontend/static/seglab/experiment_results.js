// The experiment page's results: the latest evaluation's summary, the per-class IoU table
// (sortable by class name or IoU, each header a button), and the confusion matrix as a
// Plotly heatmap: rows are the true classes, columns the predictions, each row in percent
// of that class's pixels (so a rare class that loses its pixels to another stands out as
// much as a common one), hover giving the pixel counts. Clicking an off-diagonal cell asks
// the overlay viewer (overlay_viewer.js) for the images behind that confusion, as a click
// on a cell of the table below the heatmap does.
//
// Class names are user data: in the DOM they are text (dom.js `el`), in Plotly's labels
// they pass through plotlyText, which keeps Plotly from reading them as markup.

import { el } from "./dom.js";
import { plotlyText } from "./plotly_text.js";

// The table's order: null keeps the classes' own order; otherwise a column and its direction.
const sort = { key: null, descending: false };
const COMPARE = {
  name: (a, b) => a.name.localeCompare(b.name),
  iou: (a, b) => a.iou - b.iou,
};
let latest = null;
// White for no pixels to deep blue for all of the row's, as the table below shades its cells.
const SHARE_COLORS = [[0, "#ffffff"], [1, "#1d4ed8"]];

// Scores in percent with one decimal, as the papers and every SegLab page show them.
export function formatScore(value) {
  return value === null || value === undefined ? "—" : (100 * value).toFixed(1);
}

function rowsOf(evaluation) {
  const rows = evaluation.class_names.map((name, index) => ({ index, name, iou: evaluation.iou[index] }));
  if (!sort.key) return rows;
  const direction = sort.descending ? -1 : 1;
  const missing = (row) => sort.key === "iou" && (row.iou === null || row.iou === undefined);
  // A class with no IoU (absent from truth and prediction) goes last in either direction.
  return rows.sort((a, b) => (missing(a) - missing(b)) ||
    (missing(a) ? 0 : direction * COMPARE[sort.key](a, b)) || a.index - b.index);
}

function fillRows(table, evaluation) {
  table.tBodies[0].replaceChildren(...rowsOf(evaluation).map((row) =>
    el("tr", { "data-class": row.index }, el("td", {}, row.name), el("td", {}, formatScore(row.iou)))));
  for (const header of table.tHead.rows[0].cells) {
    const key = header.dataset.sortKey;
    header.setAttribute("aria-sort", sort.key === key ? (sort.descending ? "descending" : "ascending") : "none");
  }
}

function classTable(evaluation) {
  const header = (key, label) => {
    const button = el("button", { type: "button", class: "sort", title: `Sort by ${label.toLowerCase()}` }, label);
    button.addEventListener("click", () => {
      sort.descending = sort.key === key ? !sort.descending : false;
      sort.key = key;
      fillRows(table, latest);
    });
    return el("th", { "data-sort-key": key, scope: "col" }, button);
  };
  const table = el("table", { class: "table compact sortable", id: "class-iou" },
    el("thead", {}, el("tr", {}, header("name", "Class"), header("iou", "IoU"))), el("tbody"));
  fillRows(table, evaluation);
  return table;
}

function rowShares(confusion) {
  return confusion.map((counts) => {
    const total = counts.reduce((sum, count) => sum + count, 0);
    return counts.map((count) => (total ? count / total : null));
  });
}

// Ask the overlay viewer for the images where `trueClass` is predicted as `predictedClass`.
function openConfusion(step, trueClass, predictedClass) {
  document.dispatchEvent(new CustomEvent("seglab:confusion", { detail: { step, trueClass, predictedClass } }));
}

function drawHeatmap(evaluation) {
  const element = document.getElementById("confusion-heatmap");
  const names = evaluation.class_names.map(plotlyText);
  const indices = names.map((_, index) => index);
  const shares = rowShares(evaluation.confusion_matrix);
  const percent = shares.map((row) => row.map((share) => (share === null ? null : 100 * share)));
  const hover = evaluation.confusion_matrix.map((counts, i) => counts.map((count, j) =>
    `truth: ${names[i]}<br>predicted: ${names[j]}<br>${count.toLocaleString("en")} pixels` +
    (shares[i][j] === null ? "" : ` · ${(100 * shares[i][j]).toFixed(1)} % of the truth's pixels`)));
  const axis = (title) => ({ title: { text: title }, tickvals: indices, ticktext: names, automargin: true,
                            showgrid: false, zeroline: false });
  element.hidden = false;
  Plotly.react(element, [{
    type: "heatmap", x: indices, y: indices, z: percent, text: hover, hovertemplate: "%{text}<extra></extra>",
    zmin: 0, zmax: 100, colorscale: SHARE_COLORS, xgap: 1, ygap: 1,
    colorbar: { title: { text: "% of row" }, ticksuffix: " %" },
  }], {
    title: { text: `Confusion matrix at step ${evaluation.step} (each true class's row sums to 100 %)`, font: { size: 14 } },
    margin: { t: 40, r: 10, b: 40, l: 40 },
    xaxis: { ...axis("prediction"), side: "bottom" },
    yaxis: { ...axis("truth"), autorange: "reversed" },
  }, { responsive: true, displaylogo: false });
  if (!element.dataset.listening) {
    element.dataset.listening = "true";
    element.on("plotly_click", (event) => {
      const point = event.points[0];
      const [trueClass, predictedClass] = [point.y, point.x];
      const count = latest.confusion_matrix[trueClass][predictedClass];
      if (trueClass !== predictedClass && count > 0) openConfusion(latest.step, trueClass, predictedClass);
    });
  }
}

// The same matrix as a table (keyboard and screen-reader users, and exact numbers); its
// cells carry their classes and step, and a click on one lists that confusion's images.
function confusionTable(evaluation) {
  const names = evaluation.class_names;
  const shares = rowShares(evaluation.confusion_matrix);
  const head = el("tr", {}, el("th", {}, "truth \\ prediction"), names.map((name) => el("th", {}, name)));
  const rows = evaluation.confusion_matrix.map((counts, i) =>
    el("tr", {}, el("th", {}, names[i]), counts.map((count, j) => {
      const share = shares[i][j];
      const clickable = i !== j && count > 0;
      const cell = el("td", { style: `background: rgba(37, 99, 235, ${(share || 0).toFixed(3)})`, "data-step": evaluation.step,
                              "data-true-class": i, "data-predicted-class": j, class: clickable ? "clickable" : null,
                              title: clickable ? `images where ${names[i]} is predicted as ${names[j]}` : null },
                      share === null ? "—" : (100 * share).toFixed(1));
      if (clickable) cell.addEventListener("click", () => openConfusion(evaluation.step, i, j));
      return cell;
    })));
  return el("details", { id: "confusion", open: true }, el("summary", {}, "Confusion matrix as a table (% of each true class's pixels)"),
    el("table", { class: "table compact confusion" }, el("thead", {}, head), el("tbody", {}, rows)));
}

export function showEvaluation(evaluation) {
  latest = evaluation;
  const throughput = evaluation.throughput ? `, ${evaluation.throughput.toFixed(1)} images/s` : "";
  document.getElementById("evaluation").replaceChildren(el("p", {}, `Step ${evaluation.step}: `,
    el("strong", {}, `mIoU ${formatScore(evaluation.miou)}`),
    `, pixel accuracy ${formatScore(evaluation.pixel_accuracy)}${throughput}`));
  document.getElementById("class-iou-panel").replaceChildren(classTable(evaluation));
  const shown = document.getElementById("confusion");
  const table = confusionTable(evaluation);
  table.open = shown ? shown.open : true; // a reader who folded the table keeps it folded
  document.getElementById("confusion-panel").replaceChildren(table);
  drawHeatmap(evaluation);
}
