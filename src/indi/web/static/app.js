// INDI Web Manager page: views, sign-in, and the live connection (WebSocket /ws) feeding the panels.

import {ApiError, get, onAuthRequired, post} from "./api.js";
import {ControlPanel} from "./control.js";
import {Manager} from "./manager.js";
import {$, $$, toast} from "./util.js";

const PING_EVERY = 20000;      // ms between pings on an idle live connection
const POLL_EVERY = 4000;       // ms between status polls while the live connection is down
const BACKOFF = [500, 1000, 2000, 4000, 8000, 15000];

/** The WebSocket to /ws, reopened with backoff whenever it drops. */
class Live {
  constructor(onMessage, onOpen, onState) {
    this.onMessage = onMessage;
    this.onOpen = onOpen;
    this.onState = onState;
    this.ws = null;
    this.attempt = 0;
    this.timer = null;
    this.pinger = null;
  }

  get open() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  connect() {
    clearTimeout(this.timer);
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close();
    }
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
    this.onState("connecting");
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (error) {
      this.retry();
      return;
    }
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.attempt = 0;
      this.onState("live");
      this.onOpen();
      clearInterval(this.pinger);
      this.pinger = setInterval(() => this.send({type: "ping"}), PING_EVERY);
    };
    ws.onmessage = (event) => {
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch {
        console.warn("live: not JSON", event.data);
        return;
      }
      try {
        this.onMessage(msg);
      } catch (error) {
        console.error("live: cannot handle", msg, error);
      }
    };
    ws.onclose = (event) => {
      clearInterval(this.pinger);
      if (this.ws === ws) this.ws = null;
      if (!opened || [1008, 4001, 4401, 4403].includes(event.code)) checkAuth(true);
      this.retry();
    };
    ws.onerror = () => {};  // onclose follows
  }

  retry() {
    const delay = BACKOFF[Math.min(this.attempt, BACKOFF.length - 1)] * (0.8 + Math.random() * 0.4);
    this.attempt += 1;
    this.onState("offline", Math.round(delay / 1000));
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  /** Send a message; false (and a notice) when the live connection is down. */
  send(message) {
    if (!this.open) {
      if (message.type !== "ping") toast("Not connected to indi-web: the change was not sent", "error");
      return false;
    }
    this.ws.send(JSON.stringify(message));
    return true;
  }
}

/** An error of the live connection, naming its property unless the message does. */
function errorText(msg) {
  const text = msg.message || "error";
  if (!msg.device || !msg.name || text.includes(`${msg.device}.${msg.name}`)) return text;
  return `${msg.device} · ${msg.name}: ${text}`;
}

// ------------------------------------------------------------------------------------- views
let onViewShown = () => {};

function showView() {
  const view = location.hash === "#control" ? "control" : "manager";
  for (const section of $$("main > .view")) section.hidden = section.dataset.view !== view;
  for (const tab of $$(".topbar .tab")) {
    const on = tab.dataset.view === view;
    tab.classList.toggle("active", on);
    tab.setAttribute("aria-selected", String(on));
  }
  document.body.dataset.view = view;
  onViewShown(view);
}

function setNight(on) {
  document.documentElement.classList.toggle("night", on);
  $("#night-toggle").setAttribute("aria-pressed", String(on));
  localStorage.setItem("indi-web.night", on ? "1" : "0");
}

// ------------------------------------------------------------------------------------- sign-in
let booted = false;
let loginShown = null;

async function authStatus() {
  try {
    return await get("/api/auth/status");
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return {required: false, authenticated: true};
    if (error instanceof ApiError && error.status === 401) return {required: true, authenticated: false};
    throw error;
  }
}

/** Resolves once the user may use the API (at once when no password is set). */
async function checkAuth(recheck = false) {
  let status;
  try {
    status = await authStatus();
  } catch {
    return;  // indi-web unreachable: the live connection's retries will tell
  }
  $("#logout-btn").hidden = !status.required || !status.authenticated;
  if (!status.required || status.authenticated) return;
  if (recheck && loginShown) return;
  await showLogin();
}

function showLogin() {
  if (loginShown) return loginShown;
  const overlay = $("#login-overlay");
  overlay.hidden = false;
  $("#login-password").focus();
  loginShown = new Promise((resolve) => {
    $("#login-form").onsubmit = async (event) => {
      event.preventDefault();
      const error = $("#login-error");
      error.hidden = true;
      $("#login-submit").disabled = true;
      try {
        await post("/api/auth/login", {password: $("#login-password").value});
        overlay.hidden = true;
        $("#logout-btn").hidden = false;
        $("#login-password").value = "";
        loginShown = null;
        if (booted) location.reload();
        resolve();
      } catch (failure) {
        error.textContent = failure.status === 401 || failure.status === 403 ? "Wrong password." : failure.message;
        error.hidden = false;
        $("#login-password").select();
      } finally {
        $("#login-submit").disabled = false;
      }
    };
  });
  return loginShown;
}

// ----------------------------------------------------------------------------------------- boot
async function boot() {
  setNight(localStorage.getItem("indi-web.night") === "1");
  $("#night-toggle").addEventListener("click", () => setNight(!document.documentElement.classList.contains("night")));
  window.addEventListener("hashchange", showView);
  showView();
  onAuthRequired(() => checkAuth(true));
  $("#logout-btn").addEventListener("click", async () => {
    try {
      await post("/api/auth/logout");
    } finally {
      location.reload();
    }
  });
  await checkAuth();

  const manager = new Manager();
  onViewShown = (view) => {
    if (view === "manager") manager.shown();
  };
  const live = new Live((msg) => dispatch(msg), () => {
    panel.reset();
  }, (state, seconds) => {
    const pill = $("#live-pill");
    pill.dataset.live = state;
    $(".pill-text", pill).textContent = state === "live" ? "Live" : state === "connecting" ? "Connecting…"
      : seconds >= 1 ? `Offline · retry in ${seconds} s` : "Offline · reconnecting…";
    pill.title = state === "live" ? "Live updates from indi-web" : "The live connection to indi-web is down";
  });
  const panel = new ControlPanel((message) => live.send(message));
  panel.onDevicesChanged = (count) => {
    const badge = $("#device-count");
    badge.hidden = count === 0;
    badge.textContent = String(count);
  };
  manager.onStatus = (status) => {
    const pill = $("#server-pill");
    pill.dataset.running = String(Boolean(status.running));
    const crashed = (status.drivers || []).filter((d) => d.state !== "running" && d.state !== "connected").length;
    pill.dataset.trouble = String(crashed > 0);
    $(".pill-text", pill).textContent = status.running ? `${status.profile} · :${status.port}` : "Server stopped";
    pill.title = status.running ? `INDI server running profile ${status.profile} on port ${status.port}`
      : "The INDI server is not running";
  };

  function dispatch(msg) {
    switch (msg.type) {
      case "status":
        manager.setStatus(msg.status);
        break;
      case "error":
        toast(errorText(msg), "error", 8000);
        break;
      case "pong":
        break;
      default:
        panel.handle(msg);
    }
  }

  try {
    await manager.init();
  } catch (error) {
    toast(`Cannot load the profiles: ${error.message}`, "error", 10000);
  }
  booted = true;
  live.connect();
  setInterval(() => {
    if (!live.open && !document.hidden) manager.refresh();
  }, POLL_EVERY);

  Promise.all([get("/api/info/hostname"), get("/api/info/version")]).then(([host, version]) => {
    $("#host-name").textContent = `${host.hostname} · v${version.version}`;
    document.title = `INDI Web Manager · ${host.hostname}`;
  }).catch(() => {});
}

boot();
