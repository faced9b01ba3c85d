import { describe, expect, it } from "vitest";
import {
  type ApiKeyCommand,
  type ApiKeyEvent,
  type ApiKeyState,
  decideApiKey,
  evolveApiKey,
  keyStatus,
  ROTATED_REASON,
} from "./api-key.js";
import { digestOf } from "./api-key-secret.js";

const T0 = new Date("2026-01-01T00:00:00Z");
const at = (ms: number) => new Date(T0.getTime() + ms);
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

const issued: ApiKeyEvent = {
  type: "ApiKeyIssued",
  keyId: "k1",
  kind: "tenant",
  tenantId: "t1",
  name: "ci",
  role: "editor",
  digest: digestOf("nxs_k1_secret"),
  expiresAt: undefined,
  predecessorKeyId: "",
  createdByKeyId: "admin",
  ownerUserId: "",
  at: T0,
};

/** given(events).when(command).then(events or rejection reason) */
function given(...events: ApiKeyEvent[]) {
  const state = events.reduce<ApiKeyState>((s, e) => evolveApiKey(s, e), undefined);
  return {
    state,
    when(command: ApiKeyCommand) {
      const decision = decideApiKey(command, state);
      return {
        // biome-ignore lint/suspicious/noThenProperty: given/when/then reads as the domain speaks; never awaited
        then(expected: ApiKeyEvent[]) {
          expect(decision).toEqual({ kind: "accepted", events: expected });
        },
        rejectedWith(reason: string) {
          expect(decision.kind).toBe("rejected");
          if (decision.kind === "rejected") expect(decision.reason).toBe(reason);
        },
      };
    },
  };
}

