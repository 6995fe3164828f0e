// The waterfall: one row per step on a shared time axis from the run's start,
// with each HTTP attempt as a bar inside it, the backoff gaps between retries,
// and ticks for time to first byte and time to first chunk.

import { formatMs, h, parseTime } from "./dom.js";
import { stepOutcome } from "./labels.js";

function attemptClass(attempt, isLast) {
  const code = attempt.response_status;
  if (attempt.status === "failed" || (!code && attempt.error)) return "att-failed";
  if (typeof code === "number" && code >= 400) return isLast ? "att-failed" : "att-retried";
  return "att-ok";
}

function bounds(run) {
  const start = parseTime(run.started_at);
  let end = parseTime(run.finished_at) ?? start;
  const consider = (t) => { if (t !== null && t > end) end = t; };
  for (const step of run.steps) {
    consider(parseTime(step.finished_at) ?? parseTime(step.updated_at));
    for (const attempt of step.attempts || []) consider(parseTime(attempt.finished_at));
  }
  if (!run.finished_at) consider(Date.now());
  return { start, span: Math.max(end - start, 1) };
}

function segment(className, from, to, axis, title) {
  const left = ((from - axis.start) / axis.span) * 100;
  const width = Math.max(((to - from) / axis.span) * 100, 0.35);
  return h("div", {
    className: `seg ${className}`, title,
    style: { left: `${Math.max(0, left)}%`, width: `${Math.min(width, 100 - Math.max(0, left))}%` },
  });
}

function marker(className, at, axis, title) {
  const left = ((at - axis.start) / axis.span) * 100;
  return h("div", { className: `tick ${className}`, title, style: { left: `${Math.min(100, Math.max(0, left))}%` } });
}

function stepTrack(step, axis) {
  const track = h("div", { className: "track" });
  const start = parseTime(step.started_at);
  const end = parseTime(step.finished_at) ?? Date.now();
  if (start !== null) {
    track.append(segment(`step-bar status-${step.status}`, start, end, axis,
      `step ${step.step_number}: ${step.status}, ${formatMs(end - start)}`));
  }
  const attempts = step.attempts || [];
  let firstChunk = null;
  attempts.forEach((attempt, i) => {
    const a0 = parseTime(attempt.started_at);
    const a1 = parseTime(attempt.finished_at);
    if (a0 === null || a1 === null) return;
    const code = attempt.response_status ?? "no response";
    const parts = [`attempt ${attempt.number ?? i + 1}`, String(code), formatMs(a1 - a0)];
    if (typeof attempt.ttfb_ms === "number") parts.push(`TTFB ${formatMs(attempt.ttfb_ms)}`);
    if (typeof attempt.ttft_ms === "number") parts.push(`first chunk ${formatMs(attempt.ttft_ms)}`);
    if (attempt.error) parts.push(String(attempt.error));
    track.append(segment(`attempt ${attemptClass(attempt, i === attempts.length - 1)}`, a0, a1, axis, parts.join(" · ")));
    if (typeof attempt.ttfb_ms === "number") {
      track.append(marker("ttfb", a0 + attempt.ttfb_ms, axis, `time to first byte ${formatMs(attempt.ttfb_ms)}`));
    }
    if (typeof attempt.ttft_ms === "number") {
      firstChunk = attempt.ttft_ms;
      track.append(marker("ttft", a0 + attempt.ttft_ms, axis, `time to first chunk ${formatMs(attempt.ttft_ms)}`));
    }
    const next = attempts[i + 1];
    const n0 = next ? parseTime(next.started_at) : null;
    if (n0 !== null && n0 > a1) {
      track.append(segment("backoff", a1, n0, axis, `backoff before retry: ${formatMs(n0 - a1)}`));
    }
  });
  const facts = [formatMs(end - start)];
  if (attempts.length > 1) facts.push(`${attempts.length} attempts`);
  if (firstChunk !== null) facts.push(`first chunk ${formatMs(firstChunk)}`);
  return { track, facts: facts.join(" · "), retries: attempts.length - 1 };
}

function axisRow(axis) {
  const scale = h("div", { className: "track axis" });
  for (let i = 0; i <= 4; i += 1) {
    scale.append(h("span", { className: "axis-label", text: formatMs((axis.span * i) / 4), style: { left: `${i * 25}%` } }));
  }
  return h("div", { className: "wf-row wf-axis" }, h("div", { className: "wf-label" }), scale, h("div", { className: "wf-facts" }));
}

export function renderWaterfall(run) {
  const axis = bounds(run);
  const rows = [axisRow(axis)];
  const runEnd = parseTime(run.finished_at) ?? Date.now();
  const runTrack = h("div", { className: "track" },
    segment(`step-bar status-${run.status}`, axis.start, runEnd, axis, `run: ${run.status}`));
  rows.push(h("div", { className: "wf-row wf-run" },
    h("div", { className: "wf-label", text: "run" }), runTrack,
    h("div", { className: "wf-facts", text: formatMs(runEnd - axis.start) })));
  for (const step of run.steps) {
    const { track, facts, retries } = stepTrack(step, axis);
    rows.push(h("div", { className: `wf-row wf-step status-${step.status}`, dataset: { step: step.step_number, retries } },
      h("div", { className: "wf-label" },
        h("a", { href: `#step-${step.step_number}`, text: `step ${step.step_number}`, onclick: (e) => {
          e.preventDefault();
          document.getElementById(`step-${step.step_number}`)?.scrollIntoView({ behavior: "smooth" });
        } }),
        h("span", { className: "muted", text: ` ${step.operation}` }),
        stepOutcome(step) ? h("span", { className: "wf-outcome", title: stepOutcome(step), text: ` ${stepOutcome(step)}` }) : null),
      track,
      h("div", { className: "wf-facts", text: facts })));
  }
  const legend = h("div", { className: "legend" },
    ...[["att-ok", "attempt"], ["att-retried", "retried attempt"], ["att-failed", "failed attempt"],
      ["backoff", "backoff"], ["ttfb", "first byte"], ["ttft", "first chunk"]]
      .map(([cls, label]) => h("span", {}, h("i", { className: `swatch ${cls}` }), label)));
  return h("section", { className: "waterfall", id: "waterfall" }, h("h2", { text: "Timeline" }), ...rows, legend);
}
