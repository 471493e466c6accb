// New-experiment form: shows the option fields of the chosen architecture and method (for a
// sweep, of every ticked method and architecture), the sweep's settings only in sweep mode,
// and how many runs the sweep queues. A hidden field is disabled too, so the browser neither
// checks nor sends it; the server reads only the chosen mode's and entries' fields either way.

import { el } from "./dom.js";

const form = document.getElementById("experiment-form");
// The single-run fields that a sweep's grid sets instead.
const SET_BY_THE_GRID = ["name", "method", "labeled", "seed"];

const ticked = (name) => [...form.querySelectorAll(`input[name="${name}"]:checked`)].map((input) => input.value);
const items = (id) => document.getElementById(id).value.split(/[,\s]+/).filter(Boolean);
const fieldOf = (name) => document.getElementById(`id_${name}`).closest(".field");
const plural = (count, word) => `${count} ${word}${count === 1 ? "" : "s"}`;

function isSweep() {
  const mode = form.querySelector('input[name="mode"]:checked');
  return mode !== null && mode.value === "sweep";
}

function setShown(element, shown) {
  element.hidden = !shown;
  if (element instanceof HTMLFieldSetElement) element.disabled = !shown;
  else for (const control of element.querySelectorAll("input, select, textarea")) control.disabled = !shown;
}

function entriesInUse(kind) {
  const chosen = document.getElementById(`id_${kind}`).value;
  if (!isSweep()) return [chosen];
  const entries = ticked(`sweep_${kind}s`);
  return kind === "method" || entries.length > 0 ? entries : [chosen];
}

function sweepSize() {
  const methods = ticked("sweep_methods").length;
  const budgets = ticked("sweep_budgets").length + items("id_sweep_counts").length;
  const seeds = items("id_sweep_seeds").length;
  const archs = ticked("sweep_archs").length;
  const runs = methods * budgets * seeds * Math.max(1, archs);
  const axes = [plural(methods, "method"), plural(budgets, "label budget"), plural(seeds, "seed")];
  if (archs > 0) axes.push(plural(archs, "architecture"));
  return [el("strong", {}, `${plural(runs, "run")}`), `: ${axes.join(" × ")}`];
}

function update() {
  const sweep = isSweep();
  setShown(document.getElementById("sweep-settings"), sweep);
  for (const name of SET_BY_THE_GRID) setShown(fieldOf(name), !sweep);
  setShown(fieldOf("arch"), !(sweep && ticked("sweep_archs").length > 0));
  for (const kind of ["arch", "method"]) {
    const inUse = new Set(entriesInUse(kind));
    for (const group of form.querySelectorAll(`fieldset.option-group[data-kind="${kind}"]`)) {
      setShown(group, inUse.has(group.dataset.entry));
    }
  }
  document.getElementById("several-archs").hidden = !(sweep && ticked("sweep_archs").length > 1);
  document.getElementById("sweep-size").replaceChildren(...(sweep ? sweepSize() : []));
}

form.addEventListener("change", update);
form.addEventListener("input", update);
update();
