// Text for Plotly labels (tick labels, hover text, titles) from user data. Plotly reads
// those strings as its own small HTML (<b>, <i>, <br>, <a href>, <span style>) and then
// decodes entities in what is left, so a class name like "<b>x</b>" would be drawn bold
// and "<a href=...>" would become a link. Escaping the three characters that form tags
// and entities makes Plotly draw the name exactly as it was typed, as plain SVG text.
const ENTITIES = { "&": "&amp;", "<": "&lt;", ">": "&gt;" };

export function plotlyText(value) {
  return String(value).replace(/[&<>]/g, (character) => ENTITIES[character]);
}
