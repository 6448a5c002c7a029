// The customer card: everything an operator needs about a caller, readable at a glance.
//
// One renderer for a pop (PRODUCT.md's screen_pop) and for a customer found by search
// (GET /api/customers/{id} answers in the same shape). Coverage is shown in colour AND
// words, never colour alone. All data is set as text (dom.js).

import { formatDay, formatWhen, h, parseDay, toMillis } from "./dom.js";
import { AGREEMENT_KINDS, AGREEMENT_STATUSES, CONTACT_CHANNELS, DISPOSITIONS, OUTCOMES, label } from "./labels.js";

const INTERVENTIONS = {
  phone: "phone support",
  phone_support: "phone support",
  remote: "remote support",
  technician: "technician visit",
  onsite: "technician visit",
  repair: "repair",
  replacement: "replacement",
  parts: "parts",
};

/** Is this contract valid today? The server's word when given, else from its dates. */
export function validToday(contract, today = new Date()) {
  if (typeof contract.valid_today === "boolean") return contract.valid_today;
  const day = new Date(today.getFullYear(), today.getMonth(), today.getDate());
  const from = parseDay(contract.valid_from);
  const until = parseDay(contract.valid_until);
  return (!from || from <= day) && (!until || day <= until);
}

/** The one line an operator needs first: covered, out of contract, or unknown caller. */
export function coverage(context, today = new Date()) {
  if (!context.customer) {
    return { level: "unknown", words: "UNKNOWN CALLER", detail: "No customer has this number." };
  }
  const contracts = context.contracts || [];
  const valid = contracts.filter((c) => validToday(c, today));
  if (valid.length) {
    const covered = [...new Set(valid.flatMap((c) => c.covered || []))].map(intervention);
    return {
      level: "covered",
      words: "UNDER CONTRACT",
      detail: covered.length ? `Covers ${covered.join(", ")}.` : "Valid today.",
    };
  }
  if (!contracts.length) {
    return { level: "out", words: "OUT OF CONTRACT", detail: "This customer has no contract." };
  }
  const ends = contracts
    .map((c) => parseDay(c.valid_until))
    .filter(Boolean)
    .sort((a, b) => b - a);
  const detail = ends.length ? `Last contract ended ${formatDay(ends[0])}.` : "No contract valid today.";
  return { level: "out", words: "OUT OF CONTRACT", detail };
}

function intervention(code) {
  return Object.hasOwn(INTERVENTIONS, code) ? INTERVENTIONS[code] : String(code).replaceAll("_", " ");
}

function productName(product) {
  if (!product) return null;
  if (typeof product === "string") return product;
  return product.name || product.code || null;
}

function fact(term, value) {
  if (value === null || value === undefined || value === "") return null;
  return [h("dt", {}, term), h("dd", {}, value)];
}

/**
 * The card: customer facts, coverage, upsell, agreements, history, scripts.
 * openAgreement(agreement): makes each open agreement a link (the customer view);
 * callbackActions: a node for the callback section (the pop's close form slot).
 */
export function renderCard(context, { today = new Date(), now = Date.now(), openAgreement = null, callbackActions = null } = {}) {
  const card = h("div", { className: "card" });
  if (context.degraded) {
    card.append(
      h("p", { className: "message error", role: "status" }, "Customer data is not available right now (database problem): only the caller is known."),
    );
  }
  if (context.agreement) card.append(callbackSection(context.agreement, now, callbackActions));
  const cover = coverage(context, today);
  card.append(
    h(
      "p",
      { className: `coverage coverage-${cover.level}`, "data-coverage": cover.level },
      h("strong", { className: "coverage-words" }, cover.words),
      " ",
      h("span", { className: "coverage-detail" }, cover.detail),
    ),
  );
  const customer = context.customer;
  if (customer) {
    card.append(
      h(
        "section",
        { className: "customer", "aria-label": "Customer" },
        h("h3", { className: "customer-name" }, customer.name || "(no name)"),
        h(
          "dl",
          { className: "facts" },
          fact("Company", customer.company),
          fact("Language", customer.language),
          fact("Knowledge", customer.knowledge_level),
          fact("Tier", customer.tier),
          fact("Reference", customer.external_ref),
          fact("Numbers", (customer.numbers || []).join(", ")),
        ),
      ),
    );
  }
  const upsell = upsellText(context.upsell);
  if (upsell) card.append(h("p", { className: "upsell", role: "note" }, h("strong", {}, "Upsell: "), upsell));
  if (customer) card.append(contractsSection(context.contracts || [], today));
  card.append(agreementsSection(context.agreements || [], now, openAgreement));
  card.append(historySection(context.history || []));
  if ((context.scripts || []).length) card.append(scriptsSection(context.scripts));
  return card;
}

