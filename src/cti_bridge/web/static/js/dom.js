// Building DOM from data without ever parsing data as markup.
//
// Caller names, notes and imported customer data are attacker-controlled text. Every
// string that reaches the page goes through createElement + textContent (here), never
// innerHTML; the page's Content-Security-Policy also asks the browser to refuse
// string-to-markup sinks (Trusted Types), so a slip would fail loudly, not run.

/**
 * h("p", {className: "x", dataset: {id: "1"}}, "text", child, [more]) -> element.
 * Strings and numbers become text nodes; null/undefined/false are skipped.
 */
export function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "className") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "text") node.textContent = String(value);
    else if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key.startsWith("on")) {
      throw new Error(`refusing a non-function event handler for ${key}`);
    } else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else if (child instanceof Node) node.appendChild(child);
    else node.appendChild(document.createTextNode(String(child)));
  }
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

export function replace(node, ...children) {
  clear(node);
  append(node, children);
  return node;
}

export function byId(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`missing #${id}`);
  return node;
}

// -- times --------------------------------------------------------------------------------

/** Milliseconds since the epoch from an ISO string or POSIX seconds; null if unknown. */
export function toMillis(value) {
  if (value === null || value === undefined || value === "") return null;
  if (typeof value === "number") return value > 1e12 ? value : value * 1000;
  const parsed = Date.parse(value);
  return Number.isNaN(parsed) ? null : parsed;
}

const pad = (n) => String(n).padStart(2, "0");

/** "4:07" or "1:02:03": what an operator reads on a call timer. */
export function formatDuration(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = total % 60;
  return hours ? `${hours}:${pad(minutes)}:${pad(seconds)}` : `${minutes}:${pad(seconds)}`;
}

/** Local date and time, "2026-11-27 09:15". */
export function formatWhen(value) {
  const ms = toMillis(value);
  if (ms === null) return "";
  const d = new Date(ms);
  return `${formatDay(d)} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function formatDay(date) {
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

/** A plain date ("2027-01-31") as the local calendar day, without a time-zone shift. */
export function parseDay(value) {
  if (!value) return null;
  const match = /^(\d{4})-(\d{2})-(\d{2})/.exec(String(value));
  if (!match) return null;
  return new Date(Number(match[1]), Number(match[2]) - 1, Number(match[3]));
}

/** The value a datetime-local input takes for a Date, in local time. */
export function toLocalInput(date) {
  return `${formatDay(date)}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/** A datetime-local input's value as ISO 8601 UTC, or null when empty. */
export function fromLocalInput(value) {
  if (!value) return null;
  const date = new Date(value); // a datetime-local value is read as local time
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}
