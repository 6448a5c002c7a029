// The operator console: login, the live calls (pops as they arrive, state and timer,
// notes and outcome), customer and call-history search, the agreements. No framework, no
// build step: ES modules served by the daemon, every piece of data set as text (dom.js).

import { AgreementsView, closeForm, isSupervisor } from "./agreements.js";
import { Api } from "./api.js";
import { CallBook, timerFor } from "./calls.js";
import { renderCard } from "./card.js";
import { byId, formatDuration, h, replace } from "./dom.js";
import { installShortcuts } from "./keys.js";
import { AGREEMENT_DISPOSITIONS, AGREEMENT_STATUSES, CALL_STATES, WITHDRAWN_REASONS, label, useVocabulary } from "./labels.js";
import { CustomerSearch, HistorySearch } from "./search.js";
import { LiveSocket } from "./socket.js";
import { MyState, TeamView } from "./team.js";
import { AgreementDialog, WrapUpForm } from "./wrapup.js";

const TITLE = "cti-bridge console";

const api = new Api({ onExpired: () => expired() });
const book = new CallBook();
const forms = new Map(); // call id -> WrapUpForm, so typed notes and focus survive updates
const agreementDialog = new AgreementDialog({ api });
const customerSearch = new CustomerSearch({
  api,
  agreementDialog,
  openAgreement: (agreement) => openAgreement(agreement.id),
  customerAgreements: (customer) => {
    showView("agreements");
    agreementsView.forCustomer(customer);
  },
});
const agreementsView = new AgreementsView({
  api,
  me: () => me,
  openCustomer: (id) => {
    showView("customers");
    customerSearch.open(id);
  },
});
const historySearch = new HistorySearch({ api, agreementDialog });
const socket = new LiveSocket({
  token: () => api.token,
  checkToken: () => api.me(),
  onMessage: (message) => received(message),
  onState: (state) => linkState(state),
  query: { agents: "batched" }, // a supervisor's Team view: agents_update batches
});

const teamView = new TeamView({
  api,
  watch: (username) => watchOperator(username),
  openAgreement: (id) => openAgreement(id),
});
const myState = new MyState({ api });

let me = null;
let view = "live";
let selected = null; // call id on screen
let ticker = null;
let flaggedSeen = new Set(); // agreements flagged while this supervisor looked

// -- login ----------------------------------------------------------------------------------

function showLogin(message = "") {
  byId("console-view").hidden = true;
  byId("connection").hidden = true;
  byId("login-view").hidden = false;
  byId("login-message").textContent = message;
  byId("login-password").value = "";
  document.title = TITLE;
  byId("login-username").focus();
}

function expired() {
  if (!me) return;
  stopConsole();
  showLogin("Your session has ended. Please log in again.");
}

byId("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = byId("login-submit");
  button.disabled = true;
  byId("login-message").textContent = "Logging in…";
  try {
    await api.login(byId("login-username").value.trim(), byId("login-password").value);
    startConsole(await api.me());
  } catch (error) {
    const words = {
      401: "Wrong username or password.",
      0: "cti-bridge cannot be reached. Try again in a moment.",
    };
    byId("login-message").textContent = words[error.status] || error.message;
    byId("login-password").value = "";
    byId("login-password").focus();
  } finally {
    button.disabled = false;
  }
});

byId("logout-button").addEventListener("click", async () => {
  stopConsole();
  try {
    await api.logout();
  } catch {
    // the token is forgotten here either way
  }
  showLogin("You are logged out.");
});

function startConsole(who) {
  me = who;
  byId("login-view").hidden = true;
  byId("console-view").hidden = false;
  const name = who.name || who.username;
  const role = who.role === "operator" || name.includes(who.role) ? "" : ` (${who.role})`;
  const devices = who.devices && who.devices.length ? ` · ${who.devices.join(", ")}` : "";
  byId("who").textContent = `${name}${role}${devices}`;
  byId("watch-form").hidden = !isSupervisor(who);
  byId("team-tab").hidden = !isSupervisor(who);
  teamView.reset();
  myState.start(who);
  flaggedSeen = new Set();
  byId("flagged-count").textContent = "";
  agreementsView.reset();
  api.vocabulary().then(useVocabulary, () => useVocabulary(null)); // else labels.js's words
  showView("live");
  renderLive();
  socket.start();
  ticker = setInterval(tick, 1000);
}

