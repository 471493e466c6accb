// New-experiment form: shows the options (defaults and help) of the chosen architecture
// and method, read from the engine's registries, and a click on a row copies it into
// the matching JSON field.

import { el } from "./dom.js";

const catalogue = JSON.parse(document.getElementById("catalogue").textContent);

function render(kind) {
  const name = document.getElementById(`id_${kind}`).value;
  const entry = catalogue[kind][name];
  document.getElementById(`${kind}-paper`).textContent = entry ? entry.paper : "";
  const options = entry ? entry.options : [];
  const rows = options.map((o) => {
    const row = el("tr", { "data-name": o.name, title: "Click to add to the JSON field" },
      el("td", {}, el("code", {}, o.name)), el("td", {}, JSON.stringify(o.default)),
      el("td", { class: "muted" }, o.help));
    row.dataset.default = JSON.stringify(o.default);
    row.addEventListener("click", () => addOption(kind === "arch" ? "model_options" : "method_options", row));
    return row;
  });
  const header = el("tr", {}, el("th", {}, "option"), el("th", {}, "default"), el("th", {}));
  document.getElementById(`${kind}-options`).replaceChildren(el("tbody", {},
    rows.length ? [header, ...rows] : el("tr", {}, el("td", { class: "muted" }, "No options."))));
}

function addOption(fieldName, row) {
  const field = document.getElementById(`id_${fieldName}`);
  let values = {};
  try { values = JSON.parse(field.value || "{}"); } catch { /* the server reports malformed JSON */ }
  values[row.dataset.name] = JSON.parse(row.dataset.default);
  field.value = JSON.stringify(values);
}

for (const kind of ["arch", "method"]) {
  document.getElementById(`id_${kind}`).addEventListener("change", () => render(kind));
  render(kind);
}
