// The helpdesk's words for the codes the API speaks. The codes are the store's
// (store/models.py DISPOSITIONS, AGREEMENT_KINDS); the words are what operators read.

export const DISPOSITIONS = [
  ["solved", "Solved"],
  ["agreement_made", "Agreement made"],
  ["escalated", "Escalated to second line"],
  ["technician_planned", "Technician visit planned"],
  ["repair_planned", "Repair planned"],
  ["replacement_planned", "Replacement planned"],
  ["out_of_contract", "Out of contract"],
  ["complaint", "Complaint about earlier service"],
];

export const AGREEMENT_KINDS = [
  ["callback", "Call back"],
  ["documentation", "Send documentation"],
  ["technician", "Technician visit"],
  ["repair", "Repair"],
  ["replacement", "Replacement"],
  ["second_line", "Escalate to second line"],
  ["other", "Other"],
];

/** Suggestions only: the category is free text (the supervisor's "top problems" count it). */
export const CATEGORIES = [
  "Connection / network",
  "Hardware fault",
  "Installation",
  "Configuration",
  "Software / firmware",
  "How-to question",
  "Billing / contract",
  "Other",
];

export const CALL_STATES = {
  ringing: "Ringing",
  answered: "Talking",
  transferred: "Transferred",
  ended: "Ended",
};

export const WITHDRAWN_REASONS = {
  answered_elsewhere: "Answered by a colleague",
  caller_left: "The caller hung up",
  ended: "The call ended",
  no_answer: "It rang out here; the queue may try someone else",
  ring_failed: "Your phone could not take it (busy or unreachable)",
};

export const OUTCOMES = {
  answered: "Answered",
  abandoned: "Abandoned",
  missed: "Missed",
  transferred: "Transferred",
  failed: "Failed",
};

export function label(table, code) {
  if (code === null || code === undefined || code === "") return "";
  if (Array.isArray(table)) {
    const found = table.find(([value]) => value === code);
    return found ? found[1] : String(code);
  }
  return Object.hasOwn(table, code) ? table[code] : String(code).replaceAll("_", " ");
}
