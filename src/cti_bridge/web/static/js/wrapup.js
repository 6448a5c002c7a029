// Notes, problem category and disposition for one call (PATCH /api/calls/{id}), and the
// "make an agreement" dialog (POST /api/agreements).
//
// The form writes every keystroke into the call's draft (calls.js), so a pop arriving,
// a state change or switching between calls never loses what the operator typed.

import { byId, formatWhen, fromLocalInput, h, replace, toLocalInput } from "./dom.js";
import { AGREEMENT_KINDS, CATEGORIES, DISPOSITIONS, label } from "./labels.js";

const NEEDS_AGREEMENT = new Set([
  "agreement_made",
  "escalated",
  "technician_planned",
  "repair_planned",
  "replacement_planned",
]);

export class WrapUpForm {
  /**
   * prefix: id prefix ("" for the live call, "history-" for a call found in history);
   * draft: the call's draft object, updated in place; agreements(): made so far.
   */
  constructor({ api, prefix = "", callId, draft, onAgreement, agreements = () => [] }) {
    this.api = api;
    this.callId = callId;
    this.draft = draft;
    this.agreements = agreements;
    const id = (name) => `${prefix}${name}`;
    this.notes = h("textarea", {
      id: id("notes"),
      rows: 6,
      maxlength: 20000,
      "aria-keyshortcuts": "Alt+N",
    });
    this.category = h("input", {
      id: id("category"),
      list: id("category-suggestions"),
      maxlength: 100,
      autocomplete: "off",
    });
    this.disposition = h(
      "select",
      { id: id("disposition") },
      h("option", { value: "" }, "— not decided —"),
      DISPOSITIONS.map(([value, words]) => h("option", { value }, words)),
    );
    this.status = h("p", { className: "form-status", role: "status", id: id("save-status") });
    this.hint = h("p", { className: "hint", id: id("agreement-hint") });
    this.saveButton = h("button", { type: "submit", id: id("save-call"), "aria-keyshortcuts": "Alt+S" }, "Save ", h("kbd", {}, "Alt+S"));
    const agreementButton = h(
      "button",
      { type: "button", id: id("make-agreement"), "aria-keyshortcuts": "Alt+A", onclick: () => onAgreement() },
      "Make an agreement ",
      h("kbd", {}, "Alt+A"),
    );
    this.agreementList = h("ul", { className: "made-agreements", id: id("made-agreements") });
    this.element = h(
      "form",
      { className: "wrapup", "aria-label": "Notes and outcome of this call" },
      h("h3", {}, "Notes and outcome"),
      h("label", { for: id("notes") }, "Notes ", h("kbd", {}, "Alt+N")),
      this.notes,
      h("div", { className: "row" },
        h("div", {}, h("label", { for: id("category") }, "Problem category"), this.category),
        h("div", {}, h("label", { for: id("disposition") }, "Disposition"), this.disposition),
      ),
      h("datalist", { id: id("category-suggestions") }, CATEGORIES.map((c) => h("option", { value: c }))),
      this.hint,
      h("div", { className: "buttons" }, this.saveButton, agreementButton),
      this.status,
      this.agreementList,
    );
    this.element.addEventListener("submit", (event) => {
      event.preventDefault();
      this.save();
    });
    for (const field of [this.notes, this.category, this.disposition]) {
      field.addEventListener("input", () => this.changed());
      field.addEventListener("change", () => this.changed());
    }
    this.fill();
    this.showAgreements();
  }

  fill() {
    this.notes.value = this.draft.notes;
    this.category.value = this.draft.category;
    this.disposition.value = this.draft.disposition;
    this.showHint();
  }

  /** The stored record's annotations, unless the operator already typed something. */
  load(record) {
    if (this.draft.dirty || !record) return;
    this.draft.notes = record.notes || "";
    this.draft.category = record.category || "";
    this.draft.disposition = record.disposition || "";
    this.draft.loaded = true;
    this.fill();
    if (record.annotated_at) this.say(`Saved ${formatWhen(record.annotated_at)}`);
  }

  changed() {
    this.draft.notes = this.notes.value;
    this.draft.category = this.category.value;
    this.draft.disposition = this.disposition.value;
    this.draft.dirty = true;
    this.say("Not saved yet");
    this.showHint();
  }

