// Small DOM and formatting helpers shared by the page's modules.

/** Create an element: h("div", {class: "x", onclick: fn, dataset: {a: 1}}, "text", child...). */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "style" && typeof value === "object") Object.assign(node.style, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : String(child));
  }
}

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

/** Replace a node's children. */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

export function fmtBytes(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "–";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = Number(n);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value >= 100 || unit === 0 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
}

/** "3 s", "5 min", "2 h 3 min", "4 d" for a number of seconds. */
export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "–";
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

/** Epoch seconds to a local date-time string. */
export function fmtEpoch(epoch) {
  if (!epoch) return "";
  return new Date(epoch * 1000).toLocaleString();
}

export function since(epoch) {
  return epoch ? fmtDuration(Date.now() / 1000 - epoch) : "–";
}

/** An INDI timestamp (ISO, UTC without zone) or epoch to HH:MM:SS local time. */
export function fmtClock(stamp) {
  let date;
  if (stamp === null || stamp === undefined || stamp === "") date = new Date();
  else if (typeof stamp === "number") date = new Date(stamp * 1000);
  else date = new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(stamp) ? stamp : `${stamp}Z`);
  if (Number.isNaN(date.getTime())) return String(stamp);
  return date.toLocaleTimeString([], {hour12: false});
}

/** A short-lived notification at the bottom of the page. */
export function toast(message, kind = "info", ms = 4500) {
  const box = document.getElementById("toasts");
  if (!box) return;
  const item = h("div", {class: `toast ${kind}`, role: kind === "error" ? "alert" : "status"}, message);
  item.addEventListener("click", () => item.remove());
  box.append(item);
  while (box.children.length > 5) box.firstElementChild.remove();
  setTimeout(() => item.classList.add("leaving"), ms);
  setTimeout(() => item.remove(), ms + 400);
}

/** Run an async action with a button showing it is busy; errors become toasts. */
export async function busy(button, action) {
  if (button) {
    button.disabled = true;
    button.classList.add("busy");
  }
  try {
    return await action();
  } catch (error) {
    toast(error.message || String(error), "error", 7000);
    return undefined;
  } finally {
    if (button) {
      button.disabled = false;
      button.classList.remove("busy");
    }
  }
}

/** Parse an INDI number as a user may type it: "12.5", "12:30", "-00:30:15.5", "12 30 00", "1e-3". */
export function parseNumber(text) {
  const raw = String(text).trim();
  if (raw === "") return NaN;
  if (/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(raw)) return Number(raw);
  const match = raw.match(/^([+-])?\s*(\d+(?:\.\d*)?)(?:[:\s;]+(\d+(?:\.\d*)?))?(?:[:\s;]+(\d+(?:\.\d*)?))?$/);
  if (!match) return NaN;
  const value = Number(match[2]) + Number(match[3] || 0) / 60 + Number(match[4] || 0) / 3600;
  return match[1] === "-" ? -value : value;
}

/** Format a number like C's printf for INDI formats, including %m sexagesimal formats. */
export function formatNumber(format, value) {
  const v = Number(value);
  if (!Number.isFinite(v)) return String(value);
  const m = /%([-+ 0#]*)(\d*)(?:\.(\d+))?([a-zA-Z])/.exec(format || "%g");
  if (!m) return String(v);
  const [, , , precText, conv] = m;
  const prec = precText === undefined ? null : Number(precText);
  switch (conv) {
    case "m": return sexagesimal(v, Number(m[2] || 0), prec ?? 0);
    case "f": return v.toFixed(prec ?? 6);
    case "e": return v.toExponential(prec ?? 6);
    case "d": case "i": case "u": return String(Math.trunc(v));
    case "x": return Math.trunc(v).toString(16);
    case "g": default: {
      const p = prec === null ? 6 : Math.max(prec, 1);
      const text = v.toPrecision(p);
      return text.includes("e") ? text.replace(/\.?0+e/, "e") : text.includes(".") ? text.replace(/\.?0+$/, "") : text;
    }
  }
}

function sexagesimal(value, width, fraction) {
  const sign = value < 0 ? "-" : "";
  const scale = {3: 1, 5: 60, 6: 3600, 8: 36000, 9: 360000}[fraction] || 3600;
  let total = Math.round(Math.abs(value) * scale);
  const deg = Math.floor(total / scale);
  total -= deg * scale;
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  const head = `${sign}${deg}`.padStart(Math.max(width - fraction, 0), " ");
  switch (fraction) {
    case 3: return head;
    case 5: return `${head}:${pad(total)}`;
    case 8: {
      const minutes = Math.floor(total / 600);
      const rest = total % 600;
      return `${head}:${pad(minutes)}:${pad(Math.floor(rest / 10))}.${rest % 10}`;
    }
    case 9: {
      const minutes = Math.floor(total / 6000);
      const rest = total % 6000;
      return `${head}:${pad(minutes)}:${pad(Math.floor(rest / 100))}.${pad(rest % 100)}`;
    }
    case 6: default: {
      const minutes = Math.floor(total / 60);
      return `${head}:${pad(minutes)}:${pad(total % 60)}`;
    }
  }
}
