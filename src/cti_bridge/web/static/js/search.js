// Search: customers (GET /api/customers?q=, then /api/customers/{id}) and the call
// history (GET /api/calls?number=&since=&limit=). A call found in the history opens with
// the same notes form as a live call, so an operator can finish the paperwork later.
// The customer view also lists the customer's open agreements (each opens in the
// agreements view) and logs contacts that are not calls (contacts.js).

import { byId, formatWhen, h, replace } from "./dom.js";
import { renderCard } from "./card.js";
import { ContactForm } from "./contacts.js";
import { DISPOSITIONS, OUTCOMES, label } from "./labels.js";
import { WrapUpForm } from "./wrapup.js";

export class CustomerSearch {
  /** openAgreement(agreement), customerAgreements(customer): into the agreements view. */
  constructor({ api, agreementDialog, openAgreement = null, customerAgreements = null }) {
    this.api = api;
    this.agreementDialog = agreementDialog;
    this.openAgreement = openAgreement;
    this.customerAgreements = customerAgreements;
    this.input = byId("customer-q");
    this.results = byId("customer-results");
    this.detail = byId("customer-detail");
    this.message = byId("customer-message");
    this.shown = null;
    byId("customer-search").addEventListener("submit", (event) => {
      event.preventDefault();
      this.search();
    });
  }

  focus() {
    this.input.focus();
    this.input.select();
  }

  async search() {
    const q = this.input.value.trim();
    if (q.length < 2) {
      this.message.textContent = "Type at least two characters.";
      return;
    }
    this.message.textContent = "Searching…";
    try {
      const { customers } = await this.api.customers(q);
      this.message.textContent = customers.length
        ? `${customers.length} customer${customers.length === 1 ? "" : "s"} found.`
        : "No customer found.";
      replace(
        this.results,
        customers.map((c) =>
          h(
            "li",
            {},
            h(
              "button",
              { type: "button", className: "result", onclick: () => this.open(c.id) },
              h("strong", {}, c.name || "(no name)"),
              c.company ? ` · ${c.company}` : null,
              h("span", { className: "quiet" }, ` ${(c.numbers || []).join(", ")}`),
            ),
          ),
        ),
      );
      if (customers.length) this.results.querySelector("button").focus();
    } catch (error) {
      this.message.textContent = `Search failed: ${error.message}`;
    }
  }

  /** notice: said after the view is (re)built, e.g. "Contact logged." */
  async open(id, notice = "") {
    try {
      const context = await this.api.customer(id);
      this.shown = context;
      const customer = context.customer;
      const makeAgreement = h(
        "button",
        {
          type: "button",
          onclick: () =>
            this.agreementDialog.open({
              customerId: customer.id,
              number: (customer.numbers || [])[0] || "",
              who: customer.name,
              onCreated: () => this.open(id),
            }),
        },
        "Make an agreement",
      );
      const allAgreements = this.customerAgreements
        ? h(
            "button",
            { type: "button", id: "customer-agreements", onclick: () => this.customerAgreements(customer) },
            "Agreements of this customer",
          )
        : null;
      const contact = new ContactForm({
        api: this.api,
        customerId: customer.id,
        onLogged: () => this.open(id, "Contact logged: it is in the history below."),
      });
      replace(
        this.detail,
        h("div", { className: "buttons" }, makeAgreement, allAgreements),
        contact.element,
        h("p", { id: "customer-notice", className: "form-status", role: "status" }, notice),
        renderCard(context, { openAgreement: this.openAgreement }),
      );
      this.detail.querySelector(".customer-name")?.setAttribute("tabindex", "-1");
      this.detail.querySelector(".customer-name")?.focus();
    } catch (error) {
      this.message.textContent = `Could not open the customer: ${error.message}`;
    }
  }
}

export class HistorySearch {
  constructor({ api, agreementDialog }) {
    this.api = api;
    this.agreementDialog = agreementDialog;
    this.number = byId("history-number");
    this.since = byId("history-since");
    this.limit = byId("history-limit");
    this.rows = byId("history-rows");
    this.table = byId("history-table");
    this.detail = byId("history-detail");
    this.message = byId("history-message");
    this.form = null;
    this.madeAgreements = [];
    byId("history-search").addEventListener("submit", (event) => {
      event.preventDefault();
      this.search();
    });
  }

  focus() {
    this.number.focus();
    this.number.select();
  }

  async search() {
    this.message.textContent = "Searching…";
    const since = this.since.value ? new Date(`${this.since.value}T00:00:00`).toISOString() : null;
    try {
      const { calls } = await this.api.calls({
        number: this.number.value.trim(),
        since,
        limit: Number(this.limit.value),
      });
      this.message.textContent = calls.length ? `${calls.length} call${calls.length === 1 ? "" : "s"} found.` : "No calls found.";
      this.table.hidden = calls.length === 0;
      replace(this.rows, calls.map((call) => this.row(call)));
    } catch (error) {
      this.message.textContent = `Search failed: ${error.message}`;
    }
  }

  row(call) {
    const caller = call.caller_withheld ? "withheld" : call.caller_number || call.caller_number_raw || "";
    return h(
      "tr",
      { dataset: { callId: String(call.id) } },
      h("td", {}, h("button", { type: "button", className: "link", onclick: () => this.open(call.id) }, formatWhen(call.started_at))),
      h("td", {}, h("div", {}, call.caller_name || ""), h("div", { className: "quiet" }, caller)),
      h("td", {}, call.queue || "direct"),
      h("td", {}, call.answered_by || ""),
      h("td", {}, label(OUTCOMES, call.outcome) || "in progress"),
      h("td", {}, call.category || ""),
      h("td", {}, label(DISPOSITIONS, call.disposition)),
      h("td", { className: "notes-cell" }, call.notes || ""),
    );
  }

  async open(id) {
    let record;
    try {
      record = await this.api.call(id);
    } catch (error) {
      this.message.textContent = `Could not open the call: ${error.message}`;
      return;
    }
    const draft = { notes: "", category: "", disposition: "", dirty: false, loaded: false };
    this.madeAgreements = [];
    this.form = new WrapUpForm({
      api: this.api,
      prefix: "history-",
      callId: record.id,
      draft,
      agreements: () => this.madeAgreements,
      onAgreement: () => this.makeAgreement(record),
    });
    this.form.load(record);
    const caller = record.caller_withheld ? "withheld number" : record.caller_number || record.caller_number_raw || "";
    const title = h("h3", { id: "history-caller", tabindex: "-1" }, record.caller_name || caller || `Call ${record.id}`);
    replace(
      this.detail,
      title,
      h(
        "p",
        { className: "quiet" },
        `${caller} · ${formatWhen(record.started_at)} · ${record.queue || "direct"} · `,
        `${label(OUTCOMES, record.outcome) || "in progress"}`,
        record.answered_by ? ` by ${record.answered_by}` : "",
      ),
      this.form.element,
    );
    title.focus();
  }

  makeAgreement(record) {
    this.agreementDialog.open({
      callId: record.id,
      customerId: record.customer_id,
      number: record.caller_number || "",
      who: record.caller_name || record.caller_number || "",
      onCreated: (agreement) => {
        this.madeAgreements.push(agreement);
        this.form?.showAgreements();
      },
    });
  }
}
