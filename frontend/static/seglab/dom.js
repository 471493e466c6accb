// The one way pages build DOM from data. Class names, file names and run names are
// typed by users, so they must reach the page as text, never as markup: this helper
// sets attributes with setAttribute, turns strings into text nodes and never parses
// a string as HTML, so no page needs an HTML-parsing sink.

// el("td", { class: "muted", title: help }, "text", child, null) -> <td> with those
// attributes and children; null, undefined and false children are skipped, and an
// attribute whose value is null, undefined or false is left out. Attribute names come
// from code; a URL built from data (src, href) keeps a fixed same-origin prefix.
export function el(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}
