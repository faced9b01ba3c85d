import { randomBytes } from "node:crypto";
import { MarketplaceCallRecordedSchema } from "../../gen/nexus/events/v1/modules_events_pb.js";
import { executeCommand, executeInTransaction, recordFacts } from "../kernel/commands/index.js";
import type { Database } from "../kernel/db/ports.js";
import { domainError } from "../kernel/errors.js";
import type { EventHandler } from "../kernel/events/ports.js";
import { eventOf, payloadOf } from "../kernel/events/protobuf-event.js";
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

/** The revenue ledger's consumer (durable name) and the subject it reads. */
export const REVENUE_CONSUMER = "modules-revenue-ledger";
export const REVENUE_SUBJECT = "modules.marketplace_call_recorded";

/**
 * The marketplace (REQ-025..027): a tenant admin publishes an approved version with a license
 * and a price per call; a platform operator approves or rejects the listing; every tenant browses and searches the catalogue (most installed
 * first, paged); an admin installs a listing (an approved, active version in the installing
 * tenant, reviewed by that admin) and the tenant may rate it; each successful paid call of an
 * installed version records a MarketplaceCallRecorded event, which the revenue ledger splits
 * 85/15 between the creator and the platform, once per event.
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

  /** Records a successful paid call of an installed marketplace version (the ledger's source event). */
  async recordPaidCall(tenantId: string, version: VersionRecord, tool: string): Promise<void> {
    const source = version.source;
    if (!source || source.priceMicrosPerCall <= 0) return;
    await this.deps.db.transaction((tx) =>
      recordFacts(
        tx,
        `module_marketplace_calls-${source.listingId}`,
        [
          eventOf(MarketplaceCallRecordedSchema, {
            tenantId,
            listingId: source.listingId,
            creatorTenantId: source.creatorTenantId,
            priceMicros: BigInt(source.priceMicrosPerCall),
            tool,
          }),
        ],
        { metadata: { tenantId } },
      ),
    );
  }
}

/** The revenue ledger's consumer: each MarketplaceCallRecorded becomes one ledger row, split 85/15. */
export function revenueLedgerHandler(): EventHandler {
  return async (event, tx) => {
    if (event.type !== MarketplaceCallRecordedSchema.typeName) return;
    const p = payloadOf(MarketplaceCallRecordedSchema, event);
    const gross = Number(p.priceMicros);
    const split = revenueSplit(gross);
    await recordRevenue(tx, {
      eventId: event.eventId,
      listingId: p.listingId,
      creatorTenantId: p.creatorTenantId,
      consumerTenantId: p.tenantId,
      gross,
      creator: split.creator,
      platform: split.platform,
    });
  };
}
