import { existsSync } from "node:fs";
import type { DescMessage, DescService, MessageInitShape } from "@bufbuild/protobuf";
import { create } from "@bufbuild/protobuf";
import type { ValidationResult } from "@bufbuild/protovalidate";
import { createValidator } from "@bufbuild/protovalidate";
import { file_buf_validate_validate } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { describe, expect, it } from "vitest";
import { file_nexus_agent_v1_agent_service, RunRequestSchema } from "../gen/nexus/agent/v1/agent_service_pb.js";
import { file_nexus_audit_v1_audit_service, ListAuditEventsRequestSchema } from "../gen/nexus/audit/v1/audit_service_pb.js";
import {
  CreateApiKeyRequestSchema,
  CreateTenantRequestSchema,
  file_nexus_auth_v1_auth_service,
  GetTenantRequestSchema,
  SetEntitlementOverridesRequestSchema,
} from "../gen/nexus/auth/v1/auth_service_pb.js";
import type { Plan } from "../gen/nexus/auth/v1/tenant_pb.js";
import { file_nexus_events_v1_agent_events } from "../gen/nexus/events/v1/agent_events_pb.js";
import { file_nexus_events_v1_auth_events } from "../gen/nexus/events/v1/auth_events_pb.js";
import { EventEnvelopeSchema, file_nexus_events_v1_envelope } from "../gen/nexus/events/v1/envelope_pb.js";
import { file_nexus_events_v1_eventstore_events } from "../gen/nexus/events/v1/eventstore_events_pb.js";
import { file_nexus_events_v1_governance_events } from "../gen/nexus/events/v1/governance_events_pb.js";
import { file_nexus_events_v1_ingestion_events } from "../gen/nexus/events/v1/ingestion_events_pb.js";
import { file_nexus_events_v1_metering_events } from "../gen/nexus/events/v1/metering_events_pb.js";
import { file_nexus_events_v1_retrieval_events } from "../gen/nexus/events/v1/retrieval_events_pb.js";
import { file_nexus_eventstore_v1_event_store_service } from "../gen/nexus/eventstore/v1/event_store_service_pb.js";
import { file_nexus_governance_v1_governance_service } from "../gen/nexus/governance/v1/governance_service_pb.js";
import { file_nexus_identity_v1_identity_service } from "../gen/nexus/identity/v1/identity_service_pb.js";
import {
  file_nexus_ingestion_v1_ingestion_service,
  IngestTextRequestSchema,
  ReindexDocumentRequestSchema,
  UploadDocumentRequestSchema,
} from "../gen/nexus/ingestion/v1/ingestion_service_pb.js";
import {
  file_nexus_metering_v1_metering_service,
  GetUsageHistoryRequestSchema,
  SetQuotaRequestSchema,
} from "../gen/nexus/metering/v1/metering_service_pb.js";
import {
  file_nexus_retrieval_v1_retrieval_service,
  SearchRequestSchema,
  UpdateCorpusRequestSchema,
} from "../gen/nexus/retrieval/v1/retrieval_service_pb.js";

