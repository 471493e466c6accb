// A sweep's plot (on the sweep page and its compare page): final mIoU against the label budget,
// one line per method (and architecture), with the seeds' standard deviation as error bars.
// Budgets are categories, smallest first.

const rows = JSON.parse(document.getElementById("sweep-plot").textContent);
const percent = (v) => (v === null ? null : 100 * v);

const traces = rows.map((row) => ({
  name: row.arch ? `${row.method} (${row.arch})` : row.method,
  x: row.budgets,
  y: row.mean.map(percent),
  error_y: { type: "data", array: row.sd.map((v) => (v === null ? 0 : 100 * v)), visible: true },
  customdata: row.n,
  hovertemplate: "%{y:.1f} %% (n=%{customdata})<extra>%{fullData.name}</extra>",
  mode: "lines+markers",
  connectgaps: false,
}));

Plotly.newPlot("budget-chart", traces, {
  title: { text: "Final mIoU vs label budget" },
  xaxis: { title: { text: "labelled images (budget)" }, type: "category" },
  yaxis: { title: { text: "mIoU (%)" }, rangemode: "tozero" },
  margin: { t: 40, r: 10 },
  legend: { orientation: "h" },
}, { displaylogo: false, responsive: true });
