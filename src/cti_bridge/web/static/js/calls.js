// The calls this screen knows: pops as they arrive, their state, and what the operator
// typed about them. Kept apart from the DOM so that a message and a re-render are
// separate steps (a state change must never wipe half-typed notes).

import { toMillis } from "./dom.js";

/** How long a withdrawn or ended call stays in the list when nobody typed anything. */
export const KEEP_WITHDRAWN_MS = 60_000;
export const KEEP_ENDED_MS = 30 * 60_000;
export const MAX_CALLS = 20;

const STATE_ALIASES = { talking: "answered", up: "answered", hungup: "ended", hangup: "ended" };

/**
 * A call's key on this screen: the PBX's (pbx, linkedid) when the message has it, since a
 * pop built without the database (degraded) has no record id yet; else the record id.
 */
export function keyOf(message) {
  if (message.pbx && message.linkedid) return `${message.pbx}|${message.linkedid}`;
  return `id:${message.call_id}`;
}

function newEntry(id, now) {
  return {
    id,
    callId: null, // the call record's id: what notes are saved on
    pop: null,
    state: "ringing",
    rangAt: null,
    answeredAt: null,
    endedAt: null,
    answeredBy: null,
    outcome: null,
    withdrawn: null, // {reason, at}
    receivedAt: now,
    changedAt: now,
    draft: { notes: "", category: "", disposition: "", dirty: false, loaded: false },
    savedAt: null,
    agreements: [], // made from this screen
  };
}

export class CallBook {
  constructor() {
    this.calls = new Map();
  }

  get(id) {
    return this.calls.get(String(id)) || null;
  }

  /** The entry a message is about, if this screen knows the call. */
  find(message) {
    return this.get(keyOf(message));
  }

  /** Newest first. */
  list() {
    return [...this.calls.values()].sort((a, b) => b.receivedAt - a.receivedAt);
  }

  entry(id, now) {
    const key = String(id);
    let entry = this.calls.get(key);
    if (!entry) {
      entry = newEntry(key, now);
      this.calls.set(key, entry);
    }
    return entry;
  }

  /** screen_pop: a new call, or the same call again (replay at connect, another ring). */
  pop(message, now = Date.now()) {
    const entry = this.entry(keyOf(message), now);
    const again = entry.pop !== null;
    entry.pop = message;
    if (message.call_id !== null && message.call_id !== undefined) entry.callId = message.call_id;
    entry.rangAt = toMillis(message.rang_at) ?? entry.rangAt ?? now;
    if (!again || entry.withdrawn || entry.state === "ended") {
      entry.state = message.state ? normalState(message.state) : "ringing";
      entry.withdrawn = null;
      entry.receivedAt = now;
    }
    entry.changedAt = now;
    return entry;
  }

  /** call_update: answered, transferred, ended. Unknown calls are ignored. */
  update(message, now = Date.now()) {
    const entry = this.find(message);
    if (!entry) return null;
    const state = normalState(message.state);
    if (state) entry.state = state;
    entry.answeredAt = toMillis(message.answered_at) ?? entry.answeredAt;
    if (state === "answered" && entry.answeredAt === null) entry.answeredAt = toMillis(message.at) ?? now;
    entry.endedAt = toMillis(message.ended_at) ?? entry.endedAt;
    if (state === "ended" && entry.endedAt === null) entry.endedAt = toMillis(message.at) ?? now;
    if (message.answered_by !== undefined) entry.answeredBy = message.answered_by;
    if (message.outcome !== undefined) entry.outcome = message.outcome;
    if (message.transfer) entry.transfer = message.transfer;
    if (entry.callId === null && message.call_id !== null && message.call_id !== undefined) {
      entry.callId = message.call_id;
    }
    entry.changedAt = now;
    return entry;
  }

  /** pop_withdrawn: the call is not (or no longer) this operator's to take. */
  withdraw(message, now = Date.now()) {
    const entry = this.find(message);
    if (!entry) return null;
    entry.withdrawn = { reason: message.reason || "ended", at: now };
    if (message.answered_by) entry.answeredBy = message.answered_by;
    entry.changedAt = now;
    return entry;
  }

  /** After a reconnect: what the call record says, for updates missed meanwhile. */
  refresh(id, record, now = Date.now()) {
    const entry = this.get(id);
    if (!entry || !record) return null;
    entry.answeredAt = toMillis(record.answered_at) ?? entry.answeredAt;
    entry.endedAt = toMillis(record.ended_at) ?? entry.endedAt;
    if (entry.endedAt !== null) entry.state = "ended";
    else if (entry.answeredAt !== null && entry.state === "ringing") entry.state = "answered";
    entry.outcome = record.outcome ?? entry.outcome;
    entry.changedAt = now;
    return entry;
  }

  remove(id) {
    return this.calls.delete(String(id));
  }

  /** Drop what nobody needs any more; never a call with unsaved notes. */
  trim(now = Date.now(), keep = null) {
    for (const entry of this.list()) {
      if (entry.id === keep || entry.draft.dirty) continue;
      const age = now - entry.changedAt;
      if ((entry.withdrawn && age > KEEP_WITHDRAWN_MS) || (entry.state === "ended" && age > KEEP_ENDED_MS)) {
        this.calls.delete(entry.id);
      }
    }
    const extra = this.list().slice(MAX_CALLS);
    for (const entry of extra) if (!entry.draft.dirty && entry.id !== keep) this.calls.delete(entry.id);
  }

  /** Live calls: not ended, not withdrawn. */
  active() {
    return this.list().filter((e) => !e.withdrawn && e.state !== "ended");
  }
}

function normalState(state) {
  if (typeof state !== "string") return null;
  const lower = state.toLowerCase();
  return STATE_ALIASES[lower] || lower;
}

/** The timer an operator sees: ringing for, talking for, or the talk time once ended. */
export function timerFor(entry, now = Date.now()) {
  if (entry.withdrawn && entry.state === "ringing") {
    return { label: "rang", ms: entry.withdrawn.at - (entry.rangAt ?? entry.withdrawn.at) };
  }
  if (entry.state === "ringing") return { label: "ringing", ms: now - (entry.rangAt ?? now) };
  if (entry.state === "ended") {
    const start = entry.answeredAt ?? entry.rangAt;
    return { label: "lasted", ms: (entry.endedAt ?? now) - (start ?? now) };
  }
  return { label: "talking", ms: now - (entry.answeredAt ?? entry.rangAt ?? now) };
}
