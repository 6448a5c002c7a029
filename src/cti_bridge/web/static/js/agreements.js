// The promise book on screen: the agreements list with its filters (GET /api/agreements),
// one agreement with its attempts and history (GET /api/agreements/{id}), and its changes
// and closing (PATCH /api/agreements/{id}).
//
// Closing a callback as done asks for a disposition here, before anything is sent; the
// server refuses it without one too (400 naming `disposition`), and that answer is shown
// the same way. The close form is also the pop's (closeForm), so an operator who reached
// the customer on a callback closes it from the call.

import { byId, formatWhen, fromLocalInput, h, replace, toLocalInput, toMillis } from "./dom.js";
import { isOverdue } from "./card.js";
import {
  AGREEMENT_DISPOSITIONS,
  AGREEMENT_KINDS,
  AGREEMENT_ORIGINS,
  AGREEMENT_STATUSES,
  ATTEMPT_OUTCOMES,
  FLAG_REASONS,
  HISTORY_KINDS,
  choices,
  label,
} from "./labels.js";

/** The filters an operator picks from; "flagged" and "all" are the supervisors'. */
export const FILTERS = {
  mine: { words: "Mine", query: (me) => ({ owner: me.username }), statuses: true },
  // Nobody's yet (a missed call's callback): every operator may take one.
  unowned: { words: "Unassigned", query: () => ({ unowned: "true" }), statuses: true },
  today: { words: "Due today", query: () => ({ due: "today" }), statuses: false },
  overdue: { words: "Overdue", query: () => ({ due: "overdue" }), statuses: false },
  // Flagged and not yet decided: a flagged callback is failed until a supervisor closes it.
  flagged: { words: "Flagged", query: () => ({ flagged: "true", status: "failed" }), statuses: false, supervisors: true },
  all: { words: "All", query: () => ({}), statuses: true, supervisors: true },
};

/** "active" is both statuses an agreement is still to be kept in. */
const STILL_TO_DO = ["open", "dialling"];
const CLOSED = new Set(["done", "cancelled"]);

export function isSupervisor(me) {
  return Boolean(me) && (me.role === "supervisor" || me.role === "admin");
}

export function isClosed(agreement) {
  return CLOSED.has(agreement.status);
}

/** Soonest deadline first, those without one last, then by id (the server's order). */
export function byDeadline(a, b) {
  const da = toMillis(a.deadline);
  const db = toMillis(b.deadline);
  if (da === null && db !== null) return 1;
  if (db === null && da !== null) return -1;
  if (da !== null && db !== null && da !== db) return da - db;
  return a.id - b.id;
}

export function customerWords(agreement) {
  if (agreement.customer_name) return agreement.customer_name;
  if (agreement.customer_id !== null && agreement.customer_id !== undefined) return `Customer #${agreement.customer_id}`;
  return agreement.callback_number || "No customer";
}

function windowWords(agreement) {
  if (!agreement.window_start && !agreement.window_end) return null;
  return `${formatWhen(agreement.window_start) || "…"} – ${formatWhen(agreement.window_end) || "…"}`;
}

// -- history, in words ----------------------------------------------------------------------

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/;

const FIELD_WORDS = {
  deadline: "deadline",
  window_start: "window from",
  window_end: "window until",
  owner: "owner",
  notes: "notes",
  status: "status",
  disposition: "disposition",
  queue: "queue",
  callback_number: "number",
  customer_id: "customer",
  flagged: "flagged",
  next_attempt_at: "next attempt",
  due_at: "due",
};

