import { describe, expect, it } from "vitest";
import { errorReason } from "../../kernel/errors.js";
import { decideListing, evolveListing, type ListingCommand, type ListingEvent, type ListingState, revenueSplit } from "./listing.js";

// Table tests of the listing aggregate's decide/evolve and the 85/15 split (pure: no database).

const ID = "lst_1";
const published: Omit<ListingState, "installedBy" | "ratings" | "status" | "reviewFeedback" | "reviewedBy"> = {
  listingId: ID,
  creatorTenantId: "creator",
  creator: "demo",
  name: "stats",
  version: "1.0.0",
  manifest: {},
  code: "",
  codeSha256: "",
  license: "MIT",
  priceMicrosPerCall: 1000,
  summary: "",
  publishedAt: "2026-01-01T00:00:00.000Z",
};

function listing(over: Partial<ListingState> = {}): ListingState {
  return { ...published, status: "APPROVED", reviewFeedback: "", reviewedBy: "op", installedBy: [], ratings: {}, ...over };
}

const review = (approve: boolean, feedback = ""): ListingCommand => ({ type: "ReviewListing", approve, feedback, reviewer: "op" });
const install = (tenantId: string): ListingCommand => ({ type: "InstallListing", tenantId });
const rate = (tenantId: string, stars: number): ListingCommand => ({ type: "RateListing", tenantId, stars });

describe("listing decide: refusals", () => {
  it.each<[string, ListingState | undefined, ListingCommand, string]>([
    ["publishing the same listing twice", listing(), { type: "PublishListing", listing: published }, "ALREADY_EXISTS"],
    ["reviewing a listing that does not exist", undefined, review(true), "NOT_FOUND"],
    ["reviewing an approved listing again", listing(), review(false, "no"), "FAILED_PRECONDITION"],
    ["reviewing a rejected listing again", listing({ status: "REJECTED" }), review(true), "FAILED_PRECONDITION"],
    ["rejecting without feedback", listing({ status: "PENDING_REVIEW" }), review(false, " "), "INVALID_ARGUMENT"],
    ["installing a listing pending review (not in the catalogue)", listing({ status: "PENDING_REVIEW" }), install("buyer"), "NOT_FOUND"],
    ["installing a rejected listing", listing({ status: "REJECTED" }), install("buyer"), "NOT_FOUND"],
    ["installing a listing that does not exist", undefined, install("buyer"), "NOT_FOUND"],
    ["installing twice", listing({ installedBy: ["buyer"] }), install("buyer"), "ALREADY_EXISTS"],
    ["the creator installing its own listing", listing(), install("creator"), "FAILED_PRECONDITION"],
    ["rating without installing", listing(), rate("buyer", 5), "FAILED_PRECONDITION"],
    ["rating a listing that does not exist", undefined, rate("buyer", 5), "NOT_FOUND"],
  ])("refuses %s", (_what, s, command, reason) => {
    let caught: unknown;
    try {
      decideListing(command, s, ID);
    } catch (e) {
      caught = e;
    }
    expect(errorReason(caught)).toBe(reason);
  });
});

describe("listing decide: events", () => {
  it.each<[string, ListingState | undefined, ListingCommand, ListingEvent[]]>([
    ["a publication", undefined, { type: "PublishListing", listing: published }, [{ type: "ListingPublished", listing: published }]],
    [
      "an approval",
      listing({ status: "PENDING_REVIEW" }),
      review(true),
      [{ type: "ListingReviewed", approved: true, feedback: "", reviewer: "op" }],
    ],
    [
      "a rejection with feedback",
      listing({ status: "PENDING_REVIEW" }),
      review(false, "license unclear"),
      [{ type: "ListingReviewed", approved: false, feedback: "license unclear", reviewer: "op" }],
    ],
    ["an install", listing(), install("buyer"), [{ type: "ListingInstalled", tenantId: "buyer" }]],
    ["a rating", listing({ installedBy: ["buyer"] }), rate("buyer", 4), [{ type: "ListingRated", tenantId: "buyer", stars: 4 }]],
    [
      "a new rating replacing the old",
      listing({ installedBy: ["buyer"], ratings: { buyer: 2 } }),
      rate("buyer", 5),
      [{ type: "ListingRated", tenantId: "buyer", stars: 5 }],
    ],
    ["the same rating again (nothing changes)", listing({ installedBy: ["buyer"], ratings: { buyer: 4 } }), rate("buyer", 4), []],
  ])("records %s", (_what, s, command, events) => {
    expect(decideListing(command, s, ID)).toEqual(events);
  });
});

describe("listing evolve", () => {
  it.each<[string, ListingState | undefined, ListingEvent, Partial<ListingState>]>([
    [
      "a publication starts pending review with no installs or ratings",
      undefined,
      { type: "ListingPublished", listing: published },
      { status: "PENDING_REVIEW", installedBy: [], ratings: {}, priceMicrosPerCall: 1000 },
    ],
    [
      "an approval",
      listing({ status: "PENDING_REVIEW" }),
      { type: "ListingReviewed", approved: true, feedback: "fine", reviewer: "op2" },
      { status: "APPROVED", reviewFeedback: "fine", reviewedBy: "op2" },
    ],
    [
      "a rejection",
      listing({ status: "PENDING_REVIEW" }),
      { type: "ListingReviewed", approved: false, feedback: "no", reviewer: "op" },
      { status: "REJECTED" },
    ],
    [
      "an install adds the tenant",
      listing({ installedBy: ["a"] }),
      { type: "ListingInstalled", tenantId: "b" },
      { installedBy: ["a", "b"] },
    ],
    [
      "a rating per tenant, replaced",
      listing({ ratings: { a: 1, b: 3 } }),
      { type: "ListingRated", tenantId: "a", stars: 5 },
      { ratings: { a: 5, b: 3 } },
    ],
  ])("%s", (_what, s, event, expected) => {
    expect(evolveListing(s, event)).toMatchObject(expected);
  });

  it.each<ListingEvent>([
    { type: "ListingReviewed", approved: true, feedback: "", reviewer: "op" },
    { type: "ListingInstalled", tenantId: "b" },
    { type: "ListingRated", tenantId: "b", stars: 1 },
  ])("refuses $type on no listing", (event) => {
    expect(() => evolveListing(undefined, event)).toThrow(/applied to no listing/);
  });
});

describe("revenue split", () => {
  it.each([
    [1000, 850, 150],
    [1, 0, 1],
    [7, 5, 2],
    [100, 85, 15],
    [0, 0, 0],
    [999_999, 849_999, 150_000],
  ])("splits %i micros as %i to the creator and %i to the platform", (gross, creator, platform) => {
    expect(revenueSplit(gross)).toEqual({ creator, platform });
    expect(creator + platform).toBe(gross);
  });
});
