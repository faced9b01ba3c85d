import { domainError } from "../../kernel/errors.js";

/**
 * The marketplace listing aggregate (REQ-025..027): one published module version of a
 * creator tenant — its manifest and code frozen at publication — with its installs and
 * ratings. Revenue is not state of the listing: the ledger is written from the
 * MarketplaceCallRecorded events (revenue.ts).
 */

/** A listing's state. */
export interface ListingState {
  listingId: string;
  creatorTenantId: string;
  creator: string;
  name: string;
  version: string;
  manifest: Record<string, unknown>;
  code: string;
  codeSha256: string;
  license: string;
  priceMicrosPerCall: number;
  summary: string;
  publishedAt: string;
  /** A platform operator's review: only approved listings are browsable and installable. */
  status: "PENDING_REVIEW" | "APPROVED" | "REJECTED";
  reviewFeedback: string;
  reviewedBy: string;
  /** Tenants that installed it. */
  installedBy: string[];
  /** Stars by rating tenant. */
  ratings: Record<string, number>;
}

// ---- Events ----

/** A version was published. */
export interface ListingPublished {
  type: "ListingPublished";
  listing: Omit<ListingState, "installedBy" | "ratings" | "status" | "reviewFeedback" | "reviewedBy">;
}

/** A platform operator reviewed the listing. */
export interface ListingReviewed {
  type: "ListingReviewed";
  approved: boolean;
  feedback: string;
  reviewer: string;
}

/** A tenant installed the listing. */
export interface ListingInstalled {
  type: "ListingInstalled";
  tenantId: string;
}

/** A tenant rated the listing. */
export interface ListingRated {
  type: "ListingRated";
  tenantId: string;
  stars: number;
}

/** Every event of a listing. */
export type ListingEvent = ListingPublished | ListingReviewed | ListingInstalled | ListingRated;

/** The state after `event`. */
export function evolveListing(state: ListingState | undefined, event: ListingEvent): ListingState {
  switch (event.type) {
    case "ListingPublished":
      return { ...event.listing, status: "PENDING_REVIEW", reviewFeedback: "", reviewedBy: "", installedBy: [], ratings: {} };
    case "ListingReviewed":
      if (!state) throw new Error("ListingReviewed applied to no listing");
      return { ...state, status: event.approved ? "APPROVED" : "REJECTED", reviewFeedback: event.feedback, reviewedBy: event.reviewer };
    case "ListingInstalled":
      if (!state) throw new Error("ListingInstalled applied to no listing");
      return { ...state, installedBy: [...state.installedBy, event.tenantId] };
    case "ListingRated":
      if (!state) throw new Error("ListingRated applied to no listing");
      return { ...state, ratings: { ...state.ratings, [event.tenantId]: event.stars } };
    default: {
      const _exhaustive: never = event;
      return _exhaustive;
    }
  }
}

// ---- Commands ----

/** Publish a version (the handler checked it is approved). */
export interface PublishListing {
  type: "PublishListing";
  listing: ListingPublished["listing"];
}

/** A platform operator's verdict. */
export interface ReviewListing {
  type: "ReviewListing";
  approve: boolean;
  feedback: string;
  reviewer: string;
}

/** Record a tenant's installation. */
export interface InstallListing {
  type: "InstallListing";
  tenantId: string;
}

/** Record a tenant's rating. */
export interface RateListing {
  type: "RateListing";
  tenantId: string;
  stars: number;
}

/** Every command of a listing. */
export type ListingCommand = PublishListing | ReviewListing | InstallListing | RateListing;

/** The events a command records, or a refusal. */
export function decideListing(command: ListingCommand, state: ListingState | undefined, listingId: string): ListingEvent[] {
  switch (command.type) {
    case "PublishListing":
      if (state)
        throw domainError("ALREADY_EXISTS", `${state.name}@${state.version} is already published as ${listingId}`, {
          listing_id: listingId,
        });
      return [{ type: "ListingPublished", listing: command.listing }];
    case "ReviewListing":
      if (!state) throw domainError("NOT_FOUND", `no listing ${listingId}`, { listing_id: listingId });
      if (state.status !== "PENDING_REVIEW") {
        throw domainError("FAILED_PRECONDITION", `listing ${listingId} was already reviewed (${state.status})`, {
          listing_id: listingId,
          status: state.status,
        });
      }
      if (!command.approve && command.feedback.trim() === "") {
        throw domainError("INVALID_ARGUMENT", "a rejection needs feedback telling the creator what to change", { field: "feedback" });
      }
      return [{ type: "ListingReviewed", approved: command.approve, feedback: command.feedback, reviewer: command.reviewer }];
    case "InstallListing":
      // A listing not approved by a platform operator is not in the catalogue.
      if (state?.status !== "APPROVED") throw domainError("NOT_FOUND", `no listing ${listingId}`, { listing_id: listingId });
      if (state.installedBy.includes(command.tenantId)) {
        throw domainError("ALREADY_EXISTS", `listing ${listingId} is already installed in this tenant`, { listing_id: listingId });
      }
      if (state.creatorTenantId === command.tenantId) {
        throw domainError("FAILED_PRECONDITION", `listing ${listingId} is this tenant's own module: activate it instead`, {
          listing_id: listingId,
        });
      }
      return [{ type: "ListingInstalled", tenantId: command.tenantId }];
    case "RateListing":
      if (!state) throw domainError("NOT_FOUND", `no listing ${listingId}`, { listing_id: listingId });
      if (!state.installedBy.includes(command.tenantId)) {
        throw domainError("FAILED_PRECONDITION", `install listing ${listingId} before rating it`, { listing_id: listingId });
      }
      if (state.ratings[command.tenantId] === command.stars) return [];
      return [{ type: "ListingRated", tenantId: command.tenantId, stars: command.stars }];
    default: {
      const _exhaustive: never = command;
      return _exhaustive;
    }
  }
}

/** The creator's share of a paid call (85 %, rounded down to a micro-unit); the platform keeps the rest. */
export function revenueSplit(grossMicros: number): { creator: number; platform: number } {
  const creator = Math.floor((grossMicros * 85) / 100);
  return { creator, platform: grossMicros - creator };
}
