import { useQuery } from "@connectrpc/connect-query";
import { useState } from "react";
import { IntegrationService, type TestDestinationResponse } from "../../../../gen/nexus/integration/v1/integration_service_pb.js";
import { type Destination, type DestinationConfig, RestAuth, SqlEngine } from "../../../../gen/nexus/integration/v1/resources_pb.js";
import type { Principal } from "../../../../services/kernel/context.js";
import { can } from "../../can.js";
import { Empty, ErrorBox, Loading, Section } from "../../ui.js";
import { IN, integration, Managed, useAct } from "./common.js";

type Kind = "rest" | "postgres" | "mysql" | "nats" | "corpus";
const KINDS: ReadonlyArray<[Kind, string]> = [
  ["rest", "REST API"],
  ["postgres", "PostgreSQL"],
  ["mysql", "MariaDB / MySQL"],
  ["nats", "NATS subject"],
  ["corpus", "Nexus corpus"],
];

interface Form {
  name: string;
  kind: Kind;
  url: string;
  method: string;
  auth: RestAuth;
  username: string;
  apiKeyHeader: string;
  timeoutMs: string;
  host: string;
  port: string;
  database: string;
  user: string;
  ssl: boolean;
  subject: string;
  corpusId: string;
  /** Token, password or API key: typed in, sent, never shown back. */
  secret: string;
}

const EMPTY: Form = {
  name: "",
  kind: "rest",
  url: "",
  method: "POST",
  auth: RestAuth.UNSPECIFIED,
  username: "",
  apiKeyHeader: "",
  timeoutMs: "",
  host: "",
  port: "",
  database: "",
  user: "",
  ssl: false,
  subject: "",
  corpusId: "",
  secret: "",
};

/** What kind a saved destination is, in the form's terms. */
export function kindOf(config: DestinationConfig | undefined): Kind {
  const k = config?.kind;
  if (k?.case === "sql") return k.value.engine === SqlEngine.MYSQL ? "mysql" : "postgres";
  return (k?.case ?? "rest") as Kind;
}
export const kindLabel = (config: DestinationConfig | undefined) => KINDS.find(([k]) => k === kindOf(config))?.[1] ?? "?";

function formOf(d: Destination): Form {
  const f: Form = { ...EMPTY, name: d.name, kind: kindOf(d.config) };
  const k = d.config?.kind;
  if (k?.case === "rest")
    Object.assign(f, {
      url: k.value.url,
      method: k.value.method || "POST",
      auth: k.value.auth,
      username: k.value.username,
      apiKeyHeader: k.value.apiKeyHeader,
      timeoutMs: k.value.timeoutMs ? String(k.value.timeoutMs) : "",
    });
  if (k?.case === "sql")
    Object.assign(f, { host: k.value.host, port: String(k.value.port), database: k.value.database, user: k.value.user, ssl: k.value.ssl });
  if (k?.case === "nats") f.subject = k.value.subject;
  if (k?.case === "corpus") f.corpusId = k.value.corpusId;
  return f;
}

function configOf(f: Form) {
  switch (f.kind) {
    case "rest":
      return {
        kind: {
          case: "rest" as const,
          value: {
            url: f.url,
            method: f.method,
            auth: f.auth,
            username: f.username,
            apiKeyHeader: f.apiKeyHeader,
            timeoutMs: Number(f.timeoutMs) || 0,
            secret: f.secret,
          },
        },
      };
    case "postgres":
    case "mysql":
      return {
        kind: {
          case: "sql" as const,
          value: {
            engine: f.kind === "mysql" ? SqlEngine.MYSQL : SqlEngine.POSTGRES,
            host: f.host,
            port: Number(f.port) || 0,
            database: f.database,
            user: f.user,
            ssl: f.ssl,
            password: f.secret,
          },
        },
      };
    case "nats":
      return { kind: { case: "nats" as const, value: { subject: f.subject } } };
    case "corpus":
      return { kind: { case: "corpus" as const, value: { corpusId: f.corpusId, apiKey: f.secret } } };
  }
}

