// The throughput chart: one SVG line per series over the last `seconds`, drawn from
// the points of GET /api/v1/throughput ({at, accepted, delivered, failed}).
//
// The x axis ends at the newest point's time (the server's clock, not the browser's);
// the y axis goes from 0 to a round number above the highest value shown. Where points
// are missing (the server sampled nothing while nobody watched) the line breaks.

import { svg } from "./dom.js";

export const SERIES = ["accepted", "delivered", "failed"];

const WIDTH = 1000;
const HEIGHT = 240;
const MARGIN = { left: 48, right: 12, top: 12, bottom: 26 };
const PLOT_W = WIDTH - MARGIN.left - MARGIN.right;
const PLOT_H = HEIGHT - MARGIN.top - MARGIN.bottom;

// 0 < value -> the smallest of 1, 2, 5 x 10^k at or above it (at least 1).
export function roundUp(value) {
  if (!(value > 1)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) {
    if (step * power >= value) return step * power;
  }
  return 10 * power;
}

// `interval`: the seconds between two points when none is missing.
export function drawChart(node, points, seconds, interval = 1) {
  const end = points.length ? points[points.length - 1].at : Date.now() / 1000;
  const top = roundUp(Math.max(0, ...points.flatMap((p) => SERIES.map((s) => p[s]))));
  const x = (at) => MARGIN.left + PLOT_W * (1 - (end - at) / seconds);
  const y = (value) => MARGIN.top + PLOT_H * (1 - value / top);
  node.setAttribute("viewBox", `0 0 ${WIDTH} ${HEIGHT}`);
  node.dataset.top = String(top);
  node.replaceChildren(...grid(top, y), ...timeAxis(seconds),
    ...SERIES.map((name) => line(name, runs(points, interval), x, y)));
}

// The points cut where one is more than 2.5 intervals after the previous one.
function runs(points, interval) {
  const found = [];
  for (const point of points) {
    const last = found.at(-1);
    if (last && point.at - last.at(-1).at <= 2.5 * interval) {
      last.push(point);
    } else {
      found.push([point]);
    }
  }
  return found;
}

function grid(top, y) {
  const nodes = [];
  for (const value of [0, top / 2, top]) {
    nodes.push(svg("line", { class: "grid", x1: MARGIN.left, x2: WIDTH - MARGIN.right,
      y1: y(value), y2: y(value) }));
    nodes.push(svg("text", { class: "tick", x: MARGIN.left - 6, y: y(value) + 4,
      "text-anchor": "end" }, String(value)));
  }
  return nodes;
}

function timeAxis(seconds) {
  const base = HEIGHT - 6;
  return [
    svg("text", { class: "tick", x: MARGIN.left, y: base }, `−${seconds} s`),
    svg("text", { class: "tick", x: MARGIN.left + PLOT_W / 2, y: base,
      "text-anchor": "middle" }, `−${seconds / 2} s`),
    svg("text", { class: "tick", x: WIDTH - MARGIN.right, y: base,
      "text-anchor": "end" }, "now"),
  ];
}

// One path per series: a move to the first point of each run, then lines.
function line(name, pieces, x, y) {
  const at = (p) => `${x(p.at).toFixed(1)},${y(p[name]).toFixed(1)}`;
  const path = pieces.map((run) => `M${run.map(at).join(" L")}`).join(" ");
  const peak = Math.max(0, ...pieces.flat().map((p) => p[name]));
  return svg("path", { class: `series series-${name}`, "data-series": name,
    "data-peak": String(peak), d: path || "M0,0" });
}
