// The manager view: profiles, the driver catalogue, the server and what really runs.

import {del, get, post, put, seg} from "./api.js";
import {$, $$, busy, fill, fmtBytes, fmtEpoch, h, since, toast} from "./util.js";

const STORE_PROFILE = "indi-web.profile";

export class Manager {
  constructor() {
    this.profiles = [];
    this.current = null;          // the profile shown
    this.catalogue = [];          // driver objects
    this.byLabel = new Map();
    this.selected = new Set();    // labels checked
    this.saved = new Set();       // labels of the profile as saved
    this.dirty = false;
    this.status = null;           // the last full status
    this.logKind = "server";
    this.rows = new Map();        // running/stopped driver rows by key
    this.logStick = true;         // keep the log scrolled to its end (until the user scrolls up)
    this.onStatus = () => {};     // set by the app
  }

  // ------------------------------------------------------------------------------------ set up
  async init() {
    this.bind();
    const [profiles, drivers, status] = await Promise.all([
      get("/api/profiles"), get("/api/drivers"), get("/api/server/status/full").catch(() => null)]);
    this.setCatalogue(drivers);
    if (status) this.setStatus(status);
    this.profiles = profiles;
    const stored = localStorage.getItem(STORE_PROFILE);
    const names = profiles.map((p) => p.name);
    let pick = null;
    if (status && status.running && names.includes(status.profile)) pick = status.profile;
    else if (stored && names.includes(stored)) pick = stored;
    else pick = (profiles.find((p) => p.autostart) || profiles[0] || {}).name || null;
    this.renderProfileSelect(pick);
    if (pick) await this.selectProfile(pick);
    else this.showProfile(null);
  }

  bind() {
    $("#profile-select").addEventListener("change", (e) => this.selectProfile(e.target.value));
    $("#profile-new-btn").addEventListener("click", () => this.toggleNewForm(true));
    $("#profile-new-cancel").addEventListener("click", () => this.toggleNewForm(false));
    $("#profile-new-form").addEventListener("submit", (e) => {
      e.preventDefault();
      busy($("#profile-create-btn"), () => this.createProfile($("#profile-new-name").value.trim()));
    });
    $("#profile-delete-btn").addEventListener("click", (e) => this.askDelete(e.currentTarget));
    for (const id of ["#profile-port", "#profile-remote"]) $(id).addEventListener("input", () => this.markDirty());
    for (const id of ["#profile-autostart", "#profile-autoconnect"]) {
      $(id).addEventListener("change", () => this.markDirty());
    }
    $("#profile-save-btn").addEventListener("click", (e) => busy(e.currentTarget, () => this.save(true)));
    $("#driver-search").addEventListener("input", () => this.filter());
    $("#driver-families").addEventListener("change", (e) => {
      const box = e.target.closest("input[type=checkbox][data-label]");
      if (!box) return;
      if (box.checked) this.selected.add(box.dataset.label);
      else this.selected.delete(box.dataset.label);
      this.markDirty();
      this.renderSelection();
    });
    $("#server-start-btn").addEventListener("click", (e) => busy(e.currentTarget, () => this.start()));
    $("#server-restart-btn").addEventListener("click", (e) => busy(e.currentTarget, () => this.start(true)));
    $("#server-stop-btn").addEventListener("click", (e) => busy(e.currentTarget, () => this.stop()));
    for (const button of $$("#log-card .seg-btn")) {
      button.addEventListener("click", () => {
        this.logKind = button.dataset.log;
        $$("#log-card .seg-btn").forEach((b) => b.classList.toggle("active", b === button));
        this.renderLog(true);
      });
    }
    const pre = $("#log-tail");
    pre.addEventListener("scroll", () => {
      if (pre.clientHeight) this.logStick = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 24;
    });
    setInterval(() => this.tick(), 1000);
  }

  /** The view became visible: hidden elements could not be scrolled meanwhile. */
  shown() {
    const pre = $("#log-tail");
    if (this.logStick) pre.scrollTop = pre.scrollHeight;
  }

