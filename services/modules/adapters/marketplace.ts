import {
  ListingInstalledSchema,
  ListingPublishedSchema,
  ListingRatedSchema,
  ListingReviewedSchema,
} from "../../../gen/nexus/events/v1/modules_events_pb.js";
import type { Aggregate } from "../../kernel/commands/index.js";
import type { Queryable } from "../../kernel/db/ports.js";
import { domainError } from "../../kernel/errors.js";
import { eventOf } from "../../kernel/events/protobuf-event.js";
import { decideListing, evolveListing, type ListingCommand, type ListingEvent, type ListingState } from "../domain/listing.js";

/** Event stream of a listing. */
export const listingStreamId = (listingId: string): string => `module_listing-${listingId}`;

const ratingSum = (s: ListingState) => Object.values(s.ratings).reduce((a, b) => a + b, 0);

/** The listing aggregate (key: listing id). */
export const listingAggregate: Aggregate<ListingState, ListingEvent, ListingCommand, string> = {
  streamId: listingStreamId,
  async load(tx, listingId) {
    const r = await tx.query<{ state: ListingState; stream_version: number }>(
      "SELECT state, stream_version FROM modules.listings WHERE listing_id = $1 FOR UPDATE",
      [listingId],
    );
    const row = r.rows[0];
    return row ? { state: row.state, version: row.stream_version } : { state: undefined, version: 0 };
  },
  decide: decideListing,
  evolve: (state, event) => evolveListing(state, event),
  async save(tx, listingId, s, expectedVersion, version) {
    const search = [s.name, s.summary, String(s.manifest.description ?? "")].join(" ").toLowerCase();
    const params = [listingId, version, s.installedBy.length, ratingSum(s), Object.keys(s.ratings).length, JSON.stringify(s)];
    const r =
      expectedVersion === 0
        ? await tx.query(
            `INSERT INTO modules.listings (listing_id, stream_version, install_count, rating_sum, rating_count, state, creator_tenant_id, name, version, search_text)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING`,
            [...params, s.creatorTenantId, s.name, s.version, search],
          )
        : await tx.query(
            `UPDATE modules.listings SET stream_version = $2, install_count = $3, rating_sum = $4, rating_count = $5, state = $6, status = $8
             WHERE listing_id = $1 AND stream_version = $7`,
            [...params, expectedVersion, s.status],
          );
    if (r.rowCount !== 1) {
      throw domainError(
        expectedVersion === 0 ? "ALREADY_EXISTS" : "CONCURRENCY_CONFLICT",
        `listing ${listingId} changed while the command ran`,
        {
          listing_id: listingId,
        },
      );
    }
  },
  toEvent(event, state, listingId) {
    switch (event.type) {
      case "ListingPublished":
        return eventOf(ListingPublishedSchema, {
          tenantId: state.creatorTenantId,
          listingId,
          name: state.name,
          version: state.version,
          license: state.license,
          priceMicrosPerCall: BigInt(state.priceMicrosPerCall),
        });
      case "ListingReviewed":
        return eventOf(ListingReviewedSchema, {
          tenantId: state.creatorTenantId,
          listingId,
          approved: event.approved,
          feedback: event.feedback,
        });
      case "ListingInstalled":
        return eventOf(ListingInstalledSchema, { tenantId: event.tenantId, listingId });
      case "ListingRated":
        return eventOf(ListingRatedSchema, { tenantId: event.tenantId, listingId, stars: event.stars });
      default: {
        const _exhaustive: never = event;
        return _exhaustive;
      }
    }
  },
};

/** A listing row as browsing shows it. */
export interface ListingRow {
  state: ListingState;
  installCount: number;
  ratingSum: number;
  ratingCount: number;
}