/** The v1 surface other issues implement: service → rpc → streaming kind. */
const SURFACE: Record<string, Record<string, "unary" | "server_streaming" | "client_streaming">> = {
  "nexus.auth.v1.AuthService": {
    CreateTenant: "unary",
    GetTenant: "unary",
    GetTenantAt: "unary",
    ListTenants: "unary",
    SuspendTenant: "unary",
    ResumeTenant: "unary",
    SetPlan: "unary",
    SetEntitlementOverrides: "unary",
    UpdateTenant: "unary",
    CreateApiKey: "unary",
    ListApiKeys: "unary",
    GetApiKey: "unary",
    RevokeApiKey: "unary",
    RotateApiKey: "unary",
    ReactivateApiKey: "unary",
    SetApiKeyRole: "unary",
    Authenticate: "unary",
    WhoAmI: "unary",
  },
  "nexus.metering.v1.MeteringService": {
    CheckQuota: "unary",
    CommitQuota: "unary",
    ReleaseQuota: "unary",
    GetUsageSummary: "unary",
    GetUsageHistory: "unary",
    GetQuota: "unary",
    SetQuota: "unary",
  },
  "nexus.ingestion.v1.IngestionService": {
    IngestText: "unary",
    UploadDocument: "client_streaming",
    UploadFile: "unary",
    GetDocument: "unary",
    ListDocuments: "unary",
    WatchDocument: "server_streaming",
    ReindexDocument: "unary",
    DeleteDocument: "unary",
    ListDeadLetters: "unary",
    ReplayDeadLetter: "unary",
  },
  "nexus.retrieval.v1.RetrievalService": {
    CreateCorpus: "unary",
    GetCorpus: "unary",
    ListCorpora: "unary",
    UpdateCorpus: "unary",
    DeleteCorpus: "unary",
    Search: "unary",
    GetDocumentText: "unary",
    SetDocumentAccess: "unary",
    GetDocumentAccess: "unary",
    SetDocumentAccessSettings: "unary",
    SavePolicy: "unary",
    SetPolicyEnabled: "unary",
    DeletePolicy: "unary",
    ListPolicies: "unary",
    SetLabelRules: "unary",
    SimulatePolicy: "unary",
  },
  "nexus.governance.v1.GovernanceService": {
    PlaceLegalHold: "unary",
    ListLegalHolds: "unary",
    ReleaseLegalHold: "unary",
    SetRetentionPolicy: "unary",
    ClearRetentionPolicy: "unary",
    ListRetentionPolicies: "unary",
    ListRetentionReports: "unary",
    CreateDataSubjectRequest: "unary",
    ApproveDataSubjectRequest: "unary",
    RetryDataSubjectRequest: "unary",
    GetDataSubjectRequest: "unary",
    ListDataSubjectRequests: "unary",
    DownloadDataSubjectArchive: "unary",
    GetGovernanceSettings: "unary",
    SetGovernanceSettings: "unary",
  },
  "nexus.identity.v1.IdentityService": {
    AddMember: "unary",
    GetMember: "unary",
    ListMembers: "unary",
    SetMemberRole: "unary",
    RemoveMember: "unary",
    SetPlatformOperator: "unary",
    SetIdentityProvider: "unary",
    GetIdentityProvider: "unary",
    RotateScimToken: "unary",
    GetScimToken: "unary",
    RevokeScimToken: "unary",
  },
  "nexus.agent.v1.AgentService": {
    Run: "server_streaming",
    CancelRun: "unary",
    WatchRun: "server_streaming",
    GetSession: "unary",
    ListSessions: "unary",
    DeleteSession: "unary",
  },
  "nexus.audit.v1.AuditService": {
    ListAuditEvents: "unary",
    ExportAuditEvents: "server_streaming",
    VerifyAuditChain: "unary",
  },
  "nexus.eventstore.v1.EventStoreService": {
    WatchEvents: "server_streaming",
    ListEventTypes: "unary",
    ReadStreamHistory: "unary",
    GetSaga: "unary",
    ListSagas: "unary",
    StartTenantOffboarding: "unary",
  },
};

const SERVICE_FILES = [
  file_nexus_auth_v1_auth_service,
  file_nexus_metering_v1_metering_service,
  file_nexus_ingestion_v1_ingestion_service,
  file_nexus_retrieval_v1_retrieval_service,
  file_nexus_agent_v1_agent_service,
  file_nexus_audit_v1_audit_service,
  file_nexus_eventstore_v1_event_store_service,
  file_nexus_identity_v1_identity_service,
  file_nexus_governance_v1_governance_service,
];

const EVENT_FILES = [
  file_nexus_events_v1_envelope,
  file_nexus_events_v1_auth_events,
  file_nexus_events_v1_retrieval_events,
  file_nexus_events_v1_ingestion_events,
  file_nexus_events_v1_agent_events,
  file_nexus_events_v1_metering_events,
  file_nexus_events_v1_eventstore_events,
  file_nexus_events_v1_governance_events,
];

const services: DescService[] = SERVICE_FILES.flatMap((f) => f.services);
const validator = createValidator();

function validate<Desc extends DescMessage>(schema: Desc, init: MessageInitShape<Desc>): ValidationResult {
  return validator.validate(schema, create(schema, init));
}