  // ---------------------------------------------------------------------------------- profiles
  renderProfileSelect(pick) {
    const select = $("#profile-select");
    fill(select, this.profiles.map((p) => h("option", {value: p.name}, p.name + (p.autostart ? "  (autostart)" : ""))));
    if (!this.profiles.length) select.append(h("option", {value: "", disabled: true}, "No profiles: create one"));
    select.value = pick || "";
    $("#profile-delete-btn").disabled = !pick;
  }

  async selectProfile(name) {
    if (this.dirty && this.current && this.current !== name) toast(`Unsaved changes to ${this.current} discarded`);
    const [profile, labels, remote] = await Promise.all([
      get(`/api/profiles/${seg(name)}`), get(`/api/profiles/${seg(name)}/labels`),
      get(`/api/profiles/${seg(name)}/remote`)]);
    this.current = name;
    localStorage.setItem(STORE_PROFILE, name);
    $("#profile-select").value = name;
    this.selected = new Set(labels.map((l) => l.label));
    this.saved = new Set(this.selected);
    this.showProfile(profile, remote.drivers || "");
  }

  showProfile(profile, remote = "") {
    $("#profile-port").value = profile ? profile.port : "";
    $("#profile-autostart").checked = Boolean(profile && profile.autostart);
    $("#profile-autoconnect").checked = Boolean(profile && profile.autoconnect);
    $("#profile-remote").value = remote;
    for (const el of ["#profile-port", "#profile-autostart", "#profile-autoconnect", "#profile-remote",
      "#profile-save-btn", "#profile-delete-btn", "#server-start-btn"]) {
      $(el).disabled = !profile;
    }
    if (!profile) this.selected = this.saved = new Set();
    this.setDirty(false);
    this.renderDrivers();
    this.syncChecks();
    this.renderSelection();
    this.renderServer();
  }

  toggleNewForm(show) {
    $("#profile-new-form").hidden = !show;
    if (show) $("#profile-new-name").focus();
    else $("#profile-new-name").value = "";
  }

  async createProfile(name) {
    if (!name) return;
    if (this.profiles.some((p) => p.name === name)) throw new Error(`A profile named ${name} already exists`);
    await post(`/api/profiles/${seg(name)}`);
    this.profiles = await get("/api/profiles");
    this.dirty = false;
    this.renderProfileSelect(name);
    await this.selectProfile(name);
    this.toggleNewForm(false);
    toast(`Profile ${name} created: pick its drivers, then save`, "ok");
  }

  askDelete(button) {
    if (!this.current) return;
    if (button.dataset.confirm !== "yes") {
      button.dataset.confirm = "yes";
      button.textContent = "Really delete?";
      button.classList.add("danger");
      clearTimeout(this.deleteTimer);
      this.deleteTimer = setTimeout(() => this.resetDelete(button), 4000);
      return;
    }
    this.resetDelete(button);
    busy(button, async () => {
      const name = this.current;
      await del(`/api/profiles/${seg(name)}`);
      this.profiles = await get("/api/profiles");
      this.dirty = false;
      const next = this.profiles[0] ? this.profiles[0].name : null;
      this.current = null;
      this.renderProfileSelect(next);
      if (next) await this.selectProfile(next);
      else this.showProfile(null);
      toast(`Profile ${name} deleted`, "ok");
    });
  }

  resetDelete(button) {
    delete button.dataset.confirm;
    button.textContent = "Delete";
    button.classList.remove("danger");
  }

  markDirty() {
    this.setDirty(true);
  }

  setDirty(dirty) {
    this.dirty = dirty;
    $("#profile-dirty").hidden = !dirty;
    $("#profile-save-btn").classList.toggle("attention", dirty);
  }

  async save(announce) {
    const name = this.current;
    if (!name) throw new Error("Create a profile first");
    const port = Number($("#profile-port").value);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error("The INDI port must be 1 to 65535");
    await put(`/api/profiles/${seg(name)}`, {
      port, autostart: $("#profile-autostart").checked ? 1 : 0, autoconnect: $("#profile-autoconnect").checked ? 1 : 0,
    });
    const entries = [...this.selected].map((label) => ({label}));
    const remote = $("#profile-remote").value.split(",").map((s) => s.trim()).filter(Boolean).join(",");
    if (remote) entries.push({remote});
    await post(`/api/profiles/${seg(name)}/drivers`, entries);
    this.profiles = await get("/api/profiles");
    this.saved = new Set(this.selected);
    this.renderProfileSelect(name);
    this.setDirty(false);
    this.renderDrivers();
    if (announce) toast(`Profile ${name} saved`, "ok");
  }

