// The live INDI control panel: every device, its properties by group, values as they change.

import {$, $$, fill, fmtBytes, fmtClock, formatNumber, h, parseNumber, toast} from "./util.js";

const STORE_DEVICE = "indi-web.device";
const MAX_MESSAGES = 400;
const STATES = ["Idle", "Ok", "Busy", "Alert"];

const normState = (state) => {
  const found = STATES.find((s) => s.toLowerCase() === String(state || "").toLowerCase());
  return found || "Idle";
};
const isOn = (value) => value === true || String(value).toLowerCase() === "on";

export class ControlPanel {
  /** send(message) sends a JSON message over the live connection; false if it could not. */
  constructor(send) {
    this.send = send;
    this.devices = new Map();
    this.preferred = localStorage.getItem(STORE_DEVICE);   // the device the user last picked
    this.selected = null;
    this.groupPrefs = new Map();   // device name -> the group the user last opened
    this.onDevicesChanged = () => {};
    $("#messages-clear").addEventListener("click", () => fill($("#messages")));
    $("#messages-filter").addEventListener("change", () => this.filterMessages());
  }

  /** The live connection was (re)opened: the server describes everything again. */
  reset() {
    for (const device of this.devices.values()) {
      device.tab.remove();
      device.panel.remove();
    }
    this.devices.clear();
    fill($("#messages"));   // the server sends its latest messages again
    this.renderEmpty();
  }

  handle(msg) {
    switch (msg.type) {
      case "def": return this.define(msg);
      case "set": return this.update(msg);
      case "del": return this.remove(msg.device, msg.name);
      case "message": return this.message(msg);
      case "image": return this.image(msg);
      default: return undefined;
    }
  }

  // ----------------------------------------------------------------------------------- devices
  device(name) {
    let device = this.devices.get(name);
    if (device) return device;
    const tab = h("button", {type: "button", class: "device-tab", role: "tab", dataset: {device: name},
      "aria-selected": "false", onclick: () => this.select(name, true)},
    h("span", {class: "conn-dot", title: "not connected"}), h("span", {class: "device-name"}, name));
    const groupTabs = h("div", {class: "group-tabs", role: "tablist", "aria-label": `${name} groups`});
    const previews = h("div", {class: "previews", hidden: true});
    const body = h("div", {class: "group-bodies"});
    const panel = h("section", {class: "device-panel", dataset: {device: name}, hidden: true, role: "tabpanel"},
      h("header", {class: "device-head"}, h("h3", {}, name), h("span", {class: "device-info muted small"})),
      previews, groupTabs, body);
    device = {name, tab, panel, groupTabs, previews, body, props: new Map(), groups: new Map(), group: null,
      images: new Map()};
    this.devices.set(name, device);
    const tabs = $("#device-tabs");
    const after = [...tabs.children].find((t) => t.dataset.device.localeCompare(name) > 0);
    tabs.insertBefore(tab, after || null);
    $("#device-panels").append(panel);
    if (!this.selected || this.selected === name || !this.devices.has(this.selected) || name === this.preferred) {
      this.select(name);
    }
    this.renderEmpty();
    return device;
  }

  select(name, byUser = false) {
    this.selected = name;
    if (byUser) {
      this.preferred = name;
      localStorage.setItem(STORE_DEVICE, name);
    }
    for (const device of this.devices.values()) {
      const on = device.name === name;
      device.tab.setAttribute("aria-selected", String(on));
      device.tab.classList.toggle("active", on);
      device.panel.hidden = !on;
    }
    this.filterMessages();
  }

  renderEmpty() {
    $("#no-devices").hidden = this.devices.size > 0;
    $("#device-tabs").hidden = this.devices.size === 0;
    this.onDevicesChanged(this.devices.size);
  }

