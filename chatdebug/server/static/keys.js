// Keyboard: j / k move to the next / previous step of a run, / goes to the search
// box of the runs list. Keys typed into a field are left alone.

import { scrollToStep } from "./run_failure.js";

let current = -1;

function typing(target) {
  return target instanceof HTMLElement &&
    (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
}

function moveStep(delta) {
  const steps = [...document.querySelectorAll("section.step")];
  if (!steps.length) return;
  const focused = steps.indexOf(document.activeElement);
  const from = focused >= 0 ? focused : Math.min(current, steps.length - 1);
  current = Math.max(0, Math.min(steps.length - 1, from + delta));
  const step = steps[current];
  const number = step.id.replace(/^step-/, "");
  scrollToStep(number);
  step.focus({ preventScroll: true });
}

export function installKeys() {
  window.addEventListener("hashchange", () => { current = -1; });
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    if (event.key === "j") moveStep(1);
    else if (event.key === "k") moveStep(-1);
    else if (event.key === "/") {
      const search = document.getElementById("filter-q");
      if (search) {
        event.preventDefault();
        search.focus();
        search.select();
      }
    }
  });
}
