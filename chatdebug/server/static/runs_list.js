// The runs list: recent runs across chats, the API's filters, status colours,
// paging with the cursor, and a live refresh of in-progress rows.

import { api } from "./api.js";
import {
  clear, durationOf, formatMs, formatNumber, formatTime, h, link, runTokens, statusPill,
} from "./dom.js";

const PAGE = 50;
const REFRESH_MS = 3000;
const STATUSES = ["", "in_progress", "completed", "error", "interrupted"];
const KINDS = ["chat_turn", "title_generation", "quickgen", "compaction"];
const SINCE = [["", "any time"], ["15m", "last 15 min"], ["1h", "last hour"],
  ["24h", "last 24 h"], ["7d", "last 7 days"], ["30d", "last 30 days"]];
const FILTERS = ["status", "kind", "user_id", "model", "since", "until"];

function runRoute(run) {
  return `/chats/${encodeURIComponent(run.chat_id)}/runs/${encodeURIComponent(run.id)}`;
}

function rowCells(run) {
  const s = run.summary && typeof run.summary === "object" ? run.summary : {};
  const duration = typeof s.duration_ms === "number" ? s.duration_ms : durationOf(run);
  const first = typeof s.first_message === "string" && s.first_message ? s.first_message : "(no message)";
  const tokens = runTokens(s);
  return [
    h("td", { className: "nowrap" }, link(runRoute(run), formatTime(run.started_at), "run-link")),
    h("td", {}, statusPill(run.status)),
    h("td", { className: "mono clip", title: run.chat_id, text: run.chat_id }),
    h("td", { text: run.kind }),
    h("td", { className: "mono", text: run.model || "—" }),
    h("td", { className: "num", text: formatNumber(s.step_count) }),
    h("td", { className: "num nowrap", text: tokens }),
    h("td", { className: "num nowrap", text: formatMs(duration) }),
    h("td", { className: "clip message" }, link(runRoute(run), first)),
  ];
}

function buildRow(run) {
  const row = h("tr", {
    className: `run-row row-${run.status}`,
    dataset: { runId: run.id, chatId: run.chat_id, status: run.status, started: run.started_at },
  });
  row.append(...rowCells(run));
  return row;
}

function updateRow(row, run) {
  row.replaceChildren(...rowCells(run));
  row.className = `run-row row-${run.status}`;
  row.dataset.status = run.status;
}

function filterForm(values, onApply) {
  const select = (name, options) => h("select", { name, id: `filter-${name}` },
    options.map(([value, label]) => {
      const option = h("option", { value, text: label });
      option.selected = value === (values.get(name) || "");
      return option;
    }));
  const text = (name, placeholder, list) => h("input", {
    name, id: `filter-${name}`, placeholder, value: values.get(name) || "", list,
  });
  const form = h("form", { className: "filters", id: "filters" },
    h("label", {}, "Status ", select("status", STATUSES.map((s) => [s, s ? s.replace("_", " ") : "any"]))),
    h("label", {}, "Kind ", text("kind", "any", "kinds")),
    h("datalist", { id: "kinds" }, KINDS.map((k) => h("option", { value: k }))),
    h("label", {}, "User ", text("user_id", "any")),
    h("label", {}, "Model ", text("model", "any")),
    h("label", {}, "Started ", select("since", SINCE)),
    h("label", { title: "an age such as 1h or 7d, or an RFC 3339 time" },
      "Started before ", text("until", "e.g. 1h")),
    h("button", { type: "submit", text: "Apply" }),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const params = new URLSearchParams();
    for (const name of FILTERS) {
      const value = form.elements[name].value.trim();
      if (value) params.set(name, value);
    }
    onApply(params);
  });
  return form;
}

export async function renderRunsList(context, params) {
  const { main, setCrumbs, setLive, onError } = context;
  setCrumbs(h("span", { text: "runs" }));
  const filters = {};
  for (const name of FILTERS) if (params.get(name)) filters[name] = params.get(name);

  const body = h("tbody", { id: "runs-body" });
  const table = h("table", { className: "runs", id: "runs-table" },
    h("thead", {}, h("tr", {}, ["Started", "Status", "Chat", "Kind", "Model", "Steps",
      "Tokens in / out", "Duration", "First message"].map((t) => h("th", { text: t })))),
    body);
  const more = h("button", { type: "button", id: "load-more", className: "ghost", text: "Load more", hidden: true });
  const empty = h("p", { className: "muted", id: "runs-empty", text: "No runs match these filters.", hidden: true });
  const note = h("p", { className: "muted small", id: "refresh-note" });
  clear(main).append(
    filterForm(params, (next) => { window.location.hash = `#/?${next.toString()}`; }),
    note, table, empty, more,
  );

  const rows = new Map();
  let cursor = null;
  const add = (runs, atTop = false) => {
    const fresh = runs.filter((run) => !rows.has(run.id));
    const built = fresh.map((run) => {
      const row = buildRow(run);
      rows.set(run.id, row);
      if (atTop) row.classList.add("fresh");
      return row;
    });
    if (atTop) body.prepend(...built);
    else body.append(...built);
    empty.hidden = rows.size > 0;
  };

  const first = await api.recentRuns(filters, null, PAGE);
  add(first.runs);
  cursor = first.next_cursor;
  more.hidden = !cursor;
  more.addEventListener("click", async () => {
    try {
      const page = await api.recentRuns(filters, cursor, PAGE);
      add(page.runs);
      cursor = page.next_cursor;
      more.hidden = !cursor;
    } catch (error) {
      onError(error);
    }
  });

  let stopped = false;
  const refresh = async () => {
    const latest = await api.recentRuns(filters, null, PAGE);
    const newer = [];
    for (const run of latest.runs) {
      const row = rows.get(run.id);
      if (row) updateRow(row, run);
      else newer.push(run);
    }
    // Runs that started after the newest row on screen go on top; the list is
    // newest first, so anything else belongs to a page not loaded yet.
    const top = body.firstElementChild;
    const topKey = top ? [Date.parse(top.dataset.started), top.dataset.runId] : null;
    const isNewer = (run) => !topKey || Date.parse(run.started_at) > topKey[0] ||
      (Date.parse(run.started_at) === topKey[0] && run.id > topKey[1]);
    add(newer.filter(isNewer), true);
    const seen = new Set(latest.runs.map((r) => r.id));
    const pending = [...rows.entries()]
      .filter(([id, row]) => !seen.has(id) && row.dataset.status === "in_progress").slice(0, 10);
    for (const [id, row] of pending) {
      const run = await api.run(row.dataset.chatId, id);
      if (!stopped) updateRow(row, run);
    }
    note.textContent = `Updated ${new Date().toLocaleTimeString()} · refreshes every ${REFRESH_MS / 1000} s`;
  };
  setLive(true);
  note.textContent = `Refreshes every ${REFRESH_MS / 1000} s`;
  const timer = setInterval(() => {
    refresh().catch((error) => { if (!stopped) { stopped = true; clearInterval(timer); onError(error); } });
  }, REFRESH_MS);
  return () => { stopped = true; clearInterval(timer); setLive(false); };
}
