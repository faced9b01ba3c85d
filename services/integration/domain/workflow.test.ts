import { describe, expect, it } from "vitest";
import { decideWorkflow, evolveWorkflow, type WorkflowCommand, type WorkflowState } from "./workflow.js";

const key = { tenantId: "t1", workflowId: "w1" };
const fields = { kind: "fan_out", sourceAppId: "app-1", sourceMqttId: null, retentionHours: 168 };
const at = new Date("2026-01-01T00:00:00Z");
const created = evolveWorkflow(
  undefined,
  { type: "Created", name: "orders", fields, definition: { kind: 1 }, by: "k1", at, kubernetesResource: "" },
  key,
) as WorkflowState;
const managed = { ...created, kubernetesResource: "Workflow flows/orders" };
const operator = { platform: true, kubernetesResource: "Workflow flows/orders" };
const paused = (by: string) => evolveWorkflow(created, { type: "Paused", by }, key) as WorkflowState;
const reasonOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    return (err as Error).message;
  }
  return "";
};

describe("workflow aggregate", () => {
  it.each<[string, WorkflowCommand, WorkflowState | undefined, string[]]>([
    ["create", { type: "Create", name: "orders", fields, definition: {}, by: "k1", at, marker: {} }, undefined, ["Created"]],
    [
      "save a version",
      { type: "SaveVersion", change: "updated", fields, definition: {}, by: "k1", expectedVersion: 1, marker: {} },
      created,
      ["VersionSaved"],
    ],
    ["pause a running one", { type: "Pause", by: "" }, created, ["Paused"]],
    ["pause a paused one", { type: "Pause", by: "saga:s1" }, paused(""), []],
    ["resume a paused one", { type: "Resume" }, paused(""), ["Resumed"]],
    ["resume a running one", { type: "Resume" }, created, []],
    ["a saga resumes what it paused", { type: "Resume", onlyPausedBy: "saga:s1" }, paused("saga:s1"), ["Resumed"]],
    ["a saga leaves what a user paused", { type: "Resume", onlyPausedBy: "saga:s1" }, paused(""), []],
    ["delete", { type: "Delete", marker: {} }, created, ["Deleted"]],
    [
      "the operator saves a managed one",
      { type: "SaveVersion", change: "updated", fields, definition: {}, by: "op", expectedVersion: 0, marker: operator },
      managed,
      ["VersionSaved"],
    ],
    ["the operator deletes a managed one", { type: "Delete", marker: operator }, managed, ["Deleted"]],
    ["anyone pauses a managed one (offboarding)", { type: "Pause", by: "saga:s1" }, managed, ["Paused"]],
  ])("%s", (_name, command, state, types) => {
    expect(decideWorkflow(command, state, "w1").map((e) => e.type)).toEqual(types);
  });

  it.each<[string, WorkflowCommand, WorkflowState | undefined, RegExp]>([
    [
      "a stale edit",
      { type: "SaveVersion", change: "updated", fields, definition: {}, by: "k1", expectedVersion: 3, marker: {} },
      created,
      /at version 1, not 3/,
    ],
    ["a missing workflow", { type: "Delete", marker: {} }, undefined, /no workflow w1/],
    [
      "an API edit of a managed one",
      { type: "SaveVersion", change: "updated", fields, definition: {}, by: "k1", expectedVersion: 0, marker: {} },
      managed,
      /managed by Kubernetes \(Workflow flows\/orders\)/,
    ],
    ["an API delete of a managed one", { type: "Delete", marker: { platform: true } }, managed, /managed by Kubernetes/],
    [
      "a tenant key setting the marker",
      { type: "Create", name: "orders", fields, definition: {}, by: "k1", at, marker: { kubernetesResource: "Workflow a/b" } },
      undefined,
      /only the Nexus operator/,
    ],
    ["creating twice", { type: "Create", name: "orders", fields, definition: {}, by: "k1", at, marker: {} }, created, /already exists/],
  ])("refuses %s", (_name, command, state, message) => {
    expect(reasonOf(() => decideWorkflow(command, state, "w1"))).toMatch(message);
  });

  it("evolves: a new version counts up and carries its definition; pausing records who; deleting ends it", () => {
    expect(created).toMatchObject({
      id: "w1",
      tenantId: "t1",
      currentVersion: 1,
      enabled: true,
      saved: { definition: { kind: 1 }, by: "k1" },
    });
    const v2 = evolveWorkflow(
      created,
      { type: "VersionSaved", change: "rolled_back", fields, definition: { kind: 2 }, by: "k2", kubernetesResource: "" },
      key,
    );
    expect(v2).toMatchObject({ currentVersion: 2, saved: { definition: { kind: 2 }, by: "k2" } });
    expect(paused("saga:s1")).toMatchObject({ enabled: false, pausedBy: "saga:s1", saved: undefined });
    expect(evolveWorkflow(paused("saga:s1"), { type: "Resumed" }, key)).toMatchObject({ enabled: true, pausedBy: "" });
    expect(evolveWorkflow(created, { type: "Deleted", name: "orders", version: 1 }, key)).toBeUndefined();
  });
});