function stopConsole() {
  me = null;
  socket.stop();
  clearInterval(ticker);
  ticker = null;
  agreementDialog.close();
  teamView.reset();
  myState.stop();
  book.calls.clear();
  forms.clear();
  selected = null;
}

// -- the live link ------------------------------------------------------------------------

function linkState({ state, attempt, retryInMs, reconnected }) {
  const banner = byId("connection");
  const status = byId("link-state");
  if (state === "open") {
    banner.hidden = true;
    status.textContent = "● Live";
    status.className = "link-state link-up";
    if (reconnected) {
      refreshAfterReconnect();
      myState.refresh(); // pushes missed while offline
      if (view === "team") teamView.load();
    }
    return;
  }
  if (state === "connecting") {
    status.textContent = "Connecting…";
    status.className = "link-state";
    return;
  }
  status.textContent = "✘ Offline";
  status.className = "link-state link-down";
  banner.hidden = false;
  const wait = retryInMs ? ` in ${Math.max(1, Math.round(retryInMs / 1000))} s` : "";
  banner.textContent =
    state === "lost"
      ? `Connection lost: calls will not pop up. Reconnecting${wait} (attempt ${attempt})…`
      : "Connection lost: calls will not pop up. Reconnecting now…";
}

/** Updates missed while offline: ask the call records (ringing pops are re-sent anyway). */
async function refreshAfterReconnect() {
  for (const entry of book.active()) {
    if (entry.callId === null) continue;
    try {
      book.refresh(entry.id, await api.call(entry.callId));
    } catch {
      // a call we cannot read any more stays as it was
    }
  }
  renderList();
  renderHead();
}

function received(message) {
  switch (message.type) {
    case "screen_pop":
      popArrived(message);
      break;
    case "call_update":
      changed(book.update(message));
      break;
    case "pop_withdrawn":
      changed(book.withdraw(message));
      break;
    case "agreement_flagged":
      flagged(message.agreement);
      break;
    case "agent_update":
      myState.agentUpdate(message.agent);
      if (isSupervisor(me)) teamView.agentUpdate(message.agent);
      break;
    case "agents_update": // the supervisors' batch: every operator changed in an interval
      if (isSupervisor(me)) teamView.agentsUpdate(message.agents);
      break;
    case "phone_status":
      myState.phoneStatus(message);
      if (isSupervisor(me)) teamView.phoneStatus(message);
      break;
    case "queue_update":
      if (isSupervisor(me)) teamView.queueUpdate(message.queue);
      break;
    case "watching":
      byId("watching").textContent = `Watching ${message.username}.`;
      break;
    case "error":
      if (!byId("watch-form").hidden) byId("watching").textContent = String(message.error);
      break;
    default:
      break; // hello, pong, supervision pushes: nothing to show here
  }
}

/** A supervisor's push: a callback ran out of attempts or time. */
function flagged(agreement) {
  if (!agreement || agreement.id === undefined) return;
  flaggedSeen.add(agreement.id);
  byId("flagged-count").textContent = ` ⚑ ${flaggedSeen.size}`;
  byId("announce").textContent = `Agreement #${agreement.id} is flagged: it needs a supervisor.`;
  if (view === "agreements") agreementsView.load();
}

function openAgreement(id) {
  showView("agreements");
  agreementsView.load();
  agreementsView.open(id);
}

function popArrived(message) {
  const entry = book.pop(message);
  if (message.agreement) loadCallback(entry);
  const current = selected ? book.get(selected) : null;
  const busy = current && current.id !== entry.id && !current.withdrawn && ["answered", "transferred"].includes(current.state);
  if (!busy) {
    select(entry.id, false);
    if (view !== "live" && !message.replay) showView("live"); // a ringing phone comes first
  }
  else if (entry.id === selected) renderSelected();
  renderList();
  byId("announce").textContent = `Call from ${displayName(entry.pop)}`;
}

function changed(entry) {
  if (!entry) return; // about a call this screen never showed
  renderList();
  if (entry.id === selected) {
    if (entry.callId !== null && !forms.has(entry.id)) renderSelected(); // the record exists now
    else {
      renderHead();
      renderCallbackActions(entry);
    }
  }
}

// -- live view ------------------------------------------------------------------------------

function displayName(pop) {
  const caller = pop.caller || {};
  if (pop.customer && pop.customer.name) return pop.customer.name;
  if (caller.name) return caller.name;
  if (caller.withheld) return "Withheld number";
  return caller.number || caller.number_raw || "Unknown caller";
}

