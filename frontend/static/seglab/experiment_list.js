// Experiments list: rows that are queued or running refresh every few seconds from the API
// (one request for the visible rows), so progress, ETA, status and best mIoU stay live.

const api = JSON.parse(document.getElementById("experiments-api").textContent);
const REFRESH_MS = 3000;
const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
const LABELS = { queued: "Queued", running: "Running", succeeded: "Succeeded", failed: "Failed", cancelled: "Cancelled" };

const live = () => [...document.querySelectorAll("#experiments tr[data-id]")].filter((row) => !FINISHED.has(row.dataset.status));

function show(row, run) {
  const field = (name) => row.querySelector(`[data-field="${name}"]`);
  row.dataset.status = run.status;
  field("status").textContent = LABELS[run.status] || run.status;
  field("status").className = `status status-${run.status}`;
  field("progress").value = run.progress;
  field("eta").textContent = run.eta_seconds === null ? "" : `${Math.round(run.eta_seconds)} s left`;
  field("best_miou").textContent = run.best_miou === null ? "—" : (100 * run.best_miou).toFixed(1);
  if (run.status !== "queued" && field("position")) field("position").parentElement.querySelectorAll("[data-field=position], form").forEach((node) => node.remove());
}

async function refresh() {
  const rows = live();
  if (!rows.length) return;
  const ids = rows.map((row) => row.dataset.id).join(",");
  try {
    const response = await fetch(`${api}?ids=${ids}&limit=${rows.length}`, { headers: { Accept: "application/json" } });
    if (!response.ok) return;
    const byId = new Map((await response.json()).results.map((run) => [String(run.id), run]));
    for (const row of rows) if (byId.has(row.dataset.id)) show(row, byId.get(row.dataset.id));
  } finally {
    if (live().length) setTimeout(refresh, REFRESH_MS);
  }
}

if (live().length) setTimeout(refresh, REFRESH_MS);
