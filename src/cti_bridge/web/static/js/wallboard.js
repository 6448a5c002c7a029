// The supervisors' wall screen (/wallboard): every queue's waiting calls and longest wait,
// its members by state, today's service level against its target and today's counts,
// the promises overdue or flagged, the problems that occur most today, and which
// operators' phones cannot be rung (not registered, or registered and unreachable).
//
// Live: GET /api/queues and GET /api/agents once, then the supervisors' `queue_update`
// pushes replace a queue as it changes, `phone_status` a phone and `agents_update` (the
// batch this page asks for: every operator changed in an interval) or `agent_update` an
// operator's phones; the figures that come from the stored records (GET /api/kpis,
// the agreements) are read again every REFRESH_MS and after an `agreement_flagged`.
// Waits tick here between pushes. It never shows stale figures as live: when the
// WebSocket is down, or /healthz says a PBX link is (on a web node: that a relayed PBX
// waits for its owner's snapshot, `relayed_queues`), or a queue says `live: false`, a
// banner says so in words and the board is dimmed until both are back.
//
// Every text from the server goes through dom.js (textContent), never markup.

import { Api } from "./api.js";
import { byId, formatDuration, h, replace } from "./dom.js";
import { LiveSocket } from "./socket.js";

const REFRESH_MS = 30_000;
const HEALTH_MS = 5_000;
const TICK_MS = 1_000;
const DEFAULT_TARGET = 0.8; // when the figures carry no service-level target
const WARN_BELOW = 0.1; // within this much under the target: amber, further: red

/** The member states in the order a supervisor reads them, with their words. */
export const MEMBER_STATES = [
  ["available", "Available"],
  ["ringing", "Ringing"],
  ["on_call", "On a call"],
  ["wrap_up", "Wrap-up"],
  ["paused", "Paused"],
  ["unavailable", "Unavailable"],
];

/** The phone states that mean calls cannot reach the operator, with their words. */
export const PHONE_PROBLEMS = {
  unregistered: "phone not registered",
  unreachable: "phone unreachable",
};

const queueKey = (queue) => `${queue.pbx}/${queue.name}`;
const phoneKey = (phone) => `${phone.pbx}\u0000${phone.device}`;
const percent = (ratio) => `${Math.round(ratio * 100)}%`;
const seconds = (value) => (value === null || value === undefined ? "–" : formatDuration(value * 1000));
const count = (value) => (value === null || value === undefined ? "–" : String(value));
const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });

/** "good" at or above the target, "warn" a little under it, "bad" further under. */
export function serviceLevelClass(level, target) {
  if (level === null || level === undefined) return "none";
  if (level >= target) return "good";
  return level >= target - WARN_BELOW ? "warn" : "bad";
}

/**
 * The phones that cannot be rung, by operator then device: [{operator, name, pbx,
 * device, state}] from the phones as the server gave them and the operators' names.
 */
export function phoneProblems(phones, names) {
  return [...phones]
    .filter((phone) => Object.hasOwn(PHONE_PROBLEMS, phone.state))
    .map((phone) => ({ ...phone, name: names.get(phone.operator) || phone.operator }))
    .sort((a, b) => a.name.localeCompare(b.name) || a.device.localeCompare(b.device));
}

/** The categories of every queue's figures summed, most frequent first. */
export function topProblems(figures, most = 5) {
  const total = new Map();
  for (const queue of figures) {
    for (const item of queue.top_categories || []) {
      const seen = total.get(item.category) || { category: item.category, count: 0, rising: false };
      seen.count += item.count || 0;
      seen.rising = seen.rising || Boolean(item.rising);
      total.set(item.category, seen);
    }
  }
  return [...total.values()].sort((a, b) => b.count - a.count || a.category.localeCompare(b.category)).slice(0, most);
}

