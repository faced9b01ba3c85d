import { describe, expect, it } from "vitest";
import { boundedHistory } from "./bounded-history.js";
import type { MessageRecord } from "./session-records.js";
import { sessionTitle } from "./session-records.js";

function messages(n: number, length = 10): MessageRecord[] {
  return Array.from({ length: n }, (_, i) => ({
    messageId: `m${i}`,
    sessionId: "s",
    role: i % 2 === 0 ? ("user" as const) : ("assistant" as const),
    text: String(i).padEnd(length, "."),
    citations: [],
    requestId: `r${Math.floor(i / 2)}`,
    createdAt: new Date(0),
  }));
}

describe("bounded history", () => {
  it("keeps the last N turns, oldest first", () => {
    const history = boundedHistory(messages(10), { turns: 2, chars: 10_000 });
    expect(history.map((m) => m.text[0])).toEqual(["6", "7", "8", "9"]);
    expect(history[0]?.role).toBe("user");
  });

  it("stops at the character budget without cutting a message", () => {
    const history = boundedHistory(messages(10, 100), { turns: 10, chars: 250 });
    expect(history).toHaveLength(2);
    expect(history.every((m) => m.text.length === 100)).toBe(true);
  });

  it("gives nothing with a zero budget", () => {
    expect(boundedHistory(messages(4), { turns: 0, chars: 1000 })).toEqual([]);
    expect(boundedHistory(messages(4), { turns: 5, chars: 0 })).toEqual([]);
  });
});

describe("session title", () => {
  it("is the first line of the question, at most 80 characters", () => {
    expect(sessionTitle("  How do I rotate keys?\nmore")).toBe("How do I rotate keys?");
    const long = sessionTitle("x".repeat(200));
    expect([...long]).toHaveLength(80);
    expect(long.endsWith("…")).toBe(true);
  });
});
