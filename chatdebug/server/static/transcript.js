// A step as a chat transcript: the messages sent (system, user, assistant,
// tool), the tool calls with their arguments and results, reasoning folded,
// then the model's reply. Every piece of text goes in through textContent.

import { h, keyValueTable, pretty } from "./dom.js";

function prettyArguments(text) {
  if (typeof text !== "string") return pretty(text);
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

function truncationNote(part) {
  const shown = typeof part.text === "string" ? part.text.length : 0;
  if (typeof part.text_length === "number" && part.text_length > shown) {
    return h("div", { className: "muted small", text: `cut to ${shown} of ${part.text_length} characters` });
  }
  return null;
}

function renderPart(part) {
  if (!part || typeof part !== "object") return h("pre", { className: "part raw", text: pretty(part) });
  switch (part.type) {
    case "text":
      return h("div", { className: "part text" }, h("div", { className: "text-body", text: part.text ?? "" }), truncationNote(part));
    case "reasoning": {
      const text = typeof part.text === "string" ? part.text : "";
      return h("details", { className: "part reasoning" },
        h("summary", { text: `Reasoning (${part.text_length ?? text.length} characters)` }),
        h("div", { className: "text-body", text }), truncationNote(part));
    }
    case "tool-call":
      return h("div", { className: "part tool-call" },
        h("div", { className: "part-head" },
          h("span", { className: "tag", text: "tool call" }),
          h("span", { className: "mono strong", text: part.tool_name ?? "?" }),
          h("span", { className: "mono muted", text: part.tool_call_id ? ` ${part.tool_call_id}` : "" })),
        h("pre", { className: "code", text: prettyArguments(part.arguments ?? "") }));
    case "tool-result":
      return h("div", { className: "part tool-result" },
        h("div", { className: "part-head" },
          h("span", { className: "tag", text: "tool result" }),
          h("span", { className: "mono muted", text: part.tool_call_id ?? "" })),
        h("pre", { className: "code", text: typeof part.result === "string" ? part.result : pretty(part.result) }));
    case "file":
      return h("div", { className: "part file", text: `[file] ${part.filename ?? ""} ${part.media_type ?? ""}`.trim() });
    case "source":
      return h("div", { className: "part source", text: `[source] ${part.title ?? ""} ${part.url ?? ""}`.trim() });
    default:
      return h("pre", { className: "part raw", text: pretty(part) });
  }
}

function message(role, parts, note, extra = "") {
  const known = ["system", "user", "assistant", "tool"];
  const cls = known.includes(role) ? role : "other";
  return h("div", { className: `msg role-${cls} ${extra}`.trim() },
    h("div", { className: "msg-role" }, h("span", { text: String(role) }), note ? h("span", { className: "muted small", text: ` ${note}` }) : null),
    h("div", { className: "msg-parts" }, (Array.isArray(parts) ? parts : []).map(renderPart)));
}

function toolsList(tools) {
  return h("details", { className: "tools" },
    h("summary", { text: `${tools.length} tool${tools.length === 1 ? "" : "s"} offered` }),
    h("ul", {}, tools.map((tool) => h("li", {},
      h("span", { className: "mono strong", text: tool.name ?? tool.id ?? "?" }),
      tool.description ? h("span", { className: "muted", text: ` — ${tool.description}` }) : null,
      tool.input_schema ? h("pre", { className: "code small", text: pretty(tool.input_schema) }) : null))));
}

// `from`: the first message to show (the earlier ones are the previous step's).
export function renderTranscript(step, { from = 0 } = {}) {
  const request = step.normalized_request && typeof step.normalized_request === "object" ? step.normalized_request : {};
  const messages = Array.isArray(request.messages) ? request.messages : [];
  const out = h("div", { className: "transcript" });
  if (request.error === "malformed debug payload") {
    out.append(h("div", { className: "error-box", text: `Stored request could not be read: ${request.parse_error ?? ""}` }));
  }
  for (const m of messages.slice(from)) out.append(message(m?.role ?? "?", m?.parts));
  const response = step.normalized_response;
  if (response && typeof response === "object") {
    const note = response.finish_reason ? `reply · finish: ${response.finish_reason}` : "reply";
    if (Array.isArray(response.content) && response.content.length) {
      out.append(message("assistant", response.content, note, "reply"));
    } else if (typeof response.raw_text_length === "number") {
      out.append(message("assistant", [], `${note} · structured output, ${response.raw_text_length} characters`, "reply"));
    } else if (response.error) {
      out.append(h("div", { className: "error-box", text: `Stored response could not be read: ${response.parse_error ?? response.error}` }));
    } else {
      out.append(message("assistant", [], `${note} (no content)`, "reply"));
    }
  } else if (step.status === "in_progress") {
    out.append(h("div", { className: "msg pending muted", text: "Waiting for the reply…" }));
  }
  const extras = [];
  if (Array.isArray(request.tools) && request.tools.length) extras.push(toolsList(request.tools));
  const options = request.options && typeof request.options === "object" ? Object.entries(request.options) : [];
  if (request.model) options.unshift(["model", request.model]);
  if (request.tool_choice) options.push(["tool_choice", request.tool_choice]);
  if (options.length) {
    extras.push(h("details", { className: "options" }, h("summary", { text: "Request options" }),
      keyValueTable(options.map(([k, v]) => [k, typeof v === "object" ? pretty(v) : String(v)]))));
  }
  if (extras.length) out.append(h("div", { className: "extras" }, extras));
  return out;
}
