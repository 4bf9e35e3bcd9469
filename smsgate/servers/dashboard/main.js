// The dashboard: login with the admin token, then panels refreshed on timers, message
// search and one message's timeline. Served from the admin port, it calls the admin
// API of the same origin (servers/admin_api.py); docs/admin.md, "Dashboard".

import { AuthError, call, segment, token } from "./api.js";
import { drawChart } from "./chart.js";
import { byId, fillRows, formatTime } from "./dom.js";
import * as panels from "./panels.js";

const CHART_SECONDS = 60;
const STATS_WINDOW = 900; // the statuses panel: status changes of the last 15 minutes
const PAGE = 50;

// [what, every how many ms, read from the API, show]
const REFRESH = [
  ["throughput", 1000, () => call("/throughput", { params: { seconds: CHART_SECONDS } }),
    showThroughput],
  ["sessions", 2000, () => call("/sessions"), (found) => panels.showSessions(found, kick)],
  ["connectors", 3000, () => call("/connectors"), panels.showConnectors],
  ["accounts", 5000, () => call("/accounts"), panels.showAccounts],
  ["nodes", 2000, () => call("/nodes"), panels.showNodes],
  // a scan of the messages table (docs/admin.md, Known limits): seldom
  ["statuses", 5000, () => call("/stats", { params: { window: STATS_WINDOW, step: 60 } }),
    panels.showStatuses],
];

let generation = 0; // a login starts a generation of refresh loops; a logout ends it
const problems = new Map(); // panel -> what failed last time
let search = { query: {}, cursor: null };

function showThroughput(data) {
  drawChart(byId("chart"), data.points, CHART_SECONDS, data.interval);
  panels.showRates(data.points.at(-1));
}

// -- login and logout ---------------------------------------------------------------

function showLogin(message = "") {
  generation += 1;
  forget();
  byId("dashboard").hidden = true;
  byId("logout").hidden = true;
  byId("login").hidden = false;
  byId("login-error").textContent = message;
  byId("token").focus();
}

function showDashboard() {
  byId("login").hidden = true;
  byId("dashboard").hidden = false;
  byId("logout").hidden = false;
  const current = ++generation;
  for (const refresh of REFRESH) keepRefreshing(current, refresh);
}

// What the last login showed leaves the page with it.
function forget() {
  for (const tbody of document.querySelectorAll("#dashboard tbody")) tbody.replaceChildren();
  fillRows(byId("messages"), [], "search to list messages, newest first");
  byId("chart").replaceChildren();
  byId("timeline").hidden = true;
  byId("more").hidden = true;
  byId("problems").textContent = "";
  byId("updated").textContent = "";
  problems.clear();
}

async function login(event) {
  event.preventDefault();
  const typed = byId("token").value.trim();
  if (!typed) return;
  token.set(typed);
  try {
    await call("/nodes"); // any call checks the token
  } catch (error) {
    token.clear();
    showLogin(refusal(error));
    return;
  }
  byId("token").value = "";
  showDashboard();
}

function logout(message = "") {
  token.clear();
  showLogin(message);
}

function refusal(error) {
  if (!(error instanceof AuthError)) return `The admin API failed: ${error.message}`;
  const why = {
    401: "The token was not accepted.",
    403: "This token has been revoked.",
    429: "Too many failed logins from this address: wait, then try again.",
  }[error.status];
  return `${why} (${error.status} ${error.code}: ${error.detail})`;
}

// -- refreshing -----------------------------------------------------------------------

async function keepRefreshing(current, [name, interval, read, show]) {
  while (current === generation) {
    try {
      const data = await read();
      if (current !== generation) return; // logged out meanwhile: show nothing
      show(data);
      problems.delete(name);
    } catch (error) {
      // (an answer to a logged-out generation's request says nothing of the new login)
      if (current !== generation || !handled(error, name)) return;
    }
    showProblems();
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

// An AuthError logs out (false: stop); anything else is shown and retried (true).
function handled(error, name) {
  if (error instanceof AuthError) {
    logout(refusal(error));
    return false;
  }
  problems.set(name, error.message);
  return true;
}

function showProblems() {
  const text = [...problems].map(([name, message]) => `${name}: ${message}`).join("; ");
  byId("problems").textContent = text;
  byId("updated").textContent = `updated ${formatTime(Date.now() / 1000)}`;
}

// A click or submit handler whose failures are shown instead of lost.
function guarded(name, action) {
  return async (...args) => {
    try {
      await action(...args);
      problems.delete(name);
    } catch (error) {
      handled(error, name);
    }
    showProblems();
  };
}

// -- sessions, search, timeline -----------------------------------------------------

const kick = guarded("kick", async (session) => {
  const path = `/sessions/${segment(session.node)}/${segment(session.session)}/kick`;
  await call(path, { method: "POST" });
  panels.showSessions(await call("/sessions"), kick);
});

function searchQuery(form) {
  const epoch = (value) => (value ? Date.parse(value) / 1000 : "");
  return {
    account: form.elements.account.value.trim(),
    dest: form.elements.dest.value.trim(),
    status: form.elements.status.value,
    since: epoch(form.elements.since.value),
    until: epoch(form.elements.until.value),
    limit: PAGE,
  };
}

const runSearch = guarded("search", async (event) => {
  event.preventDefault();
  search = { query: searchQuery(event.target), cursor: null };
  await showPage(false);
});

const nextPage = guarded("search", () => showPage(true));

async function showPage(more) {
  const params = { ...search.query, cursor: more ? search.cursor : "" };
  const page = await call("/messages", { params });
  const rows = panels.messageRows(page.messages, openTimeline);
  if (more) {
    byId("messages").append(...rows);
  } else {
    fillRows(byId("messages"), rows, "no message matches");
  }
  search.cursor = page.next_cursor;
  byId("more").hidden = page.next_cursor === null;
}

const openTimeline = guarded("timeline", async (id) => {
  panels.showTimeline(await call(`/messages/${segment(id)}`));
  byId("timeline").hidden = false;
  byId("timeline").scrollIntoView({ block: "nearest" });
});

// -- start --------------------------------------------------------------------------

byId("login-form").addEventListener("submit", login);
byId("logout").addEventListener("click", () => logout());
byId("search-form").addEventListener("submit", runSearch);
byId("more").addEventListener("click", nextPage);
byId("timeline-close").addEventListener("click", () => { byId("timeline").hidden = true; });
forget(); // (the empty panels' hints)
if (token.get()) {
  showDashboard(); // a refused token comes back here through the first refresh
} else {
  showLogin();
}