function stateWords(entry) {
  if (entry.withdrawn) return "Withdrawn";
  return label(CALL_STATES, entry.state);
}

function renderList() {
  const list = byId("call-list");
  const entries = book.list();
  byId("calls-empty").hidden = entries.length > 0;
  replace(
    list,
    entries.map((entry) => {
      const timer = timerFor(entry);
      const pop = entry.pop || {};
      return h(
        "li",
        { className: `call-item state-${entry.state}${entry.withdrawn ? " withdrawn" : ""}` },
        h(
          "button",
          {
            type: "button",
            className: "call-button",
            dataset: { callId: entry.id },
            "aria-current": entry.id === selected ? "true" : null,
            onclick: () => select(entry.id, true),
          },
          h("span", { className: "call-name" }, displayName(pop)),
          h(
            "span",
            { className: "call-meta" },
            `${stateWords(entry)} `,
            h("span", { className: "timer", dataset: { timer: entry.id } }, formatDuration(timer.ms)),
            entry.draft.dirty ? " · notes not saved" : null,
          ),
        ),
      );
    }),
  );
  const ringing = book.active().filter((e) => e.state === "ringing").length;
  byId("ringing-count").textContent = ringing ? ` ☎ ${ringing} ringing` : "";
  const current = selected ? book.get(selected) : null;
  document.title = ringing
    ? `☎ (${ringing}) ${current && current.pop ? displayName(current.pop) : "Ringing"} · ${TITLE}`
    : TITLE;
}

function select(id, focusPanel) {
  selected = String(id);
  renderSelected();
  renderList();
  if (focusPanel) byId("caller-name")?.focus();
}

/** The whole panel for the selected call: head, card and (kept) form. */
function renderSelected() {
  const panel = byId("pop");
  const entry = selected ? book.get(selected) : null;
  if (!entry || !entry.pop) {
    replace(panel, h("p", { className: "quiet" }, "Waiting for a call."));
    return;
  }
  replace(
    panel,
    h("header", { id: "call-head", className: "call-head" }),
    h("div", { id: "card-slot" }),
    entry.callId === null
      ? h("p", { className: "message error", role: "status" }, "The call record is not available yet: notes can be written once it is.")
      : formFor(entry).element,
  );
  renderCardSlot(entry);
  renderHead();
}

/** The card of a call: the pop, the agreements made here, a callback's fuller agreement. */
function renderCardSlot(entry) {
  const slot = document.getElementById("card-slot");
  if (!slot || !entry.pop) return;
  const pop = entry.pop;
  const callback = entry.callback;
  const context = {
    ...pop,
    agreement: pop.agreement && callback && callback.agreement ? { ...pop.agreement, ...callback.agreement } : pop.agreement,
    agreements: [...entry.agreements, ...(pop.agreements || [])],
  };
  const actions = pop.agreement ? h("div", { id: "callback-actions" }) : null;
  replace(slot, renderCard(context, { callbackActions: actions }));
  renderCallbackActions(entry);
}

// -- a callback's agreement on the pop --------------------------------------------------------

/** The agreement a callback pop is for, in full (its attempts), when this operator may read it. */
function loadCallback(entry) {
  if (!entry.callback) entry.callback = { agreement: null, state: { status: "done", disposition: "" }, closed: null };
  const id = entry.pop.agreement.id;
  api.agreement(id).then(
    (agreement) => {
      if (!entry.callback || entry.pop.agreement?.id !== id) return;
      entry.callback.agreement = agreement;
      if (["done", "cancelled"].includes(agreement.status) && !entry.callback.closed) entry.callback.closed = agreement;
      if (selected === entry.id) renderCardSlot(entry);
    },
    () => {}, // not ours to read (another operator's, rung after the grace period): the pop's word stands
  );
}

