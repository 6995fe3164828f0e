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

// Chat ids travel as query parameters, never as path segments: an id such as "." or
// ".." would be removed from a path by the URL parser before it left the browser.
async function runOfChat(chatId, runId) {
  const run = await getJSON(`/api/debug/runs/${encodeURIComponent(runId)}`);
  if (chatId !== null && chatId !== undefined && run.chat_id !== chatId) {
    const error = new Error("404: Debug run not found.");
    error.status = 404;
    throw error;
  }
  return run;
}

export const api = {
  recentRuns: (filters, cursor, limit = 50) =>
    getJSON("/api/debug/runs", { ...filters, cursor, limit }),
  chatRuns: async (chatId) => (await getJSON("/api/debug/runs", { chat_id: chatId, limit: 100 })).runs,
  chatSummary: (chatId) => getJSON("/api/debug/chat", { chat_id: chatId }),
  run: runOfChat,
  exportChat: (chatId) => getJSON("/api/debug/export", { chat_id: chatId }),
  recordingSettings: () => getJSON("/api/chats/config/debug-logging"),
  viewerConfig: () => getJSON("/api/debug/viewer"),
};
