import { retentionTask, subjectRequestTask } from "../kernel/governance/index.js";
import type { ServiceContext, ServiceParts } from "../kernel/service/index.js";
import { createPostgresAuditStore } from "./adapters/postgres.js";
import { AuditApplication } from "./audit-application.js";
import { AUDIT_TRAIL_CONSUMER, AUDIT_TRAIL_SUBJECT, auditTrailHandler } from "./audit-consumer.js";
import { AuditHandler } from "./audit-handler.js";
import { auditRetention, checkpointVerifier } from "./audit-retention.js";
import { auditRoutes } from "./routes.js";
import { auditSubjectContributor } from "./subject-data.js";

/** The audit trail's parts, with the application and handler inside (tests call them directly). */
export interface AuditParts extends ServiceParts {
  app: AuditApplication;
  handler: AuditHandler;
}

/** Assembles the audit trail: store, application, handler and its durable consumer. */
export function createAuditParts(ctx: ServiceContext): AuditParts {
  const store = createPostgresAuditStore(ctx.db);
  const app = new AuditApplication({
    store,
    extraRedactKeys: ctx.config.auditExtraRedactKeys ?? [],
    clock: ctx.clock,
    logger: ctx.logger,
    checkpointSigned: checkpointVerifier(ctx.keyring),
  });
  const handler = new AuditHandler(app);
  return {
    app,
    handler,
    handlers: [auditRoutes(handler)],
    // The trail keeps the record of an offboarding too: it also takes an offboarded tenant's events.
    consumers: [
      { name: AUDIT_TRAIL_CONSUMER, subject: AUDIT_TRAIL_SUBJECT, handler: auditTrailHandler(app, store), deliverOffboardedTenants: true },
    ],
    // The "audit" part of data-subject requests (docs/governance.md#data-subject-requests).
    tasks: [
      // The tenants' "audit" retention policies: entries removed behind a signed checkpoint.
      retentionTask({ db: ctx.db, targets: [auditRetention(ctx.keyring)], intervalMs: ctx.config.retentionIntervalMs, logger: ctx.logger }),
      subjectRequestTask({
        db: ctx.db,
        keyring: ctx.keyring,
        contributor: auditSubjectContributor(),
        intervalMs: ctx.config.subjectRequestIntervalMs,
        logger: ctx.logger,
      }),
    ],
  };
}
