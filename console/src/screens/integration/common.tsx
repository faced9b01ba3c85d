import { createClient } from "@connectrpc/connect";
import { useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { IntegrationService } from "../../../../gen/nexus/integration/v1/integration_service_pb.js";
import { FieldType } from "../../../../gen/nexus/integration/v1/resources_pb.js";
import { transport } from "../../api.js";

/** The integration API, loaded with these screens (not in the first bundle). */
export const integration = createClient(IntegrationService, transport);

/** The integration service's procedure prefix (for `can`). */
export const IN = "/nexus.integration.v1.IntegrationService";

export const FIELD_TYPES: ReadonlyArray<[FieldType, string]> = [
  [FieldType.UNSPECIFIED, "any"],
  [FieldType.STRING, "string"],
  [FieldType.INTEGER, "integer"],
  [FieldType.NUMBER, "number"],
  [FieldType.BOOLEAN, "boolean"],
  [FieldType.TIMESTAMP, "timestamp"],
  [FieldType.JSON, "json"],
];
export const fieldTypeName = (t: FieldType) => FIELD_TYPES.find(([v]) => v === t)?.[1] ?? "any";

/** The read-only note on an object a Kubernetes resource declares. */
export function Managed({ resource }: { resource: string }) {
  return (
    <p className="managed" data-testid="managed">
      Managed by Kubernetes (<code>{resource}</code>): read-only here — change the resource instead.
    </p>
  );
}

/** Runs a change, refreshes every query after it, and keeps its failure for an ErrorBox. */
export function useAct(): {
  error: unknown;
  setError: (e: unknown) => void;
  busy: boolean;
  act: (f: () => Promise<unknown>) => Promise<boolean>;
} {
  const queryClient = useQueryClient();
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const act = async (f: () => Promise<unknown>) => {
    setError(undefined);
    setBusy(true);
    try {
      await f();
      await queryClient.invalidateQueries();
      return true;
    } catch (err) {
      setError(err);
      return false;
    } finally {
      setBusy(false);
    }
  };
  return { error, setError, busy, act };
}
