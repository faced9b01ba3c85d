import { useQuery } from "@connectrpc/connect-query";
import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { MeteringService } from "../../../gen/nexus/metering/v1/metering_service_pb.js";
import { Period } from "../../../gen/nexus/metering/v1/quota_pb.js";
import type { Principal } from "../../../services/kernel/context.js";
import { Empty, ErrorBox, Loading, Section, when } from "../ui.js";
import { Meter } from "./Overview.js";

const day = (d: Date) => d.toISOString().slice(0, 10);

/** Daily runs as a bar chart (uPlot: a small, maintained canvas chart library). */
function DailyChart({ dates, runs, units }: { dates: string[]; runs: number[]; units: number[] }) {
  const el = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!el.current) return;
    const xs = dates.map((d) => Date.parse(`${d}T00:00:00Z`) / 1000);
    const chart = new uPlot(
      {
        width: Math.min(760, el.current.clientWidth || 760),
        height: 240,
        series: [
          {},
          { label: "Runs", stroke: "#2563eb", fill: "rgba(37,99,235,0.15)" },
          { label: "Run units", stroke: "#b45309", scale: "units" },
        ],
        axes: [{}, { label: "runs" }, { side: 1, scale: "units", label: "run units", grid: { show: false } }],
      },
      [xs, runs, units],
      el.current,
    );
    return () => chart.destroy();
  }, [dates, runs, units]);
  return <div ref={el} role="img" aria-label={`Daily runs over ${dates.length} days: ${runs.reduce((a, b) => a + b, 0)} in total`} />;
}

export default function Usage({ principal }: { principal: Principal }) {
  const today = new Date();
  const start = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - 29));
  const tenant = principal.kind === "tenant";
  const history = useQuery(MeteringService.method.getUsageHistory, { startDate: day(start), endDate: day(today) }, { enabled: tenant });
  const month = useQuery(MeteringService.method.getUsageSummary, { period: Period.MONTH }, { enabled: tenant });
  const dayUsage = useQuery(MeteringService.method.getUsageSummary, { period: Period.DAY }, { enabled: tenant });
  const quota = useQuery(MeteringService.method.getQuota, {}, { enabled: tenant });
  if (!tenant) return <Empty>Usage is per tenant: the CLI's `nexus usage --tenant` shows any tenant's to a platform operator.</Empty>;
  const days = history.data?.days ?? [];
  return (
    <div>
      <Section title="Last 30 days">
        {history.isPending ? <Loading what="usage history" /> : null}
        {history.error ? <ErrorBox error={history.error} onRetry={() => void history.refetch()} /> : null}
        {history.data && days.length === 0 ? <Empty>No runs in the last 30 days.</Empty> : null}
        {days.length > 0 ? (
          <DailyChart
            dates={days.map((d) => d.date)}
            runs={days.map((d) => Number(d.totals?.runsCompleted ?? 0n))}
            units={days.map((d) => d.totals?.runUnits ?? 0)}
          />
        ) : null}
      </Section>
      {[
        { title: "Today", q: dayUsage },
        { title: "This month", q: month },
      ].map(({ title, q }) => (
        <Section key={title} title={title}>
          {q.isPending ? <Loading what="usage" /> : null}
          {q.error ? <ErrorBox error={q.error} onRetry={() => void q.refetch()} /> : null}
          {q.data?.quota ? (
            <>
              <Meter
                label={`Runs (${title.toLowerCase()})`}
                used={Number(q.data.quota.runsUsed)}
                limit={q.data.quota.runsLimit === undefined ? undefined : Number(q.data.quota.runsLimit)}
              />
              <Meter label={`Run units (${title.toLowerCase()})`} used={q.data.quota.runUnitsUsed} limit={q.data.quota.runUnitsLimit} />
              <p className="muted">
                Resets {when(q.data.quota.resetsAt)}.{q.data.quota.softCapReached ? " Soft cap reached." : ""}
                {q.data.quota.hardCapReached ? " Hard cap reached." : ""}
              </p>
            </>
          ) : null}
        </Section>
      ))}
      <Section title="Quota">
        {quota.isPending ? <Loading what="quota" /> : null}
        {quota.error ? <ErrorBox error={quota.error} /> : null}
        {quota.data?.quota ? (
          <p>
            Soft cap at {Math.round(quota.data.quota.softCapRatio * 100)}% of each limit; over the hard cap runs are{" "}
            {quota.data.quota.hardCapMode === 2 ? "still allowed (observe mode)" : "refused (enforce mode)"}. Platform operators change it
            with `nexus quota set`.
          </p>
        ) : null}
      </Section>
    </div>
  );
}
