// One run: why it failed (at the top), its facts, the waterfall, and each step as
// a transcript of what is new since the previous step, with usage, errors, attempts
// (headers, raw redacted bodies on demand) and copy buttons. The page follows the
// chat's change events (live.js): a changed step is fetched alone and replaced in
// place, keeping what the reader opened; a stream in flight shows its text so far,
// its chunk count and a running clock.

import { api } from "./api.js";
import {
  NOT_REPORTED, clear, decodeBody, durationOf, formatMs, formatNumber, formatTime, h,
  keyValueTable, lazyDetails, link, parseTime, pretty, runCost, runTokens, statusPill, stepCost,
} from "./dom.js";
import { exportRunButton, stepActions } from "./copy_tools.js";
import { asText } from "./labels.js";
import { failureBanner, scrollToStep } from "./run_failure.js";
import { renderStepTranscript } from "./step_diff.js";
import { renderWaterfall } from "./waterfall.js";
import { follow, gather, inFlight, liveApi, replaceKeepingOpen, tickClocks } from "./live.js";

function errorBox(error) {
  if (!error || typeof error !== "object") return null;
  const facts = [];
  if (error.type) facts.push(["type", asText(error.type)]);
  if (error.provider_status !== undefined) facts.push(["HTTP status", asText(error.provider_status)]);
  if (error.provider_title) facts.push(["provider", asText(error.provider_title)]);
  if (error.is_retryable !== undefined) facts.push(["retryable", asText(error.is_retryable)]);
  if (error.context_error) facts.push(["context", asText(error.context_error)]);
  return h("div", { className: "error-box step-error" },
    h("div", { className: "strong", text: asText(error.message ?? error.error ?? "error") }),
    facts.length ? keyValueTable(facts) : null);
}

// Why a step has no usage (its provider sent none), from the step's metadata.
function usageUnavailable(step) {
  const reason = step.metadata && typeof step.metadata === "object" ? step.metadata.usage_unavailable : undefined;
  return reason ? String(reason) : null;
}

function usageTable(usage, unavailable) {
  if (!usage || typeof usage !== "object") {
    if (!unavailable) return null;
    return h("div", { className: "usage usage-unavailable" }, h("h4", { text: "Usage" }),
      keyValueTable([["tokens", NOT_REPORTED], ["why", unavailable]]));
  }
  const entries = Object.entries(usage);
  return h("div", { className: "usage" }, h("h4", { text: "Usage" }),
    keyValueTable(entries.map(([k, v]) => [k.replaceAll("_", " "), typeof v === "number" ? formatNumber(v) : pretty(v)])));
}

function headersTable(headers) {
  if (!headers || typeof headers !== "object") return h("p", { className: "muted", text: "none recorded" });
  return keyValueTable(Object.entries(headers).map(([k, v]) => [k, String(v)]), "kv headers");
}

function bodyView(b64) {
  const { text, note } = decodeBody(b64);
  return h("div", { className: "body-view" }, h("div", { className: "muted small", text: note }), h("pre", { className: "code body", text }));
}

function attemptCard(attempt, stepStart) {
  const a0 = parseTime(attempt.started_at);
  const facts = [
    ["outcome", String(attempt.status ?? "?")],
    ["request", `${attempt.method ?? ""} ${attempt.url ?? attempt.path ?? ""}`],
    ["response status", attempt.response_status !== undefined ? String(attempt.response_status) : "no response"],
    ["started", a0 !== null && stepStart !== null ? `+${formatMs(a0 - stepStart)} into the step` : "—"],
    ["duration", formatMs(attempt.duration_ms)],
  ];
  if (typeof attempt.ttfb_ms === "number") facts.push(["time to first byte", formatMs(attempt.ttfb_ms)]);
  if (typeof attempt.ttft_ms === "number") facts.push(["time to first chunk", formatMs(attempt.ttft_ms)]);
  if (attempt.retry_classification) facts.push(["retry reason", String(attempt.retry_classification)]);
  if (typeof attempt.retry_delay_ms === "number") facts.push(["retry delay", formatMs(attempt.retry_delay_ms)]);
  if (attempt.error) facts.push(["error", String(attempt.error)]);
  if (attempt.capture_error) facts.push(["capture", String(attempt.capture_error)]);
  const failed = attempt.status === "failed" || (attempt.response_status ?? 0) >= 400;
  return h("div", { className: `attempt-card ${failed ? "attempt-failed" : ""}` },
    h("h5", { text: `Attempt ${attempt.number ?? "?"}` }),
    keyValueTable(facts),
    lazyDetails("Response headers", () => headersTable(attempt.response_headers), "response-headers"),
    lazyDetails("Request headers", () => headersTable(attempt.request_headers), "request-headers"),
    attempt.request_body ? lazyDetails("Request body (redacted)", () => bodyView(attempt.request_body), "request-body") : null,
    attempt.response_body ? lazyDetails("Response body (redacted)", () => bodyView(attempt.response_body), "response-body") : null);
}

