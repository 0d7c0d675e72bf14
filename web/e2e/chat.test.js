// Browser tests of the demo chat page: real chromium, real courier server.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  bubble, contact, launch, messageTexts, openChat, say, shot, sleep, startServer, user, waitConnected,
} from "./harness.js";

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

/** withServer runs fn with a fresh server and closes everything after it. */
async function withServer(fn) {
  const srv = await startServer();
  const users = [];
  const open = async (name, opts) => { const u = await user(browser, srv, name, opts); users.push(u); return u; };
  try {
    await fn(srv, open);
    for (const u of users) assert.deepEqual(u.errors, [], `page errors of ${u.name}`);
  } catch (e) {
    e.message += `\n--- server log ---\n${srv.log.slice(-3000)}`;
    throw e;
  } finally {
    for (const u of users) await u.context.close().catch(() => {});
    await srv.close();
  }
}

describe("demo chat", { timeout: 80000 }, () => {
  test("two users exchange private messages, with typing, ticks and unread counts; a third sees nothing", () => withServer(async (srv, open) => {
    const alice = await open("alice");
    const bob = await open("bob");
    const carol = await open("carol");

    await openChat(alice, "bob");
    await say(alice, "hello bob, pizza tonight?");
    // bob was not looking: the conversation shows up with one unread message.
    await contact(bob.page, "alice").getByTestId("unread").getByText("1", { exact: true }).waitFor();
    await say(alice, "say yes");
    await contact(bob.page, "alice").getByTestId("unread").getByText("2", { exact: true }).waitFor();
    // Delivered (bob's page is connected), not yet read.
    await bubble(alice.page, "say yes").locator('[data-testid="ticks"][data-status="delivered"]').waitFor();
    await shot(alice.page, "01-alice-sent");
    await shot(bob.page, "02-bob-unread");

    await contact(bob.page, "alice").click();
    await bubble(bob.page, "hello bob, pizza tonight?").waitFor();
    assert.deepEqual(await messageTexts(bob.page), ["hello bob, pizza tonight?", "say yes"]);
    await assertGone(contact(bob.page, "alice").getByTestId("unread"));
    // bob opened it: alice's messages turn read.
    await bubble(alice.page, "hello bob, pizza tonight?").locator('[data-testid="ticks"][data-status="read"]').waitFor();
    await bubble(alice.page, "say yes").locator('[data-testid="ticks"][data-status="read"]').waitFor();

    // Typing indicator (volatile), then the reply.
    await bob.page.getByTestId("composer-input").pressSequentially("yes!", { delay: 30 });
    await alice.page.getByTestId("typing").getByText("bob is typing").waitFor();
    await shot(alice.page, "03-alice-sees-typing");
    await bob.page.getByTestId("composer-send").click();
    await bubble(alice.page, "yes!").waitFor();
    await assertGone(alice.page.getByTestId("typing").getByText("bob is typing"));
    assert.deepEqual(await messageTexts(alice.page), ["hello bob, pizza tonight?", "say yes", "yes!"]);
    await shot(alice.page, "04-alice-conversation");
    await shot(bob.page, "05-bob-conversation");

    // A second tab of alice sees her own sends from the first.
    const alice2 = await open("alice");
    await contact(alice2.page, "bob").click();
    await bubble(alice2.page, "yes!").waitFor();
    await say(alice, "from my first tab");
    await bubble(alice2.page, "from my first tab").waitFor();
    await bubble(bob.page, "from my first tab").waitFor();
    assert.deepEqual(await messageTexts(alice2.page), ["hello bob, pizza tonight?", "say yes", "yes!", "from my first tab"]);

    // carol sees none of it: not live, not in a conversation, not in search.
    await assertGone(carol.page.getByText("pizza"));
    await carol.page.getByTestId("search-input").fill("pizza");
    await carol.page.getByTestId("search-input").press("Enter");
    await carol.page.getByTestId("search-summary").getByText("0 results").waitFor();
    await carol.page.getByTestId("search-close").click();
    await openChat(carol, "alice");
    await sleep(300);
    assert.deepEqual(await messageTexts(carol.page), []);
    await shot(carol.page, "06-carol-sees-nothing");
    // But she does see who is around, with their presence.
    await contact(carol.page, "bob").locator('[data-testid="presence-dot"][data-online="true"]').waitFor();
  }));

  test("ticks of old messages on a new browser come from history, and live receipts still move them on", () => withServer(async (srv, open) => {
    const alice = await open("alice");
    const bob = await open("bob");
    await openChat(alice, "bob");
    await say(alice, "read long ago");
    await contact(bob.page, "alice").click();
    await bubble(alice.page, "read long ago").locator('[data-testid="ticks"][data-status="read"]').waitFor();
    // bob looks elsewhere: the next one reaches his page but is not read.
    await bob.page.getByTestId("room-lobby").click();
    await say(alice, "delivered, not read");
    await bubble(alice.page, "delivered, not read").locator('[data-testid="ticks"][data-status="delivered"]').waitFor();

    // A new browser for alice (no receipts in its storage) shows the ticks
    // as the server stored them, not "sent".
    const alice2 = await open("alice");
    await contact(alice2.page, "bob").click();
    await bubble(alice2.page, "read long ago").locator('[data-testid="ticks"][data-status="read"]').waitFor();
    await bubble(alice2.page, "delivered, not read").locator('[data-testid="ticks"][data-status="delivered"]').waitFor();
    await shot(alice2.page, "06b-alice-new-browser-ticks");

    // bob reads it now: the live receipt moves the history's tick on.
    await contact(bob.page, "alice").click();
    await bubble(alice2.page, "delivered, not read").locator('[data-testid="ticks"][data-status="read"]').waitFor();
    await bubble(alice2.page, "read long ago").locator('[data-testid="ticks"][data-status="read"]').waitFor();
    // A plain reload keeps it read (from history and from the stored receipt).
    await alice2.page.reload();
    await waitConnected(alice2.page);
    await bubble(alice2.page, "delivered, not read").locator('[data-testid="ticks"][data-status="read"]').waitFor();
  }));

  test("a reloaded page keeps its user and shows history and the messages that came while away", () => withServer(async (srv, open) => {
    const alice = await open("alice");
    const bob = await open("bob");
    await openChat(alice, "bob");
    await say(alice, "first");
    await bubble(alice.page, "first").locator('[data-testid="ticks"][data-status="delivered"]').waitFor();
    await contact(bob.page, "alice").click();
    await say(bob, "second");
    await bubble(alice.page, "second").waitFor();

    // Plain reload: same user, same conversation, no duplicate.
    await alice.page.reload();
    await waitConnected(alice.page);
    assert.equal(await alice.page.getByTestId("me").textContent(), "alice");
    await bubble(alice.page, "second").waitFor();
    assert.deepEqual(await messageTexts(alice.page), ["first", "second"]);

    // Leave the page, miss some messages, come back.
    await alice.page.goto("about:blank");
    await contact(bob.page, "alice").locator('[data-testid="presence-dot"][data-online="false"]').waitFor();
    await say(bob, "while you were away 1");
    await say(bob, "while you were away 2");
    await bubble(bob.page, "while you were away 2").locator('[data-testid="ticks"][data-status="sent"]').waitFor();
    await alice.page.goto(srv.url + "/");
    await waitConnected(alice.page);
    await bubble(alice.page, "while you were away 2").waitFor();
    await sleep(500); // let any replayed duplicate show up, if there were one
    assert.deepEqual(await messageTexts(alice.page), ["first", "second", "while you were away 1", "while you were away 2"]);
    // Seen now: bob's ticks turn read.
    await bubble(bob.page, "while you were away 2").locator('[data-testid="ticks"][data-status="read"]').waitFor();
    await shot(alice.page, "07-alice-after-coming-back");

    // Away from the conversation: the list counts what arrives, and so does a reload.
    await alice.page.getByTestId("room-lobby").click();
    await say(bob, "unread after reload");
    await contact(alice.page, "bob").getByTestId("unread").getByText("1", { exact: true }).waitFor();
    await alice.page.reload();
    await waitConnected(alice.page);
    await contact(alice.page, "bob").getByTestId("unread").getByText("1", { exact: true }).waitFor();
    await shot(alice.page, "08-alice-unread-after-reload");
    await contact(alice.page, "bob").click();
    await bubble(alice.page, "unread after reload").waitFor();
    assert.deepEqual(await messageTexts(alice.page),
      ["first", "second", "while you were away 1", "while you were away 2", "unread after reload"]);
  }));

  test("the server restarts under the page; the page reconnects and catches up", () => withServer(async (srv, open) => {
    const alice = await open("alice");
    const bob = await open("bob");
    await openChat(alice, "bob");
    await say(alice, "before the restart");
    await contact(bob.page, "alice").click();
    await bubble(bob.page, "before the restart").waitFor();

    await srv.stop();
    await alice.page.locator('[data-testid="status"][data-state="reconnecting"]').waitFor();
    // Presence is unknown while disconnected, and known again after.
    await contact(alice.page, "bob").locator('[data-testid="presence-dot"][data-online="unknown"]').waitFor();
    await bob.page.locator('[data-testid="status"][data-state="reconnecting"]').waitFor();
    // Written while the server is down: waits, then goes out once reconnected.
    await say(bob, "sent while the server was down");
    await bubble(bob.page, "sent while the server was down").locator('[data-testid="ticks"][data-status="sending"]').waitFor();
    await shot(bob.page, "09-bob-server-down");

    await srv.restart();
    // A message stored while alice's page may still be backing off.
    await srv.api("POST", "/api/send", { to: "alice", from: "bob", event: "chat", data: { text: "stored during the reconnect" } });
    await waitConnected(alice.page, 20000);
    await waitConnected(bob.page, 20000);
    await bubble(alice.page, "sent while the server was down").waitFor({ timeout: 15000 });
    await bubble(bob.page, "sent while the server was down").locator('[data-testid="ticks"][data-status="read"]').waitFor();
    await contact(alice.page, "bob").locator('[data-testid="presence-dot"][data-online="true"]').waitFor();
    await sleep(500);
    // Which of the two was stored first depends on how fast bob's page came back.
    const texts = await messageTexts(alice.page);
    assert.equal(texts[0], "before the restart");
    assert.deepEqual(texts.slice(1).sort(), ["sent while the server was down", "stored during the reconnect"]);
    await say(alice, "after the restart");
    await bubble(bob.page, "after the restart").waitFor();
    assert.deepEqual(await messageTexts(bob.page), ["before the restart", "sent while the server was down", "after the restart"]);
    await shot(alice.page, "10-alice-after-restart");

    // The server's API disconnects alice (close 4001): the client stops, the page says so.
    await srv.api("POST", "/api/disconnect", { user: "alice" });
    await alice.page.locator('[data-testid="status"][data-state="offline"]').waitFor();
    await alice.page.getByTestId("toast").getByText("disconnected you").waitFor();
  }));

  test("search, the lobby room, and a phone-sized screen", () => withServer(async (srv, open) => {
    const alice = await open("alice");
    const bob = await open("bob", { viewport: { width: 390, height: 844 } });
    await bob.page.getByTestId("room-lobby").click();
    await bob.page.getByTestId("no-messages").waitFor();
    await bob.page.getByTestId("back").click();
    await shot(bob.page, "11-mobile-list");

    // The lobby: join, publish, live and history.
    await alice.page.getByTestId("room-lobby").click();
    await say(alice, "hi everyone");
    await bob.page.getByTestId("room-lobby").click();
    await bubble(bob.page, "hi everyone").getByTestId("message-from").getByText("alice").waitFor();
    await say(bob, "hi alice, from a phone");
    await bubble(alice.page, "hi alice, from a phone").waitFor();
    await shot(bob.page, "12-mobile-lobby");
    const carol = await open("carol");
    await carol.page.getByTestId("room-lobby").click();
    await bubble(carol.page, "hi alice, from a phone").waitFor();
    assert.deepEqual(await messageTexts(carol.page), ["hi everyone", "hi alice, from a phone"]);
    // carol learnt who is around from the lobby.
    await contact(carol.page, "alice").locator('[data-testid="presence-dot"][data-online="true"]').waitFor();
    await contact(carol.page, "bob").waitFor();
    await shot(carol.page, "13-carol-lobby");

    // Search, then open the conversation at the result.
    await openChat(alice, "bob");
    await say(alice, "the quarterly numbers are in");
    for (let i = 0; i < 5; i++) await say(alice, `filler ${i}`);
    await bubble(alice.page, "filler 4").locator('[data-testid="ticks"][data-status="delivered"]').waitFor();
    await bob.page.getByTestId("back").click();
    await bob.page.getByTestId("search-input").fill("quarterly");
    let found = false;
    for (let i = 0; i < 20 && !found; i++) { // the index may lag a write by up to a second
      await bob.page.getByTestId("search-input").press("Enter");
      await bob.page.getByTestId("search-summary").getByText(/result/).waitFor();
      found = await bob.page.getByTestId("search-result").count() > 0;
      if (!found) await sleep(150);
    }
    assert.ok(found, "search found the message");
    await shot(bob.page, "14-mobile-search");
    await bob.page.getByTestId("search-result").first().click();
    await bubble(bob.page, "the quarterly numbers are in").waitFor();
    assert.equal(await bob.page.getByTestId("chat-title").textContent(), "alice");
    await shot(bob.page, "15-mobile-chat");

    // Nothing sticks out sideways, on a phone or a desktop, even with a very long word.
    await say(alice, "x".repeat(300));
    await bubble(bob.page, "x".repeat(300)).waitFor();
    await bob.page.getByTestId("back").click();
    for (const u of [alice, bob]) {
      assert.ok(await u.page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), `no sideways scroll for ${u.name}`);
    }
    assert.equal(Math.round((await alice.page.locator(".side").boundingBox()).width), 320);
    await contact(bob.page, "alice").click();

    // Hostile text is text.
    await say(alice, "<img src=x onerror=alert(1)> <b>bold</b>");
    await bubble(bob.page, "<img src=x onerror=alert(1)> <b>bold</b>").waitFor();
    assert.equal(await bob.page.locator(".msg-text img, .msg-text b").count(), 0);
  }));

  test("a long conversation loads older pages on demand", () => withServer(async (srv, open) => {
    // 60 messages from the server API under the label "bob": a conversation with "bob".
    for (let i = 1; i <= 60; i++) {
      await srv.api("POST", "/api/send", { to: "alice", from: "bob", event: "chat", data: { text: `note ${i}` } });
    }
    const alice = await open("alice");
    await contact(alice.page, "bob").getByTestId("unread").getByText("60", { exact: true }).waitFor();
    await contact(alice.page, "bob").click();
    await bubble(alice.page, "note 60").waitFor();
    await alice.page.getByTestId("load-older").waitFor(); // the first page is in
    let texts = await messageTexts(alice.page);
    assert.equal(texts.length, 50);
    assert.equal(texts[0], "note 11");
    await alice.page.getByTestId("load-older").click();
    await bubble(alice.page, "note 1").waitFor();
    texts = await messageTexts(alice.page);
    assert.deepEqual(texts, Array.from({ length: 60 }, (_, i) => `note ${i + 1}`));
    await alice.page.getByTestId("history-start").waitFor();
    assert.equal(await alice.page.getByTestId("load-older").isVisible(), false);
    await assertGone(contact(alice.page, "bob").getByTestId("unread"));
    await shot(alice.page, "16-older-pages");
  }));
});

/** assertGone waits until loc matches nothing. */
async function assertGone(loc, timeout = 5000) {
  await loc.first().waitFor({ state: "detached", timeout }).catch(async () => {
    assert.equal(await loc.count(), 0, `${loc} should match nothing`);
  });
}
