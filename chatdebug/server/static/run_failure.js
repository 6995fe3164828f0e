// Why a run failed, where a person looks first: a banner at the top of the run page
// with the error and the failing step (a link to it), and the error cell of the
// runs list.

import { h } from "./dom.js";
import { asText, errorLine } from "./labels.js";

const obj = (v) => (v && typeof v === "object" && !Array.isArray(v) ? v : {});
const FAILED = new Set(["error", "interrupted"]);

function failingStep(run) {
  const error = obj(obj(run.summary).error);
  const steps = Array.isArray(run.steps) ? run.steps : [];
  if (typeof error.step_number === "number") {
    return steps.find((s) => s.step_number === error.step_number) || null;
  }
  return steps.find((s) => s.status === "error") || null;
}

export function scrollToStep(number) {
  const target = document.getElementById(`step-${number}`);
  if (!target) return;
  target.scrollIntoView({ block: "start" });
  target.classList.add("current-step");
  setTimeout(() => target.classList.remove("current-step"), 1500);
}

// The banner, or null when the run did not fail and has no error.
export function failureBanner(run) {
  const summary = obj(run.summary);
  const error = obj(summary.error);
  const step = failingStep(run);
  if (!FAILED.has(run.status) && !summary.error && !step) return null;
  const stepError = step ? obj(step.error) : {};
  const message = asText(error.message ?? stepError.message ?? stepError.error) ||
    (run.status === "interrupted" ? "The run was interrupted." : "The run failed.");
  const type = asText(error.type ?? stepError.type);
  const where = step
    ? h("a", {
      href: `#step-${step.step_number}`, className: "failing-step-link",
      text: `in step ${step.step_number} (${step.operation}, ${String(step.status).replace("_", " ")})`,
      onclick: (event) => { event.preventDefault(); scrollToStep(step.step_number); },
    })
    : h("span", { className: "muted", text: "outside any model call" });
  const facts = [];
  if (stepError.provider_status !== undefined) facts.push(`HTTP ${asText(stepError.provider_status)}`);
  if (stepError.provider_title) facts.push(asText(stepError.provider_title));
  if (stepError.is_retryable !== undefined) facts.push(stepError.is_retryable ? "retryable" : "not retryable");
  if (step && Array.isArray(step.attempts) && step.attempts.length > 1) facts.push(`${step.attempts.length} attempts`);
  return h("section", { className: `failure-banner status-${run.status}`, id: "failure" },
    h("div", { className: "failure-title" },
      h("span", { className: "strong", text: run.status === "interrupted" ? "Interrupted" : "Failed" }),
      " ", where),
    type ? h("div", { className: "mono failure-type", text: type }) : null,
    h("div", { className: "failure-message", text: message }),
    facts.length ? h("div", { className: "muted small", text: facts.join(" · ") }) : null);
}

// The runs list's error cell: the run's first error, clipped, whole on hover.
export function errorCell(run) {
  const line = errorLine(run.summary);
  const failed = FAILED.has(run.status);
  return h("td", {
    className: `clip error-cell ${line ? "has-error" : ""}`.trim(),
    title: line || undefined,
    text: line || (failed ? run.status.replace("_", " ") : ""),
  });
}