function stepSection(step, index, steps, run) {
  const stepStart = parseTime(step.started_at);
  const attempts = Array.isArray(step.attempts) ? step.attempts : [];
  const usage = step.usage || {};
  const unavailable = usageUnavailable(step);
  const head = h("div", { className: "step-head" },
    h("h3", { text: `Step ${step.step_number}` }),
    h("span", { className: "muted", text: step.operation }),
    statusPill(step.status),
    h("span", { className: "muted", text: formatMs(durationOf(step)) }),
    attempts.length > 1 ? h("span", { className: "tag warn", text: `${attempts.length} attempts` }) : null,
    typeof usage.input_tokens === "number"
      ? h("span", { className: "muted", text: `${formatNumber(usage.input_tokens)} in / ${formatNumber(usage.output_tokens)} out tokens` })
      : unavailable ? h("span", { className: "muted tokens-unreported", title: unavailable, text: `tokens ${NOT_REPORTED}` }) : null,
    stepCost(step.metadata) ? h("span", { className: "muted step-cost", text: stepCost(step.metadata) }) : null,
    stepActions(step, run));
  return h("section", { className: `step status-${step.status}`, id: `step-${step.step_number}`, tabIndex: -1 },
    head,
    errorBox(step.error),
    inFlight(step),
    renderStepTranscript(step, index > 0 ? steps[index - 1] : null),
    h("div", { className: "step-facts" },
      usageTable(step.usage, unavailable),
      step.metadata && Object.keys(step.metadata).length
        ? h("details", { className: "metadata" }, h("summary", { text: "Metadata" }), h("pre", { className: "code small", text: pretty(step.metadata) }))
        : null),
    h("div", { className: "attempts" }, h("h4", { text: `HTTP attempts (${attempts.length})` }),
      attempts.map((attempt) => attemptCard(attempt, stepStart))));
}

function runHeader(run, chatId, traceUrl) {
  const s = run.summary && typeof run.summary === "object" ? run.summary : {};
  const facts = [
    ["run", run.id], ["chat", run.chat_id], ["user", run.user_id ?? "—"], ["kind", run.kind],
    ["provider / model", `${run.provider ?? "—"} / ${run.model ?? "—"}`],
    ["started", formatTime(run.started_at)],
    ["duration", formatMs(typeof s.duration_ms === "number" ? s.duration_ms : durationOf(run))],
    ["steps", formatNumber(s.step_count ?? run.steps.length)],
    ["tokens in / out", runTokens(s)],
    ["cost", runCost(s)],
  ];
  for (const key of ["trigger_message_id", "history_tip_message_id", "root_chat_id", "parent_chat_id", "model_config_id", "trace_id"]) {
    if (run[key] !== undefined) facts.push([key.replaceAll("_", " "), String(run[key])]);
  }
  const trace = traceUrl && /^[0-9a-f]{32}$/.test(String(run.trace_id ?? ""))
    ? h("a", { id: "trace-link", href: traceUrl.replaceAll("{trace_id}", run.trace_id), target: "_blank", rel: "noopener noreferrer", text: "Open trace" })
    : null;
  const download = h("button", { type: "button", className: "ghost", id: "export", text: "Export chat (JSON)" });
  download.addEventListener("click", async () => {
    const doc = await api.exportChat(chatId);
    const blob = new Blob([JSON.stringify(doc, null, 2)], { type: "application/json" });
    const safe = String(chatId).replace(/[^A-Za-z0-9_.-]/g, "_").slice(0, 80);
    const a = h("a", { href: URL.createObjectURL(blob), download: `chatdebug-export-${safe}.json` });
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  });
  return h("section", { className: "run-head", id: "run-head" },
    h("div", { className: "run-title" },
      h("h1", { text: typeof s.first_message === "string" && s.first_message ? s.first_message : "(no message)" }),
      h("span", { id: "run-status" }, statusPill(run.status)), trace, exportRunButton(run), download),
    keyValueTable(facts, "kv facts"),
    h("details", { className: "summary-json" }, h("summary", { text: "Summary" }), h("pre", { className: "code small", text: pretty(s) })));
}

function otherRuns(runs, current) {
  return h("section", { className: "chat-runs" }, h("h2", { text: "Runs of this chat" }),
    h("ul", {}, runs.map((run) => h("li", { className: run.id === current ? "current" : "" },
      statusPill(run.status), " ",
      link(`/runs/${encodeURIComponent(run.id)}`, `${formatTime(run.started_at)} · ${run.kind}`)))));
}