function upsellText(upsell) {
  if (!upsell) return null;
  if (typeof upsell === "string") return upsell;
  if (typeof upsell.message === "string") return upsell.message;
  if (typeof upsell.text === "string") return upsell.text;
  const parts = ["Contract"];
  if (upsell.reference || upsell.contract) parts.push(upsell.reference || upsell.contract);
  if (upsell.valid_until) parts.push(`expires ${formatDay(parseDay(upsell.valid_until))}`);
  if (Number.isFinite(upsell.days_left)) parts.push(`(in ${upsell.days_left} days)`);
  parts.push(": offer a renewal.");
  return parts.join(" ").replace(" :", ":");
}

function contractsSection(contracts, today) {
  const section = h("section", { className: "contracts", "aria-label": "Contracts" }, h("h4", {}, "Contracts"));
  if (!contracts.length) {
    section.append(h("p", { className: "quiet" }, "No contracts."));
    return section;
  }
  const list = h("ul", { className: "contract-list" });
  for (const contract of contracts) {
    const valid = validToday(contract, today);
    const until = parseDay(contract.valid_until);
    let status = "valid today";
    if (!valid) {
      const from = parseDay(contract.valid_from);
      status = from && from > today ? `not valid yet (from ${formatDay(from)})` : "OUT OF CONTRACT";
    }
    list.append(
      h(
        "li",
        { className: valid ? "contract contract-valid" : "contract contract-invalid" },
        h("strong", {}, contract.reference || `Contract ${contract.id ?? ""}`.trim()),
        productName(contract.product) ? ` · ${productName(contract.product)}` : null,
        " · ",
        h("span", { className: "contract-status" }, valid ? `✔ ${status}` : `✘ ${status}`),
        h(
          "div",
          { className: "quiet" },
          `Covers: ${(contract.covered || []).map(intervention).join(", ") || "nothing listed"}`,
          contract.service_level_hours ? ` · service level ${contract.service_level_hours} h` : null,
          until ? ` · until ${formatDay(until)}` : " · open-ended",
        ),
      ),
    );
  }
  section.append(list);
  return section;
}

export function isOverdue(agreement, now = Date.now()) {
  if (typeof agreement.overdue === "boolean") return agreement.overdue;
  const deadline = toMillis(agreement.deadline);
  const open = !agreement.status || agreement.status === "open" || agreement.status === "dialling";
  return open && deadline !== null && deadline < now;
}

function agreementsSection(agreements, now, openAgreement) {
  const section = h(
    "section",
    { className: "agreements", "aria-label": "Open agreements" },
    h("h4", {}, "Open agreements"),
  );
  if (!agreements.length) {
    section.append(h("p", { className: "quiet" }, "None."));
    return section;
  }
  const list = h("ul", { className: "agreement-list" });
  for (const agreement of agreements) {
    const overdue = isOverdue(agreement, now);
    list.append(
      h(
        "li",
        { className: overdue ? "agreement overdue" : "agreement", dataset: { agreementId: String(agreement.id) } },
        overdue ? h("strong", { className: "overdue-words" }, "OVERDUE ") : null,
        openAgreement
          ? h(
              "button",
              { type: "button", className: "link open-agreement", onclick: () => openAgreement(agreement) },
              h("strong", {}, label(AGREEMENT_KINDS, agreement.kind)),
              ` #${agreement.id}`,
            )
          : h("strong", {}, label(AGREEMENT_KINDS, agreement.kind)),
        agreement.deadline ? ` · due ${formatWhen(agreement.deadline)}` : " · no deadline",
        agreement.status && agreement.status !== "open" ? ` · ${label(AGREEMENT_STATUSES, agreement.status)}` : null,
        agreement.owner ? ` · owner ${agreement.owner}` : null,
        agreement.notes ? h("div", { className: "notes-text" }, agreement.notes) : null,
      ),
    );
  }
  section.append(list);
  return section;
}

