// "Log contact": a mail, chat, visit or letter with a customer, beside the calls
// (POST /api/contacts). It shows in the customer's history, and in the next pop's.

import { h } from "./dom.js";
import { CATEGORIES, CONTACT_CHANNELS, DISPOSITIONS, choices } from "./labels.js";

export class ContactForm {
  /** onLogged(contact): after the server stored it (the customer view reloads). */
  constructor({ api, customerId, onLogged }) {
    this.api = api;
    this.customerId = customerId;
    this.onLogged = onLogged;
    this.channel = h(
      "select",
      { id: "contact-channel", required: true },
      choices("contact_channels", CONTACT_CHANNELS).map(([value, words]) => h("option", { value }, words)),
    );
    this.subject = h("input", { id: "contact-subject", maxlength: 256, autocomplete: "off" });
    this.notes = h("textarea", { id: "contact-notes", rows: 4, maxlength: 20000 });
    this.category = h("input", {
      id: "contact-category",
      list: "contact-category-suggestions",
      maxlength: 100,
      autocomplete: "off",
    });
    this.disposition = h(
      "select",
      { id: "contact-disposition" },
      h("option", { value: "" }, "— not decided —"),
      choices("dispositions", DISPOSITIONS).map(([value, words]) => h("option", { value }, words)),
    );
    this.message = h("p", { id: "contact-message", className: "form-status", role: "status" });
    this.button = h("button", { type: "submit", id: "contact-log" }, "Log contact");
    this.element = h(
      "details",
      { className: "contact-box", id: "contact-box" },
      h("summary", { id: "contact-open" }, "Log contact (mail, chat, visit, letter)"),
      h(
        "form",
        { className: "wrapup", id: "contact-form", "aria-label": "Log a contact with this customer" },
        h(
          "div",
          { className: "row" },
          h("div", {}, h("label", { for: "contact-channel" }, "Channel"), this.channel),
          h("div", { className: "grow" }, h("label", { for: "contact-subject" }, "Subject"), this.subject),
        ),
        h("label", { for: "contact-notes" }, "Notes"),
        this.notes,
        h(
          "div",
          { className: "row" },
          h("div", {}, h("label", { for: "contact-category" }, "Problem category"), this.category),
          h("div", {}, h("label", { for: "contact-disposition" }, "Disposition"), this.disposition),
        ),
        h("datalist", { id: "contact-category-suggestions" }, CATEGORIES.map((c) => h("option", { value: c }))),
        h("div", { className: "buttons" }, this.button),
        this.message,
      ),
    );
    this.element.querySelector("form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.log();
    });
  }

  async log() {
    const text = (field) => (field.value.trim() ? field.value.trim() : null);
    const body = {
      customer_id: this.customerId,
      channel: this.channel.value,
      subject: text(this.subject),
      notes: this.notes.value.trim() ? this.notes.value : null,
      category: text(this.category),
      disposition: this.disposition.value || null,
    };
    if (!body.subject && !body.notes) {
      this.say("Write a subject or notes: what was the contact about?", true);
      this.subject.focus();
      return;
    }
    this.button.disabled = true;
    this.say("Logging…");
    try {
      const contact = await this.api.logContact(body);
      this.say("Contact logged.");
      if (this.onLogged) this.onLogged(contact);
    } catch (error) {
      this.say(`Not logged: ${error.message}`, true);
    } finally {
      this.button.disabled = false;
    }
  }

  say(text, isError = false) {
    this.message.textContent = text;
    this.message.classList.toggle("error", isError);
  }
}
