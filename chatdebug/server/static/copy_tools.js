// Reusing what was sent: a step's request as JSON or as a curl command (keys left as
// $OPENAI_API_KEY-style placeholders: what was stored is redacted), its reply, a link
// to the step (#/runs/<run>/step-N), and the whole run as a JSON file.

import { h, pretty } from "./dom.js";
import { asText } from "./labels.js";

const obj = (v) => (v && typeof v === "object" && !Array.isArray(v) ? v : {});
const REDACTED = "[REDACTED]";
// Headers a client sets by itself, or that only describe the SDK that sent them.
const SKIP_HEADERS = new Set(["host", "content-length", "connection", "accept-encoding",
  "user-agent", "transfer-encoding", "cookie"]);

export function stepLink(runId, stepNumber) {
  return `#/runs/${encodeURIComponent(runId)}/step-${stepNumber}`;
}

function rawBody(b64) {
  if (typeof b64 !== "string") return null;
  try {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    return new TextDecoder("utf-8", { fatal: false }).decode(bytes);
  } catch {
    return null;
  }
}

function lastAttempt(step) {
  const attempts = Array.isArray(step.attempts) ? step.attempts : [];
  return attempts.length ? obj(attempts[attempts.length - 1]) : {};
}

// The request as it was sent (its redacted body), else the normalized request.
export function requestJSON(step) {
  const body = rawBody(lastAttempt(step).request_body);
  if (body !== null) {
    try {
      return JSON.stringify(JSON.parse(body), null, 2);
    } catch {
      return body;
    }
  }
  return pretty(obj(step.normalized_request));
}

// The environment variable a provider's key is usually kept in.
function keyVariable(url, header) {
  const host = (() => { try { return new URL(url).hostname; } catch { return ""; } })();
  if (header === "x-goog-api-key" || header === "key" || /googleapis|generativelanguage/.test(host)) return "GEMINI_API_KEY";
  if (header === "api-key" || /azure/.test(host)) return "AZURE_OPENAI_API_KEY";
  if (header === "x-api-key" || /anthropic/.test(host)) return "ANTHROPIC_API_KEY";
  for (const name of ["groq", "mistral", "openrouter", "together", "fireworks", "deepseek"]) {
    if (host.includes(name)) return `${name.toUpperCase()}_API_KEY`;
  }
  return "OPENAI_API_KEY";
}

const quote = (text) => `'${String(text).replaceAll("'", "'\\''")}'`;

function isRedacted(value) {
  return typeof value === "string" && value.includes(REDACTED);
}

// The URL with redacted query values as "$VARIABLE" (outside the quotes, so the
// shell expands them).
function curlUrl(url) {
  const text = String(url || "");
  const [base, query] = text.split(/\?(.*)/s, 2);
  if (!query) return quote(text);
  const pieces = query.split("&").map((pair) => {
    const [name] = pair.split("=", 1);
    if (isRedacted(pair) || pair.includes("%5BREDACTED%5D")) {
      return { text: `${name}=`, variable: keyVariable(text, name) };
    }
    return { text: pair, variable: null };
  });
  let out = quote(`${base}?`);
  pieces.forEach((piece, i) => {
    out += quote(`${i ? "&" : ""}${piece.text}`);
    if (piece.variable) out += `"$${piece.variable}"`;
  });
  return out;
}

export function curlCommand(step) {
  const attempt = lastAttempt(step);
  const url = attempt.url || attempt.path || "";
  const lines = [`curl -sS -X ${attempt.method || "POST"} ${curlUrl(url)}`];
  const headers = obj(attempt.request_headers);
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (SKIP_HEADERS.has(lower) || lower.startsWith("x-stainless")) continue;
    if (isRedacted(value)) {
      const variable = keyVariable(url, lower);
      const prefix = /^bearer /i.test(String(value)) || lower === "authorization" ? "Bearer " : "";
      lines.push(`-H "${lower}: ${prefix}$${variable}"`);
    } else {
      lines.push(`-H ${quote(`${lower}: ${asText(value)}`)}`);
    }
  }
  const body = rawBody(attempt.request_body);
  let text = lines.join(" \\\n  ");
  if (body !== null) {
    text += " \\\n  --data-binary @- <<'CHATDEBUG_BODY'\n" + body + "\nCHATDEBUG_BODY";
    if (body.includes("[TRUNCATED]")) {
      text = "# The recorded body was cut: it ends with [TRUNCATED].\n" + text;
    }
  }
  return text;
}

// The reply's text (and tool calls), else the whole normalized response as JSON.
export function replyText(step) {
  const response = obj(step.normalized_response);
  const content = Array.isArray(response.content) ? response.content : [];
  const texts = content.filter((p) => p && p.type === "text").map((p) => asText(p.text));
  if (texts.length) return texts.join("\n");
  return pretty(response);
}

async function writeClipboard(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // No clipboard permission (an insecure origin, a browser setting): the old way.
    const area = h("textarea", { className: "offscreen", value: text });
    document.body.append(area);
    area.select();
    const done = document.execCommand("copy");
    area.remove();
    return done;
  }
}

function copyButton(label, id, produce, status) {
  return h("button", {
    type: "button", className: "ghost small copy", text: label, dataset: { copy: id },
    onclick: async () => {
      const text = produce();
      const done = await writeClipboard(text);
      status.textContent = done ? `${label.replace(/^Copy /, "")} copied` : "could not copy";
      setTimeout(() => { status.textContent = ""; }, 2500);
    },
  });
}

export function stepActions(step, run) {
  const status = h("span", { className: "muted small copy-status", role: "status" });
  const hasReply = step.normalized_response && typeof step.normalized_response === "object";
  return h("div", { className: "step-actions" },
    copyButton("Copy request JSON", "request", () => requestJSON(step), status),
    copyButton("Copy as curl", "curl", () => curlCommand(step), status),
    hasReply ? copyButton("Copy reply", "reply", () => replyText(step), status) : null,
    copyButton("Copy link", "link", () => {
      const hash = stepLink(run.id, step.step_number);
      history.replaceState(null, "", hash);
      return `${window.location.origin}${window.location.pathname}${hash}`;
    }, status),
    status);
}

export function exportRunButton(run) {
  return h("button", {
    type: "button", className: "ghost", id: "export-run", text: "Export run (JSON)",
    onclick: () => {
      const blob = new Blob([JSON.stringify(run, null, 2)], { type: "application/json" });
      const a = h("a", { href: URL.createObjectURL(blob), download: `chatdebug-run-${run.id}.json` });
      a.click();
      setTimeout(() => URL.revokeObjectURL(a.href), 1000);
    },
  });
}