/** A listing by id. */
export async function readListing(db: Queryable, listingId: string): Promise<ListingRow | undefined> {
  const r = await db.query<{ state: ListingState; install_count: number; rating_sum: number; rating_count: number }>(
    "SELECT state, install_count, rating_sum, rating_count FROM modules.listings WHERE listing_id = $1",
    [listingId],
  );
  const row = r.rows[0];
  return row ? { state: row.state, installCount: row.install_count, ratingSum: row.rating_sum, ratingCount: row.rating_count } : undefined;
}

/** The listing of a tenant's (module, version), if published. */
export async function listingOf(db: Queryable, tenantId: string, name: string, version: string): Promise<string | undefined> {
  const r = await db.query<{ listing_id: string }>(
    "SELECT listing_id FROM modules.listings WHERE creator_tenant_id = $1 AND name = $2 AND version = $3",
    [tenantId, name, version],
  );
  return r.rows[0]?.listing_id;
}

/** Position of a listing in the catalogue order: most installed first, then by id. */
export interface CataloguePosition {
  installs: number;
  listingId: string;
}

/** One page of listings whose search text contains every word, most installed first. */
export async function searchListings(
  db: Queryable,
  words: readonly string[],
  after: CataloguePosition | undefined,
  limit: number,
): Promise<ListingRow[]> {
  const params: unknown[] = [];
  const where: string[] = ["status = 'APPROVED'"];
  for (const w of words) {
    params.push(`%${w.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
    where.push(`search_text LIKE $${params.length}`);
  }
  if (after) {
    params.push(after.installs, after.listingId);
    where.push(`(install_count < $${params.length - 1} OR (install_count = $${params.length - 1} AND listing_id > $${params.length}))`);
  }
  params.push(limit);
  const r = await db.query<{ state: ListingState; install_count: number; rating_sum: number; rating_count: number }>(
    `SELECT state, install_count, rating_sum, rating_count FROM modules.listings
     WHERE ${where.join(" AND ")} ORDER BY install_count DESC, listing_id LIMIT $${params.length}`,
    params,
  );
  return r.rows.map((row) => ({
    state: row.state,
    installCount: row.install_count,
    ratingSum: row.rating_sum,
    ratingCount: row.rating_count,
  }));
}

/** Writes one paid call to the ledger (once per event id). */
export async function recordRevenue(
  tx: Queryable,
  row: {
    eventId: string;
    listingId: string;
    creatorTenantId: string;
    consumerTenantId: string;
    gross: number;
    creator: number;
    platform: number;
  },
): Promise<void> {
  await tx.query(
    `INSERT INTO modules.revenue_ledger (event_id, listing_id, creator_tenant_id, consumer_tenant_id, gross_micros, creator_micros, platform_micros)
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (event_id) DO NOTHING`,
    [row.eventId, row.listingId, row.creatorTenantId, row.consumerTenantId, row.gross, row.creator, row.platform],
  );
}

/** Revenue totals per listing of a creator tenant. */
export async function revenueOf(
  db: Queryable,
  creatorTenantId: string,
): Promise<{ listingId: string; name: string; version: string; calls: number; gross: number; creator: number; platform: number }[]> {
  const r = await db.query<{
    listing_id: string;
    name: string;
    version: string;
    calls: string;
    gross: string;
    creator: string;
    platform: string;
  }>(
    `SELECT l.listing_id, l.name, l.version, count(r.event_id) AS calls, COALESCE(sum(r.gross_micros), 0) AS gross,
            COALESCE(sum(r.creator_micros), 0) AS creator, COALESCE(sum(r.platform_micros), 0) AS platform
     FROM modules.listings l LEFT JOIN modules.revenue_ledger r ON r.listing_id = l.listing_id
     WHERE l.creator_tenant_id = $1 GROUP BY l.listing_id, l.name, l.version ORDER BY l.name, l.version`,
    [creatorTenantId],
  );
  return r.rows.map((x) => ({
    listingId: x.listing_id,
    name: x.name,
    version: x.version,
    calls: Number(x.calls),
    gross: Number(x.gross),
    creator: Number(x.creator),
    platform: Number(x.platform),
  }));
}
