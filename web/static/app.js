// courier demo chat: the page `courier serve --dev` serves at /.
//
// Built on the JS client (./courier.js, from clients/js, loaded by login.js).
// Everything the user or another user typed reaches the DOM as text
// (textContent, text nodes), never parsed as HTML.
//
// This entry wires the page's controls to its parts, one concern a module:
//   state.js         what the page knows, and what localStorage keeps of it
//   view.js          DOM helpers, formatting, avatars, the render loop
//   people.js        the people known and their presence
//   conversation.js  one conversation: history, sending, receipts, the chat pane
//   lobby.js         the lobby room, where pages find each other
//   lists.js         the lists beside the chat, with unread counts
//   search.js        message search
//   login.js         picking a name, switching, coming back after a reload
//   connection.js    the client's connection and its status in the top bar

import { S } from "./state.js";
import { byTestId, toast, render, onPaint } from "./view.js";
import { learn } from "./people.js";
import { sendText, sendTyping, loadOlder, openConv, closeConv, markRead, renderChat } from "./conversation.js";
import { refreshConversations, renderLists } from "./lists.js";
import { runSearch, closeSearch } from "./search.js";
import { logIn, logOut, resume } from "./login.js";

// What render() redraws: view.js schedules it without importing the parts.
onPaint(renderLists);
onPaint(renderChat);

byTestId("login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const name = byTestId("login-name").value.trim();
  if (name) logIn(name);
});
byTestId("logout").addEventListener("click", logOut);
byTestId("new-chat-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const input = byTestId("new-chat-input");
  const name = input.value.trim();
  if (!name || name === S.me) return;
  input.value = "";
  learn(name);
  openConv("u:" + name);
});
byTestId("search-form").addEventListener("submit", (e) => {
  e.preventDefault();
  runSearch(byTestId("search-input").value.trim());
});
byTestId("search-input").addEventListener("input", (e) => { if (!e.target.value) closeSearch(); });
byTestId("search-close").addEventListener("click", closeSearch);
byTestId("composer").addEventListener("submit", (e) => {
  e.preventDefault();
  const input = byTestId("composer-input");
  const text = input.value.trim();
  const c = S.open && S.convs.get(S.open);
  if (!text || !c) return;
  input.value = "";
  S.lastTypingSent = 0;
  sendText(c, text);
});
byTestId("composer-input").addEventListener("input", (e) => {
  if (e.target.value) sendTyping(S.open && S.convs.get(S.open));
});
byTestId("load-older").addEventListener("click", () => {
  const c = S.open && S.convs.get(S.open);
  if (c) loadOlder(c).catch((err) => toast(`Could not load: ${err.message || err}`));
});
byTestId("back").addEventListener("click", closeConv);
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState !== "visible") return;
  markRead(S.open && S.convs.get(S.open));
  // Another tab may have read or received meanwhile: count again.
  if (S.connected) refreshConversations().catch(() => {});
});
// Relative times ("last seen 3 min ago") age.
setInterval(() => { if (S.me) render(); }, 30000);

resume();
