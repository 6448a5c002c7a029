// The supervisor's Team view (Alt+T): every operator with their state in words, the call
// they are on, how long they have been in that state (a clock ticking in the page), their
// phone, pause/unpause with a reason, a link to watch their pop; and today's abandoned
// calls with whether a callback is pending. Live from the WebSocket: agents_update (the
// batch the console asks for: every operator changed in an interval, each shaped as
// GET /api/agents) or agent_update (one operator), phone_status, queue_update (its
// today.abandoned growing re-reads the abandoned list). Agents a node relays without
// the owner's snapshot yet (`live: false`) are said to be not live.
//
// Caller names and numbers are attacker text: everything reaches the page through h()
// (textContent), never as markup.

import { byId, formatDuration, formatWhen, h, replace, toMillis } from "./dom.js";

export const AGENT_STATES = {
  available: "Available",
  ringing: "Ringing",
  on_call: "On call",
  wrap_up: "Wrap-up",
  paused: "Paused",
  unavailable: "Unavailable",
};

export const PHONE_STATES = {
  registered: "Registered",
  unreachable: "Unreachable",
  unregistered: "Not registered",
  unknown: "Unknown",
};

/** The phone states that mean calls cannot reach the operator. */
export const PHONE_DOWN = new Set(["unreachable", "unregistered"]);

const CALL_STATES = { talking: "Talking with", ringing: "Ringing:" };

export function words(table, code) {
  if (code === null || code === undefined || code === "") return "";
  return Object.hasOwn(table, code) ? table[code] : String(code).replaceAll("_", " ");
}

/** "Jan Peeters (+3250123456)", "+3250123456", "Withheld number". */
export function callerWords(call) {
  if (!call) return "";
  const number = call.caller_withheld ? "withheld number" : call.caller_number || call.caller_number_raw || "";
  if (call.caller_name && number) return `${call.caller_name} (${number})`;
  if (call.caller_name) return call.caller_name;
  if (call.caller_withheld) return "Withheld number";
  return number || "Unknown caller";
}

/** Worst first: one phone that cannot be rung is what the row says. */
export function phoneSummary(phones) {
  const list = Array.isArray(phones) ? phones : [];
  for (const state of ["unregistered", "unreachable", "registered", "unknown"]) {
    const found = list.filter((p) => p.state === state);
    if (found.length) return { state, devices: found.map((p) => p.device) };
  }
  return { state: null, devices: [] };
}

/** The ticking clocks: every [data-since] shows the time since its epoch milliseconds. */
export function tickClocks(root, now = Date.now()) {
  for (const node of root.querySelectorAll("[data-since]")) {
    const since = Number(node.dataset.since);
    if (Number.isFinite(since)) node.textContent = formatDuration(now - since);
  }
}

function clock(iso, id) {
  const ms = toMillis(iso);
  if (ms === null) return h("span", { className: "quiet", id }, "—");
  return h("span", { className: "timer", id, dataset: { since: String(ms) } }, formatDuration(Date.now() - ms));
}

function safeId(username) {
  return String(username).replace(/[^A-Za-z0-9_-]/g, (c) => `_${c.charCodeAt(0).toString(16)}`);
}

/** Local midnight today as ISO 8601 UTC: "today" is the helpdesk's own day. */
function todayStart() {
  const d = new Date();
  d.setHours(0, 0, 0, 0);
  return d.toISOString();
}

const NOT_LIVE = "Not live: the PBX's owner has not sent its view to this node yet; the states below may be old.";

export class TeamView {
  /** api: Api; watch(username): start watching their pop; openAgreement(id). */
  constructor({ api, watch, openAgreement }) {
    this.api = api;
    this.watch = watch;
    this.openAgreement = openAgreement;
    this.agents = new Map(); // username -> agent JSON (latest)
    this.rows = new Map(); // username -> {tr, cells..., reason select}
    this.reasons = [];
    this.abandonedSeen = new Map(); // "pbx/queue" -> today's abandoned count
    this.reloadTimer = null;
    this.loaded = false;
    this.notLive = false; // the message says some agents are not live
    byId("team-refresh").addEventListener("click", () => this.load());
  }

  reset() {
    this.agents.clear();
    this.rows.clear();
    this.abandonedSeen.clear();
    this.loaded = false;
    this.notLive = false;
    clearTimeout(this.reloadTimer);
    replace(byId("team-rows"));
    replace(byId("abandoned-rows"));
    byId("team-message").textContent = "";
  }

  focus() {
    (byId("team-rows").querySelector("button") || byId("team-refresh")).focus();
  }

