import { describe, expect, it } from "vitest";
import { ForegroundWork, yieldToIo } from "./foreground.js";

describe("ForegroundWork", () => {
  it("lets background work start at once when nothing is in the foreground", async () => {
    const work = new ForegroundWork();
    await work.idle(60_000);
    expect(work.busy).toBe(false);
  });

  it("holds background work until every piece of foreground work has ended", async () => {
    const work = new ForegroundWork();
    const endRun = work.begin();
    const endOther = work.begin();
    let started = false;
    const waiting = work.idle(60_000).then(() => (started = true));
    endRun();
    endRun(); // ending twice counts once
    await yieldToIo();
    await yieldToIo();
    expect(started).toBe(false);
    expect(work.busy).toBe(true);
    endOther();
    await waiting;
    expect(started).toBe(true);
    expect(work.busy).toBe(false);
  });

  it("never holds background work longer than it was told to wait", async () => {
    const work = new ForegroundWork();
    const end = work.begin();
    await work.idle(1);
    expect(work.busy).toBe(true);
    end();
  });
});
