// The read API client: the bearer token lives in sessionStorage (gone when the
// tab closes) and is sent only to this same origin.

const TOKEN_KEY = "chatdebug.token";

export class Unauthorized extends Error {}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export async function getJSON(path, params = {}) {
  const url = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
  }
  const headers = { Accept: "application/json" };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  const response = await fetch(url, { headers, credentials: "omit", cache: "no-store" });
  if (response.status === 401) throw new Unauthorized("unauthorized");
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const message = body && typeof body.message === "string" ? body.message : response.statusText;
    const error = new Error(`${response.status}: ${message}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

export const api = {
  recentRuns: (filters, cursor, limit = 50) =>
    getJSON("/api/debug/runs", { ...filters, cursor, limit }),
  chatRuns: (chatId) => getJSON(`/api/chats/${encodeURIComponent(chatId)}/debug/runs`),
  run: (chatId, runId) =>
    getJSON(`/api/chats/${encodeURIComponent(chatId)}/debug/runs/${encodeURIComponent(runId)}`),
  exportChat: (chatId) => getJSON(`/api/chats/${encodeURIComponent(chatId)}/debug/export`),
};
