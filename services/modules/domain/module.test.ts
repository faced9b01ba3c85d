import { describe, expect, it } from "vitest";
import { errorReason } from "../../kernel/errors.js";
import {
  decide,
  evolve,
  type ModuleCommand,
  type ModuleEvent,
  type ModuleState,
  type VersionRecord,
  type VersionStatus,
} from "./module.js";

// Table tests of the module aggregate's decide/evolve (pure: no database).

const key = { tenantId: "t1", name: "stats" };
const AT = "2026-01-01T00:00:00.000Z";

function record(version: string, status: VersionStatus): VersionRecord {
  return {
    version,
    manifest: {},
    code: "function compute() {}",
    codeSha256: "0".repeat(64),
    status,
    testResults: [],
    submittedBy: "key_a",
    submittedAt: AT,
    reviewedBy: "",
    reviewedAt: "",
    feedback: "",
  };
}

function state(versions: [string, VersionStatus][], activeVersion = ""): ModuleState {
  return { ...key, versions: versions.map(([v, s]) => record(v, s)), activeVersion, activatedAt: activeVersion ? AT : "" };
}

const review = (version: string, approve: boolean, feedback = ""): ModuleCommand => ({
  type: "ReviewVersion",
  version,
  approve,
  feedback,
  reviewer: "key_admin",
  at: AT,
});
const activate = (version: string): ModuleCommand => ({ type: "ActivateVersion", version, at: AT });

describe("module decide: refusals", () => {
  it.each<[string, ModuleState | undefined, ModuleCommand, string]>([
    [
      "a version submitted twice",
      state([["1.0.0", "PENDING_REVIEW"]]),
      { type: "SubmitVersion", record: record("1.0.0", "PENDING_REVIEW") },
      "ALREADY_EXISTS",
    ],
    ["reviewing a module that does not exist", undefined, review("1.0.0", true), "NOT_FOUND"],
    ["reviewing a version that does not exist", state([["1.0.0", "PENDING_REVIEW"]]), review("2.0.0", true), "NOT_FOUND"],
    ["reviewing a version whose tests failed", state([["1.0.0", "TESTS_FAILED"]]), review("1.0.0", true), "FAILED_PRECONDITION"],
    ["reviewing an approved version again", state([["1.0.0", "APPROVED"]]), review("1.0.0", false, "no"), "FAILED_PRECONDITION"],
    ["reviewing a rejected version again", state([["1.0.0", "REJECTED"]]), review("1.0.0", true), "FAILED_PRECONDITION"],
    ["rejecting without feedback", state([["1.0.0", "PENDING_REVIEW"]]), review("1.0.0", false, "  "), "INVALID_ARGUMENT"],
    ["activating a version pending review", state([["1.0.0", "PENDING_REVIEW"]]), activate("1.0.0"), "FAILED_PRECONDITION"],
    ["activating a rejected version", state([["1.0.0", "REJECTED"]]), activate("1.0.0"), "FAILED_PRECONDITION"],
    ["activating a version whose tests failed", state([["1.0.0", "TESTS_FAILED"]]), activate("1.0.0"), "FAILED_PRECONDITION"],
    ["activating a version that does not exist", state([["1.0.0", "APPROVED"]]), activate("9.9.9"), "NOT_FOUND"],
  ])("refuses %s", (_what, s, command, reason) => {
    let caught: unknown;
    try {
      decide(command, s, key);
    } catch (e) {
      caught = e;
    }
    expect(errorReason(caught)).toBe(reason);
  });
});

describe("module decide: events", () => {
  it.each<[string, ModuleState | undefined, ModuleCommand, ModuleEvent[]]>([
    [
      "a first submission",
      undefined,
      { type: "SubmitVersion", record: record("1.0.0", "PENDING_REVIEW") },
      [{ type: "VersionSubmitted", record: record("1.0.0", "PENDING_REVIEW") }],
    ],
    [
      "an approval",
      state([["1.0.0", "PENDING_REVIEW"]]),
      review("1.0.0", true),
      [{ type: "VersionReviewed", version: "1.0.0", approved: true, feedback: "", reviewer: "key_admin", at: AT }],
    ],
    [
      "a rejection with feedback",
      state([["1.0.0", "PENDING_REVIEW"]]),
      review("1.0.0", false, "use a comparator"),
      [{ type: "VersionReviewed", version: "1.0.0", approved: false, feedback: "use a comparator", reviewer: "key_admin", at: AT }],
    ],
    [
      "a first activation",
      state([["1.0.0", "APPROVED"]]),
      activate("1.0.0"),
      [{ type: "VersionActivated", version: "1.0.0", previousVersion: "", at: AT }],
    ],
    [
      "a rollback to an earlier approved version",
      state(
        [
          ["1.0.0", "APPROVED"],
          ["2.0.0", "APPROVED"],
        ],
        "2.0.0",
      ),
      activate("1.0.0"),
      [{ type: "VersionActivated", version: "1.0.0", previousVersion: "2.0.0", at: AT }],
    ],
    ["activating the active version (nothing changes)", state([["1.0.0", "APPROVED"]], "1.0.0"), activate("1.0.0"), []],
  ])("records %s", (_what, s, command, events) => {
    expect(decide(command, s, key)).toEqual(events);
  });
});

describe("module evolve", () => {
  it.each<[string, ModuleState | undefined, ModuleEvent, (s: ModuleState) => void]>([
    [
      "a submission adds the version",
      undefined,
      { type: "VersionSubmitted", record: record("1.0.0", "PENDING_REVIEW") },
      (s) => expect(s).toMatchObject({ tenantId: "t1", name: "stats", activeVersion: "", versions: [{ version: "1.0.0" }] }),
    ],
    [
      "an approval marks only that version approved, with its reviewer",
      state([
        ["1.0.0", "PENDING_REVIEW"],
        ["1.1.0", "PENDING_REVIEW"],
      ]),
      { type: "VersionReviewed", version: "1.1.0", approved: true, feedback: "ok", reviewer: "key_admin", at: AT },
      (s) =>
        expect(s.versions.map((v) => [v.version, v.status, v.reviewedBy, v.feedback])).toEqual([
          ["1.0.0", "PENDING_REVIEW", "", ""],
          ["1.1.0", "APPROVED", "key_admin", "ok"],
        ]),
    ],
    [
      "a rejection marks the version rejected",
      state([["1.0.0", "PENDING_REVIEW"]]),
      { type: "VersionReviewed", version: "1.0.0", approved: false, feedback: "no", reviewer: "key_admin", at: AT },
      (s) => expect(s.versions[0]).toMatchObject({ status: "REJECTED", feedback: "no" }),
    ],
    [
      "an activation switches the active version and keeps every version",
      state(
        [
          ["1.0.0", "APPROVED"],
          ["2.0.0", "APPROVED"],
        ],
        "2.0.0",
      ),
      { type: "VersionActivated", version: "1.0.0", previousVersion: "2.0.0", at: "2026-02-02T00:00:00.000Z" },
      (s) => {
        expect(s).toMatchObject({ activeVersion: "1.0.0", activatedAt: "2026-02-02T00:00:00.000Z" });
        expect(s.versions).toHaveLength(2);
      },
    ],
  ])("%s", (_what, s, event, check) => {
    check(evolve(s, event, key));
  });
});
