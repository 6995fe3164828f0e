// DOM building and formatting helpers.
//
// Everything the viewer shows was captured from users and models: it is
// attacker-controlled. It only ever reaches the page through textContent and
// attribute setters below, never through innerHTML or any other HTML parser
// (the server's Content-Security-Policy also requires Trusted Types, so an
// HTML sink would throw).

const PROPS = new Set(["className", "title", "href", "type", "value", "disabled",
  "hidden", "open", "id", "name", "placeholder", "autocomplete", "htmlFor", "colSpan",
  "tabIndex"]);

// h("div", {className: "x", text: "hello", onclick: fn}, child, ...)
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null) continue;
    if (key === "text") el.textContent = String(value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style") Object.assign(el.style, value);
    else if (PROPS.has(key)) el[key] = value;
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

// A safe link inside the viewer (hash routes only).
export function link(route, text, className) {
  return h("a", { href: "#" + route, text, className });
}

export function statusPill(status) {
  const known = ["in_progress", "completed", "error", "interrupted"];
  const cls = known.includes(status) ? status : "unknown";
  return h("span", { className: `pill status-${cls}`, text: String(status).replace("_", " ") });
}

// Milliseconds since the epoch (with a fraction: stored times have micro- or
// nanoseconds, Date.parse keeps only milliseconds).
export function parseTime(text) {
  if (typeof text !== "string") return null;
  const match = text.match(/^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/);
  if (!match) return null;
  const whole = Date.parse(match[1] + match[3]);
  if (Number.isNaN(whole)) return null;
  const fraction = match[2] ? Number(`0.${match[2]}`) * 1000 : 0;
  return whole + fraction;
}

export function formatTime(text) {
  const ms = parseTime(text);
  if (ms === null) return "—";
  const d = new Date(ms);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function formatMs(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  if (ms === 0) return "0";
  // Sub-millisecond precision where it matters (a local attempt takes 0.3 ms).
  if (ms < 1) return `${ms.toFixed(3)} ms`;
  if (ms < 10) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(2)} s`;
  return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

export function durationOf(item, now = Date.now()) {
  const start = parseTime(item.started_at);
  if (start === null) return null;
  const end = item.finished_at ? parseTime(item.finished_at) : now;
  return end === null ? null : Math.max(0, end - start);
}

export function formatNumber(n) {
  return typeof n === "number" ? n.toLocaleString("en-US") : "—";
}

// What a token count the provider did not send reads as: unknown, never 0.
export const NOT_REPORTED = "not reported";

// A run's token totals from its summary: "in / out" of the usage that was reported,
// the steps whose provider sent none beside them, or "not reported" when no step
// reported any ("—" while the run has no totals yet).
export function runTokens(summary) {
  const s = summary && typeof summary === "object" ? summary : {};
  if (typeof s.total_input_tokens !== "number" && typeof s.total_output_tokens !== "number") return "—";
  const missing = typeof s.steps_without_usage === "number" ? s.steps_without_usage : 0;
  if (missing > 0 && missing === s.step_count) return NOT_REPORTED;
  const known = `${formatNumber(s.total_input_tokens)} / ${formatNumber(s.total_output_tokens)}`;
  if (missing <= 0) return known;
  return `${known} (${missing} step${missing === 1 ? "" : "s"} ${NOT_REPORTED})`;
}

// Dollars with the digits small per-call costs need.
export function formatUsd(n) {
  return n >= 0.01 ? `$${n.toFixed(4)}` : `$${n.toFixed(6)}`;
}

// A run's cost from its summary: the total of its priced steps, the steps without a
// price beside it, "not available" when none was priced (never $0 for unknown).
export function runCost(summary) {
  const s = summary && typeof summary === "object" ? summary : {};
  const missing = typeof s.unpriced_step_count === "number" ? s.unpriced_step_count : 0;
  if (typeof s.total_cost_usd !== "number") return missing > 0 ? "not available" : "—";
  const total = formatUsd(s.total_cost_usd);
  return missing > 0 ? `${total} (${missing} step${missing === 1 ? "" : "s"} without a price)` : total;
}

// A step's cost from its metadata, or why it has none; null when it was never priced.
export function stepCost(metadata) {
  const m = metadata && typeof metadata === "object" ? metadata : {};
  if (m.cost && typeof m.cost === "object" && typeof m.cost.total_usd === "number") {
    return formatUsd(m.cost.total_usd);
  }
  return typeof m.cost_unavailable === "string" ? `cost not available (${m.cost_unavailable})` : null;
}

export function pretty(value) {
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

// A stored body (base64 of redacted bytes) as text; JSON is pretty-printed, an
// SSE stream is left as it is.
export function decodeBody(b64) {
  let bytes;
  try {
    const binary = atob(b64);
    bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  } catch {
    return { text: String(b64), note: "not base64: shown as stored" };
  }
  const text = new TextDecoder("utf-8", { fatal: false }).decode(bytes);
  try {
    return { text: JSON.stringify(JSON.parse(text), null, 2), note: `${bytes.length} bytes, JSON` };
  } catch {
    return { text, note: `${bytes.length} bytes` };
  }
}

// <details> whose content is built only when first opened.
export function lazyDetails(summary, build, className = "") {
  const details = h("details", { className }, h("summary", { text: summary }));
  let built = false;
  details.addEventListener("toggle", () => {
    if (details.open && !built) {
      built = true;
      details.append(build());
    }
  });
  return details;
}

export function keyValueTable(entries, className = "kv") {
  const rows = entries.map(([k, v]) => h("tr", {}, h("th", { text: k }), h("td", { text: v })));
  return h("table", { className }, h("tbody", {}, rows));
}
