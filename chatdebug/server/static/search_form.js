// The runs list's search box and chat filter, the error shown next to a filter the
// API refused (the form keeps what was typed), and what an empty database says.

import { api } from "./api.js";
import { h } from "./dom.js";

export const SEARCH_FILTERS = ["q", "chat_id"];

export function searchFields(values) {
  return [
    h("label", { className: "search", title: "Words of the first message, messages and replies (press / to search)" },
      "Search ", h("input", {
        type: "search", name: "q", id: "filter-q", placeholder: "words in messages and replies",
        value: values.get("q") || "", autocomplete: "off",
      })),
    h("label", {}, "Chat ", h("input", {
      name: "chat_id", id: "filter-chat_id", placeholder: "exact chat id", value: values.get("chat_id") || "",
      autocomplete: "off",
    })),
  ];
}

// A 400 from the API names the parameter first ("q: …", "status must be …"): show
// the message beside that field, and keep the form as it was typed.
export function showFilterError(form, error) {
  for (const old of form.querySelectorAll(".filter-error")) old.remove();
  for (const old of form.querySelectorAll(".invalid")) old.classList.remove("invalid");
  const message = String(error.message || error).replace(/^400: /, "");
  const name = (message.match(/^([a-z_]+)\b/) || [])[1];
  const field = name ? form.elements[name] : null;
  const note = h("span", { className: "filter-error error-text", id: "filter-error", role: "alert", text: message });
  if (field) {
    field.classList.add("invalid");
    field.setAttribute("aria-invalid", "true");
    field.closest("label").after(note);
  } else {
    form.append(note);
  }
}

// What the list shows when nothing matches: with no filter at all, whether the
// server records and how to turn recording on.
export async function emptyNote(element, hasFilters) {
  if (hasFilters) {
    element.textContent = "No runs match these filters.";
    return;
  }
  let settings = null;
  try {
    settings = await api.recordingSettings();
  } catch {
    settings = null;
  }
  const lines = ["No runs are recorded in this database yet."];
  if (settings && settings.forced_by_deployment) {
    lines.push("Recording is forced on by this server's deployment flag (CHATDEBUG_ENABLED): runs appear here as the application records them, if it writes to this database.");
  } else if (settings && settings.allow_users) {
    lines.push("Users may opt in (allow_users is on): only runs of users who turned it on are recorded, e.g. `chatdebug settings user USER on`. To record every run: configure(enabled=True) or CHATDEBUG_ENABLED=1 in the application.");
  } else {
    lines.push("Recording is off unless the application forces it: configure(enabled=True) or CHATDEBUG_ENABLED=1 records every run; or let users opt in with `chatdebug settings allow-users on`, then `chatdebug settings user USER on`.");
  }
  element.replaceChildren(...lines.map((line) => h("p", { text: line })));
}
