// What changed between steps. An agent sends its whole history again in every step,
// so each step shows by default only what is new since the previous step of the run
// (the messages appended, and whether the tools or the system prompt changed), with
// "Show full request" to see everything that was sent.

import { h } from "./dom.js";
import { renderTranscript } from "./transcript.js";

const obj = (v) => (v && typeof v === "object" && !Array.isArray(v) ? v : {});
const arr = (v) => (Array.isArray(v) ? v : []);
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

// How a step's request differs from the previous step's: `shared` leading messages
// are the same, `removed` earlier messages are gone (the history was cut or edited).
export function requestDelta(step, previous) {
  const messages = arr(obj(step.normalized_request).messages);
  if (!previous) return { shared: 0, removed: 0, messages, tools: false, system: false };
  const before = arr(obj(previous.normalized_request).messages);
  let shared = 0;
  while (shared < messages.length && shared < before.length && same(messages[shared], before[shared])) {
    shared += 1;
  }
  const system = (list) => list.filter((m) => m && m.role === "system");
  return {
    shared,
    removed: before.length - shared,
    messages,
    tools: !same(arr(obj(step.normalized_request).tools), arr(obj(previous.normalized_request).tools)),
    system: !same(system(messages), system(before)),
  };
}

function changeTags(delta, previous) {
  const tags = [];
  const added = delta.messages.length - delta.shared;
  tags.push(h("span", { className: "tag", text: `${plural(added, "new message")}` }));
  if (delta.system) tags.push(h("span", { className: "tag warn", text: "system prompt changed" }));
  if (delta.tools) tags.push(h("span", { className: "tag warn", text: "tools changed" }));
  if (delta.removed > 0) {
    tags.push(h("span", { className: "tag warn", text: `${plural(delta.removed, "message")} of step ${previous.step_number} not sent again` }));
  }
  return tags;
}

// The step's transcript: only what is new when the step repeats the previous one's
// history, with a button to show the full request.
export function renderStepTranscript(step, previous) {
  const delta = requestDelta(step, previous);
  if (!previous || delta.shared === 0) {
    const full = renderTranscript(step);
    if (previous && (delta.tools || delta.system)) {
      return h("div", { className: "step-body" },
        h("div", { className: "delta-note" }, changeTags(delta, previous)), full);
    }
    return full;
  }
  const box = h("div", { className: "step-body", dataset: { hiddenMessages: delta.shared } });
  const hidden = h("span", {
    className: "muted small",
    text: `${plural(delta.shared, "earlier message")} as in step ${previous.step_number}, not shown`,
  });
  const toggle = h("button", { type: "button", className: "ghost small show-full", text: "Show full request" });
  const note = h("div", { className: "delta-note" }, changeTags(delta, previous), hidden, toggle);
  let full = false;
  const draw = () => {
    box.dataset.full = String(full);
    hidden.hidden = full;
    toggle.textContent = full ? "Show only what is new" : "Show full request";
    box.replaceChildren(note, renderTranscript(step, { from: full ? 0 : delta.shared }));
  };
  toggle.addEventListener("click", () => { full = !full; draw(); });
  draw();
  return box;
}
