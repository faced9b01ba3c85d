import { describe, expect, it } from "vitest";
import { applyPatch, indexedEquality, matches, paging, parseFilter, patchOperations, ScimError, scimBoolean } from "./scim.js";

const alice = {
  id: "u1",
  userName: "Alice@Example.com",
  externalId: "00u1ABC",
  active: true,
  name: { givenName: "Alice", familyName: "Doe" },
  emails: [
    { value: "alice@example.com", type: "work", primary: true },
    { value: "alice@home.test", type: "home" },
  ],
  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": { department: "R&D" },
};

const scimErr = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    if (err instanceof ScimError) return { status: err.status, scimType: err.scimType };
    throw err;
  }
  return undefined;
};

describe("SCIM filters", () => {
  it.each([
    ['userName eq "alice@example.com"', true], // userName is not caseExact
    ['USERNAME EQ "ALICE@EXAMPLE.COM"', true], // attribute names and operators any case
    ['externalId eq "00u1abc"', false], // externalId is caseExact
    ['externalId eq "00u1ABC"', true],
    ['userName eq "bob@example.com" or externalId eq "00u1ABC"', true],
    ['userName eq "alice@example.com" and active eq false', false],
    ['userName eq "alice@example.com" and (active eq true or externalId eq "x")', true],
    ['emails[type eq "work" and value co "example"]', true],
    ['emails.value eq "alice@home.test"', true],
    ['emails eq "alice@home.test"', true],
    ['name.givenName sw "Al"', true],
    ["title pr", false],
    ['not (userName eq "alice@example.com")', false],
    ['urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "r&d"', true],
    ['urn:ietf:params:scim:schemas:core:2.0:User:userName eq "alice@example.com"', true],
    ['active eq "True"', false],
  ])("%s → %s", (expression, expected) => {
    expect(matches(parseFilter(expression), alice)).toBe(expected);
  });

  it("refuses a malformed filter as invalidFilter", () => {
    expect(scimErr(() => parseFilter('userName eq "unterminated'))).toEqual({ status: 400, scimType: "invalidFilter" });
  });

  it("finds the equality an index can answer, also inside an and", () => {
    expect(indexedEquality(parseFilter('username eq "a@b.c"'), ["userName", "externalId"])).toEqual({
      attribute: "userName",
      value: "a@b.c",
    });
    expect(indexedEquality(parseFilter('active eq true and externalId eq "x"'), ["userName", "externalId"])).toEqual({
      attribute: "externalId",
      value: "x",
    });
    expect(indexedEquality(parseFilter('userName eq "a" or userName eq "b"'), ["userName"])).toBeUndefined();
  });

  it("reads startIndex and count as RFC 7644 says (1-based, clamped)", () => {
    expect(paging(new URLSearchParams("startIndex=0&count=500"), 200)).toEqual({ startIndex: 1, count: 200 });
    expect(paging(new URLSearchParams("startIndex=3&count=2"), 200)).toEqual({ startIndex: 3, count: 2 });
    expect(paging(new URLSearchParams("count=-1"), 200)).toEqual({ startIndex: 1, count: 0 });
  });
});

describe("SCIM PATCH", () => {
  const patch = (doc: Record<string, unknown>, ...ops: unknown[]) =>
    applyPatch(doc, patchOperations({ schemas: ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], Operations: ops }));

  it("Okta: replace without a path, value {active:false}", () => {
    expect(patch(alice, { op: "replace", value: { active: false } }).active).toBe(false);
  });

  it("Entra ID: capitalised ops, a path, and a boolean sent as a string", () => {
    const out = patch(alice, { op: "Replace", path: "active", value: "False" });
    expect(scimBoolean(out.active, "active")).toBe(false);
  });

  it("Entra ID: dotted keys in a path-less value, sub-attribute paths and value-filter paths", () => {
    const out = patch(
      alice,
      { op: "Replace", value: { displayName: "Alice D.", "name.givenName": "Alicia" } },
      { op: "Replace", path: 'emails[type eq "work"].value', value: "alice.doe@example.com" },
      { op: "Add", path: 'phoneNumbers[type eq "mobile"].value', value: "+1 555" },
      { op: "Replace", path: "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", value: "Sales" },
      { op: "Remove", path: 'emails[type eq "home"]' },
    );
    expect(out.displayName).toBe("Alice D.");
    expect(out.name).toEqual({ givenName: "Alicia", familyName: "Doe" });
    expect(out.emails).toEqual([{ value: "alice.doe@example.com", type: "work", primary: true }]);
    expect(out.phoneNumbers).toEqual([{ type: "mobile", value: "+1 555" }]);
    expect(out["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]).toEqual({ department: "Sales" });
  });

  it("group members: add (deduplicated), remove by filter path (Okta) and by value (Entra ID), replace", () => {
    const group = { displayName: "eng", members: [{ value: "u1" }] };
    const added = patch(group, { op: "add", path: "members", value: [{ value: "u2", display: "Bob" }, { value: "u1" }] });
    expect((added.members as { value: string }[]).map((m) => m.value)).toEqual(["u1", "u2"]);
    expect(patch(added, { op: "remove", path: 'members[value eq "u1"]' }).members).toEqual([{ value: "u2", display: "Bob" }]);
    expect(patch(added, { op: "Remove", path: "members", value: [{ value: "u2" }] }).members).toEqual([{ value: "u1" }]);
    expect(patch(added, { op: "replace", path: "members", value: [{ value: "u3" }] }).members).toEqual([{ value: "u3" }]);
    // Okta renames a group with a path-less replace carrying the id.
    expect(patch(group, { op: "replace", value: { id: "g1", displayName: "engineering" } }).displayName).toBe("engineering");
  });

  it("refuses malformed operations with the right scimType", () => {
    expect(scimErr(() => patchOperations({ Operations: [] }))).toEqual({ status: 400, scimType: "invalidSyntax" });
    expect(scimErr(() => patchOperations({ Operations: [{ op: "move", path: "x" }] }))).toEqual({ status: 400, scimType: "invalidSyntax" });
    expect(scimErr(() => patchOperations({ Operations: [{ op: "remove" }] }))).toEqual({ status: 400, scimType: "noTarget" });
    expect(scimErr(() => patch(alice, { op: "replace", path: "emails[type eq", value: 1 }))).toEqual({
      status: 400,
      scimType: "invalidPath",
    });
    expect(scimErr(() => patch(alice, { op: "replace", value: "x" }))).toEqual({ status: 400, scimType: "invalidValue" });
  });
});
