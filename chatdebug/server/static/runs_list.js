// The runs list: recent runs across chats, the API's filters, status colours,
// paging with the cursor, rows inserted and updated in place as the server's
// change events arrive (live.js), and the runs'
// costs (sortable: the API lists runs newest first only, so sorting by cost
// orders the runs loaded on the page, not the whole history).

import { api } from "./api.js";
import { follow, gather, liveApi } from "./live.js";
import {
  clear, durationOf, formatMs, formatNumber, formatTime, formatUsd, h, link, parseTime, runTokens,
  statusPill,
} from "./dom.js";
import { chatHash } from "./chat_page.js";
import { errorCell } from "./run_failure.js";
import { SEARCH_FILTERS, emptyNote, searchFields, showFilterError } from "./search_form.js";

const PAGE = 50;
const MAX_FETCHES = 20; // runs fetched one by one for a burst of events; more: re-read the page
const STATUSES = ["", "in_progress", "completed", "error", "interrupted"];
const KINDS = ["chat_turn", "title_generation", "quickgen", "compaction"];
const SINCE = [["", "any time"], ["15m", "last 15 min"], ["1h", "last hour"],
  ["24h", "last 24 h"], ["7d", "last 7 days"], ["30d", "last 30 days"]];
const FILTERS = [...SEARCH_FILTERS, "status", "kind", "user_id", "model", "since", "until"];

function runRoute(run) {
  return `/runs/${encodeURIComponent(run.id)}`;
}

// The summary's cost: a number, or null when unknown (never 0 for unknown).
function runCostUsd(summary) {
  const total = summary.total_cost_usd;
  return typeof total === "number" && Number.isFinite(total) ? total : null;
}

function unpricedSteps(summary) {
  const n = summary.unpriced_step_count;
  return typeof n === "number" && n > 0 ? n : 0;
}

const stepCount = (n) => `${n} step${n === 1 ? "" : "s"}`;

// Dollars of the priced steps, with a marker when some steps have no price (the
// total is then a lower bound); "not priced" when no step was, "—" when the run
// has no cost yet (in progress, or recorded without pricing).
function costCell(summary) {
  const total = runCostUsd(summary);
  const missing = unpricedSteps(summary);
  if (total === null) {
    return h("td", {
      className: "num nowrap cost muted",
      title: missing ? `${stepCount(missing)} without a price` : undefined,
      text: missing ? "not priced" : "—",
    });
  }
  return h("td", { className: "num nowrap cost" }, formatUsd(total), missing ? h("span", {
    className: "unpriced-mark",
    title: `${stepCount(missing)} without a price: the total is a lower bound`,
    text: `+${missing} unpriced`,
  }) : null);
}

function rowCells(run) {
  const s = run.summary && typeof run.summary === "object" ? run.summary : {};
  const duration = typeof s.duration_ms === "number" ? s.duration_ms : durationOf(run);
  const first = typeof s.first_message === "string" && s.first_message ? s.first_message : "(no message)";
  const tokens = runTokens(s);
  return [
    h("td", { className: "nowrap" }, link(runRoute(run), formatTime(run.started_at), "run-link")),
    h("td", {}, statusPill(run.status)),
    h("td", { className: "mono clip", title: run.chat_id },
      h("a", { href: chatHash(run.chat_id), className: "chat-link", text: run.chat_id })),
    h("td", { className: "mono clip", title: run.user_id || "", text: run.user_id || "—" }),
    h("td", { text: run.kind }),
    h("td", { className: "mono clip", title: run.model || "", text: run.model || "—" }),
    h("td", { className: "num", text: formatNumber(s.step_count) }),
    h("td", { className: "num nowrap", text: tokens }),
    h("td", { className: "num nowrap", text: formatMs(duration) }),
    costCell(s),
    errorCell(run),
    h("td", { className: "clip message", title: first }, link(runRoute(run), first)),
  ];
}

function costData(run) {
  const total = run.summary && typeof run.summary === "object" ? runCostUsd(run.summary) : null;
  return total === null ? "" : String(total);
}

function buildRow(run) {
  const row = h("tr", {
    className: `run-row row-${run.status}`,
    dataset: {
      runId: run.id, chatId: run.chat_id, status: run.status, started: run.started_at,
      cost: costData(run),
    },
  });
  row.append(...rowCells(run));
  return row;
}

function updateRow(row, run) {
  row.replaceChildren(...rowCells(run));
  row.className = `run-row row-${run.status}`;
  row.dataset.status = run.status;
  row.dataset.cost = costData(run);
}

// The API's order: newest first, then by id.
function newestFirst(a, b) {
  const ta = parseTime(a.dataset.started) ?? -Infinity;
  const tb = parseTime(b.dataset.started) ?? -Infinity;
  if (ta !== tb) return tb - ta;
  return a.dataset.runId < b.dataset.runId ? 1 : a.dataset.runId > b.dataset.runId ? -1 : 0;
}

// By cost ("desc" or "asc"); runs without a cost last either way, ties newest first.
function byCost(direction) {
  const cost = (row) => (row.dataset.cost === "" ? null : Number(row.dataset.cost));
  return (a, b) => {
    const ca = cost(a);
    const cb = cost(b);
    if (ca === null || cb === null) {
      if (ca !== cb) return ca === null ? 1 : -1;
    } else if (ca !== cb) {
      return direction === "desc" ? cb - ca : ca - cb;
    }
    return newestFirst(a, b);
  };
}