  say(text, error = false) {
    const node = byId("team-message");
    node.textContent = text;
    node.className = error ? "message error" : "message";
  }

  async load() {
    this.say("Loading…");
    try {
      const [agents, reasons] = await Promise.all([this.api.agents(), this.api.pauseReasons()]);
      this.reasons = reasons.reasons || [];
      const seen = new Set();
      for (const agent of agents.agents || []) {
        seen.add(agent.operator);
        this.agentUpdate(agent);
      }
      for (const username of [...this.rows.keys()]) {
        if (!seen.has(username)) {
          this.rows.get(username).tr.remove();
          this.rows.delete(username);
          this.agents.delete(username);
        }
      }
      this.loaded = true;
      this.say(this.rows.size ? "" : "No operators.");
      this.sayIfNotLive();
    } catch (error) {
      this.say(`The operators cannot be read: ${error.message}`, true);
    }
    await this.loadAbandoned();
  }

  // -- pushes ---------------------------------------------------------------------------

  agentUpdate(agent) {
    if (!agent || typeof agent.operator !== "string") return;
    this.agents.set(agent.operator, agent);
    const row = this.rows.get(agent.operator) || this.addRow(agent.operator);
    this.fill(row, agent);
    if (this.notLive) this.sayIfNotLive();
  }

  /** A node relaying another's PBX marks its agents `live: false` until the owner's
   * snapshot; the owner's pushes (the snapshot's among them) replace them. */
  sayIfNotLive() {
    const stale = [...this.agents.values()].some((agent) => agent.live === false);
    if (stale) this.say(NOT_LIVE, true);
    else if (this.notLive) this.say("");
    this.notLive = stale;
  }

  /** The supervisors' agents_update: a list of agents, each as agent_update gives one. */
  agentsUpdate(agents) {
    if (!Array.isArray(agents)) return;
    for (const agent of agents) this.agentUpdate(agent);
  }

  phoneStatus(message) {
    const agent = this.agents.get(message.operator);
    if (!agent) return;
    const phones = (agent.phones || []).filter((p) => !(p.pbx === message.pbx && p.device === message.device));
    phones.push({ pbx: message.pbx, device: message.device, state: message.state });
    this.agentUpdate({ ...agent, phones });
  }

  queueUpdate(queue) {
    if (!queue || !queue.today || typeof queue.today.abandoned !== "number") return;
    const key = `${queue.pbx}/${queue.name}`;
    const before = this.abandonedSeen.get(key);
    this.abandonedSeen.set(key, queue.today.abandoned);
    if (before !== undefined && queue.today.abandoned > before && this.loaded) {
      clearTimeout(this.reloadTimer); // a burst of abandons is one read
      this.reloadTimer = setTimeout(() => this.loadAbandoned(), 1000);
    }
  }

  tick(now) {
    tickClocks(byId("team-panel"), now);
  }

  // -- one operator's row ---------------------------------------------------------------

  addRow(username) {
    const id = safeId(username);
    const row = {
      username,
      name: h("th", { scope: "row", className: "agent-name" }),
      state: h("td", { className: "agent-state-cell" }),
      since: h("td", {}),
      call: h("td", { className: "agent-call" }),
      phone: h("td", { className: "agent-phone" }),
      reason: h("select", { id: `team-reason-${id}`, "aria-label": `Pause reason for ${username}` }),
      message: h("span", { className: "row-message", role: "status" }),
    };
    const pause = h("button", { type: "button", className: "team-pause", onclick: () => this.pause(row, true) }, "Pause");
    const unpause = h("button", { type: "button", className: "team-unpause", onclick: () => this.pause(row, false) }, "Unpause");
    const watch = h(
      "button",
      { type: "button", className: "team-watch", title: `See ${username}'s pop as they see it`, onclick: () => this.watch(username) },
      "Watch pop",
    );
    row.pause = pause;
    row.unpause = unpause;
    row.tr = h(
      "tr",
      { dataset: { operator: username }, id: `team-row-${id}` },
      row.name,
      row.state,
      row.since,
      row.call,
      row.phone,
      h("td", { className: "agent-actions" }, row.reason, " ", pause, " ", unpause, " ", row.message),
      h("td", {}, watch),
    );
    this.rows.set(username, row);
    const body = byId("team-rows");
    const after = [...body.children].find((tr) => tr.dataset.operator > username);
    body.insertBefore(row.tr, after || null);
    byId("team-table").hidden = false;
    return row;
  }