  // ----------------------------------------------------------------------------------- drivers
  setCatalogue(drivers) {
    const seen = new Set();
    this.catalogue = drivers.filter((d) => (seen.has(d.label) ? false : seen.add(d.label)));
    this.byLabel = new Map(this.catalogue.map((d) => [d.label, d]));
    const families = new Map();
    for (const driver of this.catalogue) {
      const family = driver.family || "Other";
      if (!families.has(family)) families.set(family, []);
      families.get(family).push(driver);
    }
    const sorted = [...families.keys()].sort((a, b) => a.localeCompare(b));
    fill($("#driver-families"), sorted.map((family) => {
      const list = families.get(family).sort((a, b) => a.label.localeCompare(b.label));
      return h("details", {class: "family", dataset: {family}},
        h("summary", {}, h("span", {class: "family-name"}, family),
          h("span", {class: "family-count"}, String(list.length)),
          h("span", {class: "family-selected"})),
        h("ul", {class: "driver-list"}, list.map((d) => h("li", {class: "driver-item", dataset: {
          search: `${d.label} ${d.binary} ${family} ${d.name}`.toLowerCase(), label: d.label}},
        h("label", {class: "check"},
          h("input", {type: "checkbox", dataset: {label: d.label}, "aria-label": d.label}),
          h("span", {class: "driver-text"},
            h("span", {class: "driver-label"}, d.label),
            h("span", {class: "driver-meta"}, d.binary, d.version ? ` · v${d.version}` : "",
              d.custom ? " · custom" : "")))))));
    }));
    $("#drivers-total").textContent = `${this.catalogue.length} drivers`;
    this.syncChecks();
  }

  syncChecks() {
    for (const box of $$("#driver-families input[data-label]")) box.checked = this.selected.has(box.dataset.label);
  }

  renderSelection() {
    const running = new Set((this.status && this.status.drivers || []).map((d) => d.label));
    const labels = [...this.selected].sort((a, b) => a.localeCompare(b));
    const chips = labels.map((label) => h("span", {class: "chip", dataset: {label, running: String(running.has(label))},
      title: running.has(label) ? "running" : ""},
    h("span", {class: "dot"}), label,
    h("button", {type: "button", class: "chip-x", "aria-label": `Remove ${label}`, onclick: () => {
      this.selected.delete(label);
      this.syncChecks();
      this.markDirty();
      this.renderSelection();
    }}, "×")));
    fill($("#selected-drivers"), chips.length ? chips : h("span", {class: "muted small"},
      this.current ? "No drivers selected: tick some below." : ""));
    for (const details of $$("#driver-families details.family")) {
      const count = $$("input[data-label]", details).filter((b) => b.checked).length;
      $(".family-selected", details).textContent = count ? `${count} selected` : "";
    }
  }

  filter() {
    const words = $("#driver-search").value.toLowerCase().split(/\s+/).filter(Boolean);
    for (const details of $$("#driver-families details.family")) {
      let shown = 0;
      for (const item of $$(".driver-item", details)) {
        const match = words.every((w) => item.dataset.search.includes(w));
        item.hidden = !match;
        if (match) shown += 1;
      }
      details.hidden = shown === 0;
      details.open = words.length > 0 && shown > 0;
    }
  }

  // ------------------------------------------------------------------------------------ server
  async start(restart = false) {
    if (!this.current) throw new Error("Create a profile first");
    if (this.dirty) await this.save(false);
    const answer = await post(`/api/server/start/${seg(this.current)}`);
    toast(restart ? `INDI server restarted for ${this.current}` : answer.message, "ok");
    for (const problem of answer.problems || []) toast(problem, "warn", 9000);
    await this.refresh();
  }

  async stop() {
    await post("/api/server/stop");
    toast("INDI server stopped", "ok");
    await this.refresh();
  }

  async refresh() {
    try {
      this.setStatus(await get("/api/server/status/full"));
    } catch (error) {
      if (error.status !== 401) console.warn(error);
    }
  }