  showHint() {
    const made = this.agreements().length > 0;
    const wanted = NEEDS_AGREEMENT.has(this.disposition.value) && !made;
    this.hint.textContent = wanted ? "Record what was agreed: Make an agreement (Alt+A)." : "";
  }

  showAgreements() {
    replace(
      this.agreementList,
      this.agreements().map((a) =>
        h("li", {}, `Agreement #${a.id}: ${label(AGREEMENT_KINDS, a.kind)}`, a.deadline ? `, due ${formatWhen(a.deadline)}` : ""),
      ),
    );
    this.showHint();
  }

  focusNotes() {
    this.notes.focus();
  }

  say(text, isError = false) {
    this.status.textContent = text;
    this.status.classList.toggle("error", isError);
  }

  async save() {
    const draft = this.draft;
    const sent = { notes: draft.notes, category: draft.category, disposition: draft.disposition };
    this.saveButton.disabled = true;
    this.say("Saving…");
    try {
      const record = await this.api.saveCall(this.callId, {
        notes: sent.notes.trim() ? sent.notes : null,
        category: sent.category.trim() ? sent.category.trim() : null,
        disposition: sent.disposition || null,
      });
      // Typed on while saving? Then there is still something to save.
      draft.dirty = draft.notes !== sent.notes || draft.category !== sent.category || draft.disposition !== sent.disposition;
      this.say(draft.dirty ? "Saved; newer changes not saved yet" : `Saved ${formatWhen(record.annotated_at || Date.now())}`);
      return record;
    } catch (error) {
      this.say(`Not saved: ${error.message}`, true);
      return null;
    } finally {
      this.saveButton.disabled = false;
    }
  }
}

/** The one agreement dialog of the page (a native <dialog>: Esc closes it). */
export class AgreementDialog {
  constructor({ api }) {
    this.api = api;
    this.dialog = byId("agreement-dialog");
    this.form = byId("agreement-form");
    this.kind = byId("agreement-kind");
    this.deadline = byId("agreement-deadline");
    this.windowStart = byId("agreement-window-start");
    this.windowEnd = byId("agreement-window-end");
    this.number = byId("agreement-number");
    this.notes = byId("agreement-notes");
    this.message = byId("agreement-message");
    this.target = null;
    this.opener = null;
    replace(this.kind, AGREEMENT_KINDS.map(([value, words]) => h("option", { value }, words)));
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.create();
    });
    byId("agreement-cancel").addEventListener("click", () => this.close());
    this.dialog.addEventListener("close", () => {
      if (this.opener && document.contains(this.opener)) this.opener.focus();
      this.opener = null;
    });
  }

  get isOpen() {
    return this.dialog.open;
  }

  /** target: {callId, customerId, number, who, onCreated(agreement)} */
  open(target) {
    this.target = target;
    this.opener = document.activeElement;
    const tomorrow = new Date(Date.now() + 24 * 3600_000);
    tomorrow.setMinutes(0, 0, 0);
    this.kind.value = "callback";
    this.deadline.value = toLocalInput(tomorrow);
    this.windowStart.value = "";
    this.windowEnd.value = "";
    this.number.value = target.number || "";
    this.notes.value = "";
    this.message.textContent = "";
    byId("agreement-for").textContent = target.who ? `For ${target.who}` : "";
    this.dialog.showModal();
    this.kind.focus();
  }

  close() {
    if (this.dialog.open) this.dialog.close();
  }

  async create() {
    const deadline = fromLocalInput(this.deadline.value);
    const start = fromLocalInput(this.windowStart.value);
    const end = fromLocalInput(this.windowEnd.value);
    if (!deadline) return this.fail("Give a deadline.");
    if ((start === null) !== (end === null)) return this.fail("Give both ends of the callback window, or neither.");
    if (start && end && end <= start) return this.fail("The callback window must end after it starts.");
    const body = {
      kind: this.kind.value,
      deadline,
      call_id: this.target.callId ?? null,
      customer_id: this.target.customerId ?? null,
      callback_number: this.number.value.trim() || null,
      window_start: start,
      window_end: end,
      notes: this.notes.value.trim() || null,
    };
    try {
      const agreement = await this.api.createAgreement(body);
      const done = this.target.onCreated;
      this.close();
      if (done) done(agreement);
    } catch (error) {
      this.fail(`Not created: ${error.message}`);
    }
    return undefined;
  }

  fail(text) {
    this.message.textContent = text;
  }
}
