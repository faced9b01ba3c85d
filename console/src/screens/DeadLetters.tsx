import { useQuery } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { IngestionService } from "../../../gen/nexus/ingestion/v1/ingestion_service_pb.js";
import { ingestion } from "../api.js";
import { Empty, ErrorBox, Loading, Section } from "../ui.js";

export default function DeadLetters() {
  const queryClient = useQueryClient();
  const list = useQuery(IngestionService.method.listDeadLetters, { pageSize: 100 });
  const [open, setOpen] = useState<bigint>();
  const [note, setNote] = useState("");
  const [error, setError] = useState<unknown>();
  return (
    <Section title="Dead-lettered events">
      {list.isPending ? <Loading what="dead letters" /> : null}
      {list.error ? <ErrorBox error={list.error} onRetry={() => void list.refetch()} /> : null}
      {list.data && list.data.deadLetters.length === 0 ? <Empty>No dead letters: every event was processed.</Empty> : null}
      {note ? <p role="status">{note}</p> : null}
      {error ? <ErrorBox error={error} /> : null}
      <ul className="plain">
        {list.data?.deadLetters.map((d) => (
          <li key={String(d.sequence)}>
            <strong>#{String(d.sequence)}</strong> {d.eventType} for {d.consumer}{" "}
            <button type="button" aria-expanded={open === d.sequence} onClick={() => setOpen(open === d.sequence ? undefined : d.sequence)}>
              Inspect
            </button>{" "}
            <button
              type="button"
              onClick={async () => {
                setError(undefined);
                try {
                  const r = await ingestion.replayDeadLetter({ sequence: d.sequence });
                  setNote(`Replayed event ${r.eventId} through ${r.consumer} (replay ${r.replayCount}).`);
                  await queryClient.invalidateQueries();
                } catch (err) {
                  setError(err);
                }
              }}
            >
              Replay
            </button>
            {open === d.sequence ? <pre>{JSON.stringify(d, (_k, v) => (typeof v === "bigint" ? String(v) : v), 2)}</pre> : null}
          </li>
        ))}
      </ul>
    </Section>
  );
}
