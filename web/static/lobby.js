// The lobby: the one room every page joins. Besides chat, it is how people
// find each other: each page says "here" on joining, and the others answer.

import { S, LOBBY, PAGE, lobby } from "./state.js";
import { render } from "./view.js";
import { learn } from "./people.js";
import { add, merge } from "./conversation.js";

/** onRoomMessage takes a message published in a room. */
export function onRoomMessage(m) {
  if (m.room !== LOBBY) return;
  learn(m.from);
  if (m.event === "here") {
    // Someone arrived: tell them we are here too (volatile, direct).
    if (m.from !== S.me && S.connected) S.client.send(m.from, "here", {}, { volatile: true }).catch(() => {});
    return;
  }
  if (m.seq == null) return; // other volatile room traffic
  const c = lobby();
  if (add(c, m, { live: true })) render();
}

export async function refreshLobby() {
  const c = lobby();
  await S.client.join(LOBBY);
  const page = await S.client.history({ room: LOBBY, limit: PAGE });
  if (!c.loaded) c.hasMore = page.length === PAGE;
  merge(c, page, true);
  c.loaded = true;
  for (const m of page) learn(m.from);
  render();
  // Say hello; every page that sees it answers with a direct volatile "here".
  await S.client.publish(LOBBY, "here", {}, { volatile: true });
}