  async driverAction(action, entry, button) {
    await busy(button, async () => {
      const remote = entry.kind === "remote";
      const label = remote ? entry.name : entry.label;
      if (remote && action === "restart") {
        await post(`/api/drivers/stop_remote/${seg(label)}`);
        await post(`/api/drivers/start_remote/${seg(label)}`);
      } else {
        const answer = await post(`/api/drivers/${action}${remote ? "_remote" : ""}/${seg(label)}`);
        toast(answer.message, "ok");
      }
      await this.refresh();
    });
  }

  // ------------------------------------------------------------------------------------ status
  setStatus(status) {
    this.status = status;
    this.renderServer();
    this.renderDrivers();
    this.renderClients();
    this.renderLog(false);
    this.renderSelection();
    const errors = status.catalogue_errors || [];
    const box = $("#catalogue-errors");
    box.hidden = !errors.length;
    fill(box, errors.length ? [h("strong", {}, "Driver catalogue problems:"), h("ul", {}, errors.map((e) => h("li", {}, e)))]
      : []);
    $("#status-updated").textContent = `updated ${new Date().toLocaleTimeString([], {hour12: false})}`;
    this.onStatus(status);
  }

  renderServer() {
    const s = this.status || {running: false};
    const state = $("#server-state");
    state.dataset.state = s.running ? "running" : "stopped";
    state.textContent = s.running ? "running" : "stopped";
    const facts = [];
    if (s.running) {
      facts.push(["Profile", s.profile], ["Port", s.port], ["PID", s.pid],
        ["Up", h("span", {class: "uptime", dataset: {since: s.started}}, since(s.started))],
        ["Autoconnect", s.autoconnect ? "yes" : "no"]);
    } else {
      facts.push(["Profile", this.current || "–"]);
    }
    fill($("#server-facts"), facts.map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, v ?? "–"))));
    const exit = $("#server-last-exit");
    exit.hidden = s.running || !s.last_exit;
    exit.textContent = s.last_exit ? `The last server ${s.last_exit}` : "";
    const command = (s.command || []).join(" ");
    $("#server-command-box").hidden = !command;
    $("#server-command").textContent = command;
    const other = s.running && this.current && s.profile !== this.current;
    $("#server-start-btn").textContent = other ? `Start ${this.current}` : "Start";
    $("#server-start-btn").hidden = Boolean(s.running) && !other;
    $("#server-restart-btn").hidden = !s.running || other;
    $("#server-stop-btn").disabled = !s.running;
  }

  renderDrivers() {
    const s = this.status || {};
    const running = s.drivers || [];
    // The server keeps a history of drivers that ended: show each one once, as it last ended, unless it runs.
    const latest = new Map();
    for (const entry of s.stopped_drivers || []) latest.set(keyOf(entry), entry);
    const runningKeys = new Set(running.map(keyOf));
    const stopped = [...latest.values()].filter((d) => !runningKeys.has(keyOf(d)));
    if (s.running && s.profile === this.current) {
      // Drivers of the running profile that do not run (they failed to start, or were stopped).
      const known = new Set([...running, ...stopped].map((d) => d.label));
      for (const label of [...this.saved].sort()) {
        const driver = this.byLabel.get(label);
        if (known.has(label) || !driver) continue;
        stopped.push({kind: "local", name: driver.binary, label, device_name: label, state: "not running",
          restarts: 0, driver});
      }
    }
    this.reconcile($("#running-drivers"), running, false,
      s.running ? "No drivers are running." : "The INDI server is not running.");
    $("#stopped-box").hidden = !stopped.length;
    this.reconcile($("#stopped-drivers"), stopped, true, "");
  }

  reconcile(container, entries, stopped, emptyText) {
    const keep = new Set();
    const nodes = entries.map((entry) => {
      const key = (stopped ? "stopped:" : "") + keyOf(entry);
      keep.add(key);
      const signature = JSON.stringify([entry.state, entry.pid, entry.restarts, entry.devices, entry.last_exit,
        entry.crashed, entry.label, entry.started]);
      const old = this.rows.get(key);
      if (old && old.signature === signature) return old.node;
      const node = this.driverRow(entry, stopped);
      this.rows.set(key, {node, signature});
      return node;
    });
    for (const key of [...this.rows.keys()]) {
      if (key.startsWith("stopped:") === stopped && !keep.has(key)) this.rows.delete(key);
    }
    const current = [...container.children];
    if (nodes.length === current.length && nodes.every((n, i) => n === current[i])) return;
    fill(container, nodes.length ? nodes : emptyText ? h("p", {class: "empty"}, emptyText) : []);
  }

  driverRow(entry, stopped) {
    const driver = entry.driver || {};
    const remote = entry.kind === "remote";
    const state = entry.state || "unknown";
    const facts = [];
    if (!remote) facts.push(["PID", entry.pid ?? "–"]);
    facts.push(["Restarts", entry.restarts ?? 0]);
    if (!stopped && entry.started) {
      facts.push(["Up", h("span", {class: "uptime", dataset: {since: entry.started}}, since(entry.started))]);
    }
    if (entry.devices && entry.devices.length) facts.push(["Devices", entry.devices.join(", ")]);
    const actions = stopped
      ? [h("button", {type: "button", class: "btn small primary", onclick: (e) => this.driverAction("start", entry,
        e.currentTarget)}, "Start")]
      : [h("button", {type: "button", class: "btn small", onclick: (e) => this.driverAction("restart", entry,
        e.currentTarget)}, "Restart"),
      h("button", {type: "button", class: "btn small danger-outline", onclick: (e) => this.driverAction("stop", entry,
        e.currentTarget)}, "Stop")];
    return h("div", {class: "driver-row", dataset: {label: entry.label || entry.name, state,
      crashed: String(Boolean(entry.crashed)), pid: entry.pid ?? ""}},
    h("div", {class: "dr-head"},
      h("div", {class: "dr-name"},
        h("span", {class: "dr-label"}, entry.label || entry.name),
        h("span", {class: "dr-binary mono"}, remote ? "remote" : entry.name || driver.binary || "")),
      h("div", {class: "dr-badges"},
        h("span", {class: "badge", dataset: {state}}, state),
        entry.crashed ? h("span", {class: "badge", dataset: {state: "crashed"},
          title: entry.last_exit || "the driver died"}, `crashed${entry.restarts ? ` ×${entry.restarts}` : ""}`)
          : null)),
    h("dl", {class: "dr-facts"}, facts.map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, v)))),
    entry.last_exit ? h("p", {class: "dr-exit"}, `Last exit: ${entry.last_exit}`) : null,
    h("div", {class: "btn-group dr-actions"}, actions));
  }

  renderClients() {
    const clients = (this.status && this.status.clients) || [];
    $("#clients-count").textContent = String(clients.length);
    fill($("#clients"), clients.length ? clients.map((c) => h("div", {class: "client-row"},
      h("div", {class: "cl-addr mono"}, c.address || `client ${c.id}`, c.half_closed ? " (closing)" : ""),
      h("dl", {class: "dr-facts"},
        h("div", {}, h("dt", {}, "Since"), h("dd", {title: fmtEpoch(c.since)},
          h("span", {class: "uptime", dataset: {since: c.since}}, since(c.since)))),
        h("div", {}, h("dt", {}, "In"), h("dd", {}, fmtBytes(c.bytes_in))),
        h("div", {}, h("dt", {}, "Out"), h("dd", {}, fmtBytes(c.bytes_out))),
        h("div", {}, h("dt", {}, "Queue"), h("dd", {}, fmtBytes(c.queued))))))
      : h("p", {class: "empty"}, this.status && this.status.running ? "No clients." : "The INDI server is not running."));
  }

  renderLog(force) {
    const s = this.status || {};
    const lines = (this.logKind === "web" ? s.web_log : s.log) || [];
    const pre = $("#log-tail");
    const text = lines.length ? lines.join("\n") : "(empty)";
    if (!force && pre.textContent === text) return;
    pre.textContent = text;
    if (force) this.logStick = true;
    if (this.logStick) pre.scrollTop = pre.scrollHeight;
  }

  tick() {
    for (const el of $$(".uptime[data-since]")) el.textContent = since(Number(el.dataset.since));
  }
}

function keyOf(entry) {
  return `${entry.kind}:${entry.name}:${entry.device_name || ""}`;
}
