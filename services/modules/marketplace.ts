import { randomBytes } from "node:crypto";
import { RunOutcome, UsageRecordedSchema } from "../../gen/nexus/events/v1/metering_events_pb.js";
import { executeCommand, executeInTransaction } from "../kernel/commands/index.js";
import type { Database } from "../kernel/db/ports.js";
import { domainError } from "../kernel/errors.js";
import type { EventHandler } from "../kernel/events/ports.js";
import { payloadOf } from "../kernel/events/protobuf-event.js";
import {
  type CataloguePosition,
  type ListingRow,
  listingAggregate,
  listingOf,
  readListing,
  recordRevenue,
  revenueOf,
  searchListings,
} from "./adapters/marketplace.js";
import { moduleAggregate, readModule } from "./adapters/postgres.js";
import { revenueSplit } from "./domain/listing.js";
import type { ModuleState, VersionRecord } from "./domain/module.js";
import type { Actor } from "./modules-application.js";

/** The revenue ledger's consumer (durable name) and the subject it reads: metering's usage records. */
export const REVENUE_CONSUMER = "modules-revenue-from-metering";
export const REVENUE_SUBJECT = "metering.usage_recorded";

/**
 * The marketplace (REQ-025..027): a tenant admin publishes an approved version with a license
 * and a price per call; a platform operator approves or rejects the listing; every tenant browses and searches the catalogue (most installed
 * first, paged); an admin installs a listing (an approved, active version in the installing
 * tenant, reviewed by that admin) and the tenant may rate it; each paid call of an installed
 * version made in a Run is metered (UsageRecorded carries the listing), and the revenue ledger
 * splits it 85/15 between the creator and the platform, once per call.
 */
export class Marketplace {
  constructor(private readonly deps: { db: Database; clock: () => Date }) {}

  /** Publishes an approved version of the actor's module. */
  async publish(
    actor: Actor & { tenantSlug: string },
    req: { name: string; version: string; license: string; priceMicrosPerCall: number; summary: string },
  ): Promise<ListingRow> {
    const module = await readModule(this.deps.db, { tenantId: actor.tenantId, name: req.name });
    const v = module?.versions.find((x) => x.version === req.version);
    if (!v) throw domainError("NOT_FOUND", `module ${req.name} has no version ${req.version}`, { module: req.name, version: req.version });
    if (v.status !== "APPROVED") {
      throw domainError("FAILED_PRECONDITION", `only approved versions can be published; ${req.name}@${req.version} is ${v.status}`, {
        status: v.status,
      });
    }
    if (v.source)
      throw domainError(
        "FAILED_PRECONDITION",
        `${req.name}@${req.version} was installed from the marketplace; only its creator publishes it`,
        {},
      );
    const existing = await listingOf(this.deps.db, actor.tenantId, req.name, req.version);
    if (existing)
      throw domainError("ALREADY_EXISTS", `${req.name}@${req.version} is already published as ${existing}`, { listing_id: existing });
    const listingId = `lst_${randomBytes(10).toString("hex")}`;
    await executeCommand(
      this.deps.db,
      listingAggregate,
      listingId,
      {
        type: "PublishListing",
        listing: {
          listingId,
          creatorTenantId: actor.tenantId,
          creator: actor.tenantSlug,
          name: req.name,
          version: req.version,
          manifest: v.manifest,
          code: v.code,
          codeSha256: v.codeSha256,
          license: req.license,
          priceMicrosPerCall: req.priceMicrosPerCall,
          summary: req.summary,
          publishedAt: this.deps.clock().toISOString(),
        },
      },
      { metadata: { tenantId: actor.tenantId, actor: actor.keyId } },
    );
    return (await readListing(this.deps.db, listingId))!;
  }

  /** A platform operator's verdict on a listing. */
  async review(reviewerKeyId: string, listingId: string, approve: boolean, feedback: string): Promise<ListingRow> {
    await executeCommand(
      this.deps.db,
      listingAggregate,
      listingId,
      { type: "ReviewListing", approve, feedback, reviewer: reviewerKeyId },
      { metadata: { actor: reviewerKeyId } },
    );
    return (await readListing(this.deps.db, listingId))!;
  }

