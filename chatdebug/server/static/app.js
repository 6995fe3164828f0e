// The viewer's shell: sign-in, hash routing (#/ the runs list, #/chat?id=<chat>,
// #/runs/<run>[/step-N] and the older #/chats/<chat>/runs/<run>), keyboard keys, and
// the refresh timer of the page on screen.

import { Unauthorized, api, setToken, token } from "./api.js";
import { clear, h } from "./dom.js";
import { renderChatPage } from "./chat_page.js";
import { installKeys } from "./keys.js";
import { renderRunPage } from "./run_page.js";
import { renderRunsList } from "./runs_list.js";

const main = document.getElementById("main");
const crumbs = document.getElementById("crumbs");
const signOut = document.getElementById("sign-out");
const live = document.getElementById("live");

let stopCurrent = () => {};

function setCrumbs(...items) {
  clear(crumbs).append(...items.flatMap((item, i) => (i ? [h("span", { text: " / " }), item] : [item])));
}

function showLogin(message) {
  stopCurrent();
  stopCurrent = () => {};
  signOut.hidden = true;
  live.hidden = true;
  setCrumbs(h("span", { text: "sign in" }));
  const input = h("input", {
    type: "password", id: "token", name: "token", autocomplete: "off",
    placeholder: "API token",
  });
  const form = h("form", { className: "login", id: "login-form" },
    h("h1", { text: "chatdebug viewer" }),
    h("p", { className: "muted", text: "Paste the read (or admin) token this server was started with. It is kept in this tab's session storage only." }),
    h("label", { htmlFor: "token", text: "Token" }),
    input,
    h("button", { type: "submit", id: "login-button", text: "Open" }),
    message ? h("p", { className: "error-text", id: "login-error", text: message }) : null,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    setToken(input.value.trim());
    try {
      await api.recentRuns({}, null, 1);
      route();
    } catch (error) {
      setToken("");
      showLogin(error instanceof Unauthorized ? "That token was not accepted." : String(error.message));
    }
  });
  clear(main).append(form);
  input.focus();
}

function showError(error) {
  if (error instanceof Unauthorized) {
    setToken("");
    showLogin("Your token is no longer accepted: sign in again.");
    return;
  }
  clear(main).append(h("div", { className: "error-box", id: "page-error", text: String(error.message || error) }));
}

// The badge: hidden, "live", or how the page follows when it cannot stream
// ("reconnecting", "polling").
export function setLive(on, state = "live") {
  live.hidden = !on;
  live.textContent = state;
  live.dataset.state = state;
}

function parseRoute() {
  const hash = window.location.hash.replace(/^#/, "") || "/";
  const byId = hash.match(/^\/runs\/([0-9a-fA-F-]{36})(?:\/step-(\d+))?$/);
  if (byId) return { page: "run", chatId: null, runId: byId[1], step: byId[2] ? Number(byId[2]) : null };
  if (hash.startsWith("/chat?")) {
    const id = new URLSearchParams(hash.slice("/chat?".length)).get("id");
    if (id !== null) return { page: "chat", chatId: id };
  }
  const match = hash.match(/^\/chats\/([^/]+)\/runs\/([^/?]+?)(?:\/step-(\d+))?$/);
  if (match) {
    try {
      return {
        page: "run", chatId: decodeURIComponent(match[1]), runId: decodeURIComponent(match[2]),
        step: match[3] ? Number(match[3]) : null,
      };
    } catch {
      return { page: "list", query: "" };
    }
  }
  const query = hash.startsWith("/?") ? hash.slice(2) : "";
  return { page: "list", query };
}

async function route() {
  stopCurrent();
  stopCurrent = () => {};
  setLive(false);
  signOut.hidden = !token();
  const where = parseRoute();
  const context = { main, setCrumbs, setLive, onError: showError };
  try {
    if (where.page === "run") {
      stopCurrent = await renderRunPage(context, where.chatId, where.runId, where.step);
    } else if (where.page === "chat") {
      stopCurrent = await renderChatPage(context, where.chatId);
    } else {
      stopCurrent = await renderRunsList(context, new URLSearchParams(where.query));
    }
  } catch (error) {
    showError(error);
  }
}

signOut.addEventListener("click", () => {
  setToken("");
  showLogin("");
});

window.addEventListener("hashchange", route);
installKeys();

// Open without a token when the server runs without tokens (loopback only).
(async () => {
  try {
    await api.recentRuns({}, null, 1);
    route();
  } catch (error) {
    if (error instanceof Unauthorized) showLogin("");
    else showError(error);
  }
})();
