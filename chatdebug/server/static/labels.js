// Short words for what a step or a run did, for the timeline, the runs list and
// the failure banner. Captured values are returned as plain strings: callers put
// them on the page through textContent.

import { pretty } from "./dom.js";

const obj = (v) => (v && typeof v === "object" && !Array.isArray(v) ? v : {});

// Any value as readable text: strings as they are, objects as JSON (never
// "[object Object]").
export function asText(value) {
  if (value === undefined || value === null) return "";
  return typeof value === "string" ? value : pretty(value);
}

// The tools a step's reply called, in order.
export function toolCalls(step) {
  const content = obj(step.normalized_response).content;
  return (Array.isArray(content) ? content : [])
    .filter((part) => part && part.type === "tool-call")
    .map((part) => asText(part.tool_name ?? "?"));
}

// "→ get_weather, lookup" when the step called tools, else its finish reason, else
// its status when it did not complete.
export function stepOutcome(step) {
  const calls = toolCalls(step);
  if (calls.length) return `→ ${calls.join(", ")}`;
  const finish = obj(step.normalized_response).finish_reason;
  if (finish) return asText(finish);
  if (step.status && step.status !== "completed") return String(step.status).replace("_", " ");
  return "";
}

// A run's first error as one line: "type: message", or "" when it has none.
export function errorLine(summary) {
  const error = obj(obj(summary).error);
  const message = asText(error.message);
  const type = asText(error.type);
  if (!message && !type) return "";
  return type && message ? `${type}: ${message}` : type || message;
}
