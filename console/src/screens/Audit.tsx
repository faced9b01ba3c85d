import { useQuery } from "@connectrpc/connect-query";
import { useState } from "react";
import { AuditOutcome } from "../../../gen/nexus/audit/v1/audit_event_pb.js";
import { AuditService } from "../../../gen/nexus/audit/v1/audit_service_pb.js";
import type { Principal } from "../../../services/kernel/context.js";
import { audit } from "../api.js";
import { Empty, ErrorBox, Loading, Section, when } from "../ui.js";

const PAGE = 25;

export default function Audit({ principal: _principal }: { principal: Principal }) {
  const [type, setType] = useState("");
  const [outcome, setOutcome] = useState<AuditOutcome>(AuditOutcome.UNSPECIFIED);
  const [actor, setActor] = useState("");
  const [since, setSince] = useState("");
  const [until, setUntil] = useState("");
  const [pages, setPages] = useState<string[]>([""]);
  const stamp = (d: string, endOfDay: boolean) => {
    const ms = Date.parse(`${d}T${endOfDay ? "23:59:59.999" : "00:00:00"}`);
    return { seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 };
  };
  const filter = {
    eventTypes: type ? [type] : [],
    outcome,
    actorKeyId: actor,
    ...(since ? { startTime: stamp(since, false) } : {}),
    ...(until ? { endTime: stamp(until, true) } : {}),
  };
  const page = useQuery(AuditService.method.listAuditEvents, { filter, pageSize: PAGE, pageToken: pages[pages.length - 1] ?? "" });
  const [verify, setVerify] = useState<{ ok: boolean; text: string }>();
  const [error, setError] = useState<unknown>();
  const [exporting, setExporting] = useState(false);
  const reset = () => setPages([""]);

  const exportCsv = async () => {
    setExporting(true);
    setError(undefined);
    try {
      const parts: BlobPart[] = [];
      for await (const chunk of audit.exportAuditEvents({ filter })) parts.push(chunk.data.slice());
      const url = URL.createObjectURL(new Blob(parts, { type: "text/csv" }));
      const a = document.createElement("a");
      a.href = url;
      a.download = "audit-log.csv";
      a.click();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (err) {
      setError(err);
    } finally {
      setExporting(false);
    }
  };

  return (
    <div>
      <Section title="Filters">
        <form className="row" onSubmit={(e) => e.preventDefault()}>
          <label htmlFor="audit-type">Event type</label>
          <input
            id="audit-type"
            value={type}
            placeholder="e.g. auth.api_key.revoked"
            onChange={(e) => {
              setType(e.target.value.trim());
              reset();
            }}
          />
          <label htmlFor="audit-outcome">Outcome</label>
          <select
            id="audit-outcome"
            value={outcome}
            onChange={(e) => {
              setOutcome(Number(e.target.value) as AuditOutcome);
              reset();
            }}
          >
            <option value={AuditOutcome.UNSPECIFIED}>any</option>
            <option value={AuditOutcome.SUCCESS}>success</option>
            <option value={AuditOutcome.FAILURE}>failure</option>
          </select>
          <label htmlFor="audit-actor">Actor key id</label>
          <input
            id="audit-actor"
            value={actor}
            onChange={(e) => {
              setActor(e.target.value.trim());
              reset();
            }}
          />
          <label htmlFor="audit-since">From</label>
          <input
            id="audit-since"
            type="date"
            value={since}
            onChange={(e) => {
              setSince(e.target.value);
              reset();
            }}
          />
          <label htmlFor="audit-until">To</label>
          <input
            id="audit-until"
            type="date"
            value={until}
            onChange={(e) => {
              setUntil(e.target.value);
              reset();
            }}
          />
          <button type="button" onClick={() => void exportCsv()} disabled={exporting}>
            {exporting ? "Exporting…" : "Export CSV"}
          </button>
          <button
            type="button"
            onClick={async () => {
              setError(undefined);
              try {
                const r = await audit.verifyAuditChain({});
                setVerify({
                  ok: r.ok,
                  text: r.ok
                    ? `Chain intact: ${r.entriesChecked} entries checked, head ${r.headHash.slice(0, 12)}…`
                    : `Chain broken at sequence ${r.firstBrokenLink?.sequence}: ${r.firstBrokenLink?.problem}`,
                });
              } catch (err) {
                setError(err);
              }
            }}
          >
            Verify chain
          </button>
        </form>
        {verify ? (
          <p className={verify.ok ? "ok" : "warn"} role="status" data-testid="verify-result">
            {verify.text}
          </p>
        ) : null}
        {error ? <ErrorBox error={error} /> : null}
      </Section>
      <Section title="Entries">
        {page.isPending ? <Loading what="audit entries" /> : null}
        {page.error ? <ErrorBox error={page.error} onRetry={() => void page.refetch()} /> : null}
        {page.data && page.data.events.length === 0 ? <Empty>No entries match.</Empty> : null}
        {page.data && page.data.events.length > 0 ? (
          <table data-testid="audit-table">
            <thead>
              <tr>
                <th scope="col">#</th>
                <th scope="col">When</th>
                <th scope="col">Event</th>
                <th scope="col">Actor</th>
                <th scope="col">Resource</th>
                <th scope="col">Outcome</th>
              </tr>
            </thead>
            <tbody>
              {page.data.events.map((e) => (
                <tr key={e.id}>
                  <td>{String(e.sequence)}</td>
                  <td>{when(e.occurredAt)}</td>
                  <td>{e.eventType}</td>
                  <td>{e.actor?.name || e.actor?.keyId || "system"}</td>
                  <td>
                    {e.resource?.type} {e.resource?.id}
                  </td>
                  <td>{e.outcome === AuditOutcome.FAILURE ? "failure" : "success"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : null}
        <div className="row">
          <button type="button" disabled={pages.length <= 1} onClick={() => setPages((p) => p.slice(0, -1))}>
            Newer
          </button>
          <button type="button" disabled={!page.data?.nextPageToken} onClick={() => setPages((p) => [...p, page.data!.nextPageToken])}>
            Older
          </button>
        </div>
      </Section>
    </div>
  );
}
