// The REST API of indi-web, with its {"detail": "..."} errors turned into exceptions.

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

/** Listeners for "the server wants a password" (any 401 answer). */
const authListeners = new Set();
export function onAuthRequired(listener) {
  authListeners.add(listener);
}

export async function api(method, path, body) {
  const init = {method, headers: {Accept: "application/json"}, credentials: "same-origin"};
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new ApiError(`${method} ${path}: indi-web cannot be reached (${error.message})`, 0);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok) {
    if (response.status === 401) authListeners.forEach((listener) => listener());
    let detail = data && typeof data === "object" && "detail" in data ? data.detail : data;
    if (Array.isArray(detail)) detail = detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
    throw new ApiError(detail ? String(detail) : `${method} ${path}: HTTP ${response.status}`, response.status);
  }
  return data;
}

export const get = (path) => api("GET", path);
export const post = (path, body) => api("POST", path, body);
export const put = (path, body) => api("PUT", path, body);
export const del = (path) => api("DELETE", path);

/** A path segment: profile names and driver labels may hold spaces, slashes and more. */
export const seg = (text) => encodeURIComponent(text);