/** Calls and other contacts (mail, chat, visit...), newest first, each by its `type`. */
function historySection(history) {
  const section = h(
    "section",
    { className: "history", "aria-label": "Earlier calls and contacts" },
    h("h4", {}, `Earlier calls and contacts (${history.length})`),
  );
  if (!history.length) {
    section.append(h("p", { className: "quiet" }, "No earlier calls or contacts."));
    return section;
  }
  const list = h("ol", { className: "history-list" });
  for (const item of history.slice(0, 10)) list.append(item.type === "contact" ? contactItem(item) : callItem(item));
  section.append(list);
  return section;
}

function callItem(call) {
  return h(
    "li",
    { className: "history-call", dataset: { type: "call" } },
    h("span", { className: "when" }, formatWhen(call.started_at)),
    " · ",
    h("span", { className: "channel" }, "Call"),
    " · ",
    label(OUTCOMES, call.outcome) || "in progress",
    call.answered_by ? ` by ${call.answered_by}` : null,
    call.category ? ` · ${call.category}` : null,
    call.disposition ? ` · ${label(DISPOSITIONS, call.disposition)}` : null,
    call.notes ? h("div", { className: "notes-text" }, call.notes, call.notes_truncated ? " […]" : "") : null,
  );
}

function contactItem(contact) {
  return h(
    "li",
    { className: "history-contact", dataset: { type: "contact" } },
    h("span", { className: "when" }, formatWhen(contact.at)),
    " · ",
    h("span", { className: "channel" }, label(CONTACT_CHANNELS, contact.channel) || "Contact"),
    contact.subject ? [": ", h("strong", { className: "subject" }, contact.subject)] : null,
    contact.operator ? ` · by ${contact.operator}` : null,
    contact.category ? ` · ${contact.category}` : null,
    contact.disposition ? ` · ${label(DISPOSITIONS, contact.disposition)}` : null,
    contact.notes ? h("div", { className: "notes-text" }, contact.notes, contact.notes_truncated ? " […]" : "") : null,
  );
}

/** The attempt under way, or the last one (the pop's word, else its attempts). */
export function attemptNumber(agreement) {
  if (Number.isFinite(agreement.attempt)) return agreement.attempt;
  const numbers = (Array.isArray(agreement.attempts) ? agreement.attempts : []).map((a) => a.number).filter(Number.isFinite);
  return numbers.length ? Math.max(...numbers) : null;
}

/** A callback the dialler placed: the agreement it is for comes first. */
function callbackSection(agreement, now, actions) {
  const overdue = isOverdue(agreement, now);
  const attempt = attemptNumber(agreement);
  return h(
    "section",
    { className: `callback${overdue ? " overdue" : ""}`, "aria-label": "Callback", id: "callback" },
    h("h3", { id: "callback-title" }, `Callback for agreement #${agreement.id}: ${label(AGREEMENT_KINDS, agreement.kind)}`),
    h(
      "p",
      { id: "callback-facts" },
      attempt !== null ? h("strong", { id: "callback-attempt" }, `Attempt ${attempt}`) : null,
      attempt !== null ? " · " : null,
      agreement.deadline ? `Due ${formatWhen(agreement.deadline)}` : "No deadline",
      overdue ? " · OVERDUE" : "",
      agreement.owner ? ` · made by ${agreement.owner}` : "",
      agreement.status && !["open", "dialling"].includes(agreement.status) ? ` · ${label(AGREEMENT_STATUSES, agreement.status)}` : "",
    ),
    agreement.notes ? h("div", { className: "notes-text", id: "callback-notes" }, agreement.notes) : null,
    actions,
  );
}

function scriptsSection(scripts) {
  const section = h(
    "section",
    { className: "scripts", "aria-label": "Diagnosis scripts" },
    h("h4", {}, "Diagnosis scripts"),
  );
  for (const script of scripts) {
    const product = productName(script.product) || script.product_code || "";
    section.append(
      h(
        "details",
        { className: "script" },
        h(
          "summary",
          {},
          script.title || script.name || "Script",
          product ? ` · ${product}` : null,
          script.version ? ` · v${script.version}` : null,
        ),
        h("div", { className: "script-body" }, script.body || ""),
      ),
    );
  }
  return section;
}
