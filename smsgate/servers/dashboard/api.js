// The admin API as the dashboard calls it: the token, fetch, JSON errors.
//
// The token lives in sessionStorage: it survives a reload but not the tab, and no other
// site can read it. Every call sends it as `Authorization: Bearer`; a 401, 403 or 429
// answer is an AuthError, which sends the operator back to the login form.

const TOKEN_KEY = "smsgate.admin-token";
const PREFIX = "/api/v1";

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY) || "",
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

export class ApiError extends Error {
  constructor(status, body) {
    const code = (body && body.error) || `http_${status}`;
    const detail = (body && body.detail) || "";
    super(detail ? `${code}: ${detail}` : code);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

// The token was refused (401, 403) or the address is in the login back-off (429).
export class AuthError extends ApiError {}

const AUTH_STATUSES = new Set([401, 403, 429]);

// GET (or `method`) PREFIX + path with the query `params` (empty values left out).
export async function call(path, { method = "GET", params = {} } = {}) {
  const url = new URL(PREFIX + path, location.origin);
  for (const [name, value] of Object.entries(params)) {
    if (value !== "" && value !== null && value !== undefined) {
      url.searchParams.set(name, String(value));
    }
  }
  const response = await fetch(url, {
    method,
    cache: "no-store",
    headers: { Authorization: `Bearer ${token.get()}`, Accept: "application/json" },
  });
  const text = await response.text();
  const body = text ? parseJson(text) : null;
  if (AUTH_STATUSES.has(response.status)) throw new AuthError(response.status, body);
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

// JSON.parse, except that an integer too big for a double (message ids reach 2**63)
// stays exact, as its decimal string. Browsers without the reviver's `source` (before
// Chrome 114, Firefox 135, Safari 18.4) round such ids: see docs/admin.md.
export function parseJson(text) {
  return JSON.parse(text, (key, value, context) => {
    if (typeof value === "number" && !Number.isSafeInteger(value) && context &&
        /^-?\d+$/.test(context.source)) {
      return context.source;
    }
    return value;
  });
}

// A path segment, escaped.
export function segment(value) {
  return encodeURIComponent(String(value));
}
