// The inbox position and the replay. The client counts the inbox seqs it
// has delivered (lastSeq) so that a reconnection resumes with since= and no
// direct message is lost or delivered twice. Its own durable sends take
// seqs in its inbox too: their acks count, and their copies in a replay are
// not delivered again. Room messages have the room's seqs and do not count.

import type { Message } from "./messages.js";

/**
 * A resume beyond the inbox head answers the head (and changes nothing else).
 * @internal
 */
export const farSeq = Number.MAX_SAFE_INTEGER;

/**
 * A client's inbox position, and the messages held while resent sends wait
 * for their acks.
 * @internal
 */
export class Inbox {
  #lastSeq: number;
  #known: boolean; // #lastSeq is a real inbox position: connect with since=
  #ahead = new Set<number>(); // seqs of own durable sends acked beyond #lastSeq+1
  // While sends written again after a reconnect wait for their acks, message
  // frames are held: the replay may bring back the sender's copy of a send
  // whose first ack was lost, and the ack tells which one it is.
  #hold: Message[] | null = null;
  #holdFor = new Set<string>(); // ids of the resent sends not yet answered
  #own = new Set<string>(); // message ids their acks named
  #holdTimer: ReturnType<typeof setTimeout> | null = null; // bounds the hold
  #deliver: (m: Message) => void;

  /**
   * Starts after inbox seq `since` (the `since` option; none starts at the
   * head); `deliver` hands a message to the application.
   */
  constructor(since: number | undefined, deliver: (m: Message) => void) {
    this.#known = typeof since === "number" && since >= 0;
    this.#lastSeq = this.#known ? Math.floor(since as number) : 0;
    this.#deliver = deliver;
  }

  /** The highest inbox seq delivered or acknowledged (see {@link Client.lastSeq}). */
  get lastSeq(): number {
    return this.#lastSeq;
  }

  /** The seq to resume after (`since=`), or undefined while the position is unknown. */
  get since(): number | undefined {
    return this.#known ? this.#lastSeq : undefined;
  }

  /**
   * Takes the inbox head a welcome names (its `seq`): a client that knows no
   * place in the inbox yet starts there, so that if this connection drops
   * before the head answer ({@link head}), the next one resumes from it and
   * misses nothing stored meanwhile. A welcome without one changes nothing.
   */
  welcomed(seq: unknown): void {
    if (this.#known || typeof seq !== "number" || !(seq >= 0)) return;
    this.#lastSeq = seq;
    this.#known = true;
  }

  /**
   * Takes the inbox head the server answered to a resume at {@link farSeq}
   * after a welcome. Without `since`, a reconnect before any message then
   * resumes from it rather than missing what came meanwhile. With one, a
   * head below lastSeq means the server's store was reset (or `since` was
   * beyond it): the server goes on from its head, and so must the client, or
   * it would drop the new messages as already seen.
   */
  head(seq: unknown): void {
    if (typeof seq !== "number") return;
    if (this.#known && seq < this.#lastSeq) {
      this.#lastSeq = seq;
      this.#ahead.clear();
    } else {
      this.#lastSeq = Math.max(this.#lastSeq, seq);
    }
    this.#known = true;
    this.#drainAhead();
  }

  /** Delivers message `m` unless it was delivered already or is an own send; holds it during a hold. */
  receive(m: Message): void {
    if (m.room === undefined && typeof m.seq === "number" && m.seq > 0) {
      if (this.#known && m.seq <= this.#lastSeq) return; // delivered before a reconnect
      const own = this.#ahead.has(m.seq); // an own send, acked already
      this.#lastSeq = m.seq;
      this.#known = true;
      this.#ahead.delete(m.seq);
      this.#drainAhead();
      if (own) return;
    }
    if (this.#hold) {
      this.#hold.push(m);
      return;
    }
    this.#deliver(m);
  }

  /**
   * Counts the ack of an own durable send with inbox seq `seq`. The ack of
   * seq N takes the message's place in the connection's stream
   * (protocol.md), so it is the next seq; only the ack of a repeated
   * idempotency key (after a reconnect) may overtake the replay, and then
   * its seq is remembered and counted when the replay reaches it.
   */
  sawOwn(seq: number): void {
    if (!this.#known) {
      this.#lastSeq = Math.max(this.#lastSeq, seq);
      this.#known = true;
    } else if (seq === this.#lastSeq + 1) {
      this.#lastSeq = seq;
    } else if (seq > this.#lastSeq) {
      this.#ahead.add(seq);
    }
    this.#drainAhead();
  }

  /** Skips the seqs up to `to` of an `expired` notice: they will never come. */
  expired(to: unknown): void {
    if (typeof to === "number" && to > this.#lastSeq) {
      this.#lastSeq = to;
      this.#drainAhead();
    }
  }

  #drainAhead(): void {
    if (this.#ahead.size === 0) return;
    while (this.#ahead.delete(this.#lastSeq + 1)) this.#lastSeq++;
    for (const s of this.#ahead) if (s <= this.#lastSeq) this.#ahead.delete(s);
  }

  /** Notes that send request `id` is written again: messages are held until its ack (see {@link Inbox.holdReplay}). */
  awaitAck(id: string): void {
    this.#holdFor.add(id);
  }

  /** Starts holding messages when resent sends await their acks, for at most `ms`. */
  holdReplay(ms: number): void {
    if (this.#holdFor.size > 0) {
      this.#hold = [];
      // An ack normally follows the replay within moments; never hold for long.
      this.#holdTimer = setTimeout(() => this.release(), ms);
    }
  }

  /** Takes reply frame `f` to request `id`: the ack of a resent send names the sender's copy to drop. */
  answered(id: string, f: any): void {
    if (this.#holdFor.delete(id)) {
      if (f.type === "ack" && typeof f.msg === "string") this.#own.add(f.msg);
      if (this.#holdFor.size === 0) queueMicrotask(() => this.release());
    }
  }

  /**
   * Ends a hold: delivers the messages held while resent sends waited for
   * their acks, but not the sender's copies of those sends.
   */
  release(): void {
    if (this.#holdTimer) {
      clearTimeout(this.#holdTimer);
      this.#holdTimer = null;
    }
    const held = this.#hold;
    const own = this.#own;
    this.#hold = null;
    this.#holdFor = new Set();
    this.#own = new Set();
    if (!held) return;
    for (const m of held) {
      if (m.room === undefined && own.has(m.msg)) continue;
      this.#deliver(m);
    }
  }
}
