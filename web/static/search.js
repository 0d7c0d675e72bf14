// Message search: the results take the place of the lists until closed;
// picking one opens its conversation at that message.

import { S } from "./state.js";
import { byTestId, h, avatar, textOf, shortTime } from "./view.js";
import { openConv } from "./conversation.js";

export async function runSearch(q) {
  const box = byTestId("search-results");
  const list = byTestId("search-list");
  const summary = byTestId("search-summary");
  if (!q) { box.hidden = true; byTestId("lists").hidden = false; return; }
  box.hidden = false;
  byTestId("lists").hidden = true;
  summary.textContent = "Searching…";
  list.replaceChildren();
  try {
    const results = await S.client.search(q, { limit: 50 });
    summary.textContent = `${results.length} result${results.length === 1 ? "" : "s"} for “${q}”`;
    list.replaceChildren(...results.map((m) => {
      const peer = m.room ? null : (m.from === S.me ? m.to : m.from);
      const key = m.room ? "r:" + m.room : "u:" + peer;
      return h("li", {}, h("button", {
        type: "button", class: "item", testid: "search-result", data: { msg: m.msg, with: peer || "" },
        onclick: () => { closeSearch(); openConv(key, m.msg); },
      },
      avatar(m.room ? m.room : peer, undefined, !!m.room),
      h("span", { class: "item-main" },
        h("span", { class: "item-top" },
          h("span", { class: "item-name" }, m.room ? "#" + m.room : (m.from === S.me ? `you → ${m.to}` : m.from)),
          h("span", { class: "item-time" }, shortTime(m.ts))),
        h("span", { class: "item-bottom" }, h("span", { class: "item-preview", testid: "search-result-text" }, textOf(m))))));
    }));
  } catch (err) {
    summary.textContent = `Search failed: ${err.message || err}`;
  }
}

export function closeSearch() {
  byTestId("search-results").hidden = true;
  byTestId("lists").hidden = false;
  byTestId("search-input").value = "";
}
