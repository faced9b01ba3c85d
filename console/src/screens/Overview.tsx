import { useQuery } from "@connectrpc/connect-query";
import { Health, HealthCheckResponse_ServingStatus } from "../../../gen/grpc/health/v1/health_pb.js";
import { AuditOutcome } from "../../../gen/nexus/audit/v1/audit_event_pb.js";
import { AuditService } from "../../../gen/nexus/audit/v1/audit_service_pb.js";
import { IngestionService } from "../../../gen/nexus/ingestion/v1/ingestion_service_pb.js";
import { MeteringService } from "../../../gen/nexus/metering/v1/metering_service_pb.js";
import { Period } from "../../../gen/nexus/metering/v1/quota_pb.js";
import type { Principal } from "../../../services/kernel/context.js";
import { can } from "../can.js";
import { Empty, ErrorBox, Loading, Section, when } from "../ui.js";

/** A bar showing `used` of `limit` (a meter: screen readers announce the value). */
export function Meter({ label, used, limit }: { label: string; used: number; limit: number | undefined }) {
  if (limit === undefined)
    return (
      <p>
        {label}: {used.toLocaleString()} (no limit)
      </p>
    );
  return (
    <div className="meter-row">
      <span>
        {label}: {used.toLocaleString()} of {limit.toLocaleString()}
      </span>
      <meter min={0} max={limit} value={used} low={limit * 0.8} high={limit * 0.95} aria-label={label} />
    </div>
  );
}

export function Overview({ principal }: { principal: Principal }) {
  const health = useQuery(Health.method.list, {});
  const canUsage = can(principal, "/nexus.metering.v1.MeteringService/GetUsageSummary") && principal.kind === "tenant";
  const usage = useQuery(MeteringService.method.getUsageSummary, { period: Period.MONTH }, { enabled: canUsage });
  const canDlq = can(principal, "/nexus.ingestion.v1.IngestionService/ListDeadLetters");
  const dlq = useQuery(IngestionService.method.listDeadLetters, { pageSize: 100 }, { enabled: canDlq });
  const canAudit = can(principal, "/nexus.audit.v1.AuditService/ListAuditEvents");
  const failures = useQuery(
    AuditService.method.listAuditEvents,
    { filter: { outcome: AuditOutcome.FAILURE }, pageSize: 5 },
    { enabled: canAudit },
  );
  const statuses = Object.entries(health.data?.statuses ?? {}).filter(([name]) => name.startsWith("nexus."));
  return (
    <div className="grid">
      <Section title="Service health">
        {health.isPending ? <Loading what="health" /> : null}
        {health.error ? <ErrorBox error={health.error} onRetry={() => void health.refetch()} /> : null}
        {health.data && statuses.length === 0 ? <Empty>No services report health.</Empty> : null}
        <ul className="plain">
          {statuses.map(([name, s]) => {
            const ok = s.status === HealthCheckResponse_ServingStatus.SERVING;
            return (
              <li key={name}>
                <span className={ok ? "dot ok" : "dot bad"} aria-hidden="true" /> {name}: <strong>{ok ? "serving" : "not serving"}</strong>
              </li>
            );
          })}
        </ul>
      </Section>
      {canUsage ? (
        <Section title="This month">
          {usage.isPending ? <Loading what="usage" /> : null}
          {usage.error ? <ErrorBox error={usage.error} onRetry={() => void usage.refetch()} /> : null}
          {usage.data ? (
            <>
              <Meter
                label="Runs"
                used={Number(usage.data.quota?.runsUsed ?? usage.data.totals?.runsCompleted ?? 0n)}
                limit={usage.data.quota?.runsLimit === undefined ? undefined : Number(usage.data.quota.runsLimit)}
              />
              <Meter
                label="Run units"
                used={usage.data.quota?.runUnitsUsed ?? usage.data.totals?.runUnits ?? 0}
                limit={usage.data.quota?.runUnitsLimit}
              />
              <p className="muted">
                Resets {when(usage.data.quota?.resetsAt)}. Failed runs this month: {String(usage.data.totals?.runsFailed ?? 0n)}.
              </p>
              {usage.data.quota?.softCapReached ? (
                <p className="warn">The soft cap is reached: runs continue, admins are notified.</p>
              ) : null}
            </>
          ) : null}
        </Section>
      ) : null}
      {canDlq ? (
        <Section title="Dead letters waiting">
          {dlq.isPending ? <Loading what="dead letters" /> : null}
          {dlq.error ? <ErrorBox error={dlq.error} onRetry={() => void dlq.refetch()} /> : null}
          {dlq.data ? (
            dlq.data.deadLetters.length === 0 ? (
              <Empty>No dead letters: every event was processed.</Empty>
            ) : (
              <p>
                <strong>{dlq.data.deadLetters.length}</strong> event(s) wait in the dead-letter queue — see Dead letters.
              </p>
            )
          ) : null}
        </Section>
      ) : null}
      {canAudit ? (
        <Section title="Recent failures">
          {failures.isPending ? <Loading what="recent failures" /> : null}
          {failures.error ? <ErrorBox error={failures.error} onRetry={() => void failures.refetch()} /> : null}
          {failures.data && failures.data.events.length === 0 ? <Empty>No failures recorded.</Empty> : null}
          <ul className="plain">
            {failures.data?.events.map((e) => (
              <li key={e.id}>
                {when(e.occurredAt)} · <strong>{e.eventType}</strong> {e.resource?.type} {e.resource?.id}
              </li>
            ))}
          </ul>
        </Section>
      ) : null}
      {principal.kind === "tenant" ? (
        <Section title="Your tenant">
          <p>
            {principal.tenantSlug} on the <strong>{principal.plan}</strong> plan; you are <strong>{principal.role}</strong>.
          </p>
        </Section>
      ) : null}
    </div>
  );
}
