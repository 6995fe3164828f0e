// One conversation: every run of a chat, newest first, with the chat's totals
// (runs, errors, tokens, cost, users). Reached from the runs list's chat cells and
// from a run page; its address carries the chat id as a query value
// (#/chat?id=...), so any id the recorder accepts can be opened.

import { api } from "./api.js";
import {
  clear, durationOf, formatMs, formatNumber, formatTime, formatUsd, h, keyValueTable, link,
  runCost, runTokens, statusPill,
} from "./dom.js";
import { errorCell } from "./run_failure.js";

const PAGE = 50;
const obj = (v) => (v && typeof v === "object" && !Array.isArray(v) ? v : {});

export function chatHash(chatId) {
  return `#/chat?${new URLSearchParams({ id: chatId })}`;
}

function totalsTable(totals) {
  const steps = (n) => `${n} step${n === 1 ? "" : "s"}`;
  const cost = typeof totals.total_cost_usd === "number"
    ? formatUsd(totals.total_cost_usd) + (totals.unpriced_step_count
      ? ` (${steps(totals.unpriced_step_count)} without a price: a lower bound)` : "")
    : totals.unpriced_step_count ? "not available" : "—";
  const tokens = `${formatNumber(totals.total_input_tokens)} / ${formatNumber(totals.total_output_tokens)}` +
    (totals.steps_without_usage ? ` (${steps(totals.steps_without_usage)} not reported)` : "");
  const facts = [
    ["runs", formatNumber(totals.run_count) + (totals.complete ? "" : " (newest only)")],
    ["failed runs", formatNumber(totals.error_run_count)],
    ["in progress", formatNumber(totals.in_progress_run_count)],
    ["tokens in / out", tokens],
    ["cost", cost],
    ["users", (totals.user_ids || []).join(", ") || "—"],
    ["first run", totals.first_started_at ? formatTime(totals.first_started_at) : "—"],
    ["last run", totals.last_started_at ? formatTime(totals.last_started_at) : "—"],
  ];
  return keyValueTable(facts, "kv facts chat-totals");
}

function runRow(run) {
  const s = obj(run.summary);
  const first = typeof s.first_message === "string" && s.first_message ? s.first_message : "(no message)";
  const route = `/runs/${encodeURIComponent(run.id)}`;
  return h("tr", { className: `run-row row-${run.status}`, dataset: { runId: run.id } },
    h("td", { className: "nowrap" }, link(route, formatTime(run.started_at), "run-link")),
    h("td", {}, statusPill(run.status)),
    h("td", { text: run.kind }),
    h("td", { className: "mono clip", title: run.model || "", text: run.model || "—" }),
    h("td", { className: "num", text: formatNumber(s.step_count) }),
    h("td", { className: "num nowrap", text: runTokens(s) }),
    h("td", { className: "num nowrap", text: formatMs(typeof s.duration_ms === "number" ? s.duration_ms : durationOf(run)) }),
    h("td", { className: "num nowrap", text: runCost(s) }),
    errorCell(run),
    h("td", { className: "clip message", title: first }, link(route, first)));
}

export async function renderChatPage(context, chatId) {
  const { main, setCrumbs, onError } = context;
  setCrumbs(link("/", "runs"), h("span", { className: "mono clip", title: chatId, text: `chat ${chatId}` }));
  const [totals, first] = await Promise.all([
    api.chatSummary(chatId),
    api.recentRuns({ chat_id: chatId }, null, PAGE),
  ]);
  const body = h("tbody", { id: "chat-runs-body" });
  const more = h("button", { type: "button", id: "chat-load-more", className: "ghost", text: "Load more", hidden: true });
  const headers = ["Started", "Status", "Kind", "Model", "Steps", "Tokens in / out", "Duration",
    "Cost", "Error", "First message"].map((t) => h("th", { text: t }));
  clear(main).append(
    h("section", { className: "run-head chat-head", id: "chat-head" },
      h("div", { className: "run-title" },
        h("h1", {}, "Chat ", h("span", { className: "mono chat-id", text: chatId }))),
      totalsTable(totals)),
    h("table", { className: "runs", id: "chat-runs" }, h("thead", {}, h("tr", {}, headers)), body),
    h("p", { className: "muted", id: "chat-empty", hidden: first.runs.length > 0, text: "No runs of this chat are stored." }),
    more);
  let cursor = first.next_cursor;
  body.append(...first.runs.map(runRow));
  more.hidden = !cursor;
  more.addEventListener("click", async () => {
    try {
      const page = await api.recentRuns({ chat_id: chatId }, cursor, PAGE);
      body.append(...page.runs.map(runRow));
      cursor = page.next_cursor;
      more.hidden = !cursor;
    } catch (error) {
      onError(error);
    }
  });
  return () => {};
}