  removeDevice(name) {
    const device = this.devices.get(name);
    if (!device) return;
    device.tab.remove();
    device.panel.remove();
    this.devices.delete(name);
    if (this.selected === name) {
      const next = [...this.devices.keys()].sort()[0];
      if (next) this.select(next);
      else this.selected = name;  // keep it: the device may come back (a restarted driver)
    }
    this.renderEmpty();
  }

  // -------------------------------------------------------------------------------- properties
  define(msg) {
    const device = this.device(msg.device);
    const old = device.props.get(msg.name);
    const prop = {
      device: msg.device, name: msg.name, kind: msg.kind, label: msg.label || msg.name,
      group: msg.group || "Main", state: normState(msg.state), perm: msg.perm || "ro", rule: msg.rule || null,
      timestamp: msg.timestamp, message: msg.message || "",
      members: new Map((msg.members || []).map((m) => [m.name, {...m}])),
    };
    const element = this.renderProp(prop);
    if (old && old.group === prop.group) {
      old.element.replaceWith(element);
    } else {
      if (old) this.removeProp(device, old);
      this.groupBody(device, prop.group).append(element);
    }
    prop.element = element;
    device.props.set(prop.name, prop);
    if (prop.name === "CONNECTION") this.connectionChanged(device);
    if (prop.name === "DRIVER_INFO") this.driverInfo(device, prop);
    const image = device.images.get(prop.name);
    if (image) this.showImage(prop, image);
  }

  groupBody(device, group) {
    let entry = device.groups.get(group);
    if (!entry) {
      const tab = h("button", {type: "button", class: "group-tab", role: "tab", dataset: {group},
        onclick: () => this.selectGroup(device, group, true)}, group);
      const body = h("div", {class: "group-body", dataset: {group}, hidden: true});
      device.groupTabs.append(tab);
      device.body.append(body);
      entry = {tab, body};
      device.groups.set(group, entry);
      if (!device.group || !device.groups.has(device.group) || device.group === group
        || this.groupPrefs.get(device.name) === group) this.selectGroup(device, group);
    }
    return entry.body;
  }

  selectGroup(device, group, byUser = false) {
    device.group = group;
    if (byUser) this.groupPrefs.set(device.name, group);
    for (const [name, entry] of device.groups) {
      const on = name === group;
      entry.tab.classList.toggle("active", on);
      entry.tab.setAttribute("aria-selected", String(on));
      entry.body.hidden = !on;
    }
  }

  removeProp(device, prop) {
    prop.element.remove();
    device.props.delete(prop.name);
    const entry = device.groups.get(prop.group);
    if (entry && !entry.body.children.length) {
      entry.tab.remove();
      entry.body.remove();
      device.groups.delete(prop.group);
      if (device.group === prop.group) {
        const first = device.groups.keys().next();
        if (!first.done) this.selectGroup(device, first.value);
      }
    }
  }

  remove(deviceName, name) {
    if (!deviceName) {
      for (const device of [...this.devices.keys()]) this.removeDevice(device);
      return;
    }
    if (!name) {
      this.removeDevice(deviceName);
      return;
    }
    const device = this.devices.get(deviceName);
    const prop = device && device.props.get(name);
    if (!prop) return;
    this.removeProp(device, prop);
    if (!device.props.size) this.removeDevice(deviceName);
    else if (name === "CONNECTION") this.connectionChanged(device);
  }

  update(msg) {
    const device = this.devices.get(msg.device);
    const prop = device && device.props.get(msg.name);
    if (!prop) return;
    if (msg.state) prop.state = normState(msg.state);
    if (msg.timestamp) prop.timestamp = msg.timestamp;
    const el = prop.element;
    el.dataset.state = prop.state;
    const light = $(".prop-head .light", el);
    light.dataset.state = prop.state;
    light.title = prop.state;
    $(".prop-time", el).textContent = fmtClock(prop.timestamp);
    if (msg.message) {
      prop.message = msg.message;
      const line = $(".prop-msg", el);
      line.textContent = msg.message;
      line.hidden = false;
    }
    const display = msg.display || {};
    for (const [name, value] of Object.entries(msg.members || {})) {
      const member = prop.members.get(name);
      if (!member) continue;
      member.value = value;
      if (name in display) member.display = display[name];
      else if (prop.kind === "number") member.display = formatNumber(member.format, value);
      this.updateMember(prop, member);
    }
    if (prop.name === "CONNECTION") this.connectionChanged(device);
    if (prop.name === "DRIVER_INFO") this.driverInfo(device, prop);
  }

