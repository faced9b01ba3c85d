import { describe, expect, it } from "vitest";
import { type DocumentAccess, decideDocumentAccess, rolesAtOrBelow } from "./document-access.js";

const key = { tenantId: "t1", documentId: "d1" };
const restricted: DocumentAccess = {
  ...key,
  restricted: true,
  grants: [{ kind: "group", grantee: "finance", expiresAt: undefined }],
  ownerUserId: "u1",
};

describe("document access decisions", () => {
  it("records the first uploader as owner, once, and keeps the owner when grants are replaced", () => {
    expect(decideDocumentAccess({ type: "RecordOwner", userId: "u1" }, undefined, key)).toEqual([
      { type: "DocumentAccessChanged", access: { ...key, restricted: false, grants: [], ownerUserId: "u1" } },
    ]);
    expect(decideDocumentAccess({ type: "RecordOwner", userId: "u2" }, restricted, key)).toEqual([]);
    const [changed] = decideDocumentAccess({ type: "SetDocumentAccess", restricted: true, grants: [] }, restricted, key);
    expect(changed?.access).toEqual({ ...key, restricted: true, grants: [], ownerUserId: "u1" });
  });

  it("records nothing for an unchanged list or an unrestricted document with no grants", () => {
    expect(decideDocumentAccess({ type: "SetDocumentAccess", restricted: true, grants: restricted.grants }, restricted, key)).toEqual([]);
    expect(decideDocumentAccess({ type: "SetDocumentAccess", restricted: false, grants: [] }, undefined, key)).toEqual([]);
  });

  it("folds duplicate grants and ignores a grantee on tenant grants", () => {
    const [e] = decideDocumentAccess(
      {
        type: "SetDocumentAccess",
        restricted: true,
        grants: [
          { kind: "tenant", grantee: "ignored", expiresAt: undefined },
          { kind: "group", grantee: "a", expiresAt: undefined },
          { kind: "group", grantee: "a", expiresAt: undefined },
        ],
      },
      undefined,
      key,
    );
    expect(e?.access.grants.map((g) => `${g.kind}:${g.grantee}`)).toEqual(["group:a", "tenant:"]);
  });

  it("role grants admit that role and stronger ones", () => {
    expect(rolesAtOrBelow("viewer")).toEqual(["viewer"]);
    expect(rolesAtOrBelow("admin")).toEqual(["viewer", "editor", "admin"]);
  });
});
