// New-experiment form: shows the options (defaults and help) of the chosen architecture
// and method, read from the engine's registries, and a click on a row copies it into
// the matching JSON field.

const catalogue = JSON.parse(document.getElementById("catalogue").textContent);

function render(kind) {
  const name = document.getElementById(`id_${kind}`).value;
  const entry = catalogue[kind][name];
  document.getElementById(`${kind}-paper`).textContent = entry ? entry.paper : "";
  const table = document.getElementById(`${kind}-options`);
  const rows = (entry ? entry.options : []).map((o) =>
    `<tr data-name="${o.name}" data-default='${JSON.stringify(o.default)}' title="Click to add to the JSON field">` +
    `<td><code>${o.name}</code></td><td>${JSON.stringify(o.default)}</td><td class="muted">${o.help}</td></tr>`);
  table.innerHTML = rows.length ? `<tr><th>option</th><th>default</th><th></th></tr>${rows.join("")}`
    : `<tr><td class="muted">No options.</td></tr>`;
  for (const row of table.querySelectorAll("tr[data-name]")) {
    row.addEventListener("click", () => addOption(kind === "arch" ? "model_options" : "method_options", row));
  }
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