  updateMember(prop, member) {
    const row = prop.element.querySelector(`[data-member="${CSS.escape(member.name)}"]`);
    if (!row) return;
    switch (prop.kind) {
      case "number":
      case "text": {
        const shown = prop.kind === "number" ? member.display ?? formatNumber(member.format, member.value)
          : member.value ?? "";
        const out = $(".m-value", row);
        if (out && out.textContent !== String(shown)) {
          out.textContent = shown;
          out.classList.remove("changed");
          void out.offsetWidth;  // restart the highlight animation
          out.classList.add("changed");
        }
        const input = $(".m-input", row);
        if (input && !input.dataset.edited && document.activeElement !== input) input.value = shown;
        break;
      }
      case "switch":
        row.setAttribute("aria-pressed", String(isOn(member.value)));
        break;
      case "light":
        row.dataset.state = normState(member.value);
        break;
      case "blob":
        if (member.display && !prop.element.dataset.imaged) $(".blob-info", row).textContent = member.display;
        break;
      default:
        break;
    }
  }

  renderProp(prop) {
    const writable = prop.perm !== "ro";
    const el = h("article", {class: `prop kind-${prop.kind}`, dataset: {device: prop.device, name: prop.name,
      kind: prop.kind, state: prop.state, perm: prop.perm}},
    h("header", {class: "prop-head"},
      h("span", {class: "light", dataset: {state: prop.state}, title: prop.state}),
      h("h4", {class: "prop-label"}, prop.label),
      h("span", {class: "prop-name mono"}, prop.name),
      h("span", {class: "prop-time", title: "last update"}, fmtClock(prop.timestamp))),
    h("p", {class: "prop-msg", hidden: !prop.message}, prop.message || ""));
    const members = [...prop.members.values()];
    switch (prop.kind) {
      case "number":
      case "text": {
        const rows = members.map((m) => {
          const shown = prop.kind === "number" ? m.display ?? formatNumber(m.format, m.value) : m.value ?? "";
          const hint = prop.kind === "number" ? rangeHint(m) : "";
          return h("div", {class: "member", dataset: {member: m.name}},
            h("label", {class: "m-label", for: `in-${uid(prop, m)}`, title: m.name}, m.label || m.name),
            prop.perm !== "wo" ? h("output", {class: "m-value mono"}, shown) : null,
            writable ? h("input", {class: "m-input mono", id: `in-${uid(prop, m)}`, type: "text", value: shown,
              title: hint, placeholder: hint, spellcheck: "false", autocomplete: "off",
              inputmode: prop.kind === "number" && !/m$/.test(m.format || "") ? "decimal" : "text",
              dataset: {member: m.name},
              oninput: (e) => {
                e.target.dataset.edited = "1";
                e.target.classList.remove("invalid");
              },
              onkeydown: (e) => {
                if (e.key === "Enter") this.submit(prop);
                if (e.key === "Escape") {
                  delete e.target.dataset.edited;
                  e.target.value = prop.kind === "number" ? m.display ?? m.value : m.value;
                }
              }}) : null);
        });
        el.append(h("div", {class: `members grid${writable ? " writable" : ""}${prop.perm === "wo" ? " wo" : ""}`},
          rows));
        if (writable) {
          el.append(h("div", {class: "prop-actions"}, h("button", {type: "button", class: "btn small primary set-btn",
            onclick: () => this.submit(prop)}, "Set")));
        }
        break;
      }
      case "switch":
        el.append(h("div", {class: "members switches", role: "group", dataset: {rule: prop.rule || ""}},
          members.map((m) => h("button", {type: "button", class: "sw", dataset: {member: m.name},
            "aria-pressed": String(isOn(m.value)), disabled: !writable, title: m.name,
            onclick: () => this.clickSwitch(prop, m.name)}, m.label || m.name))));
        break;
      case "light":
        el.append(h("div", {class: "members lights"}, members.map((m) => h("span", {class: "lamp",
          dataset: {member: m.name, state: normState(m.value)}, title: m.name}, h("span", {class: "light"}),
        m.label || m.name))));
        break;
      case "blob":
        el.append(h("div", {class: "members blobs"}, members.map((m) => h("div", {class: "blob",
          dataset: {member: m.name}}, h("span", {class: "m-label"}, m.label || m.name),
        h("span", {class: "blob-info muted small"}, prop.perm === "wo" ? "upload not supported here"
          : m.display || "no data received yet")))));
        break;
      default:
        el.append(h("p", {class: "muted small"}, `Unsupported property kind ${prop.kind}`));
    }
    return el;
  }

