import { timestampDate } from "@bufbuild/protobuf/wkt";
import { createClient, type Transport } from "@connectrpc/connect";
import { MeteringService } from "../../../gen/nexus/metering/v1/metering_service_pb.js";
import { Period, QuotaDecision, type QuotaWindow } from "../../../gen/nexus/metering/v1/quota_pb.js";
import type { QuotaGate, QuotaWindowState } from "../ports.js";

const DECISIONS: Readonly<Record<QuotaDecision, string>> = {
  [QuotaDecision.UNSPECIFIED]: "allowed",
  [QuotaDecision.ALLOWED]: "allowed",
  [QuotaDecision.ALLOWED_SOFT_CAP]: "allowed_soft_cap",
  [QuotaDecision.ALLOWED_OVERAGE]: "allowed_overage",
};

function windowState(w: QuotaWindow): QuotaWindowState | undefined {
  const period = w.period === Period.DAY ? "day" : w.period === Period.MONTH ? "month" : undefined;
  if (period === undefined) return undefined;
  return {
    period,
    runsUsed: Number(w.runsUsed),
    runsReserved: Number(w.runsReserved),
    ...(w.runsLimit !== undefined ? { runsLimit: Number(w.runsLimit) } : {}),
    ...(w.runsRemaining !== undefined ? { runsRemaining: Number(w.runsRemaining) } : {}),
    ...(w.resetsAt ? { resetsAt: timestampDate(w.resetsAt) } : {}),
  };
}

/**
 * Metering's CheckQuota / CommitQuota / ReleaseQuota over a gRPC transport
 * (`deps.peers.transport("metering")`, resolved at call time), with the caller's credentials.
 * The run's request id is the reservation's idempotency key.
 */
export function createGrpcQuotaGate(transport: () => Transport): QuotaGate {
  const client = () => createClient(MeteringService, transport());
  const options = (call: { headers: Headers; signal: AbortSignal; timeoutMs?: number }) => ({
    headers: call.headers,
    signal: call.signal,
    ...(call.timeoutMs !== undefined ? { timeoutMs: call.timeoutMs } : {}),
  });
  return {
    async check(input, call) {
      const res = await client().checkQuota({ tenantId: input.tenantId, requestId: input.requestId, estimatedRunUnits: 0 }, options(call));
      return {
        kind: "reserved",
        reservationId: res.reservationId,
        decision: DECISIONS[res.decision] ?? "allowed",
        windows: res.windows.map(windowState).filter((w): w is QuotaWindowState => w !== undefined),
      };
    },
    async commit(reservationId, call) {
      await client().commitQuota({ reservationId }, options(call));
    },
    async release(reservationId, reason, call) {
      await client().releaseQuota({ reservationId, reason: reason.slice(0, 200) }, options(call));
    },
  };
}