/** Rule ids (or rule paths for standard rules) of the violations, for readable asserts. */
function violations(result: ValidationResult): string[] {
  if (result.kind === "error") throw result.error;
  if (result.kind === "valid") return [];
  return result.violations.map((v) => {
    const path = v.field
      .map((p) => (p.kind === "list_sub" ? `[${p.index}]` : p.kind === "map_sub" ? `[${String(p.key)}]` : `.${p.name}`))
      .join("")
      .replace(/^\./, "");
    return `${path}: ${v.ruleId}`;
  });
}

describe("contracts: the v1 surface", () => {
  it("defines exactly the services and RPCs the issues implement, with their streaming kinds", () => {
    const actual = Object.fromEntries(services.map((s) => [s.typeName, Object.fromEntries(s.methods.map((m) => [m.name, m.methodKind]))]));
    expect(actual).toEqual(SURFACE);
  });

  it("names every request and response after its rpc (buf STANDARD)", () => {
    // WatchRun streams the very events of Run (a client applies both alike; buf:lint:ignore in the proto).
    const sharedResponses: Record<string, string> = { "nexus.agent.v1.AgentService/WatchRun": "RunResponse" };
    for (const service of services) {
      for (const method of service.methods) {
        expect(method.input.name, service.typeName).toBe(`${method.name}Request`);
        const shared = sharedResponses[`${service.typeName}/${method.name}`];
        expect(method.output.name, service.typeName).toBe(shared ?? `${method.name}Response`);
      }
    }
  });

  it("has one past-tense payload per domain event, and the envelope", () => {
    const names = EVENT_FILES.flatMap((f) => f.messages.map((m) => m.name));
    for (const event of [
      "TenantCreated",
      "TenantSuspended",
      "TenantResumed",
      "PlanChanged",
      "TenantDisplayNameChanged",
      "ApiKeyIssued",
      "ApiKeyRotated",
      "ApiKeyRevoked",
      "ApiKeyRoleChanged",
      "AccessDenied",
      "RbacForbidden",
      "CorpusCreated",
      "CorpusUpdated",
      "CorpusDeleted",
      "DocumentQueued",
      "DocumentIngested",
      "DocumentFailed",
      "DocumentDeleted",
      "RunStarted",
      "RunCompleted",
      "RunFailed",
      "UsageRecorded",
      "UsageRecordBackfilled",
      "UsageRecordsPurged",
      "QuotaSoftCapReached",
      "QuotaHardCapBlocked",
      "QuotaOverage",
      "EventEnvelope",
    ]) {
      expect(names, event).toContain(event);
    }
    expect(EventEnvelopeSchema.field.payload.message?.typeName).toBe("google.protobuf.Any");
  });

  it("uses protovalidate's own descriptor of buf/validate (imports rewritten, no local copy)", () => {
    for (const file of SERVICE_FILES) {
      expect(file.dependencies, file.name).toContain(file_buf_validate_validate);
    }
    expect(existsSync(new URL("../gen/buf", import.meta.url))).toBe(false);
  });

  it("evaluates every request's rules on an empty request without a runtime error", () => {
    // A CEL rule that throws (instead of reporting a violation) would surface as INTERNAL
    // for bad input; every request must validate to "valid" or "invalid", never "error".
    for (const service of services) {
      for (const method of service.methods) {
        const result = validator.validate(method.input, create(method.input));
        expect(result.kind, `${service.typeName}/${method.name}: ${result.kind === "error" ? String(result.error) : ""}`).not.toBe("error");
      }
    }
  });
});

