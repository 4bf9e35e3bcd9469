// One function per panel: API answer in, table rows out. Every value goes in as text
// (dom.js); nothing here fetches.

import { byId, el, fillRows, formatNumber, formatTime, num, row } from "./dom.js";

export function showRates(point) {
  for (const name of ["accepted", "delivered", "failed"]) {
    byId(`rate-${name}`).textContent = formatNumber(point ? point[name] : 0);
  }
}

export function showStatuses(stats) {
  const order = Object.entries(stats.totals).sort((a, b) => b[1] - a[1]);
  fillRows(byId("statuses"), order.map(([status, count]) =>
    row([el("span", { className: `status status-${status}` }, status),
      num(formatNumber(count))], { dataset: { status } })), "no messages in the window");
}

export function showNodes(nodes) {
  fillRows(byId("nodes"), nodes.map((n) => row([n.id,
    el("span", { className: `state state-${n.state}` }, n.state), n.address,
    formatTime(n.started_at), `${formatNumber(n.silent_for)} s ago`,
    num(String(n.smpp_sessions)), num(String(n.upstream_binds)),
    num(formatNumber(n.messages_per_second)), num(formatNumber(n.delivered_per_second)),
    num(formatNumber(n.failed_per_second))], { dataset: { node: n.id } })));
}

export function showAccounts(accounts) {
  fillRows(byId("accounts"), accounts.map((a) => row([a.system_id, num(a.balance),
    num(a.credit_limit), num(a.tps ? String(a.tps) : "∞"), a.enabled ? "yes" : "no"],
  { dataset: { account: a.system_id } })), "no accounts");
}

export function showConnectors(connectors) {
  fillRows(byId("connectors"), connectors.map((c) => row([c.name, c.type,
    el("span", { className: `state state-${connectorState(c)}` }, connectorState(c)),
    nodeStates(c.states), c.summary], { dataset: { connector: c.name } })),
  "no connectors");
}

// up: some node has it available; down: running nowhere usable; disabled by the operator.
function connectorState(c) {
  if (!c.enabled) return "disabled";
  return c.states.some((s) => s.state.available) ? "up" : "down";
}

const STATE_FIGURES = [
  ["binds", (s) => s.binds_wanted !== undefined && `${s.binds_up}/${s.binds_wanted}`],
  ["window", (s) => s.window !== undefined && `${s.window_in_use}/${s.window}`],
  ["queued", (s) => s.queued],
  ["pending", (s) => s.pending],
  ["sent", (s) => s.sent],
  ["sent/s", (s) => s.sent_per_second !== undefined && formatNumber(s.sent_per_second)],
  ["errors", (s) => s.errors],
  ["last error", (s) => s.last_error],
];

function nodeStates(states) {
  return el("ul", { className: "figures" }, ...states.map((s) => el("li", {},
    el("strong", {}, s.node), " ", STATE_FIGURES
      .map(([label, read]) => [label, read(s.state)])
      .filter(([, value]) => value !== undefined && value !== false && value !== "")
      .map(([label, value]) => `${label} ${value}`).join(", "))));
}

export function showSessions(sessions, kick) {
  fillRows(byId("sessions"), sessions.map((s) => row([s.node, s.session, s.account,
    s.kind, formatTime(s.bound_at),
    el("button", { type: "button", className: "kick", disabled: s.kick_requested,
      onclick: () => kick(s) }, s.kick_requested ? "kicking…" : "Kick")],
  { dataset: { session: s.session, account: s.account, kind: s.kind } })),
  "no bound sessions");
}

export function messageRows(messages, open) {
  return messages.map((m) => row([
    el("button", { type: "button", className: "link", onclick: () => open(m.id) },
      String(m.id)),
    formatTime(m.created_at), m.account || "", m.source_addr, m.dest_addr,
    el("span", { className: `status status-${m.status}` }, m.status),
    num(String(m.parts)), num(m.price)], { dataset: { message: String(m.id) } }));
}

const MESSAGE_FIELDS = [
  ["id", (m) => String(m.id)], ["account", (m) => m.account || ""],
  ["from", (m) => m.source_addr], ["to", (m) => m.dest_addr],
  ["status", (m) => m.status], ["error code", (m) => String(m.error_code)],
  ["parts", (m) => String(m.parts)], ["price", (m) => m.price],
  ["connector", (m) => m.connector], ["upstream id", (m) => m.upstream_id],
  ["channel", (m) => m.channel], ["node", (m) => m.node],
  ["receipt asked", (m) => (m.registered_delivery ? "yes" : "no")],
];

export function showTimeline(t) {
  byId("timeline-title").textContent = `Message ${t.message.id}`;
  byId("timeline-fields").replaceChildren(...MESSAGE_FIELDS.flatMap(([label, read]) =>
    [el("dt", {}, label), el("dd", {}, read(t.message))]));
  fillRows(byId("timeline-events"), t.events.map((e) => row([formatTime(e.at, true),
    el("span", { className: `status status-${e.event}` }, e.event), e.detail],
  { dataset: { event: e.event } })));
  fillRows(byId("timeline-parts"), t.parts.map((p) => row([String(p.part), p.connector,
    p.upstream_id, p.status])), "one part, sent whole");
  const waiting = [...t.receipts_waiting.map((r) => ["receipt", r]),
    ...t.callbacks_waiting.map((c) => ["callback", c])];
  fillRows(byId("timeline-waiting"), waiting.map(([kind, w]) => row([kind, w.status,
    String(w.attempts), formatTime(w.next_attempt_at)])), "nothing waiting");
}