describe("API key decider", () => {
  it("issues a key once", () => {
    const { type: _t, ...fields } = issued;
    void _t;
    given()
      .when({ ...fields, type: "IssueApiKey", now: T0 } as ApiKeyCommand)
      .then([issued]);
    given(issued)
      .when({ ...issued, type: "IssueApiKey", now: T0 } as unknown as ApiKeyCommand)
      .rejectedWith("ALREADY_EXISTS");
  });

  it("rejects a tenant key without a role and an expiry in the past", () => {
    const base = {
      type: "IssueApiKey",
      keyId: "k",
      kind: "tenant",
      tenantId: "t",
      name: "n",
      digest: new Uint8Array(32),
      predecessorKeyId: "",
      createdByKeyId: "",
      now: T0,
    } as const;
    given()
      .when({ ...base, role: undefined, expiresAt: undefined })
      .rejectedWith("INVALID_ARGUMENT");
    given()
      .when({ ...base, role: "viewer", expiresAt: at(-1) })
      .rejectedWith("INVALID_ARGUMENT");
  });

  it("revokes idempotently: revoking again changes nothing and keeps revoked_at", () => {
    const revoked: ApiKeyEvent = { type: "ApiKeyRevoked", keyId: "k1", tenantId: "t1", revokedAt: at(HOUR), reason: "leaked" };
    given(issued)
      .when({ type: "RevokeApiKey", reason: "leaked", now: at(HOUR) })
      .then([revoked]);
    const g = given(issued, revoked);
    g.when({ type: "RevokeApiKey", reason: "again", now: at(2 * HOUR) }).then([]);
    expect(g.state?.revokedAt).toEqual(at(HOUR));
  });

  it("rotates with a grace period, and the grace end revokes with reason 'rotated'", () => {
    const rotated: ApiKeyEvent = {
      type: "ApiKeyRotated",
      keyId: "k1",
      tenantId: "t1",
      successorKeyId: "k2",
      graceEndsAt: at(2 * HOUR),
      at: at(HOUR),
    };
    given(issued)
      .when({ type: "RotateApiKey", successorKeyId: "k2", graceMs: HOUR, inactivityMs: 0, now: at(HOUR) })
      .then([rotated]);
    const g = given(issued, rotated);
    expect(keyStatus(g.state!, at(HOUR + 1), 0)).toBe("rotating");
    expect(keyStatus(g.state!, at(2 * HOUR), 0)).toBe("revoked");
    g.when({ type: "EndRotationGrace", now: at(HOUR + 1) }).then([]);
    g.when({ type: "EndRotationGrace", now: at(2 * HOUR + 5) }).then([
      { type: "ApiKeyRevoked", keyId: "k1", tenantId: "t1", revokedAt: at(2 * HOUR), reason: ROTATED_REASON },
    ]);
    g.when({ type: "RotateApiKey", successorKeyId: "k3", graceMs: HOUR, inactivityMs: 0, now: at(HOUR + 1) }).rejectedWith(
      "FAILED_PRECONDITION",
    );
  });

  it("a zero grace revokes the old key at once", () => {
    given(issued)
      .when({ type: "RotateApiKey", successorKeyId: "k2", graceMs: 0, inactivityMs: 0, now: at(HOUR) })
      .then([
        { type: "ApiKeyRotated", keyId: "k1", tenantId: "t1", successorKeyId: "k2", graceEndsAt: at(HOUR), at: at(HOUR) },
        { type: "ApiKeyRevoked", keyId: "k1", tenantId: "t1", revokedAt: at(HOUR), reason: ROTATED_REASON },
      ]);
  });

  it("turns inactive after the limit and only an inactive key is reactivated", () => {
    const g = given(issued);
    expect(keyStatus(g.state!, at(DAY - 1), DAY)).toBe("active");
    expect(keyStatus(g.state!, at(DAY), DAY)).toBe("inactive");
    expect(keyStatus(g.state!, at(10 * DAY), 0)).toBe("active");
    g.when({ type: "ReactivateApiKey", inactivityMs: DAY, now: at(HOUR) }).then([]);
    const reactivated: ApiKeyEvent = { type: "ApiKeyReactivated", keyId: "k1", tenantId: "t1", at: at(2 * DAY) };
    g.when({ type: "ReactivateApiKey", inactivityMs: DAY, now: at(2 * DAY) }).then([reactivated]);
    expect(keyStatus(given(issued, reactivated).state!, at(2 * DAY + HOUR), DAY)).toBe("active");
  });

  it("expired and revoked keys cannot be reactivated or re-roled", () => {
    const expiring = { ...issued, expiresAt: at(HOUR) } as ApiKeyEvent;
    given(expiring)
      .when({ type: "ReactivateApiKey", inactivityMs: 0, now: at(2 * HOUR) })
      .rejectedWith("FAILED_PRECONDITION");
    const revoked: ApiKeyEvent = { type: "ApiKeyRevoked", keyId: "k1", tenantId: "t1", revokedAt: at(1), reason: "" };
    given(issued, revoked)
      .when({ type: "ChangeApiKeyRole", role: "admin", inactivityMs: 0, now: at(2) })
      .rejectedWith("FAILED_PRECONDITION");
  });

  it("changes a role once, and platform keys have none", () => {
    given(issued)
      .when({ type: "ChangeApiKeyRole", role: "admin", inactivityMs: 0, now: at(1) })
      .then([{ type: "ApiKeyRoleChanged", keyId: "k1", tenantId: "t1", previousRole: "editor", role: "admin", at: at(1) }]);
    given(issued)
      .when({ type: "ChangeApiKeyRole", role: "editor", inactivityMs: 0, now: at(1) })
      .then([]);
    const platform = { ...issued, kind: "platform", tenantId: "", role: undefined } as ApiKeyEvent;
    given(platform)
      .when({ type: "ChangeApiKeyRole", role: "admin", inactivityMs: 0, now: at(1) })
      .rejectedWith("FAILED_PRECONDITION");
  });

  it("status precedence: revoked > expired > inactive > rotating", () => {
    const s = given({ ...issued, expiresAt: at(DAY) } as ApiKeyEvent).state!;
    expect(keyStatus({ ...s, revokedAt: at(1) }, at(2 * DAY), DAY)).toBe("revoked");
    expect(keyStatus(s, at(2 * DAY), HOUR)).toBe("expired");
    expect(keyStatus({ ...s, graceEndsAt: at(20 * HOUR) }, at(2 * HOUR), HOUR)).toBe("inactive");
    expect(keyStatus({ ...s, graceEndsAt: at(20 * HOUR) }, at(2 * HOUR), 0)).toBe("rotating");
  });
});