  submit(prop) {
    const members = {};
    let bad = false;
    for (const input of $$(".m-input", prop.element)) {
      const name = input.dataset.member;
      if (prop.kind === "number") {
        const value = parseNumber(input.value);
        input.classList.toggle("invalid", Number.isNaN(value));
        if (Number.isNaN(value)) bad = true;
        members[name] = value;
      } else {
        members[name] = input.value;
      }
    }
    if (bad) {
      toast(`${prop.label}: enter numbers (decimal, or sexagesimal such as 12:30:00)`, "error");
      return;
    }
    if (this.send({type: "new", device: prop.device, name: prop.name, members})) {
      for (const input of $$(".m-input", prop.element)) {
        delete input.dataset.edited;
        input.blur();
      }
      const button = $(".set-btn", prop.element);
      if (button) {
        button.classList.remove("sent");
        void button.offsetWidth;
        button.classList.add("sent");
      }
    }
  }

  clickSwitch(prop, clicked) {
    const members = {};
    const current = prop.members;
    const wasOn = isOn(current.get(clicked).value);
    for (const name of current.keys()) {
      if (prop.rule === "AnyOfMany") members[name] = (name === clicked ? !wasOn : isOn(current.get(name).value)) ? "On" : "Off";
      else if (prop.rule === "AtMostOne") members[name] = name === clicked && !wasOn ? "On" : "Off";
      else members[name] = name === clicked ? "On" : "Off";
    }
    this.send({type: "new", device: prop.device, name: prop.name, members});
  }

  connectionChanged(device) {
    const prop = device.props.get("CONNECTION");
    const member = prop && prop.members.get("CONNECT");
    const connected = Boolean(member && isOn(member.value));
    const dot = $(".conn-dot", device.tab);
    dot.classList.toggle("on", connected);
    dot.title = connected ? "connected" : "not connected";
    device.tab.dataset.connected = String(connected);
  }

  driverInfo(device, prop) {
    const get = (name) => (prop.members.get(name) || {}).value;
    const parts = [get("DRIVER_NAME"), get("DRIVER_EXEC"), get("DRIVER_VERSION") && `v${get("DRIVER_VERSION")}`];
    $(".device-info", device.panel).textContent = parts.filter(Boolean).join(" · ");
  }

  // ------------------------------------------------------------------------------------ images
  image(msg) {
    const device = this.devices.get(msg.device) || this.device(msg.device);
    const info = {...msg, received: Date.now()};
    device.images.set(msg.name, info);
    const prop = device.props.get(msg.name);
    if (prop) this.showImage(prop, info);
    this.renderPreviews(device);
  }

