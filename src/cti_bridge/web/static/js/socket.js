// The live link (/ws?token=): reconnects by itself with capped, jittered back-off.
//
// A browser cannot see why a WebSocket upgrade failed (a 401 for an expired token looks
// like any network error), so before every retry the token is checked over HTTP first:
// a 401 there sends the operator back to the login screen instead of retrying forever.
// A silent link (a half-open TCP connection after sleep or a network change) is caught
// with our own ping: no answer within PONG_TIMEOUT and the socket is closed and retried.

const FIRST_DELAY = 500;
const MAX_DELAY = 30_000;
const PING_EVERY = 20_000;
const PONG_TIMEOUT = 10_000;

export class LiveSocket {
  /**
   * token(): the current token or null; checkToken(): resolves when the token is still
   * good, rejects otherwise (the API's 401 handling logs the operator out);
   * onMessage(message), onState({state, attempt, retryInMs}); query: more of the socket's
   * options (e.g. {agents: "batched"}: a supervisor's screen takes the operators' changes
   * as agents_update batches, a few a second, instead of one agent_update each).
   */
  constructor({ token, checkToken, onMessage, onState, query = {} }) {
    this.token = token;
    this.query = query;
    this.checkToken = checkToken;
    this.onMessage = onMessage;
    this.onState = onState;
    this.socket = null;
    this.stopped = true;
    this.attempt = 0;
    this.retryTimer = null;
    this.pingTimer = null;
    this.lastHeard = 0;
    this.everOpened = false;
  }

  start() {
    this.stopped = false;
    this.attempt = 0;
    this.everOpened = false;
    this.open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    this.retryTimer = this.pingTimer = null;
    if (this.socket) {
      const socket = this.socket;
      this.socket = null;
      socket.close(1000, "logged out");
    }
  }

  send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(message));
      return true;
    }
    return false;
  }

  open() {
    const token = this.token();
    if (this.stopped || !token) return;
    this.onState({ state: this.everOpened ? "reconnecting" : "connecting", attempt: this.attempt });
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const url = `${scheme}//${location.host}/ws?${new URLSearchParams({ ...this.query, token })}`;
    const socket = new WebSocket(url);
    this.socket = socket;
    socket.addEventListener("open", () => {
      if (socket !== this.socket) return;
      const reconnected = this.everOpened;
      this.attempt = 0;
      this.everOpened = true;
      this.lastHeard = Date.now();
      this.startPinging(socket);
      this.onState({ state: "open", reconnected });
    });
    socket.addEventListener("message", (event) => {
      if (socket !== this.socket) return;
      this.lastHeard = Date.now();
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return; // the server only sends JSON; anything else is not ours to render
      }
      if (message && typeof message === "object" && typeof message.type === "string") {
        this.onMessage(message);
      }
    });
    socket.addEventListener("close", () => {
      if (socket !== this.socket) return;
      this.socket = null;
      clearInterval(this.pingTimer);
      this.scheduleRetry();
    });
  }

  startPinging(socket) {
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => {
      if (Date.now() - this.lastHeard > PING_EVERY + PONG_TIMEOUT) {
        socket.close(4000, "no answer to ping");
        return;
      }
      this.send({ type: "ping" });
    }, PING_EVERY);
  }

  scheduleRetry() {
    if (this.stopped) return;
    this.attempt += 1;
    const base = Math.min(MAX_DELAY, FIRST_DELAY * 2 ** (this.attempt - 1));
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    this.onState({ state: "lost", attempt: this.attempt, retryInMs: delay });
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.retry(), delay);
  }

  async retry() {
    if (this.stopped) return;
    try {
      await this.checkToken();
    } catch (error) {
      if (error && error.status === 401) return; // logged out; stop() follows
      this.scheduleRetry(); // the server is still away: wait longer
      return;
    }
    this.open();
  }
}
