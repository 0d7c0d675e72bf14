// Logging in: a name, no password (the dev server hands a token to anyone).
// The name is kept in sessionStorage, so a reload keeps the user, and in
// localStorage, to offer it again next time.

import { S, store } from "./state.js";
import { app, byTestId, render } from "./view.js";
import { openConv } from "./conversation.js";
import { openClient, setStatus } from "./connection.js";

export async function logIn(name) {
  let connect;
  try {
    ({ connect } = await import("./courier.js"));
  } catch (err) {
    const e = byTestId("login-error");
    e.textContent = "The JS client (courier.js) could not be loaded: build clients/js into web/static/courier.js.";
    e.hidden = false;
    console.error(err);
    return;
  }
  // Ask for a first token now: a name the server refuses stays on the form.
  let first = null;
  try {
    const res = await fetch("/dev/token?user=" + encodeURIComponent(name), { cache: "no-store" });
    if (res.ok) first = (await res.json()).token;
    else if (res.status === 400 || res.status === 404) {
      const e = byTestId("login-error");
      e.textContent = res.status === 400
        ? "That name cannot be used: 1 to 128 bytes, no control characters."
        : "This server does not hand out demo tokens: start it with courier serve --dev.";
      e.hidden = false;
      sessionStorage.removeItem("courier.user");
      return;
    }
  } catch { /* the server is unreachable: the client keeps trying */ }
  byTestId("login-error").hidden = true;
  S.me = name;
  S.firstToken = first;
  sessionStorage.setItem("courier.user", name);
  try { localStorage.setItem("courier.name", name); } catch { /* ignore */ }
  S.lastSeq = Number(store.get("seq", 0)) || 0;
  for (const u of store.get("people", [])) if (typeof u === "string" && u !== name) S.people.set(u, { online: null, lastSeen: null });
  for (const [id, st] of store.get("receipts", [])) S.receipts.set(id, st);

  app.dataset.view = "chat";
  byTestId("login").hidden = true;
  byTestId("main").hidden = false;
  byTestId("whoami").hidden = false;
  byTestId("me").textContent = name;
  setStatus("connecting");

  openClient(connect);

  const open = sessionStorage.getItem("courier.open");
  if (open && /^[ur]:./.test(open)) openConv(open);
  else render();
}

// A reload with no user in sessionStorage shows the login form: a fresh
// page is simpler than undoing the state of the user who leaves.
export function logOut() {
  if (S.client) S.client.close();
  sessionStorage.removeItem("courier.user");
  sessionStorage.removeItem("courier.open");
  location.reload();
}

/** resume logs this tab's user in again after a reload, or offers the last name. */
export function resume() {
  const name = sessionStorage.getItem("courier.user");
  if (name) logIn(name);
  else {
    try { byTestId("login-name").value = localStorage.getItem("courier.name") || ""; } catch { /* ignore */ }
  }
}
