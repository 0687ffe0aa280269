// The API client: every call carries `Authorization: Bearer <key>`; errors are
// RFC 9457 problem+json, turned into ApiError with the located field errors.

const KEY_STORAGE = "flowcron.apiKey";

export function storedKey() {
  return localStorage.getItem(KEY_STORAGE);
}

export function storeKey(key) {
  localStorage.setItem(KEY_STORAGE, key);
}

export function forgetKey() {
  localStorage.removeItem(KEY_STORAGE);
}

/** An error answer of the API (or of the network, with status 0). */
export class ApiError extends Error {
  constructor(status, detail, { type = "", title = "", errors = [] } = {}) {
    super(detail);
    this.status = status;
    this.type = type;
    this.title = title;
    this.detail = detail;
    this.errors = errors; // [{field, message}]
  }

  /** The message for `field` (exact, or the first error under it), or null. */
  forField(field) {
    const hit = this.errors.find((e) => e.field === field || e.field.startsWith(`${field}.`));
    return hit ? hit.message : null;
  }
}

// Listeners told when the key is refused mid-session (it was revoked, say).
const unauthorizedListeners = new Set();
export function onUnauthorized(fn) {
  unauthorizedListeners.add(fn);
  return () => unauthorizedListeners.delete(fn);
}

export function authHeaders(key = storedKey()) {
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function problemOf(response) {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    if (body && typeof body === "object" && body.detail) {
      return new ApiError(response.status, body.detail, body);
    }
  } catch {
    // not JSON: fall through to a generic message
  }
  return new ApiError(response.status, `HTTP ${response.status} ${response.statusText}`.trim());
}

/**
 * Call the API. `body` (an object) is sent as JSON. Answers the parsed JSON, or null
 * for 204. Throws ApiError. `key` overrides the stored key (the sign-in check).
 */
export async function api(method, path, { body, query, key, signal, headers } = {}) {
  let url = path;
  if (query) {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) {
      if (value !== undefined && value !== null && value !== "") params.set(name, String(value));
    }
    const text = params.toString();
    if (text) url += `?${text}`;
  }
  const init = {
    method,
    headers: { Accept: "application/json", ...authHeaders(key), ...(headers || {}) },
    signal,
  };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "the API did not answer (network error); is the server running?");
  }
  if (!response.ok) {
    const problem = await problemOf(response);
    if (response.status === 401 && key === undefined) {
      for (const fn of unauthorizedListeners) fn(problem);
    }
    throw problem;
  }
  if (response.status === 204) return null;
  return response.json();
}

/** Every item of a paginated list, following next_cursor up to `max` items. */
export async function listAll(path, { query = {}, max = 1000 } = {}) {
  const items = [];
  let cursor = null;
  do {
    const page = await api("GET", path, { query: { ...query, limit: 200, cursor } });
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return { items, more: Boolean(cursor) };
}
