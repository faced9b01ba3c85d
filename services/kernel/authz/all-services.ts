import type { DescService } from "@bufbuild/protobuf";
import { AgentService } from "../../../gen/nexus/agent/v1/agent_service_pb.js";
import { AuditService } from "../../../gen/nexus/audit/v1/audit_service_pb.js";
import { AuthService } from "../../../gen/nexus/auth/v1/auth_service_pb.js";
import { EventStoreService } from "../../../gen/nexus/eventstore/v1/event_store_service_pb.js";
import { GovernanceService } from "../../../gen/nexus/governance/v1/governance_service_pb.js";
import { IdentityService } from "../../../gen/nexus/identity/v1/identity_service_pb.js";
import { IngestionService } from "../../../gen/nexus/ingestion/v1/ingestion_service_pb.js";
import { EdgeService } from "../../../gen/nexus/integration/v1/edge_service_pb.js";
import { IntegrationService } from "../../../gen/nexus/integration/v1/integration_service_pb.js";
import { MeteringService } from "../../../gen/nexus/metering/v1/metering_service_pb.js";
import { ModulesService } from "../../../gen/nexus/modules/v1/modules_service_pb.js";
import { RetrievalService } from "../../../gen/nexus/retrieval/v1/retrieval_service_pb.js";

/**
 * Every Nexus API service, from the generated descriptors: what the permission table must
 * cover, what the isolation tests enumerate, and what docs/security.md lists.
 */
export const NEXUS_SERVICES: readonly DescService[] = Object.freeze([
  AuthService,
  MeteringService,
  IngestionService,
  RetrievalService,
  AgentService,
  AuditService,
  EventStoreService,
  ModulesService,
  IntegrationService,
  IdentityService,
  EdgeService,
  GovernanceService,
]);