describe("contracts: validation rules", () => {
  it("bounds Search top_k to 1..50 and accepts a plain search", () => {
    expect(violations(validate(SearchRequestSchema, { corpusId: "c1", query: "rotate a key", topK: 5 }))).toEqual([]);
    expect(violations(validate(SearchRequestSchema, { corpusId: "c1", query: "rotate a key" }))).toEqual([]);
    expect(violations(validate(SearchRequestSchema, { corpusId: "c1", query: "q", topK: 51 }))).toEqual(["top_k: uint32.gte_lte"]);
    expect(violations(validate(SearchRequestSchema, { corpusId: "c1", query: "q", topK: 0 }))).toEqual(["top_k: uint32.gte_lte"]);
    expect(violations(validate(SearchRequestSchema, { corpusId: "c1", query: "" }))).toEqual(["query: string.min_len"]);
  });

  it("bounds Run top_k the same way and requires a corpus and a message", () => {
    expect(violations(validate(RunRequestSchema, { corpusId: "c1", message: "hi", topK: 50 }))).toEqual([]);
    expect(violations(validate(RunRequestSchema, { corpusId: "c1", message: "hi", topK: 51 }))).toEqual(["top_k: uint32.gte_lte"]);
    expect(violations(validate(RunRequestSchema, {}))).toEqual([
      "corpus_id: string.min_len",
      "corpus_id: string.pattern",
      "message: string.min_len",
    ]);
  });

  it("rejects a reindex whose overlap is not smaller than its chunk size, defaults included", () => {
    expect(violations(validate(ReindexDocumentRequestSchema, { documentId: "doc-1", chunkSize: 800, chunkOverlap: 100 }))).toEqual([]);
    expect(violations(validate(ReindexDocumentRequestSchema, { documentId: "doc-1" }))).toEqual([]);
    expect(violations(validate(ReindexDocumentRequestSchema, { documentId: "doc-1", chunkSize: 500, chunkOverlap: 500 }))).toEqual([
      ": reindex.overlap_lt_size",
    ]);
    // Overlap alone is checked against the default size 1200.
    expect(violations(validate(ReindexDocumentRequestSchema, { documentId: "doc-1", chunkOverlap: 1200 }))).toEqual([
      ": reindex.overlap_lt_size",
    ]);
    // Overlap 0 is a real value (no overlap), not "unset".
    expect(violations(validate(ReindexDocumentRequestSchema, { documentId: "doc-1", chunkSize: 100, chunkOverlap: 0 }))).toEqual([]);
  });

  it("checks ingest chunking the same way", () => {
    expect(violations(validate(IngestTextRequestSchema, { corpusId: "c1", text: "hello" }))).toEqual([]);
    expect(violations(validate(IngestTextRequestSchema, { corpusId: "c1", text: "hello", chunking: { chunkSize: 200 } }))).toEqual([]);
    expect(violations(validate(IngestTextRequestSchema, { corpusId: "c1", text: "hello", chunking: { chunkSize: 140 } }))).toEqual([
      "chunking: chunking.overlap_lt_size",
    ]);
    expect(violations(validate(IngestTextRequestSchema, { corpusId: "c1", text: "hello", mediaType: "image/png" }))).toEqual([
      "media_type: string.in",
    ]);
  });

  it("requires a DNS-label tenant slug, a display name and a plan", () => {
    expect(violations(validate(CreateTenantRequestSchema, { slug: "acme-research", displayName: "Acme", plan: 2 }))).toEqual([]);
    expect(violations(validate(CreateTenantRequestSchema, { slug: "", displayName: "Acme", plan: 2 }))).toEqual([
      "slug: string.min_len",
      "slug: string.pattern",
    ]);
    expect(violations(validate(CreateTenantRequestSchema, { slug: "Acme_", displayName: "Acme", plan: 2 }))).toEqual([
      "slug: string.pattern",
    ]);
    expect(violations(validate(CreateTenantRequestSchema, { slug: "acme", displayName: "", plan: 0 }))).toEqual([
      "display_name: string.min_len",
      "plan: enum.not_in",
    ]);
    expect(violations(validate(CreateTenantRequestSchema, { slug: "acme", displayName: "Acme", plan: 9 as Plan }))).toEqual([
      "plan: enum.defined_only",
    ]);
  });

  it("requires exactly one tenant selector", () => {
    expect(violations(validate(GetTenantRequestSchema, { selector: { case: "slug", value: "acme" } }))).toEqual([]);
    expect(violations(validate(GetTenantRequestSchema, {}))).toEqual(["selector: required"]);
  });

  it("ties API key roles to key kinds", () => {
    expect(violations(validate(CreateApiKeyRequestSchema, { name: "ci-bot", role: 3 }))).toEqual([]);
    expect(violations(validate(CreateApiKeyRequestSchema, { name: "ops", platformKey: true }))).toEqual([]);
    expect(violations(validate(CreateApiKeyRequestSchema, { name: "ci-bot" }))).toEqual([": api_key.role_matches_kind"]);
    expect(violations(validate(CreateApiKeyRequestSchema, { name: "ops", platformKey: true, role: 1 }))).toEqual([
      ": api_key.role_matches_kind",
    ]);
  });

  it("refuses contradictory entitlement overrides", () => {
    const result = validate(SetEntitlementOverridesRequestSchema, {
      tenantId: "t1",
      overrides: {
        features: [{ featureKey: "feature.tts", enabled: true }, { featureKey: "feature.tts" }],
        monthlyRunAllowance: 10n,
        unlimitedRuns: true,
      },
    });
    expect(violations(result)).toEqual([
      "overrides.features: entitlements.features.unique_keys",
      "overrides: entitlements.run_allowance.exclusive",
    ]);
    expect(
      violations(validate(SetEntitlementOverridesRequestSchema, { tenantId: "t1", overrides: { features: [{ featureKey: "tts" }] } })),
    ).toEqual(["overrides.features[0].feature_key: string.pattern"]);
  });

  it("checks quota settings: soft cap ratio in (0, 1], daily not above monthly", () => {
    expect(
      violations(validate(SetQuotaRequestSchema, { tenantId: "t1", dailyRunsLimit: 10n, monthlyRunsLimit: 100n, softCapRatio: 0.8 })),
    ).toEqual([]);
    expect(violations(validate(SetQuotaRequestSchema, { tenantId: "t1", softCapRatio: 0 }))).toEqual([
      "soft_cap_ratio: quota.soft_cap_ratio.range",
    ]);
    expect(violations(validate(SetQuotaRequestSchema, { tenantId: "t1", softCapRatio: 1.01 }))).toEqual([
      "soft_cap_ratio: quota.soft_cap_ratio.range",
    ]);
    expect(violations(validate(SetQuotaRequestSchema, { tenantId: "t1", dailyRunsLimit: 11n, monthlyRunsLimit: 10n }))).toEqual([
      ": quota.daily_le_monthly",
    ]);
  });

  it("checks date ranges without failing on malformed dates", () => {
    expect(violations(validate(GetUsageHistoryRequestSchema, { startDate: "2026-01-01", endDate: "2026-01-31" }))).toEqual([]);
    expect(violations(validate(GetUsageHistoryRequestSchema, { startDate: "2026-02-01", endDate: "2026-01-31" }))).toEqual([
      ": usage_history.end_not_before_start",
    ]);
    expect(violations(validate(GetUsageHistoryRequestSchema, { startDate: "yesterday", endDate: "2026-01-31" }))).toEqual([
      "start_date: string.pattern",
    ]);
  });

  it("limits corpus updates to known fields", () => {
    expect(
      violations(validate(UpdateCorpusRequestSchema, { corpusId: "c1", displayName: "Docs", updateMask: { paths: ["display_name"] } })),
    ).toEqual([]);
    expect(violations(validate(UpdateCorpusRequestSchema, { corpusId: "c1", updateMask: { paths: ["tenant_id"] } }))).toEqual([
      "update_mask: field_mask.in",
    ]);
    expect(violations(validate(UpdateCorpusRequestSchema, { corpusId: "c1", updateMask: { paths: ["display_name"] } }))).toEqual([
      ": corpus.display_name.required",
    ]);
  });

  it("requires each upload message to carry a header or a chunk", () => {
    expect(violations(validate(UploadDocumentRequestSchema, { part: { case: "chunk", value: new Uint8Array([1]) } }))).toEqual([]);
    expect(violations(validate(UploadDocumentRequestSchema, {}))).toEqual(["part: required"]);
  });

  it("checks audit filters' time range", () => {
    const at = (seconds: number) => ({ seconds: BigInt(seconds), nanos: 0 });
    expect(violations(validate(ListAuditEventsRequestSchema, { filter: { startTime: at(10), endTime: at(20) } }))).toEqual([]);
    expect(violations(validate(ListAuditEventsRequestSchema, { filter: { startTime: at(20), endTime: at(10) } }))).toEqual([
      "filter: audit.filter.time_range",
    ]);
    expect(violations(validate(ListAuditEventsRequestSchema, { pageSize: 501 }))).toEqual(["page_size: uint32.lte"]);
  });
});
