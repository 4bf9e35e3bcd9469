// Building the page's elements. Data only ever enters the DOM as text (textContent,
// text nodes) or as attribute values set one by one: message fields, sender ids and
// system_ids are chosen by customers, and none of them is parsed as HTML here.

const SVG = "http://www.w3.org/2000/svg";

// el("td", {className: "num", dataset: {id: 3}, onclick: f}, "text", childNode, ...)
export function el(tag, props = {}, ...children) {
  return build(document.createElement(tag), props, children);
}

export function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) {
    node.setAttribute(name, String(value));
  }
  return build(node, {}, children);
}

const MARKUP = new Set(["innerHTML", "outerHTML"]);

function build(node, props, children) {
  for (const [name, value] of Object.entries(props)) {
    if (MARKUP.has(name)) {
      throw new Error(`el(): ${name} is not allowed; pass text or nodes`);
    } else if (name === "dataset") {
      Object.assign(node.dataset, value);
    } else if (name.startsWith("on")) {
      node.addEventListener(name.slice(2), value);
    } else {
      node[name] = value; // properties only: className, type, disabled, title...
    }
  }
  for (const child of children) {
    if (child !== null && child !== undefined) {
      node.append(child instanceof Node ? child : String(child));
    }
  }
  return node;
}

// A row of cells; a cell is text, a Node, null (empty), or a ready <td> (num()).
export function row(cells, props = {}) {
  return el("tr", props, ...cells.map((cell) =>
    (cell instanceof HTMLTableCellElement ? cell : el("td", {}, cell))));
}

// A right-aligned cell for a figure.
export function num(text) {
  return el("td", { className: "num" }, text);
}

// Replace a table body's rows, or show `empty` in one row across the table.
export function fillRows(tbody, rows, empty = "none") {
  if (rows.length) {
    tbody.replaceChildren(...rows);
    return;
  }
  const columns = tbody.closest("table").querySelectorAll("thead th").length || 1;
  tbody.replaceChildren(el("tr", { className: "empty" },
    el("td", { colSpan: columns }, empty)));
}

export function byId(id) {
  return document.getElementById(id);
}

// Epoch seconds -> "2026-12-01 02:54:12" (with `ms`: "02:54:12.345") in the browser's
// time zone.
export function formatTime(epoch, ms = false) {
  if (epoch === null || epoch === undefined) return "";
  const d = new Date(epoch * 1000);
  const pad = (n, width = 2) => String(n).padStart(width, "0");
  const fraction = ms ? `.${pad(d.getMilliseconds(), 3)}` : "";
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}${fraction}`;
}

// 0.3 -> "0.3", 1234.5 -> "1,235": rates and counts at a glance.
export function formatNumber(value) {
  const n = Number(value);
  return n < 10 ? String(Math.round(n * 10) / 10) : Math.round(n).toLocaleString("en");
}
