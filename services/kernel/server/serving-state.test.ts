import { describe, expect, it } from "vitest";
import { ServingState } from "./serving-state.js";

describe("ServingState.recent (what Health/Check answers from)", () => {
  it("reuses a finished evaluation briefly and drops it at once on a lifecycle change", async () => {
    let ready = true;
    const state = new ServingState(2000, 60_000);
    state.addService("svc");
    state.addCheck("db", async () => ({ ready }));
    state.setLifecycle("serving");
    expect(state.recent()).toBeUndefined();
    expect((await state.evaluate()).serving("svc")).toBe(true);
    ready = false;
    // Within the reuse window the last snapshot answers, without running the check again.
    expect(state.recent()?.serving("svc")).toBe(true);
    // Draining is seen at once.
    state.setLifecycle("draining");
    expect(state.recent()).toBeUndefined();
    expect((await state.evaluate()).serving("svc")).toBe(false);
  });

  it("never reuses with reuseMs 0, nor an evaluation that began before a change", async () => {
    const none = new ServingState(2000, 0);
    none.setLifecycle("serving");
    await none.evaluate();
    expect(none.recent()).toBeUndefined();

    let release: () => void = () => {};
    const state = new ServingState(2000, 60_000);
    state.addCheck("slow", () => new Promise((r) => (release = () => r({ ready: true }))));
    state.setLifecycle("serving");
    const pending = state.evaluate();
    state.setLifecycle("draining");
    release();
    await pending;
    expect(state.recent()).toBeUndefined();
  });
});
