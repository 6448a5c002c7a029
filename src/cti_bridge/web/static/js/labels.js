// The helpdesk's words for the codes the API speaks. The codes and words are
// cti_bridge/vocabulary.py's (what GET /api/vocabulary serves; a test ties every table
// here to it, same codes, same words, same order); the tables are here so a screen can
// label a code before, or without, asking the server.

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

export const AGREEMENT_STATUSES = [
  ["open", "Open"],
  ["dialling", "Dialling"],
  ["done", "Done"],
  ["failed", "Failed"],
  ["cancelled", "Cancelled"],
];

export const ATTEMPT_OUTCOMES = [
  ["answered", "Answered"],
  ["busy", "Busy"],
  ["no_answer", "No answer"],
  ["failed", "Failed (unreachable, congestion, invalid number)"],
  ["operator_no_answer", "Operator did not answer"],
  ["operator_unavailable", "Operator unavailable"],
  ["cancelled", "Cancelled"],
  ["unknown", "Outcome unknown"],
];

/** How a closed agreement ended; closing a callback as done needs one. */
export const AGREEMENT_DISPOSITIONS = [
  ["solved", "Solved"],
  ["information_given", "Information given"],
  ["escalated", "Escalated to second line"],
  ["visit_planned", "Technician visit planned"],
  ["documentation_sent", "Documentation sent"],
  ["customer_unreachable", "Customer could not be reached"],
  ["no_longer_needed", "No longer needed"],
  ["solved_on_inbound_call", "Solved when the customer called in"],
];

export const AGREEMENT_ORIGINS = [
  ["operator", "Made by an operator"],
  ["missed_call", "Missed call"],
];

/** How a contact that is not a call reached the customer (POST /api/contacts). */
export const CONTACT_CHANNELS = [
  ["mail", "E-mail"],
  ["chat", "Chat"],
  ["visit", "Visit"],
  ["letter", "Letter"],
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

/** An agreement's history (its events' kind, store/models.py), in words. */
export const HISTORY_KINDS = {
  created: "Made",
  changed: "Changed",
  closed: "Closed",
  attempt_started: "Attempt started",
  attempt_ended: "Attempt ended",
  flagged: "Flagged for a supervisor",
  missed_call: "Another missed call",
  resolved_by_call: "Resolved by an inbound call",
};

/** Why the dialer flagged a callback for a supervisor (dialer/ports.py, finish_attempt). */
export const FLAG_REASONS = {
  attempts_exhausted: "No attempts left",
  deadline_passed: "The deadline passed",
  no_calling_time: "No calling time left before the deadline",
};

export function label(table, code) {
  if (code === null || code === undefined || code === "") return "";
  if (Array.isArray(table)) {
    const found = table.find(([value]) => value === code);
    return found ? found[1] : String(code);
  }
  return Object.hasOwn(table, code) ? table[code] : String(code).replaceAll("_", " ");
}

// -- the server's words -----------------------------------------------------------------

let served = null;

/** GET /api/vocabulary's answer, once the console has it. */
export function useVocabulary(vocabulary) {
  served = vocabulary && typeof vocabulary === "object" ? vocabulary : null;
}

/**
 * The [code, words] pairs a select offers: the server's group (words in use only) once
 * loaded, else this file's table (the same words, by test).
 */
export function choices(group, table) {
  const words = served ? served[group] : null;
  if (!Array.isArray(words)) return table;
  return words.filter((w) => !w.planned).map((w) => [String(w.value), String(w.label)]);
}