class Wallboard {
  constructor() {
    this.api = new Api({ onExpired: () => this.showLogin("Your session ended: log in again.") });
    this.queues = new Map(); // key -> the queue as /api/queues or queue_update gave it
    this.receivedAt = new Map(); // key -> Date.now() when it came (waits tick from there)
    this.figures = new Map(); // queue name -> /api/kpis figures (today)
    this.names = new Map(); // operator (username) -> name, from /api/agents
    this.phones = new Map(); // pbx + device -> {pbx, device, operator, state}
    this.socketState = "connecting";
    this.socketLostAt = null;
    this.pbxDown = []; // PBX names /healthz says are not connected
    this.timers = [];
    this.socket = new LiveSocket({
      token: () => this.api.token,
      checkToken: () => this.api.me(),
      onMessage: (message) => this.onMessage(message),
      onState: (state) => this.onSocketState(state),
      query: { agents: "batched" }, // the operators' changes as agents_update batches
    });
    byId("wb-login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.logIn();
    });
  }

  async start() {
    if (!this.api.token) return this.showLogin("");
    let me;
    try {
      me = await this.api.me();
    } catch {
      return this.showLogin("");
    }
    return this.enter(me);
  }

  showLogin(message) {
    this.stop();
    byId("wb-view").hidden = true;
    byId("wb-login").hidden = false;
    byId("wb-login-message").textContent = message;
    byId("wb-username").focus();
  }

  async logIn() {
    const message = byId("wb-login-message");
    message.textContent = "Logging in…";
    try {
      await this.api.login(byId("wb-username").value, byId("wb-password").value);
      await this.enter(await this.api.me());
    } catch (error) {
      message.textContent = `Not logged in: ${error.message}`;
    }
  }

  async enter(me) {
    if (me.role !== "supervisor" && me.role !== "admin") {
      await this.api.logout().catch(() => {});
      return this.showLogin("The wallboard is for supervisors and admins.");
    }
    byId("wb-login").hidden = true;
    byId("wb-view").hidden = false;
    byId("wb-login-message").textContent = "";
    this.socket.start();
    this.timers = [
      setInterval(() => this.refreshFigures(), REFRESH_MS),
      setInterval(() => this.checkHealth(), HEALTH_MS),
      setInterval(() => this.tick(), TICK_MS),
    ];
    this.tick();
    await Promise.all([this.loadQueues(), this.loadAgents(), this.refreshFigures(), this.checkHealth()]);
    return undefined;
  }

  stop() {
    this.socket.stop();
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
  }

  // -- what comes in ------------------------------------------------------------------

  async loadQueues() {
    try {
      const { queues } = await this.api.request("GET", "/api/queues");
      this.queues.clear();
      for (const queue of queues) this.keep(queue);
      this.render();
    } catch (error) {
      if (error.status !== 401) this.problem(`The queues could not be read: ${error.message}`);
    }
  }

  async loadAgents() {
    try {
      const { agents } = await this.api.request("GET", "/api/agents");
      this.names.clear();
      this.phones.clear();
      for (const agent of agents) this.keepAgent(agent);
      this.render();
    } catch (error) {
      if (error.status !== 401) this.problem(`The operators' phones could not be read: ${error.message}`);
    }
  }

  /** An agent as /api/agents or agent_update gives it: their name and all their phones. */
  keepAgent(agent) {
    this.names.set(agent.operator, agent.name || agent.operator);
    for (const [key, phone] of this.phones) {
      if (phone.operator === agent.operator) this.phones.delete(key);
    }
    for (const phone of agent.phones || []) this.keepPhone({ ...phone, operator: agent.operator });
  }

  keepPhone(phone) {
    this.phones.set(phoneKey(phone), {
      pbx: phone.pbx,
      device: phone.device,
      operator: phone.operator,
      state: phone.state,
    });
  }

  async refreshFigures() {
    const reads = [
      this.api.request("GET", "/api/kpis").then(({ queues }) => {
        this.figures = new Map(queues.map((figures) => [figures.queue, figures]));
      }),
      this.api.request("GET", "/api/agreements?due=overdue&limit=500").then(({ agreements }) => {
        this.overdue = agreements.length;
      }),
      this.api.request("GET", "/api/agreements?flagged=true&status=failed&limit=500").then(({ agreements }) => {
        this.flagged = agreements.length;
      }),
    ];
    const results = await Promise.allSettled(reads);
    const failed = results.find((r) => r.status === "rejected");
    if (failed && failed.reason.status !== 401) this.problem(`Some figures could not be read: ${failed.reason.message}`);
    this.render();
  }

  async checkHealth() {
    try {
      const response = await fetch("/healthz", { cache: "no-store", credentials: "omit" });
      const health = await response.json();
      const pbx = (health.ami && health.ami.pbx) || {};
      // A web node has no link: the PBXs it relays say whether a snapshot made them live.
      const relayed = (health.relayed_queues && health.relayed_queues.pbx) || {};
      this.pbxDown = Object.entries(pbx)
        .filter(([name, link]) => link.state !== "connected" && !(name in relayed))
        .map(([name]) => name)
        .concat(Object.entries(relayed).filter(([, view]) => !view.live).map(([name]) => name));
      this.healthUnknown = false;
    } catch {
      this.healthUnknown = true; // the socket's state says the rest
    }
    this.showState();
  }

  onMessage(message) {
    if (message.type === "queue_update" && message.queue) {
      this.keep(message.queue);
      this.render();
    } else if (message.type === "agent_update" && message.agent) {
      this.keepAgent(message.agent);
      this.renderPhones();
    } else if (message.type === "agents_update" && Array.isArray(message.agents)) {
      for (const agent of message.agents) if (agent && agent.operator) this.keepAgent(agent);
      this.renderPhones(); // once for the batch
    } else if (message.type === "phone_status" && message.device) {
      this.keepPhone(message);
      this.renderPhones();
    } else if (message.type === "agreement_flagged") {
      this.refreshFigures();
    }
  }

  onSocketState({ state, reconnected }) {
    this.socketState = state;
    if (state === "open") {
      this.socketLostAt = null;
      if (reconnected) {
        // What changed while away: read it all again.
        this.loadQueues();
        this.loadAgents();
      }
    } else if (this.socketLostAt === null && state !== "connecting") {
      this.socketLostAt = Date.now();
    }
    this.showState();
  }

  keep(queue) {
    const key = queueKey(queue);
    this.queues.set(key, queue);
    this.receivedAt.set(key, Date.now());
  }

  problem(words) {
    this.lastProblem = words;
    this.showState();
  }

  // -- what it shows --------------------------------------------------------------------

  /** PBX links down (/healthz) and PBXs a web node relays without a snapshot yet (its
   * queues say `live: false` until one; a push from the owner replaces them). */
  pbxNotLive() {
    const relayed = [...this.queues.values()].filter((q) => q.live === false).map((q) => q.pbx);
    return [...new Set([...this.pbxDown, ...relayed])];
  }

  isLive() {
    return this.socketState === "open" && this.pbxNotLive().length === 0;
  }

  showState() {
    const live = this.isLive();
    const state = byId("wb-state");
    state.textContent = live ? "● Live" : "✖ NOT LIVE";
    state.className = `wb-state ${live ? "live" : "down"}`;
    byId("wb-view").classList.toggle("stale", !live);
    const banner = byId("wb-banner");
    let words = "";
    if (this.socketState !== "open") {
      const since = this.socketLostAt ? ` since ${clock(this.socketLostAt)}` : "";
      words = `Connection to cti-bridge lost${since}: the figures below are not live.`;
    } else if (this.pbxNotLive().length) {
      words = `PBX link down (${this.pbxNotLive().join(", ")}): the figures below are not live.`;
    } else if (this.lastProblem) {
      words = this.lastProblem;
      this.lastProblem = "";
    }
    banner.textContent = words;
    banner.hidden = !words;
  }

  tick() {
    byId("wb-clock").textContent = clock(Date.now());
    for (const [key, queue] of this.queues) {
      const node = document.querySelector(`[data-queue-key="${CSS.escape(key)}"] .wb-longest`);
      if (node) node.textContent = seconds(this.longestWait(key, queue));
    }
  }

  longestWait(key, queue) {
    const waiting = queue.waiting || [];
    if (!waiting.length) return 0;
    const elapsed = this.isLive() ? (Date.now() - (this.receivedAt.get(key) || Date.now())) / 1000 : 0;
    return Math.max(...waiting.map((call) => call.wait_seconds || 0)) + elapsed;
  }

  render() {
    const queues = [...this.queues.entries()].sort(([a], [b]) => a.localeCompare(b));
    replace(
      byId("wb-queues"),
      queues.length ? queues.map(([key, queue]) => this.queueCard(key, queue)) : h("p", { className: "wb-empty" }, "No queues on the PBX yet."),
    );
    byId("wb-overdue").textContent = count(this.overdue);
    byId("wb-flagged").textContent = count(this.flagged);
    const problems = topProblems([...this.figures.values()]);
    replace(
      byId("wb-problems"),
      problems.length
        ? problems.map((p) =>
            h(
              "li",
              { className: p.rising ? "rising" : "" },
              `${p.category}: ${p.count}`,
              p.rising ? " ▲ rising" : "",
            ),
          )
        : h("li", { className: "wb-empty" }, "None recorded today."),
    );
    this.renderPhones();
    this.showState();
  }

  /** What to say when no phone is known to be unusable: "all well" only when known. */
  phonesAllWell() {
    const phones = [...this.phones.values()];
    const unknown = phones.filter((phone) => phone.state === "unknown").length;
    if (!phones.length) return "No operator has a phone bound.";
    if (unknown) return `Not known yet for ${unknown} of ${phones.length} phones.`;
    return "Every operator's phone is registered.";
  }

  renderPhones() {
    const problems = phoneProblems(this.phones.values(), this.names);
    byId("wb-phones-bad").textContent = String(problems.length);
    byId("wb-phones-panel").classList.toggle("bad", problems.length > 0);
    replace(
      byId("wb-phones"),
      problems.length
        ? problems.map((phone) =>
            h(
              "li",
              { dataset: { operator: phone.operator, state: phone.state } },
              h("span", { className: "wb-phone-who" }, phone.name),
              `: ${PHONE_PROBLEMS[phone.state]} `,
              h("span", { className: "wb-phone-device" }, `(${phone.device})`),
            ),
          )
        : h("li", { className: "wb-empty" }, this.phonesAllWell()),
    );
  }

  queueCard(key, queue) {
    const today = queue.today || this.figures.get(queue.name) || {};
    const target = today.service_level_target ?? DEFAULT_TARGET;
    const level = today.service_level;
    const members = queue.members || [];
    const paused = members.filter((m) => m.state === "paused");
    return h(
      "article",
      { className: "wb-queue", dataset: { queueKey: key }, "aria-label": `Queue ${queue.name}` },
      h("h2", {}, queue.name),
      h(
        "div",
        { className: "wb-big" },
        h("p", {}, h("span", { className: "wb-number wb-waiting" }, String((queue.waiting || []).length)), "waiting"),
        h("p", {}, h("span", { className: "wb-number wb-longest" }, seconds(this.longestWait(key, queue))), "longest wait"),
      ),
      h(
        "p",
        { className: `wb-sl ${serviceLevelClass(level, target)}` },
        level === null || level === undefined
          ? "Service level: no answered calls yet"
          : `Service level ${percent(level)} (target ${percent(target)} within ${count(today.service_level_seconds)} s)`,
      ),
      h(
        "ul",
        { className: "wb-members", "aria-label": "Members" },
        MEMBER_STATES.map(([state, words]) =>
          h("li", { dataset: { state } }, h("span", { className: "count" }, String(members.filter((m) => m.state === state).length)), ` ${words}`),
        ),
      ),
      paused.length
        ? h(
            "p",
            { className: "wb-paused" },
            "Paused: ",
            paused.map((m) => `${m.operator || m.device}${m.paused_reason ? ` (${m.paused_reason})` : ""}`).join(", "),
          )
        : null,
      h(
        "dl",
        { className: "wb-today" },
        [
          ["Offered", count(today.offered)],
          ["Answered", count(today.answered)],
          ["Abandoned", count(today.abandoned)],
          ["Avg. answer", seconds(today.asa_seconds)],
          ["Avg. handling", seconds(today.aht_seconds)],
          ["Longest today", seconds(today.longest_wait_seconds)],
        ].map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]),
      ),
    );
  }
}

if (typeof document !== "undefined" && document.getElementById("wb-view")) {
  new Wallboard().start();
}
