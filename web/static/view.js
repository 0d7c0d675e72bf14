// DOM helpers, formatting and the render loop, shared by the page's parts.
//
// Everything the user or another user typed reaches the DOM through h() or
// textContent, as text nodes, never parsed as HTML.

export const byTestId = (id) => document.querySelector(`[data-testid="${id}"]`);
export const app = document.getElementById("app");

/** h builds an element; string children become text nodes (never HTML). */
export function h(tag, props, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v == null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "testid") el.dataset.testid = v;
    else if (k === "data") Object.assign(el.dataset, v);
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const kid of kids.flat()) {
    if (kid == null || kid === false) continue;
    el.append(kid instanceof Node ? kid : String(kid));
  }
  return el;
}

let toastTimer = 0;
export function toast(text) {
  const el = byTestId("toast");
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, 4000);
}

// ---------- formatting ----------

export function textOf(m) {
  const d = m.data;
  if (d && typeof d === "object" && typeof d.text === "string") return d.text;
  if (typeof d === "string") return d;
  if (d == null) return m.event;
  return JSON.stringify(d);
}

const two = (n) => String(n).padStart(2, "0");
export function clock(ts) {
  const d = new Date(ts);
  return `${two(d.getHours())}:${two(d.getMinutes())}`;
}
export function sameDay(a, b) {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}
export function dayLabel(ts) {
  const d = new Date(ts), now = new Date();
  if (sameDay(d, now)) return "Today";
  const y = new Date(now); y.setDate(now.getDate() - 1);
  if (sameDay(d, y)) return "Yesterday";
  return d.toLocaleDateString(undefined, { day: "numeric", month: "short", year: d.getFullYear() === now.getFullYear() ? undefined : "numeric" });
}
export function shortTime(ts) {
  const d = new Date(ts);
  return sameDay(d, new Date()) ? clock(ts) : d.toLocaleDateString(undefined, { day: "numeric", month: "short" });
}
function initial(name) {
  return [...name][0] || "?";
}
// A stable colour per name, so avatars are told apart at a glance.
function hue(name) {
  let x = 0;
  for (const ch of name) x = (x * 31 + ch.codePointAt(0)) >>> 0;
  return x % 360;
}
export function avatar(name, online, room) {
  const el = h("span", { class: room ? "avatar room" : "avatar", "aria-hidden": "true" }, room ? "#" : initial(name));
  if (!room) el.style.background = `hsl(${hue(name)} 55% 48%)`;
  if (online !== undefined) {
    el.append(h("span", { class: "dot", testid: "presence-dot", data: { online: online == null ? "unknown" : String(online) } }));
  }
  return el;
}

// ---------- rendering ----------

// The painters redraw the page from the state. app.js registers them, so
// that every module can ask for a render without importing what draws.
const painters = [];
export function onPaint(paint) {
  painters.push(paint);
}

// render batches the changes of a frame into one redraw.
// opts.bottom: scroll the open conversation to its newest message.
let renderQueued = false;
let renderBottom = false;
export function render(opts) {
  if (opts && opts.bottom) renderBottom = true;
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    const bottom = renderBottom;
    renderBottom = false;
    for (const paint of painters) paint(bottom);
  });
}
