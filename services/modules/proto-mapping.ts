import { create, fromJson, type JsonObject } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  type Module,
  ModuleManifestSchema,
  ModuleSchema,
  type ModuleVersion,
  ModuleVersionSchema,
  ModuleVersionStatus,
} from "../../gen/nexus/modules/v1/module_pb.js";
import { type Listing, ListingSchema } from "../../gen/nexus/modules/v1/modules_service_pb.js";
import type { ListingRow } from "./adapters/marketplace.js";
import type { ModuleState, VersionRecord, VersionStatus } from "./domain/module.js";

const STATUS: Record<VersionStatus, ModuleVersionStatus> = {
  TESTS_FAILED: ModuleVersionStatus.TESTS_FAILED,
  PENDING_REVIEW: ModuleVersionStatus.PENDING_REVIEW,
  APPROVED: ModuleVersionStatus.APPROVED,
  REJECTED: ModuleVersionStatus.REJECTED,
};

const ts = (iso: string) => (iso ? timestampFromDate(new Date(iso)) : undefined);

/** A stored version as the API shows it; `withCode` false leaves the code out (lists). */
export function versionMessage(name: string, v: VersionRecord, withCode: boolean): ModuleVersion {
  const submittedAt = ts(v.submittedAt);
  const reviewedAt = ts(v.reviewedAt);
  return create(ModuleVersionSchema, {
    name,
    version: v.version,
    manifest: fromJson(ModuleManifestSchema, v.manifest as JsonObject),
    code: withCode ? v.code : "",
    status: STATUS[v.status],
    testResults: v.testResults,
    reviewFeedback: v.feedback,
    reviewedBy: v.reviewedBy,
    submittedBy: v.submittedBy,
    codeSha256: v.codeSha256,
    ...(submittedAt ? { submittedAt } : {}),
    ...(reviewedAt ? { reviewedAt } : {}),
  });
}

/** A stored module as the API shows it. */
export function moduleMessage(m: ModuleState, withCode: boolean): Module {
  const activatedAt = ts(m.activatedAt);
  return create(ModuleSchema, {
    name: m.name,
    activeVersion: m.activeVersion,
    versions: m.versions.map((v) => versionMessage(m.name, v, withCode)),
    ...(activatedAt ? { activatedAt } : {}),
  });
}

/** A listing row as the catalogue shows it (no code). */
export function listingMessage(row: ListingRow): Listing {
  const s = row.state;
  const manifest = fromJson(ModuleManifestSchema, s.manifest as JsonObject);
  return create(ListingSchema, {
    listingId: s.listingId,
    name: s.name,
    version: s.version,
    description: manifest.description,
    summary: s.summary,
    license: s.license,
    priceMicrosPerCall: BigInt(s.priceMicrosPerCall),
    creator: s.creator,
    installCount: BigInt(row.installCount),
    ratingAverage: row.ratingCount === 0 ? 0 : Math.round((row.ratingSum / row.ratingCount) * 100) / 100,
    ratingCount: BigInt(row.ratingCount),
    tools: manifest.tools.map((t) => t.name),
    publishedAt: timestampFromDate(new Date(s.publishedAt)),
    status: s.status,
    reviewFeedback: s.reviewFeedback,
  });
}