// `chatId` may be null (a link by run id); `stepNumber`: the step to scroll to.
export async function renderRunPage(context, chatId, runId, stepNumber = null) {
  const { main, setCrumbs, setLive, onError } = context;
  let run = await api.run(chatId, runId);
  chatId = run.chat_id;
  const chatHash = `#/chat?${new URLSearchParams({ id: chatId })}`;
  setCrumbs(link("/", "runs"), h("a", { className: "mono clip", href: chatHash, title: chatId, text: `chat ${chatId}` }), h("span", { className: "mono", text: `run ${runId.slice(0, 8)}` }));
  let siblings = await api.chatRuns(chatId).catch(() => []);
  const config = await api.viewerConfig().catch(() => ({}));
  const draw = () => {
    clear(main).append(
      failureBanner(run) ?? "",
      runHeader(run, chatId, config.trace_url),
      renderWaterfall(run),
      h("section", { className: `steps run-${run.status}`, id: "steps" }, h("h2", { text: "Steps" }),
        run.steps.length ? run.steps.map((step, i, all) => stepSection(step, i, all, run)) : h("p", { className: "muted", text: "No steps recorded yet." })),
      otherRuns(siblings, run.id));
  };
  draw();
  if (stepNumber !== null) scrollToStep(stepNumber);
  const stopClocks = tickClocks(main);
  let stopped = false;
  let streamState = "live";
  const badge = () => setLive(run.status === "in_progress" || streamState !== "live", streamState);
  badge();

  const swap = (selector, fresh) => {
    const old = main.querySelector(selector);
    if (old && fresh) replaceKeepingOpen(old, fresh);
  };
  const redrawSummary = () => {
    swap("#run-head", runHeader(run, chatId, config.trace_url));
    swap(".waterfall", renderWaterfall(run));
    const banner = failureBanner(run);
    const shown = main.querySelector(".failure-banner");
    if (shown && banner) replaceKeepingOpen(shown, banner);
    else if (shown) shown.remove();
    else if (banner) main.prepend(banner);
    main.querySelector("#steps")?.setAttribute("class", `steps run-${run.status}`);
    badge();
  };
  const putStep = (step) => {
    const at = run.steps.findIndex((s) => s.step_number === step.step_number);
    if (at >= 0) run.steps[at] = step;
    else run.steps = [...run.steps, step].sort((a, b) => a.step_number - b.step_number);
    const index = run.steps.findIndex((s) => s.step_number === step.step_number);
    const fresh = stepSection(step, index, run.steps, run);
    const old = main.querySelector(`#step-${step.step_number}`);
    if (old) { replaceKeepingOpen(old, fresh); return; }
    const list = main.querySelector("#steps");
    list.querySelector(":scope > p.muted")?.remove();
    const next = [...list.querySelectorAll(":scope > section.step")]
      .find((section) => Number(section.id.slice(5)) > step.step_number);
    if (next) next.before(fresh);
    else list.append(fresh);
  };
  const reload = async () => {
    const next = await api.run(chatId, runId);
    if (stopped) return;
    run = next;
    redrawSummary();
    for (const step of run.steps) putStep(step);
  };
  const apply = async (events) => {
    let numbers = new Set();
    let summary = false;
    let others = false;
    for (const { kind, data } of events) {
      if (kind === "run_update" && data && data.run_id === runId) {
        summary = true;
        if (!Array.isArray(data.step_numbers)) numbers = null;
        else if (numbers) for (const n of data.step_numbers) numbers.add(n);
      } else if (kind === "run_update") {
        others = true;
      } else if (kind === "delete" && data && Array.isArray(data.run_ids) && data.run_ids.includes(runId)) {
        main.prepend(h("div", { className: "error-box", id: "run-deleted", text: "This run has been deleted." }));
        return;
      } else if (kind === "reset" || kind === "finalize") {
        numbers = null;
        summary = true;
      }
    }
    if (numbers === null) {
      await reload();
    } else {
      if (summary) {
        const next = await liveApi.runSummary(chatId, runId);
        if (stopped) return;
        run = { ...run, ...next, steps: run.steps };
      }
      for (const n of [...numbers].sort((a, b) => a - b)) {
        const step = await liveApi.step(chatId, runId, n).catch(() => null);
        if (stopped) return;
        if (step) putStep(step);
      }
      if (summary || numbers.size) redrawSummary();
    }
    if (others) {
      siblings = await api.chatRuns(chatId).catch(() => siblings);
      if (!stopped) swap(".chat-runs", otherRuns(siblings, run.id));
    }
  };
  const stop = follow("/api/debug/events", { chat_id: chatId }, {
    onEvents: gather((events) => {
      apply(events).catch((error) => { if (!stopped) onError(error); });
    }),
    onState: (state) => { streamState = state === "polling" ? "live" : state; if (!stopped) badge(); },
    onPoll: async () => {
      if (run.status !== "in_progress") return;
      const before = run.updated_at;
      const next = await api.run(chatId, runId);
      if (stopped || next.updated_at === before) return;
      run = next;
      redrawSummary();
      for (const step of run.steps) putStep(step);
    },
    onError: (error) => { if (!stopped) { stopped = true; stop(); onError(error); } },
  });
  return () => { stopped = true; stop(); stopClocks(); setLive(false); };
}