  showImage(prop, info) {
    const row = prop.element.querySelector(`.blob[data-member="${CSS.escape(info.member || "")}"]`)
      || prop.element.querySelector(".blob");
    if (!row) return;
    prop.element.dataset.imaged = "1";
    $(".blob-info", row).textContent = `${info.format || ""} · ${fmtBytes(info.size)} · ${fmtClock(info.received / 1000)}`;
  }

  renderPreviews(device) {
    // One figure per BLOB property, kept across images; a new image is fetched only once the previous one
    // has loaded (a video stream sends many more than a browser needs).
    const keep = new Set();
    for (const info of device.images.values()) {
      const key = `${info.name}/${info.member || ""}`;
      keep.add(key);
      let figure = device.previews.querySelector(`figure[data-key="${CSS.escape(key)}"]`);
      if (!figure) {
        const img = h("img", {class: "preview-img", alt: `${info.device} ${info.name} image preview`, decoding: "async"});
        img.addEventListener("load", () => this.previewLoaded(img));
        img.addEventListener("error", () => this.previewLoaded(img, true));
        figure = h("figure", {class: "preview", dataset: {key, device: info.device, name: info.name,
          member: info.member || ""}},
        h("a", {class: "preview-link", target: "_blank", rel: "noopener", title: "Open the preview full size"}, img),
        h("figcaption", {}));
        device.previews.append(figure);
      }
      fill($("figcaption", figure), h("strong", {}, info.name), ` ${info.format || ""} · ${fmtBytes(info.size)} · `,
        fmtClock(info.received / 1000));
      $("a", figure).href = info.url;
      const img = $("img", figure);
      if (img.dataset.loading === "1") img.dataset.next = info.url;
      else this.loadPreview(img, info.url);
    }
    for (const figure of $$("figure", device.previews)) if (!keep.has(figure.dataset.key)) figure.remove();
    device.previews.hidden = keep.size === 0;
  }

  loadPreview(img, url) {
    img.dataset.loading = "1";
    delete img.dataset.next;
    img.src = url;
  }

  previewLoaded(img, failed = false) {
    img.dataset.loading = "0";
    img.classList.toggle("failed", failed);
    if (img.dataset.next) this.loadPreview(img, img.dataset.next);
  }

  // ---------------------------------------------------------------------------------- messages
  message(msg) {
    let text = String(msg.message || "");
    let level = "info";
    const tagged = /^\s*\[(INFO|WARNING|WARN|ERROR|DEBUG|SCOPE)\]\s*/i.exec(text);
    if (tagged) {
      level = {warning: "warn", scope: "debug"}[tagged[1].toLowerCase()] || tagged[1].toLowerCase();
      text = text.slice(tagged[0].length);
    }
    const list = $("#messages");
    const item = h("li", {class: `msg ${level}`, dataset: {device: msg.device || "", level}},
      h("time", {class: "mono"}, fmtClock(msg.timestamp)),
      h("span", {class: "msg-device"}, msg.device || "server"),
      h("span", {class: "msg-text"}, level !== "info" ? h("span", {class: "msg-level"}, level) : null, text));
    list.prepend(item);
    while (list.children.length > MAX_MESSAGES) list.lastElementChild.remove();
    this.applyFilter(item);
  }

  filterMessages() {
    for (const item of $$("#messages .msg")) this.applyFilter(item);
  }

  applyFilter(item) {
    const only = $("#messages-filter").checked;
    item.hidden = only && item.dataset.device !== this.selected;
  }
}

function rangeHint(member) {
  const {min, max, step, format} = member;
  if (min === undefined || max === undefined || Number(min) >= Number(max)) return "";
  const f = (v) => formatNumber(format, v);
  return `${f(min)} … ${f(max)}${step && Number(step) > 0 ? `, step ${formatNumber("%g", step)}` : ""}`;
}

let counter = 0;
const ids = new WeakMap();
function uid(prop, member) {
  if (!ids.has(member)) ids.set(member, `${++counter}`);
  return `${ids.get(member)}-${prop.name}-${member.name}`.replace(/[^\w-]/g, "_");
}