const SORT_NEXT = { none: "desc", desc: "asc", asc: "none" };
const SORT_ARIA = { none: "none", desc: "descending", asc: "ascending" };
const SORT_ARROW = { none: "", desc: " ▼", asc: " ▲" };

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
    ...searchFields(values),
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
  let sort = "none";
  const sortButton = h("button", {
    type: "button", id: "sort-cost", className: "sort",
    title: "Sort the runs loaded on this page by cost: highest first, lowest first, newest first",
    text: "Cost",
  });
  const costHeader = h("th", { "aria-sort": "none" }, sortButton);
  const headers = ["Started", "Status", "Chat", "User", "Kind", "Model", "Steps", "Tokens in / out",
    "Duration"].map((t) => h("th", { text: t }));
  const table = h("table", { className: "runs", id: "runs-table" },
    h("thead", {}, h("tr", {}, headers, costHeader, h("th", { text: "Error" }),
      h("th", { text: "First message" }))),
    body);
  // Reorders the rows on screen; in the default order new rows simply go on top.
  const reorder = () => {
    body.append(...[...body.children].sort(sort === "none" ? newestFirst : byCost(sort)));
  };
  sortButton.addEventListener("click", () => {
    sort = SORT_NEXT[sort];
    sortButton.textContent = `Cost${SORT_ARROW[sort]}`;
    costHeader.setAttribute("aria-sort", SORT_ARIA[sort]);
    reorder();
  });
  const more = h("button", { type: "button", id: "load-more", className: "ghost", text: "Load more", hidden: true });
  const empty = h("p", { className: "muted", id: "runs-empty", text: "No runs match these filters.", hidden: true });
  const note = h("p", { className: "muted small", id: "refresh-note" });
  const form = filterForm(params, (next) => { window.location.hash = `#/?${next.toString()}`; });
  clear(main).append(form, note, table, empty, more);

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
    if (sort !== "none" && built.length) reorder();
    empty.hidden = rows.size > 0;
  };

  let first;
  try {
    first = await api.recentRuns(filters, null, PAGE);
  } catch (error) {
    if (error.status !== 400) throw error;
    showFilterError(form, error);
    table.hidden = true;
    return () => {};
  }
  add(first.runs);
  if (!rows.size) emptyNote(empty, Object.keys(filters).length > 0);
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
  // Runs that started after the newest row loaded go on top; the list is newest
  // first, so anything else belongs to a page not loaded yet.
  const isNewer = (run) => {
    let top = null;
    for (const row of rows.values()) if (!top || newestFirst(row, top) < 0) top = row;
    if (!top) return true;
    const t = Date.parse(run.started_at);
    const topTime = Date.parse(top.dataset.started);
    return t > topTime || (t === topTime && run.id > top.dataset.runId);
  };
  // A run recorded now cannot have started before an "until" bound.
  const matches = (run) => (!filters.status || run.status === filters.status) && !filters.until;
  const place = (run) => {
    const row = rows.get(run.id);
    if (row) updateRow(row, run);
    else if (matches(run) && isNewer(run)) add([run], true);
  };
  const stamp = () => {
    note.textContent = `Updated ${new Date().toLocaleTimeString()}`;
  };
  // Re-reads the first page and the in-progress rows (after a reset, or polling).
  const refresh = async () => {
    const latest = await api.recentRuns(filters, null, PAGE);
    if (stopped) return;
    for (const run of latest.runs) place(run);
    const seen = new Set(latest.runs.map((r) => r.id));
    const pending = [...rows.entries()]
      .filter(([id, row]) => !seen.has(id) && row.dataset.status === "in_progress").slice(0, 10);
    for (const [id, row] of pending) {
      const run = await liveApi.runSummary(row.dataset.chatId, id).catch(() => null);
      if (!stopped && run) updateRow(row, run);
    }
    if (!stopped && sort !== "none") reorder();
    stamp();
  };
  const apply = async (events) => {
    let reread = false;
    const changed = new Map();
    for (const { kind, data } of events) {
      if (kind === "run_update" && data && data.run_id) changed.set(data.run_id, data.chat_id);
      else if (kind === "delete" && data && Array.isArray(data.run_ids) && data.run_ids.length) {
        for (const id of data.run_ids) {
          const row = rows.get(id);
          if (row) { row.remove(); rows.delete(id); changed.delete(id); }
        }
        empty.hidden = rows.size > 0;
      } else reread = true; // finalize, purge, reset: re-read what is shown
    }
    if (reread || changed.size > MAX_FETCHES) {
      await refresh();
      return;
    }
    for (const [runId, chatId] of changed) {
      const run = await liveApi.runSummary(chatId, runId).catch(() => null);
      if (stopped) return;
      if (run) place(run);
    }
    if (sort !== "none" && changed.size) reorder();
    stamp();
  };
  const live = {};
  for (const name of ["kind", "user_id", "model"]) if (filters[name]) live[name] = filters[name];
  setLive(true);
  note.textContent = "Follows new runs as they are recorded";
  const stop = follow("/api/debug/events", live, {
    onEvents: gather((events) => {
      apply(events).catch((error) => { if (!stopped) onError(error); });
    }),
    onState: (state) => { if (!stopped) setLive(true, state); },
    onPoll: () => refresh(),
    onError: (error) => { if (!stopped) { stopped = true; stop(); onError(error); } },
  });
  return () => { stopped = true; stop(); setLive(false); };
}