/** Once the callback is answered: close its agreement with a disposition, from the call. */
function renderCallbackActions(entry) {
  const slot = document.getElementById("callback-actions");
  if (!slot || !entry.pop || !entry.pop.agreement) return;
  const callback = entry.callback || (entry.callback = { agreement: null, state: { status: "done", disposition: "" }, closed: null });
  if (callback.closed) {
    const closed = callback.closed;
    replace(
      slot,
      h(
        "p",
        { id: "callback-closed", className: "form-status", role: "status" },
        `Agreement #${closed.id} closed: ${label(AGREEMENT_STATUSES, closed.status)}`,
        closed.disposition ? ` · ${label(AGREEMENT_DISPOSITIONS, closed.disposition)}` : "",
        ".",
      ),
    );
    slot.dataset.shown = "closed";
    return;
  }
  const answered = entry.answeredAt !== null || ["answered", "transferred"].includes(entry.state);
  if (!answered) {
    replace(slot, h("p", { className: "quiet", id: "callback-wait" }, "Once the call is answered, the agreement can be closed here."));
    slot.dataset.shown = "waiting";
    return;
  }
  if (slot.dataset.shown === "form") return; // keep the operator's choice and focus
  const agreement = { ...entry.pop.agreement, ...(callback.agreement || {}) };
  replace(
    slot,
    closeForm({
      api,
      agreement,
      prefix: "callback-",
      state: callback.state,
      onClosed: (closed) => {
        callback.closed = closed;
        callback.agreement = closed;
        renderCardSlot(entry);
        byId("announce").textContent = `Agreement #${closed.id} closed.`;
      },
    }),
  );
  slot.dataset.shown = "form";
}

function formFor(entry) {
  let form = forms.get(entry.id);
  if (!form) {
    form = new WrapUpForm({
      api,
      callId: entry.callId,
      draft: entry.draft,
      agreements: () => entry.agreements,
      onAgreement: () => makeAgreement(entry),
    });
    forms.set(entry.id, form);
    api.call(entry.callId).then(
      (record) => form.load(record),
      () => {}, // no record yet or not ours: the form still saves when it is
    );
  }
  return form;
}

function makeAgreement(entry) {
  const pop = entry.pop || {};
  agreementDialog.open({
    callId: entry.callId,
    customerId: pop.customer ? pop.customer.id : null,
    number: (pop.caller && pop.caller.number) || "",
    who: displayName(pop),
    onCreated: (agreement) => {
      entry.agreements.push(agreement);
      forms.get(entry.id)?.showAgreements();
      if (selected === entry.id) renderCardSlot(entry);
    },
  });
}

function renderHead() {
  const head = document.getElementById("call-head");
  const entry = selected ? book.get(selected) : null;
  if (!head || !entry || !entry.pop) return;
  const pop = entry.pop;
  const caller = pop.caller || {};
  const number = caller.withheld ? "withheld number" : caller.number || caller.number_raw || "no number";
  const dialled = caller.number_raw && caller.number_raw !== caller.number ? ` (as sent: ${caller.number_raw})` : "";
  const timer = timerFor(entry);
  const forWhom = pop.operator && me && pop.operator !== me.username ? ` · for ${pop.operator}` : "";
  head.className = `call-head state-${entry.state}${entry.withdrawn ? " withdrawn" : ""}`;
  replace(
    head,
    h("h2", { id: "caller-name", className: "caller-name", tabindex: "-1" }, displayName(pop)),
    h(
      "p",
      { className: "caller-id" },
      pop.customer && caller.name ? h("span", { id: "callerid-name" }, `Caller ID: ${caller.name} · `) : null,
      h("span", { id: "caller-number" }, number),
      dialled,
    ),
    h(
      "p",
      { className: "call-state" },
      h("strong", { id: "call-state", className: "state-words" }, stateWords(entry)),
      " ",
      h("span", { className: "timer", id: "call-timer", dataset: { timer: entry.id } }, formatDuration(timer.ms)),
      pop.queue ? ` · queue ${pop.queue}` : pop.agreement ? " · callback" : " · direct call",
      entry.answeredBy && entry.state !== "ringing" ? ` · answered by ${entry.answeredBy}` : null,
      forWhom,
    ),
    entry.withdrawn
      ? h(
          "p",
          { id: "withdrawn-reason", className: "withdrawn-note", role: "status" },
          `No longer ${forWhom ? `${pop.operator}'s` : "yours"}: ${label(WITHDRAWN_REASONS, entry.withdrawn.reason)}`,
          entry.answeredBy ? ` (${entry.answeredBy})` : "",
          ". Alt+D dismisses it.",
        )
      : null,
  );
}

function tick() {
  const now = Date.now();
  if (view === "team") teamView.tick(now);
  myState.tick(now);
  for (const node of document.querySelectorAll("[data-timer]")) {
    const entry = book.get(node.dataset.timer);
    if (entry) node.textContent = formatDuration(timerFor(entry, now).ms);
  }
  const before = book.calls.size;
  book.trim(now, selected);
  if (book.calls.size !== before) {
    for (const id of forms.keys()) if (!book.get(id)) forms.delete(id);
    renderList();
  }
}

