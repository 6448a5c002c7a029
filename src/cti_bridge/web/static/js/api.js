// The JSON API with the operator's token. A 401 on any call means the token expired or
// was revoked: the console goes back to the login screen (onExpired), whatever asked.

const TOKEN_KEY = "cti-bridge.token";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export class Api {
  constructor({ onExpired }) {
    this.onExpired = onExpired;
    // sessionStorage: one login per tab, gone when the tab closes; survives a reload.
    this.token = sessionStorage.getItem(TOKEN_KEY);
  }

  setToken(token) {
    this.token = token;
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  }

  async login(username, password) {
    const body = await this.request("POST", "/api/login", { username, password }, false);
    this.setToken(body.token);
    return body;
  }

  async logout() {
    try {
      await this.request("POST", "/api/logout", {}, true);
    } finally {
      this.setToken(null);
    }
  }

  me() {
    return this.request("GET", "/api/me");
  }

  call(id) {
    return this.request("GET", `/api/calls/${encodeURIComponent(id)}`);
  }

  saveCall(id, changes) {
    return this.request("PATCH", `/api/calls/${encodeURIComponent(id)}`, changes);
  }

  calls({ number, since, limit, outcome }) {
    const query = new URLSearchParams();
    if (number) query.set("number", number);
    if (since) query.set("since", since);
    if (limit) query.set("limit", String(limit));
    if (outcome) query.set("outcome", outcome);
    return this.request("GET", `/api/calls?${query}`);
  }

  customers(q) {
    return this.request("GET", `/api/customers?${new URLSearchParams({ q })}`);
  }

  customer(id) {
    return this.request("GET", `/api/customers/${encodeURIComponent(id)}`);
  }

  createAgreement(agreement) {
    return this.request("POST", "/api/agreements", agreement);
  }

  /** filters: {owner, due: "today"|"overdue", customer_id, status, flagged, kind, limit}. */
  agreements(filters = {}) {
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(filters)) {
      if (value !== null && value !== undefined && value !== "") query.set(name, String(value));
    }
    return this.request("GET", `/api/agreements?${query}`);
  }

  agreement(id) {
    return this.request("GET", `/api/agreements/${encodeURIComponent(id)}`);
  }

  saveAgreement(id, changes) {
    return this.request("PATCH", `/api/agreements/${encodeURIComponent(id)}`, changes);
  }

  logContact(contact) {
    return this.request("POST", "/api/contacts", contact);
  }

  /** Supervisors: every operator now (GET /api/agents). */
  agents() {
    return this.request("GET", "/api/agents");
  }

  /** One operator now: oneself, or anyone for a supervisor. */
  agent(username) {
    return this.request("GET", `/api/agents/${encodeURIComponent(username)}`);
  }

  pauseReasons() {
    return this.request("GET", "/api/queues/pause-reasons");
  }

  pause(username, reason) {
    return this.request("POST", `/api/agents/${encodeURIComponent(username)}/pause`, { reason });
  }

  unpause(username) {
    return this.request("POST", `/api/agents/${encodeURIComponent(username)}/unpause`, {});
  }

  vocabulary() {
    return this.request("GET", "/api/vocabulary");
  }

  async request(method, path, body, authenticated = true) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (authenticated) {
      if (!this.token) throw this.expired();
      headers.Authorization = `Bearer ${this.token}`;
    }
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
        credentials: "omit",
      });
    } catch {
      throw new ApiError(0, "cti-bridge cannot be reached");
    }
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (response.status === 401 && authenticated) throw this.expired();
    if (!response.ok) {
      const message = data && typeof data.error === "string" ? data.error : response.statusText;
      throw new ApiError(response.status, message || `HTTP ${response.status}`);
    }
    return data;
  }

  expired() {
    this.setToken(null);
    this.onExpired();
    return new ApiError(401, "your session has ended; please log in again");
  }
}