  fill(row, agent) {
    replace(row.name, agent.name || agent.operator, agent.name ? h("span", { className: "quiet" }, ` ${agent.operator}`) : null);
    row.tr.className = `agent-${agent.state}`;
    replace(
      row.state,
      h("strong", { className: `agent-state state-${agent.state}` }, words(AGENT_STATES, agent.state)),
      agent.paused_reason ? h("span", { className: "agent-reason" }, ` (${agent.paused_reason})`) : null,
    );
    replace(row.since, clock(agent.state_since));
    const call = agent.current_call;
    replace(
      row.call,
      call
        ? [
            `${words(CALL_STATES, call.state)} `,
            h("span", { className: "agent-caller" }, callerWords(call)),
            call.queue ? ` · queue ${call.queue}` : call.agreement_id ? " · callback" : " · direct call",
            " · ",
            clock(call.since),
          ]
        : h("span", { className: "quiet" }, "—"),
    );
    const phone = phoneSummary(agent.phones);
    row.phone.className = `agent-phone${PHONE_DOWN.has(phone.state) ? " phone-down" : ""}`;
    replace(
      row.phone,
      phone.state ? words(PHONE_STATES, phone.state) : h("span", { className: "quiet" }, "no phone known"),
      phone.state && PHONE_DOWN.has(phone.state) ? h("span", { className: "quiet" }, ` ${phone.devices.join(", ")}`) : null,
    );
    this.fillReasons(row.reason);
    row.unpause.disabled = false;
    row.pause.disabled = false;
  }

  fillReasons(select) {
    const wanted = this.reasons.join("\n");
    if (select.dataset.reasons === wanted) return; // keep the supervisor's choice
    const chosen = select.value;
    replace(select, this.reasons.map((r) => h("option", { value: r }, r)));
    if (this.reasons.includes(chosen)) select.value = chosen;
    select.dataset.reasons = wanted;
  }

  async pause(row, paused) {
    const who = row.username;
    const reason = row.reason.value;
    row.pause.disabled = row.unpause.disabled = true;
    row.message.textContent = paused ? "Pausing…" : "Unpausing…";
    try {
      const answer = paused ? await this.api.pause(who, reason) : await this.api.unpause(who);
      const queues = (answer.queues || []).join(", ");
      row.message.textContent = paused ? `Paused in ${queues}.` : `Unpaused in ${queues}.`;
      this.say("");
    } catch (error) {
      row.message.textContent = "";
      this.say(`${paused ? "Pause" : "Unpause"} of ${who} failed: ${error.message}`, true);
    } finally {
      row.pause.disabled = row.unpause.disabled = false;
    }
    // The board shows the pause when the PBX says so; the push follows. Read it once too.
    try {
      this.agentUpdate(await this.api.agent(who));
    } catch {
      // the push still comes
    }
  }

  // -- today's abandoned calls ------------------------------------------------------------

  async loadAbandoned() {
    const status = byId("abandoned-message");
    status.textContent = "Loading…";
    let calls;
    let pending;
    try {
      const [found, open, dialling] = await Promise.all([
        this.api.calls({ since: todayStart(), limit: 500, outcome: "abandoned" }),
        this.api.agreements({ kind: "callback", status: "open", limit: 500 }),
        this.api.agreements({ kind: "callback", status: "dialling", limit: 500 }),
      ]);
      calls = found.calls || [];
      pending = [...(open.agreements || []), ...(dialling.agreements || [])];
    } catch (error) {
      status.textContent = `Today's abandoned calls cannot be read: ${error.message}`;
      status.className = "message error";
      return;
    }
    status.className = "message";
    status.textContent = calls.length ? `${calls.length} abandoned today.` : "No abandoned calls today.";
    const byCall = new Map();
    const byNumber = new Map();
    for (const agreement of pending) {
      if (agreement.call_id !== null && agreement.call_id !== undefined) byCall.set(agreement.call_id, agreement);
      if (agreement.callback_number && !byNumber.has(agreement.callback_number)) byNumber.set(agreement.callback_number, agreement);
    }
    byId("abandoned-table").hidden = calls.length === 0;
    replace(
      byId("abandoned-rows"),
      calls.map((call) => {
        const agreement = byCall.get(call.id) || (call.caller_number ? byNumber.get(call.caller_number) : undefined);
        return h(
          "tr",
          { dataset: { callId: String(call.id) }, className: agreement ? "callback-pending" : "" },
          h("td", { className: "abandoned-caller" }, callerWords(call)),
          h("td", {}, call.queue || ""),
          h("td", {}, formatWhen(call.started_at)),
          h("td", {}, call.wait_seconds === null || call.wait_seconds === undefined ? "" : formatDuration(call.wait_seconds * 1000)),
          h(
            "td",
            { className: "abandoned-callback" },
            agreement
              ? [
                  h("strong", {}, agreement.status === "dialling" ? "Callback being dialled" : "Callback pending"),
                  " ",
                  h("button", { type: "button", className: "link", onclick: () => this.openAgreement(agreement.id) }, `#${agreement.id}`),
                  agreement.deadline ? ` · by ${formatWhen(agreement.deadline)}` : "",
                  agreement.owner ? ` · ${agreement.owner}` : " · nobody yet",
                ]
              : h("span", { className: "quiet" }, "No callback"),
          ),
        );
      }),
    );
  }
}