  /** One page of the catalogue (approved listings only). */
  browse(query: string, after: CataloguePosition | undefined, limit: number): Promise<ListingRow[]> {
    const words = query
      .toLowerCase()
      .split(/\s+/)
      .filter((w) => w !== "")
      .slice(0, 10);
    return searchListings(this.deps.db, words, after, limit);
  }

  /**
   * Installs a listing into the actor's tenant, in one transaction: the install on the
   * listing, the version (approved by the installing admin, with the listing as its source)
   * and its activation on the tenant's module of the same name.
   */
  async install(actor: Actor, listingId: string): Promise<ModuleState> {
    const at = this.deps.clock().toISOString();
    const metadata = { tenantId: actor.tenantId, actor: actor.keyId };
    return this.deps.db.transaction(async (tx) => {
      const { state: listing } = await executeInTransaction(
        tx,
        listingAggregate,
        listingId,
        { type: "InstallListing", tenantId: actor.tenantId },
        { metadata },
      );
      if (!listing) throw domainError("NOT_FOUND", `no listing ${listingId}`, { listing_id: listingId });
      const record: VersionRecord = {
        version: listing.version,
        manifest: listing.manifest,
        code: listing.code,
        codeSha256: listing.codeSha256,
        status: "APPROVED",
        testResults: [],
        submittedBy: actor.keyId,
        submittedAt: at,
        reviewedBy: actor.keyId,
        reviewedAt: at,
        feedback: `installed from marketplace listing ${listingId} (${listing.creator}, ${listing.license})`,
        source: { listingId, creatorTenantId: listing.creatorTenantId, priceMicrosPerCall: listing.priceMicrosPerCall },
      };
      const key = { tenantId: actor.tenantId, name: listing.name };
      await executeInTransaction(tx, moduleAggregate, key, { type: "SubmitVersion", record }, { metadata });
      const r = await executeInTransaction(
        tx,
        moduleAggregate,
        key,
        { type: "ActivateVersion", version: listing.version, at },
        { metadata },
      );
      return r.state!;
    });
  }

  /** Rates a listing the actor's tenant installed. */
  async rate(actor: Actor, listingId: string, stars: number): Promise<ListingRow> {
    await executeCommand(
      this.deps.db,
      listingAggregate,
      listingId,
      { type: "RateListing", tenantId: actor.tenantId, stars },
      { metadata: { tenantId: actor.tenantId, actor: actor.keyId } },
    );
    return (await readListing(this.deps.db, listingId))!;
  }

  /** Revenue per listing of the actor's tenant. */
  revenue(tenantId: string) {
    return revenueOf(this.deps.db, tenantId);
  }
}

/**
 * The revenue ledger's consumer, fed by metering: each UsageRecorded lists the run's
 * successful module tool calls with the marketplace listing each version was installed from;
 * every call that ran an installed, priced listing (not a cached result, not a failed run,
 * not the creator's own tenant) becomes one ledger row at the listing's price, split 85/15.
 * Rows are keyed by `<event id>/<call index>`, so a redelivered event changes nothing.
 */
export function revenueLedgerHandler(): EventHandler {
  return async (event, tx) => {
    if (event.type !== UsageRecordedSchema.typeName) return;
    const p = payloadOf(UsageRecordedSchema, event);
    if (p.outcome === RunOutcome.FAILED) return;
    for (const [index, call] of p.toolCallUsage.entries()) {
      if (!call.listingId || call.cached) continue;
      const listing = (await readListing(tx, call.listingId))?.state;
      if (!listing || listing.priceMicrosPerCall <= 0 || listing.creatorTenantId === p.tenantId) continue;
      const split = revenueSplit(listing.priceMicrosPerCall);
      await recordRevenue(tx, {
        eventId: `${event.eventId}/${index}`,
        listingId: call.listingId,
        creatorTenantId: listing.creatorTenantId,
        consumerTenantId: p.tenantId,
        gross: listing.priceMicrosPerCall,
        creator: split.creator,
        platform: split.platform,
      });
    }
  };
}