function dismiss() {
  const entry = selected ? book.get(selected) : null;
  if (!entry) return;
  if (!entry.withdrawn && entry.state !== "ended") return;
  if (entry.draft.dirty) {
    forms.get(entry.id)?.say("Save the notes (Alt+S) before dismissing this call.", true);
    return;
  }
  book.remove(entry.id);
  forms.delete(entry.id);
  const next = book.list()[0];
  selected = next ? next.id : null;
  renderSelected();
  renderList();
  document.querySelector(".call-button")?.focus();
}

// -- views and keys -------------------------------------------------------------------------

function showView(name) {
  view = name;
  for (const panel of document.querySelectorAll("[data-panel]")) panel.hidden = panel.dataset.panel !== name;
  for (const tab of document.querySelectorAll(".tab")) {
    tab.setAttribute("aria-current", tab.dataset.view === name ? "page" : "false");
  }
}

for (const tab of document.querySelectorAll(".tab")) {
  tab.addEventListener("click", () => {
    showView(tab.dataset.view);
    if (tab.dataset.view === "customers") customerSearch.focus();
    if (tab.dataset.view === "history") historySearch.focus();
    if (tab.dataset.view === "agreements") {
      agreementsView.load();
      agreementsView.focus();
    }
    if (tab.dataset.view === "team") openTeam();
  });
}

byId("help-button").addEventListener("click", () => byId("help-dialog").showModal());

byId("watch-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const username = byId("watch-username").value.trim();
  if (username && !socket.send({ type: "watch", username })) {
    byId("watching").textContent = "Not connected; try again when the link is back.";
  }
});

/** From the Team view: watch that operator's pop, in the live view. */
function watchOperator(username) {
  byId("watch-username").value = username;
  showView("live");
  if (!socket.send({ type: "watch", username })) {
    byId("watching").textContent = "Not connected; try again when the link is back.";
    return;
  }
  byId("watching").textContent = `Asking to watch ${username}…`;
  byId("watch-username").focus();
}

function openTeam() {
  if (!isSupervisor(me)) return;
  showView("team");
  teamView.load().then(() => teamView.focus());
}

/** The form the shortcuts act on: the open history call there, else the live call. */
function currentForm() {
  if (view === "history" && historySearch.form) return historySearch.form;
  if (view !== "live") showView("live");
  return selected ? forms.get(selected) || null : null;
}

function whenNoDialog(action) {
  return () => {
    if (document.querySelector("dialog[open]")) return;
    if (me) action();
  };
}

installShortcuts({
  notes: whenNoDialog(() => currentForm()?.focusNotes()),
  save: () => {
    if (agreementDialog.isOpen) agreementDialog.form.requestSubmit(); // Alt+S saves what is in front
    else whenNoDialog(() => currentForm()?.save())();
  },
  agreement: whenNoDialog(() => {
    if (view === "history" && historySearch.form) {
      historySearch.form.element.querySelector("#history-make-agreement")?.click();
      return;
    }
    const entry = selected ? book.get(selected) : null;
    if (entry) {
      showView("live");
      makeAgreement(entry);
    }
  }),
  calls: whenNoDialog(() => {
    showView("live");
    (document.querySelector(".call-button[aria-current='true']") || document.querySelector(".call-button"))?.focus();
  }),
  dismiss: whenNoDialog(() => {
    showView("live");
    dismiss();
  }),
  live: whenNoDialog(() => {
    showView("live");
    document.getElementById("caller-name")?.focus(); // none while no call is on screen
  }),
  customers: whenNoDialog(() => {
    showView("customers");
    customerSearch.focus();
  }),
  history: whenNoDialog(() => {
    showView("history");
    historySearch.focus();
  }),
  agreements: whenNoDialog(() => {
    showView("agreements");
    agreementsView.load();
    agreementsView.focus();
  }),
  team: whenNoDialog(() => openTeam()),
  help: whenNoDialog(() => byId("help-dialog").showModal()),
});

// -- start ----------------------------------------------------------------------------------

function renderLive() {
  renderList();
  renderSelected();
}

async function boot() {
  if (!api.token) {
    showLogin();
    return;
  }
  try {
    startConsole(await api.me());
  } catch (error) {
    if (error.status !== 401) showLogin(`cti-bridge cannot be reached (${error.message}).`);
    else showLogin();
  }
}

boot();
