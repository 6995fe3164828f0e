// Live updates: the server's change events (server-sent events, read with fetch
// so that the bearer token travels in a header, as for every other call), a
// reconnection with backoff that resumes with Last-Event-ID, and a polling
// fallback for a browser without readable streams or a server without the
// event routes. Also what an event changes on screen: a part replaced in place
// keeping what the reader opened, and the growing text of a stream in flight.

import { Unauthorized, getJSON, token } from "./api.js";
import { formatMs, formatNumber, h, parseTime } from "./dom.js";

const BACKOFF_MS = [500, 1000, 2000, 4000, 8000];
const POLL_MS = 3000;

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

// One server-sent event block ("id: …\nevent: …\ndata: …") into {id, kind, data}.
function parseBlock(block) {
  let id = null;
  let kind = "message";
  const data = [];
  for (const line of block.split(/\r?\n/)) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "id") id = value;
    else if (field === "event") kind = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return { id, kind: null, data: null };
  try {
    return { id, kind, data: JSON.parse(data.join("\n")) };
  } catch {
    return { id, kind: null, data: null };
  }
}

// Follows the events of `path` (with the query `params`), calling
// handlers.onEvents(batch) with every burst of events ({kind, data}),
// handlers.onState("live" | "reconnecting" | "polling"), handlers.onPoll()
// every few seconds when it cannot stream, and handlers.onError(error) when
// the token is refused. Returns a function that stops it.
export function follow(path, params, handlers) {
  const url = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
  }
  let stopped = false;
  let controller = null;
  let lastId = null;
  let pollTimer = null;

  const poll = () => {
    handlers.onState("polling");
    pollTimer = setInterval(() => {
      Promise.resolve(handlers.onPoll()).catch((error) => {
        if (error instanceof Unauthorized) { clearInterval(pollTimer); handlers.onError(error); }
      });
    }, POLL_MS);
  };

  const read = async (body) => {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done || stopped) return;
      buffer += value;
      const batch = [];
      let end;
      while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const match = buffer.slice(end).match(/^\r?\n\r?\n/);
        const event = parseBlock(buffer.slice(0, end));
        buffer = buffer.slice(end + match[0].length);
        if (event.id !== null) lastId = event.id;
        if (event.kind) batch.push({ kind: event.kind, data: event.data });
      }
      if (batch.length) handlers.onEvents(batch);
    }
  };

  const run = async () => {
    let attempt = 0;
    while (!stopped) {
      controller = new AbortController();
      try {
        const headers = { Accept: "text/event-stream" };
        const t = token();
        if (t) headers.Authorization = `Bearer ${t}`;
        if (lastId) headers["Last-Event-ID"] = lastId;
        const response = await fetch(url, {
          headers, credentials: "omit", cache: "no-store", signal: controller.signal,
        });
        if (response.status === 401) { handlers.onError(new Unauthorized("unauthorized")); return; }
        if (response.status === 404 || !response.body || typeof TextDecoderStream === "undefined") {
          if (response.body) response.body.cancel().catch(() => {});
          poll();
          return;
        }
        if (response.ok) {
          handlers.onState("live");
          // Back after a break without an id to resume from: re-read instead.
          if (attempt > 0 && !lastId) handlers.onEvents([{ kind: "reset", data: {} }]);
          attempt = 0;
          await read(response.body);
        } else if (response.body) {
          response.body.cancel().catch(() => {});
        }
      } catch {
        // a network error or the server going away: reconnect below
      }
      if (stopped) return;
      handlers.onState("reconnecting");
      await sleep(BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)]);
      attempt += 1;
    }
  };

  if (typeof ReadableStream === "undefined" || typeof AbortController === "undefined") poll();
  else run();
  return () => {
    stopped = true;
    if (controller) controller.abort();
    if (pollTimer) clearInterval(pollTimer);
  };
}

// Calls fn(batch) at most once per `ms` with the events gathered meanwhile.
export function gather(fn, ms = 150) {
  let pending = [];
  let timer = null;
  return (events) => {
    pending.push(...events);
    if (timer) return;
    timer = setTimeout(() => {
      const batch = pending;
      pending = [];
      timer = null;
      fn(batch);
    }, ms);
  };
}

// -- applying an event on screen ------------------------------------------------

function detailsKeys(root) {
  const seen = new Map();
  return [...root.querySelectorAll("details")].map((details) => {
    const summary = details.querySelector(":scope > summary");
    const base = `${details.className}|${summary ? summary.textContent : ""}`;
    const n = (seen.get(base) || 0) + 1;
    seen.set(base, n);
    return [`${base}|${n}`, details];
  });
}

// Replaces `old` with `fresh`, opening in `fresh` what the reader had open in
// `old` (also what opens inside what it opens, built on opening).
export function replaceKeepingOpen(old, fresh) {
  const open = new Set(detailsKeys(old).filter(([, d]) => d.open).map(([key]) => key));
  old.replaceWith(fresh);
  const reopen = (passes) => {
    let opened = 0;
    for (const [key, details] of detailsKeys(fresh)) {
      if (open.has(key) && !details.open) { details.open = true; opened += 1; }
    }
    if (opened && passes > 1) setTimeout(() => reopen(passes - 1), 0);
  };
  reopen(4);
  return fresh;
}

// The progress a recorder writes while a stream is in flight:
// metadata.stream_progress = {chunks, text_chars, time_to_first_chunk_ms, text}.
function streamProgress(step) {
  const metadata = step.metadata && typeof step.metadata === "object" ? step.metadata : {};
  const progress = metadata.stream_progress;
  return progress && typeof progress === "object" ? progress : null;
}

// What a step in flight shows: its running clock, and the text of its stream
// so far with its chunk count.
export function inFlight(step) {
  if (step.status !== "in_progress") return null;
  const progress = streamProgress(step);
  const facts = [h("span", {
    className: "stream-clock", dataset: { started: step.started_at }, text: "running",
  })];
  if (progress) {
    const chars = typeof progress.text_chars === "number" ? `${formatNumber(progress.text_chars)} characters` : null;
    facts.push(h("span", { className: "stream-chunks", text: `${formatNumber(progress.chunks ?? 0)} chunks` }));
    if (chars) facts.push(h("span", { className: "muted", text: chars }));
    if (typeof progress.time_to_first_chunk_ms === "number") {
      facts.push(h("span", { className: "muted", text: `first chunk after ${formatMs(progress.time_to_first_chunk_ms)}` }));
    }
  }
  return h("div", { className: "stream-progress" },
    h("div", { className: "stream-facts" }, facts),
    progress && typeof progress.text === "string"
      ? h("pre", { className: "stream-text", text: progress.text })
      : null);
}

// Keeps every running clock under `root` ticking; returns the function that stops.
export function tickClocks(root) {
  const tick = () => {
    for (const clock of root.querySelectorAll(".stream-clock")) {
      const started = parseTime(clock.dataset.started);
      if (started !== null) clock.textContent = `running ${formatMs(Math.max(0, Date.now() - started))}`;
    }
  };
  tick();
  const timer = setInterval(tick, 250);
  return () => clearInterval(timer);
}

// The small reads an event needs.
export const liveApi = {
  runSummary: (chatId, runId) =>
    getJSON(`/api/debug/runs/${encodeURIComponent(runId)}/summary`),
  step: (chatId, runId, number) =>
    getJSON(`/api/debug/runs/${encodeURIComponent(runId)}/steps/${number}`),
};