/** A connection test's answer: latency and server version, or why it failed. */
function TestResult({ result }: { result: TestDestinationResponse }) {
  return result.ok ? (
    <p className="ok" role="status" data-testid="test-result">
      Connected in {result.latencyMs} ms{result.serverVersion ? ` (${result.serverVersion})` : ""}.
    </p>
  ) : (
    <p className="error" role="status" data-testid="test-result">
      Connection failed after {result.latencyMs} ms: {result.error}
    </p>
  );
}

function Text({
  id,
  label,
  value,
  onChange,
  ...rest
}: { id: string; label: string; value: string; onChange: (v: string) => void } & Omit<
  React.InputHTMLAttributes<HTMLInputElement>,
  "onChange" | "value" | "id"
>) {
  return (
    <>
      <label htmlFor={id}>{label}</label>
      <input id={id} value={value} onChange={(e) => onChange(e.target.value)} {...rest} />
    </>
  );
}

/** Create or edit a destination. Secrets are write-only: the field starts empty and is never filled from the server. */
function DestinationForm({
  initial,
  destinationId,
  hasSecret,
  onDone,
}: {
  initial: Form;
  destinationId?: string;
  hasSecret?: boolean;
  onDone: () => void;
}) {
  const [f, setF] = useState<Form>(initial);
  const [tested, setTested] = useState<TestDestinationResponse>();
  const { error, act, busy } = useAct();
  const set = (patch: Partial<Form>) => setF({ ...f, ...patch });
  const p = destinationId ?? "new";
  const secretLabel = f.kind === "rest" ? "Token / key / password" : f.kind === "corpus" ? "Nexus API key (editor)" : "Password";
  return (
    <form
      className="dest-form"
      onSubmit={(e) => {
        e.preventDefault();
        void act(async () => {
          const config = configOf(f);
          if (destinationId) await integration.updateDestination({ destinationId, name: f.name, config });
          else await integration.createDestination({ name: f.name, config });
          // The form empties (or closes) before the list shows the new state.
          onDone();
        });
      }}
    >
      <div className="row">
        <Text id={`${p}-d-name`} label="Name" value={f.name} onChange={(name) => set({ name })} required maxLength={200} />
        <label htmlFor={`${p}-d-kind`}>Kind</label>
        <select
          id={`${p}-d-kind`}
          value={f.kind}
          disabled={destinationId !== undefined}
          onChange={(e) => set({ kind: e.target.value as Kind })}
        >
          {KINDS.map(([k, label]) => (
            <option key={k} value={k}>
              {label}
            </option>
          ))}
        </select>
      </div>
      {f.kind === "rest" ? (
        <div className="row">
          <Text id={`${p}-d-url`} label="URL" value={f.url} onChange={(url) => set({ url })} required type="url" size={40} />
          <label htmlFor={`${p}-d-method`}>Method</label>
          <select id={`${p}-d-method`} value={f.method} onChange={(e) => set({ method: e.target.value })}>
            {["POST", "PUT", "PATCH", "GET", "DELETE"].map((m) => (
              <option key={m}>{m}</option>
            ))}
          </select>
          <label htmlFor={`${p}-d-auth`}>Authentication</label>
          <select id={`${p}-d-auth`} value={f.auth} onChange={(e) => set({ auth: Number(e.target.value) as RestAuth })}>
            <option value={RestAuth.UNSPECIFIED}>none</option>
            <option value={RestAuth.BEARER}>bearer token</option>
            <option value={RestAuth.API_KEY}>API key header</option>
            <option value={RestAuth.BASIC}>basic</option>
          </select>
          {f.auth === RestAuth.BASIC ? (
            <Text id={`${p}-d-user`} label="User" value={f.username} onChange={(username) => set({ username })} />
          ) : null}
          {f.auth === RestAuth.API_KEY ? (
            <Text
              id={`${p}-d-header`}
              label="Header"
              value={f.apiKeyHeader}
              onChange={(apiKeyHeader) => set({ apiKeyHeader })}
              placeholder="X-API-Key"
            />
          ) : null}
          <Text
            id={`${p}-d-timeout`}
            label="Timeout (ms)"
            value={f.timeoutMs}
            onChange={(timeoutMs) => set({ timeoutMs })}
            inputMode="numeric"
            placeholder="10000"
            size={7}
          />
        </div>
      ) : null}
      {f.kind === "postgres" || f.kind === "mysql" ? (
        <div className="row">
          <Text id={`${p}-d-host`} label="Host" value={f.host} onChange={(host) => set({ host })} required />
          <Text
            id={`${p}-d-port`}
            label="Port"
            value={f.port}
            onChange={(port) => set({ port })}
            required
            inputMode="numeric"
            size={6}
            placeholder={f.kind === "mysql" ? "3306" : "5432"}
          />
          <Text id={`${p}-d-db`} label="Database" value={f.database} onChange={(database) => set({ database })} required />
          <Text id={`${p}-d-dbuser`} label="User" value={f.user} onChange={(user) => set({ user })} required />
          <label>
            <input type="checkbox" checked={f.ssl} onChange={(e) => set({ ssl: e.target.checked })} /> TLS
          </label>
        </div>
      ) : null}
      {f.kind === "nats" ? (
        <div className="row">
          <Text
            id={`${p}-d-subject`}
            label="Subject"
            value={f.subject}
            onChange={(subject) => set({ subject })}
            required
            pattern="[A-Za-z0-9_.\-]+"
          />
        </div>
      ) : null}
      {f.kind === "corpus" ? (
        <div className="row">
          <Text id={`${p}-d-corpus`} label="Corpus id" value={f.corpusId} onChange={(corpusId) => set({ corpusId })} required />
        </div>
      ) : null}
      {f.kind !== "nats" && (f.kind !== "rest" || f.auth !== RestAuth.UNSPECIFIED) ? (
        <div className="row">
          <Text
            id={`${p}-d-secret`}
            label={secretLabel}
            value={f.secret}
            onChange={(secret) => set({ secret })}
            type="password"
            autoComplete="new-password"
            aria-describedby={`${p}-d-secret-note`}
          />
          <span id={`${p}-d-secret-note`} className="muted">
            {hasSecret
              ? "A secret is stored and never shown. Saving sends this field: enter the secret again to keep one (empty removes it)."
              : "Write-only: stored sealed, never shown again."}
          </span>
        </div>
      ) : null}
      <div className="row">
        <button type="submit" disabled={busy}>
          {destinationId ? "Save destination" : "Create destination"}
        </button>
        <button
          type="button"
          onClick={() => {
            setTested(undefined);
            void act(async () => setTested(await integration.testDestination({ config: configOf(f) })));
          }}
        >
          Test connection
        </button>
        {destinationId ? (
          <button type="button" className="link" onClick={onDone}>
            Cancel
          </button>
        ) : null}
      </div>
      {tested ? <TestResult result={tested} /> : null}
      {error ? <ErrorBox error={error} /> : null}
    </form>
  );
}