/** One stored value as an operator reads it. */
function valueWords(field, value) {
  if (value === null || value === undefined || value === "") return "none";
  if (field === "status") return label(AGREEMENT_STATUSES, value);
  if (field === "disposition") return label(AGREEMENT_DISPOSITIONS, value);
  if (field === "kind") return label(AGREEMENT_KINDS, value);
  if (field === "outcome") return label(ATTEMPT_OUTCOMES, value);
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (typeof value === "string" && ISO_TIME.test(value)) return formatWhen(value);
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

/** What one history event says, in a sentence; unknown kinds show their details plainly. */
export function historyWords(event) {
  const d = event.details && typeof event.details === "object" ? event.details : {};
  switch (event.kind) {
    case "changed":
      return Object.entries(d)
        .map(([field, change]) => {
          const [before, after] = Array.isArray(change) ? change : [null, change];
          const name = Object.hasOwn(FIELD_WORDS, field) ? FIELD_WORDS[field] : field.replaceAll("_", " ");
          return `${name}: ${valueWords(field, before)} → ${valueWords(field, after)}`;
        })
        .join("; ");
    case "closed":
      return [
        d.status ? label(AGREEMENT_STATUSES, d.status) : null,
        d.disposition ? label(AGREEMENT_DISPOSITIONS, d.disposition) : null,
      ]
        .filter(Boolean)
        .join(": ");
    case "attempt_started":
      return [
        d.number !== undefined ? `Attempt ${d.number}` : "Attempt",
        d.operator ? `ringing ${d.operator}` : null,
        d.node ? `(node ${d.node})` : null,
      ]
        .filter(Boolean)
        .join(" ");
    case "attempt_ended":
      return [
        d.number !== undefined ? `Attempt ${d.number}:` : null,
        d.outcome ? label(ATTEMPT_OUTCOMES, d.outcome) : "ended",
        d.detail ? `(${d.detail})` : null,
      ]
        .filter(Boolean)
        .join(" ");
    case "flagged":
      return d.reason ? label(FLAG_REASONS, d.reason) : "";
    case "missed_call":
    case "resolved_by_call":
      return d.call_id !== undefined && d.call_id !== null ? `call #${d.call_id}` : "";
    case "created":
      return [
        d.origin ? label(AGREEMENT_ORIGINS, d.origin) : null,
        d.kind ? label(AGREEMENT_KINDS, d.kind) : null,
        d.deadline ? `due ${formatWhen(d.deadline)}` : null,
      ]
        .filter(Boolean)
        .join(", ");
    default:
      return Object.entries(d)
        .map(([key, value]) => `${key.replaceAll("_", " ")}: ${valueWords(key, value)}`)
        .join(", ");
  }
}

// -- the close form (also the pop's) -----------------------------------------------------

/**
 * Close one agreement as done or cancelled with a disposition. state: {status,
 * disposition} kept by the caller so a re-render keeps the choice; onClosed(agreement).
 */
export function closeForm({ api, agreement, prefix, state = {}, onClosed, statuses = ["done", "cancelled"] }) {
  const id = (name) => `${prefix}${name}`;
  const status = h(
    "select",
    { id: id("close-status") },
    statuses.map((value) => h("option", { value }, label(AGREEMENT_STATUSES, value))),
  );
  status.value = state.status || statuses[0];
  const disposition = h(
    "select",
    { id: id("close-disposition"), "aria-describedby": id("close-message") },
    h("option", { value: "" }, "— choose —"),
    choices("agreement_dispositions", AGREEMENT_DISPOSITIONS).map(([value, words]) => h("option", { value }, words)),
  );
  disposition.value = state.disposition || "";
  const message = h("p", { id: id("close-message"), className: "message", role: "alert" });
  const button = h("button", { type: "submit", id: id("close-agreement") }, "Close agreement");
  const needed = () => agreement.kind === "callback" && status.value === "done";
  const showNeed = () => {
    disposition.required = needed();
  };
  for (const field of [status, disposition]) {
    field.addEventListener("change", () => {
      state.status = status.value;
      state.disposition = disposition.value;
      showNeed();
    });
  }
  showNeed();
  const form = h(
    "form",
    { className: "close-form", id: id("close-form"), "aria-label": "Close this agreement", novalidate: true },
    h("h4", {}, "Close"),
    h(
      "div",
      { className: "row" },
      h("div", {}, h("label", { for: id("close-status") }, "Close as"), status),
      h("div", {}, h("label", { for: id("close-disposition") }, "Disposition"), disposition),
    ),
    h("div", { className: "buttons" }, button),
    message,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (needed() && !disposition.value) {
      message.textContent = "Choose a disposition: a callback is closed as done with one.";
      message.classList.add("error");
      disposition.focus();
      return;
    }
    const body = { status: status.value };
    if (disposition.value) body.disposition = disposition.value;
    button.disabled = true;
    message.classList.remove("error");
    message.textContent = "Closing…";
    try {
      const closed = await api.saveAgreement(agreement.id, body);
      message.textContent = `Closed: ${label(AGREEMENT_STATUSES, closed.status)}.`;
      if (onClosed) onClosed(closed);
    } catch (error) {
      message.textContent = `Not closed: ${error.message}`;
      message.classList.add("error");
      if (/disposition/.test(error.message)) disposition.focus();
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

// -- the view ----------------------------------------------------------------------------

export class AgreementsView {
  /** me(): the operator logged in; openCustomer(id): the customer view for a customer. */
  constructor({ api, me, openCustomer }) {
    this.api = api;
    this.me = me;
    this.openCustomer = openCustomer;
    this.filter = "mine";
    this.customer = null; // {id, name} when listing one customer's agreements
    this.shown = null; // the agreement in the detail pane
    this.loads = 0; // only the newest list answer is shown (filters clicked quickly)
    this.status = byId("agreements-status");
    this.rows = byId("agreements-rows");
    this.table = byId("agreements-table");
    this.detail = byId("agreement-detail");
    this.message = byId("agreements-message");
    this.filterButtons = [...document.querySelectorAll("#agreement-filters [data-filter]")];
    replace(
      this.status,
      h("option", { value: "active" }, "Still to do (open, dialling)"),
      AGREEMENT_STATUSES.filter(([value]) => !STILL_TO_DO.includes(value)).map(([value, words]) => h("option", { value }, words)),
      h("option", { value: "" }, "Any status"),
    );
    for (const button of this.filterButtons) {
      button.addEventListener("click", () => {
        this.filter = button.dataset.filter;
        this.load();
      });
    }
    this.status.addEventListener("change", () => this.load());
    byId("agreements-any-customer").addEventListener("click", () => {
      this.customer = null;
      this.load();
    });
    byId("agreement-filters").addEventListener("submit", (event) => {
      event.preventDefault();
      this.load();
    });
  }

  /** After login: the supervisors' filters shown or not, nothing of the last operator. */
  reset() {
    const supervisor = isSupervisor(this.me());
    for (const button of this.filterButtons) {
      button.hidden = Boolean(FILTERS[button.dataset.filter].supervisors) && !supervisor;
    }
    this.filter = "mine";
    this.customer = null;
    this.shown = null;
    this.status.value = "active";
    this.table.hidden = true;
    replace(this.rows);
    replace(this.detail);
    this.message.textContent = "";
  }

  focus() {
    (this.filterButtons.find((b) => b.dataset.filter === this.filter) || this.filterButtons[0]).focus();
  }

  /** The agreements of one customer (from the customer view). */
  forCustomer(customer) {
    this.customer = { id: customer.id, name: customer.name || `Customer #${customer.id}` };
    this.filter = isSupervisor(this.me()) ? "all" : "mine";
    return this.load();
  }

  queries() {
    const filter = FILTERS[this.filter] || FILTERS.mine;
    const base = { ...filter.query(this.me()), limit: 500 };
    if (this.customer) base.customer_id = this.customer.id;
    if (!filter.statuses) return [base];
    if (this.status.value === "active") return STILL_TO_DO.map((status) => ({ ...base, status }));
    return [this.status.value ? { ...base, status: this.status.value } : base];
  }

  showFilters() {
    const filter = FILTERS[this.filter] || FILTERS.mine;
    for (const button of this.filterButtons) {
      button.setAttribute("aria-pressed", button.dataset.filter === this.filter ? "true" : "false");
    }
    this.status.disabled = !filter.statuses;
    byId("agreements-customer").hidden = !this.customer;
    byId("agreements-customer-name").textContent = this.customer ? this.customer.name : "";
  }

  async load() {
    const ticket = ++this.loads;
    this.showFilters();
    this.message.textContent = "Loading…";
    try {
      const answers = await Promise.all(this.queries().map((query) => this.api.agreements(query)));
      if (ticket !== this.loads) return [];
      const seen = new Map();
      for (const answer of answers) for (const a of answer.agreements) seen.set(a.id, a);
      const agreements = [...seen.values()].sort(byDeadline);
      const filter = FILTERS[this.filter] || FILTERS.mine;
      const whose = this.customer ? ` of ${this.customer.name}` : "";
      this.message.textContent = agreements.length
        ? `${agreements.length} agreement${agreements.length === 1 ? "" : "s"}${whose} (${filter.words.toLowerCase()}).`
        : `No agreements${whose} (${filter.words.toLowerCase()}).`;
      this.table.hidden = agreements.length === 0;
      replace(this.rows, agreements.map((a) => this.row(a)));
      return agreements;
    } catch (error) {
      if (ticket === this.loads) this.message.textContent = `Could not list the agreements: ${error.message}`;
      return [];
    }
  }

  row(agreement) {
    const overdue = isOverdue(agreement);
    const attempts = Array.isArray(agreement.attempts) ? agreement.attempts.length : 0;
    return h(
      "tr",
      {
        dataset: { agreementId: String(agreement.id) },
        className: [overdue ? "overdue" : "", agreement.flagged ? "flagged" : ""].join(" ").trim() || null,
        "aria-current": this.shown && this.shown.id === agreement.id ? "true" : null,
      },
      h(
        "td",
        {},
        h(
          "button",
          { type: "button", className: "link", onclick: () => this.open(agreement.id) },
          label(AGREEMENT_KINDS, agreement.kind),
        ),
        h("span", { className: "quiet" }, ` #${agreement.id}`),
      ),
      h("td", { className: "customer-cell" }, customerWords(agreement)),
      h(
        "td",
        { className: "deadline-cell" },
        overdue ? h("strong", { className: "overdue-words" }, "OVERDUE ") : null,
        agreement.deadline ? formatWhen(agreement.deadline) : "no deadline",
      ),
      h("td", { className: "status-cell" }, label(AGREEMENT_STATUSES, agreement.status)),
      h("td", { className: "owner-cell" }, agreement.owner || "nobody"),
      h("td", { className: "attempts-cell" }, String(attempts)),
      h("td", { className: "flagged-cell" }, agreement.flagged ? h("strong", { className: "flag-words" }, "⚑ FLAGGED") : ""),
    );
  }

  async open(id) {
    let agreement;
    try {
      agreement = await this.api.agreement(id);
    } catch (error) {
      const words = error.status === 403 ? "it is not yours (its owner or a supervisor may open it)" : error.message;
      replace(this.detail, h("p", { className: "message error", role: "alert" }, `Could not open agreement #${id}: ${words}`));
      return null;
    }
    this.show(agreement);
    this.detail.querySelector("#agreement-detail-title")?.focus();
    return agreement;
  }

  /** The detail pane for one agreement; the list row follows what changed. */
  show(agreement, notice = "") {
    this.shown = agreement;
    const closed = isClosed(agreement);
    replace(
      this.detail,
      h(
        "h3",
        { id: "agreement-detail-title", tabindex: "-1" },
        `Agreement #${agreement.id}: ${label(AGREEMENT_KINDS, agreement.kind)}`,
      ),
      agreement.flagged
        ? h(
            "p",
            { className: "flag-note", role: "note", id: "agreement-flagged" },
            h("strong", {}, "⚑ FLAGGED"),
            " The attempts or the time ran out: a supervisor decides what happens now.",
          )
        : null,
      this.facts(agreement),
      h("h4", {}, "Notes"),
      agreement.notes ? h("div", { className: "notes-text", id: "agreement-detail-notes" }, agreement.notes) : h("p", { className: "quiet" }, "No notes."),
      attemptsSection(agreement.attempts || []),
      historySection(agreement.history || []),
      closed ? null : this.changeForm(agreement),
      closed
        ? null
        : closeForm({
            api: this.api,
            agreement,
            prefix: "agr-",
            onClosed: (done) => this.changed(done, "Closed."),
          }),
      h("p", { id: "agreement-detail-status", className: "form-status", role: "status" }, notice),
    );
    for (const row of this.rows.querySelectorAll("tr")) {
      row.setAttribute("aria-current", row.dataset.agreementId === String(agreement.id) ? "true" : "false");
    }
  }

  facts(agreement) {
    const overdue = isOverdue(agreement);
    const customer =
      agreement.customer_id !== null && agreement.customer_id !== undefined
        ? h(
            "button",
            { type: "button", className: "link", id: "agreement-customer", onclick: () => this.openCustomer(agreement.customer_id) },
            customerWords(agreement),
          )
        : customerWords(agreement);
    const fact = (term, value, id) =>
      value === null || value === undefined || value === "" ? null : [h("dt", {}, term), h("dd", { id }, value)];
    return h(
      "dl",
      { className: "facts", id: "agreement-facts" },
      fact("Customer", customer, "agreement-fact-customer"),
      fact("Status", label(AGREEMENT_STATUSES, agreement.status), "agreement-fact-status"),
      fact("Disposition", agreement.disposition ? label(AGREEMENT_DISPOSITIONS, agreement.disposition) : null, "agreement-fact-disposition"),
      fact(
        "Deadline",
        agreement.deadline ? [overdue ? h("strong", { className: "overdue-words" }, "OVERDUE ") : null, formatWhen(agreement.deadline)] : "none",
        "agreement-fact-deadline",
      ),
      fact("Window", windowWords(agreement), "agreement-fact-window"),
      fact("Call back on", agreement.callback_number, "agreement-fact-number"),
      fact("Owner", agreement.owner || "nobody", "agreement-fact-owner"),
      fact("Queue", agreement.queue, "agreement-fact-queue"),
      fact("Origin", agreement.origin ? label(AGREEMENT_ORIGINS, agreement.origin) : null, "agreement-fact-origin"),
      fact("Next attempt", isClosed(agreement) ? null : formatWhen(agreement.next_attempt_at), "agreement-fact-next"),
      fact("From call", agreement.call_id ? `#${agreement.call_id}` : null, "agreement-fact-call"),
      fact("Made", formatWhen(agreement.created_at), "agreement-fact-made"),
      fact("Closed", formatWhen(agreement.closed_at), "agreement-fact-closed"),
    );
  }

  changeForm(agreement) {
    const supervisor = isSupervisor(this.me());
    const field = (name, attrs) => h("input", { id: `agr-${name}`, ...attrs });
    const deadline = field("deadline", { type: "datetime-local" });
    const start = field("window-start", { type: "datetime-local" });
    const end = field("window-end", { type: "datetime-local" });
    const owner = supervisor ? field("owner", { autocomplete: "off", maxlength: 64, placeholder: "username (empty: nobody)" }) : null;
    const notes = h("textarea", { id: "agr-notes", rows: 4, maxlength: 20000 });
    const local = (value) => {
      const ms = toMillis(value);
      return ms === null ? "" : toLocalInput(new Date(ms));
    };
    deadline.value = local(agreement.deadline);
    start.value = local(agreement.window_start);
    end.value = local(agreement.window_end);
    if (owner) owner.value = agreement.owner || "";
    notes.value = agreement.notes || "";
    const message = h("p", { id: "agr-change-message", className: "message", role: "alert" });
    const button = h("button", { type: "submit", id: "agr-save" }, "Save changes");
    const form = h(
      "form",
      { className: "change-form", id: "agr-change-form", "aria-label": "Change this agreement" },
      h("h4", {}, "Change"),
      h("label", { for: "agr-deadline" }, "Deadline"),
      deadline,
      h(
        "fieldset",
        {},
        h("legend", {}, "Callback window (when the customer can be called)"),
        h("label", { for: "agr-window-start" }, "From"),
        start,
        h("label", { for: "agr-window-end" }, "Until"),
        end,
      ),
      owner ? [h("label", { for: "agr-owner" }, "Owner"), owner] : this.ownerNote(agreement),
      h("label", { for: "agr-notes" }, "Notes"),
      notes,
      h("div", { className: "buttons" }, button),
      message,
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const changes = {};
      const newDeadline = fromLocalInput(deadline.value);
      if (differs(agreement.deadline, newDeadline)) changes.deadline = newDeadline;
      const s = fromLocalInput(start.value);
      const e = fromLocalInput(end.value);
      if ((s === null) !== (e === null)) {
        message.textContent = "Give both ends of the callback window, or neither.";
        return;
      }
      if (s && e && e <= s) {
        message.textContent = "The callback window must end after it starts.";
        return;
      }
      if (differs(agreement.window_start, s) || differs(agreement.window_end, e)) {
        changes.window_start = s;
        changes.window_end = e;
      }
      if (owner && owner.value.trim() !== (agreement.owner || "")) changes.owner = owner.value.trim() || null;
      const text = notes.value.trim() ? notes.value : null;
      if (text !== (agreement.notes || null)) changes.notes = text;
      if (!Object.keys(changes).length) {
        message.textContent = "Nothing changed.";
        return;
      }
      button.disabled = true;
      message.textContent = "Saving…";
      try {
        const saved = await this.api.saveAgreement(agreement.id, changes);
        this.changed(saved, "Saved.");
      } catch (error) {
        message.textContent = `Not saved: ${error.message}`;
        message.classList.add("error");
      } finally {
        button.disabled = false;
      }
    });
    return form;
  }

  /** An operator's word on the owner; for one nobody owns, the button that takes it. */
  ownerNote(agreement) {
    if (agreement.owner) return h("p", { className: "quiet" }, `Owner: ${agreement.owner} (a supervisor hands an agreement over).`);
    const me = this.me();
    const message = h("span", { id: "agr-take-message", className: "message", role: "alert" });
    const take = h("button", { type: "button", id: "agr-take" }, "Take it: make it mine");
    take.addEventListener("click", async () => {
      take.disabled = true;
      message.textContent = "Taking it…";
      try {
        const saved = await this.api.saveAgreement(agreement.id, { owner: me.username });
        this.changed(saved, "It is yours now.");
      } catch (error) {
        message.textContent = `Not taken: ${error.message}`;
        message.classList.add("error");
        take.disabled = false;
      }
    });
    return h("p", { className: "quiet", id: "agr-owner-note" }, "Owner: nobody yet. ", take, " ", message);
  }

  /** After a change or a close: the pane shows the answer, the list is read again. */
  async changed(agreement, notice) {
    let fresh = agreement;
    try {
      fresh = await this.api.agreement(agreement.id); // with the new history event
    } catch {
      // no longer ours to read (handed over): show what the change answered
    }
    this.show(fresh, notice);
    await this.load();
    this.detail.querySelector("#agreement-detail-title")?.focus();
  }
}

/** Does an edited datetime-local value (minutes only) mean another time than the stored one? */
function differs(stored, edited) {
  const a = toMillis(stored);
  const b = toMillis(edited);
  if (a === null || b === null) return a !== b;
  return Math.floor(a / 60000) !== Math.floor(b / 60000);
}

function attemptsSection(attempts) {
  const section = h("section", { className: "attempts", "aria-label": "Attempts" }, h("h4", {}, `Attempts (${attempts.length})`));
  if (!attempts.length) {
    section.append(h("p", { className: "quiet" }, "No attempts yet."));
    return section;
  }
  section.append(
    h(
      "table",
      { className: "history-table", id: "agreement-attempts" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["#", "Operator", "Started", "Ended", "Outcome"].map((words) => h("th", { scope: "col" }, words)),
        ),
      ),
      h(
        "tbody",
        {},
        attempts.map((attempt) =>
          h(
            "tr",
            {},
            h("td", {}, String(attempt.number ?? "")),
            h("td", {}, attempt.operator || ""),
            h("td", {}, formatWhen(attempt.started_at)),
            h("td", {}, formatWhen(attempt.ended_at) || "under way"),
            h(
              "td",
              {},
              attempt.outcome ? label(ATTEMPT_OUTCOMES, attempt.outcome) : "",
              attempt.detail ? h("div", { className: "quiet" }, attempt.detail) : null,
            ),
          ),
        ),
      ),
    ),
  );
  return section;
}

function historySection(history) {
  const section = h("section", { className: "agreement-history", "aria-label": "History" }, h("h4", {}, "History"));
  if (!history.length) {
    section.append(h("p", { className: "quiet" }, "No history."));
    return section;
  }
  section.append(
    h(
      "ol",
      { className: "history-list", id: "agreement-history" },
      history.map((event) => {
        const words = historyWords(event);
        return h(
          "li",
          { dataset: { kind: String(event.kind) } },
          h("span", { className: "when" }, formatWhen(event.at)),
          " · ",
          h("strong", {}, label(HISTORY_KINDS, event.kind)),
          event.operator ? ` by ${event.operator}` : null,
          words ? h("div", { className: "history-details" }, words) : null,
        );
      }),
    ),
  );
  return section;
}