// -- the operator's own state and phone ---------------------------------------------------

/**
 * The "My state" box in the live view (an operator sees their own state and pauses or
 * unpauses themselves) and the "Your phone is not registered" banner. Fed by
 * GET /api/agents/{me} at start and after a reconnect, then by the operator's own
 * agent_update and phone_status pushes.
 */
export class MyState {
  constructor({ api }) {
    this.api = api;
    this.me = null;
    this.phones = new Map(); // "pbx device" -> state
    byId("my-pause-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.pause(true);
    });
    byId("my-unpause").addEventListener("click", () => this.pause(false));
  }

  start(me) {
    this.me = me;
    this.phones.clear();
    this.banner();
    const shown = Boolean(me) && (me.role === "operator" || (me.devices && me.devices.length > 0));
    byId("my-state").hidden = !shown;
    if (!shown) return;
    this.api.pauseReasons().then(
      (answer) => {
        const select = byId("my-pause-reason");
        replace(select, (answer.reasons || []).map((r) => h("option", { value: r }, r)));
      },
      () => {},
    );
    this.refresh();
  }

  stop() {
    this.me = null;
    this.phones.clear();
    this.banner();
  }

  async refresh() {
    if (!this.me) return;
    try {
      this.agentUpdate(await this.api.agent(this.me.username));
    } catch (error) {
      if (error.status !== 404) this.say(`Your state cannot be read: ${error.message}`, true);
    }
  }

  mine(username) {
    return Boolean(this.me) && username === this.me.username;
  }

  agentUpdate(agent) {
    if (!agent || !this.mine(agent.operator)) return;
    replace(
      byId("my-state-words"),
      words(AGENT_STATES, agent.state),
      agent.paused_reason ? ` (${agent.paused_reason})` : "",
    );
    byId("my-state-words").className = `agent-state state-${agent.state}`;
    const since = byId("my-state-since");
    const ms = toMillis(agent.state_since);
    if (ms === null) {
      delete since.dataset.since;
      since.textContent = "";
    } else {
      since.dataset.since = String(ms);
      since.textContent = formatDuration(Date.now() - ms);
    }
    byId("my-unpause").hidden = agent.state !== "paused" && !agent.paused_reason;
    this.phones.clear();
    for (const phone of agent.phones || []) this.phones.set(`${phone.pbx} ${phone.device}`, phone.state);
    this.banner();
  }

  phoneStatus(message) {
    if (!this.mine(message.operator)) return;
    this.phones.set(`${message.pbx} ${message.device}`, message.state);
    this.banner();
  }

  banner() {
    const down = [...this.phones.entries()].filter(([, state]) => PHONE_DOWN.has(state));
    const node = byId("phone-banner");
    node.hidden = down.length === 0;
    if (!down.length) {
      node.textContent = "";
      return;
    }
    const devices = down.map(([key]) => key.split(" ").slice(1).join(" ")).join(", ");
    const unreachable = down.every(([, state]) => state === "unreachable");
    node.textContent = unreachable
      ? `Your phone is not registered: ${devices} does not answer, so calls cannot reach you. Check that it is on and connected.`
      : `Your phone is not registered: ${devices} is not signed in, so calls cannot reach you. Check that it is on and connected.`;
  }

  tick(now) {
    tickClocks(byId("my-state"), now);
  }

  say(text, error = false) {
    const node = byId("my-state-message");
    node.textContent = text;
    node.className = error ? "message error" : "message";
  }

  async pause(paused) {
    if (!this.me) return;
    const reason = byId("my-pause-reason").value;
    this.say(paused ? "Pausing…" : "Unpausing…");
    try {
      if (paused) await this.api.pause(this.me.username, reason);
      else await this.api.unpause(this.me.username);
      this.say(paused ? `Pause asked: ${reason}.` : "Unpause asked.");
    } catch (error) {
      this.say(`${paused ? "Pause" : "Unpause"} failed: ${error.message}`, true);
    }
    this.refresh();
  }
}