/** Tables of a database destination, then the columns of the chosen one. */
export function SchemaBrowser({ destinationId }: { destinationId: string }) {
  const tables = useQuery(IntegrationService.method.listDestinationTables, { destinationId });
  const [table, setTable] = useState("");
  const columns = useQuery(IntegrationService.method.listDestinationColumns, { destinationId, table }, { enabled: table !== "" });
  return (
    <div className="schema" data-testid="schema">
      {tables.isPending ? <Loading what="tables" /> : null}
      {tables.error ? <ErrorBox error={tables.error} onRetry={() => void tables.refetch()} /> : null}
      {tables.data && tables.data.tables.length === 0 ? <Empty>No tables in this database.</Empty> : null}
      {tables.data && tables.data.tables.length > 0 ? (
        <ul className="plain tables">
          {tables.data.tables.map((t) => {
            const name = t.schema ? `${t.schema}.${t.name}` : t.name;
            return (
              <li key={name}>
                <button type="button" className="link" aria-pressed={table === name} onClick={() => setTable(name)}>
                  {name}
                </button>
              </li>
            );
          })}
        </ul>
      ) : null}
      {table && columns.isPending ? <Loading what={`columns of ${table}`} /> : null}
      {columns.error ? <ErrorBox error={columns.error} /> : null}
      {table && columns.data ? (
        <table>
          <caption>Columns of {table}</caption>
          <thead>
            <tr>
              <th scope="col">Column</th>
              <th scope="col">Type</th>
              <th scope="col">Nullable</th>
              <th scope="col">Primary key</th>
            </tr>
          </thead>
          <tbody>
            {columns.data.columns.map((c) => (
              <tr key={c.name}>
                <td>{c.name}</td>
                <td>{c.type}</td>
                <td>{c.nullable ? "yes" : "no"}</td>
                <td>{c.primaryKey ? "yes" : ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </div>
  );
}

function DestinationRow({ d, principal }: { d: Destination; principal: Principal }) {
  const [editing, setEditing] = useState(false);
  const [browsing, setBrowsing] = useState(false);
  const [tested, setTested] = useState<TestDestinationResponse>();
  const { error, act } = useAct();
  const k = d.config?.kind;
  const where =
    k?.case === "rest"
      ? k.value.url
      : k?.case === "sql"
        ? `${k.value.host}:${k.value.port}/${k.value.database}`
        : k?.case === "nats"
          ? k.value.subject
          : k?.case === "corpus"
            ? `corpus ${k.value.corpusId}`
            : "";
  const editable = !d.managedByKubernetes;
  return (
    <li className="item" data-testid={`destination-${d.name}`}>
      <div className="row">
        <strong>{d.name}</strong> <span>{kindLabel(d.config)}</span> <code>{where}</code>
        <span className="muted">{d.hasSecret ? "secret stored" : "no secret"}</span>
      </div>
      {d.managedByKubernetes ? <Managed resource={d.kubernetesResource} /> : null}
      <div className="row">
        {can(principal, `${IN}/TestDestination`) ? (
          <button
            type="button"
            onClick={() => {
              setTested(undefined);
              void act(async () => setTested(await integration.testDestination({ destinationId: d.destinationId })));
            }}
          >
            Test connection<span className="sr-only"> of {d.name}</span>
          </button>
        ) : null}
        {k?.case === "sql" && can(principal, `${IN}/ListDestinationTables`) ? (
          <button type="button" aria-expanded={browsing} onClick={() => setBrowsing(!browsing)}>
            Browse schema<span className="sr-only"> of {d.name}</span>
          </button>
        ) : null}
        {editable && can(principal, `${IN}/UpdateDestination`) ? (
          <button type="button" aria-expanded={editing} onClick={() => setEditing(!editing)}>
            Edit<span className="sr-only"> {d.name}</span>
          </button>
        ) : null}
        {editable && can(principal, `${IN}/DeleteDestination`) ? (
          <button
            type="button"
            className="danger"
            onClick={() => {
              if (window.confirm(`Delete ${d.name}?`)) void act(() => integration.deleteDestination({ destinationId: d.destinationId }));
            }}
          >
            Delete<span className="sr-only"> {d.name}</span>
          </button>
        ) : null}
      </div>
      {tested ? <TestResult result={tested} /> : null}
      {error ? <ErrorBox error={error} /> : null}
      {editing && editable ? (
        <DestinationForm initial={formOf(d)} destinationId={d.destinationId} hasSecret={d.hasSecret} onDone={() => setEditing(false)} />
      ) : null}
      {browsing ? <SchemaBrowser destinationId={d.destinationId} /> : null}
    </li>
  );
}

/** Destinations: list, create, edit, connection test, schema browsing of databases. */
export default function Destinations({ principal }: { principal: Principal }) {
  const list = useQuery(IntegrationService.method.listDestinations, {});
  const [formKey, setFormKey] = useState(0);
  return (
    <div>
      {can(principal, `${IN}/CreateDestination`) ? (
        <Section title="Create a destination">
          <DestinationForm key={formKey} initial={EMPTY} onDone={() => setFormKey(formKey + 1)} />
        </Section>
      ) : null}
      <Section title="Destinations">
        {list.isPending ? <Loading what="destinations" /> : null}
        {list.error ? <ErrorBox error={list.error} onRetry={() => void list.refetch()} /> : null}
        {list.data && list.data.destinations.length === 0 ? <Empty>No destinations yet.</Empty> : null}
        {list.data && list.data.destinations.length > 0 ? (
          <ul className="plain">
            {list.data.destinations.map((d) => (
              <DestinationRow key={d.destinationId} d={d} principal={principal} />
            ))}
          </ul>
        ) : null}
      </Section>
    </div>
  );
}
