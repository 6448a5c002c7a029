// Keyboard shortcuts: one table, used both to handle keys and to show them (help dialog),
// so what is shown is what works. Alt+letter, matched on the letter typed or on the key's
// position (on layouts where Alt changes the character); Esc is the dialogs' own.

import { byId, h, replace } from "./dom.js";

export const SHORTCUTS = [
  { key: "n", action: "notes", words: "Write notes for the call on screen" },
  { key: "s", action: "save", words: "Save notes, category and disposition (or the agreement)" },
  { key: "a", action: "agreement", words: "Make an agreement" },
  { key: "c", action: "calls", words: "Go to the list of calls" },
  { key: "d", action: "dismiss", words: "Dismiss an ended or withdrawn call" },
  { key: "l", action: "live", words: "Live view" },
  { key: "k", action: "customers", words: "Search customers" },
  { key: "h", action: "history", words: "Search the call history" },
  { key: "g", action: "agreements", words: "Agreements: mine, due today, overdue" },
  { key: "t", action: "team", words: "Team: operators, pauses, abandoned calls (supervisors)" },
  { key: "/", action: "help", words: "Show these shortcuts" },
];

export function keyLabel(shortcut) {
  return `Alt+${shortcut.key.toUpperCase()}`;
}

function matches(event, key) {
  if (!event.altKey || event.ctrlKey || event.metaKey) return false;
  if (event.key && event.key.toLowerCase() === key) return true;
  if (key === "/") return event.code === "Slash";
  return event.code === `Key${key.toUpperCase()}`;
}

/** handlers: {action: () => void}. */
export function installShortcuts(handlers) {
  replace(
    byId("help-rows"),
    SHORTCUTS.map((s) => h("tr", {}, h("th", { scope: "row" }, h("kbd", {}, keyLabel(s))), h("td", {}, s.words))),
    h("tr", {}, h("th", { scope: "row" }, h("kbd", {}, "Esc")), h("td", {}, "Close a dialog")),
    h("tr", {}, h("th", { scope: "row" }, h("kbd", {}, "Tab")), h("td", {}, "Next field or button")),
  );
  document.addEventListener("keydown", (event) => {
    const shortcut = SHORTCUTS.find((s) => matches(event, s.key));
    if (!shortcut || !handlers[shortcut.action]) return;
    event.preventDefault();
    event.stopPropagation();
    handlers[shortcut.action]();
  });
}
