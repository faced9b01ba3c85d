import { useQuery } from "@connectrpc/connect-query";
import { useState } from "react";
import { IntegrationService } from "../../../../gen/nexus/integration/v1/integration_service_pb.js";
import { FieldType, type SenderApp } from "../../../../gen/nexus/integration/v1/resources_pb.js";
import type { Principal } from "../../../../services/kernel/context.js";
import { can } from "../../can.js";
import { Empty, ErrorBox, Loading, Secret, Section, when } from "../../ui.js";
import { FIELD_TYPES, fieldTypeName, IN, integration, Managed, useAct } from "./common.js";

interface Field {
  name: string;
  type: FieldType;
  required: boolean;
}

/** The field schema editor: rows of name, type and required; add and remove rows. */
function FieldsEditor({ fields, onChange, idPrefix }: { fields: Field[]; onChange: (f: Field[]) => void; idPrefix: string }) {
  const set = (i: number, patch: Partial<Field>) => onChange(fields.map((f, j) => (i === j ? { ...f, ...patch } : f)));
  return (
    <fieldset className="fields">
      <legend>Field schema {fields.length === 0 ? <span className="muted">(empty: any JSON object is accepted)</span> : null}</legend>
      {fields.map((f, i) => (
        // biome-ignore lint/suspicious/noArrayIndexKey: rows are edited in place; their position is their identity
        <div className="row" key={i}>
          <label htmlFor={`${idPrefix}-f${i}-name`}>Field {i + 1}</label>
          <input id={`${idPrefix}-f${i}-name`} value={f.name} onChange={(e) => set(i, { name: e.target.value })} required maxLength={200} />
          <label htmlFor={`${idPrefix}-f${i}-type`}>Type</label>
          <select id={`${idPrefix}-f${i}-type`} value={f.type} onChange={(e) => set(i, { type: Number(e.target.value) as FieldType })}>
            {FIELD_TYPES.map(([v, label]) => (
              <option key={v} value={v}>
                {label}
              </option>
            ))}
          </select>
          <label>
            <input type="checkbox" checked={f.required} onChange={(e) => set(i, { required: e.target.checked })} /> required
          </label>
          <button type="button" className="link" onClick={() => onChange(fields.filter((_, j) => j !== i))}>
            Remove<span className="sr-only"> field {f.name || i + 1}</span>
          </button>
        </div>
      ))}
      <button type="button" onClick={() => onChange([...fields, { name: "", type: FieldType.STRING, required: false }])}>
        Add field
      </button>
    </fieldset>
  );
}

function AppRow({
  app,
  principal,
  onSecret,
}: {
  app: SenderApp;
  principal: Principal;
  onSecret: (s: { label: string; value: string }) => void;
}) {
  const { error, act } = useAct();
  const [editing, setEditing] = useState(false);
  const [name, setName] = useState(app.name);
  const [fields, setFields] = useState<Field[]>(app.fields.map((f) => ({ name: f.name, type: f.type, required: f.required })));
  const editable = !app.managedByKubernetes;
  return (
    <li className="item" data-testid={`app-${app.name}`}>
      <div className="row">
        <strong>{app.name}</strong> <code>{app.appId}</code>
        <span className="muted">key {app.keyPrefix}…</span>
        <span>{app.encryptionRequired ? `encrypted payloads (secret v${app.keyVersion})` : "plain JSON payloads"}</span>
        <span className="muted">created {when(app.createTime)}</span>
      </div>
      <p className="muted">
        Fields:{" "}
        {app.fields.length === 0
          ? "any"
          : app.fields.map((f) => `${f.name}: ${fieldTypeName(f.type)}${f.required ? " (required)" : ""}`).join(", ")}
      </p>
      {app.managedByKubernetes ? <Managed resource={app.kubernetesResource} /> : null}
      {editable ? (
        <div className="row">
          {can(principal, `${IN}/RotateAppKey`) ? (
            <button
              type="button"
              onClick={() =>
                void act(async () => {
                  if (!window.confirm(`Rotate the key of ${app.name}? The old key stops working at once.`)) return;
                  const res = await integration.rotateAppKey({ appId: app.appId });
                  onSecret({ label: `app key of ${app.name}`, value: res.appKey });
                })
              }
            >
              Rotate key<span className="sr-only"> of {app.name}</span>
            </button>
          ) : null}
          {app.encryptionRequired && can(principal, `${IN}/RotateMasterSecret`) ? (
            <button
              type="button"
              onClick={() =>
                void act(async () => {
                  const res = await integration.rotateMasterSecret({ appId: app.appId });
                  onSecret({ label: `master secret v${res.keyVersion} of ${app.name}`, value: res.masterSecret });
                })
              }
            >
              Rotate master secret<span className="sr-only"> of {app.name}</span>
            </button>
          ) : null}
          {can(principal, `${IN}/UpdateSenderApp`) ? (
            <button type="button" aria-expanded={editing} onClick={() => setEditing(!editing)}>
              Edit schema<span className="sr-only"> of {app.name}</span>
            </button>
          ) : null}
          {can(principal, `${IN}/DeleteSenderApp`) ? (
            <button
              type="button"
              className="danger"
              onClick={() => {
                if (window.confirm(`Delete ${app.name}? Its key stops working at once.`))
                  void act(() => integration.deleteSenderApp({ appId: app.appId }));
              }}
            >
              Delete<span className="sr-only"> {app.name}</span>
            </button>
          ) : null}
        </div>
      ) : null}
      {editing && editable ? (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void act(() => integration.updateSenderApp({ appId: app.appId, name, fields })).then((ok) => ok && setEditing(false));
          }}
        >
          <div className="row">
            <label htmlFor={`app-${app.appId}-name`}>Name</label>
            <input id={`app-${app.appId}-name`} value={name} onChange={(e) => setName(e.target.value)} required maxLength={200} />
          </div>
          <FieldsEditor fields={fields} onChange={setFields} idPrefix={`app-${app.appId}`} />
          <button type="submit">Save schema</button>
        </form>
      ) : null}
      {error ? <ErrorBox error={error} /> : null}
    </li>
  );
}

/** Sender apps: list, create (app key and master secret shown once), rotate, schema editor. */
export default function SenderApps({ principal }: { principal: Principal }) {
  const apps = useQuery(IntegrationService.method.listSenderApps, {});
  const { error, act } = useAct();
  const [name, setName] = useState("");
  const [encrypted, setEncrypted] = useState(false);
  const [fields, setFields] = useState<Field[]>([]);
  const [secrets, setSecrets] = useState<Array<{ label: string; value: string }>>([]);
  const onSecret = (s: { label: string; value: string }) => setSecrets((all) => [...all, s]);
  return (
    <div>
      {can(principal, `${IN}/CreateSenderApp`) ? (
        <Section title="Create a sender app">
          <form
            onSubmit={(e) => {
              e.preventDefault();
              void act(async () => {
                const res = await integration.createSenderApp({ name, fields, encryptionRequired: encrypted });
                onSecret({ label: `app key of ${name}`, value: res.appKey });
                if (res.masterSecret) onSecret({ label: `master secret v1 of ${name}`, value: res.masterSecret });
                setName("");
                setFields([]);
                setEncrypted(false);
              });
            }}
          >
            <div className="row">
              <label htmlFor="app-name">Name</label>
              <input id="app-name" value={name} onChange={(e) => setName(e.target.value)} required maxLength={200} />
              <label>
                <input type="checkbox" checked={encrypted} onChange={(e) => setEncrypted(e.target.checked)} /> Require encrypted payloads
                (AES-256-GCM with a master secret)
              </label>
            </div>
            <FieldsEditor fields={fields} onChange={setFields} idPrefix="new-app" />
            <button type="submit">Create sender app</button>
          </form>
          {error ? <ErrorBox error={error} /> : null}
        </Section>
      ) : null}
      {secrets.map((s) => (
        <Secret key={s.value} label={s.label} secret={s.value} onDone={() => setSecrets((all) => all.filter((x) => x !== s))} />
      ))}
      <Section title="Sender apps">
        {apps.isPending ? <Loading what="sender apps" /> : null}
        {apps.error ? <ErrorBox error={apps.error} onRetry={() => void apps.refetch()} /> : null}
        {apps.data && apps.data.apps.length === 0 ? <Empty>No sender apps yet.</Empty> : null}
        {apps.data && apps.data.apps.length > 0 ? (
          <ul className="plain">
            {apps.data.apps.map((a) => (
              <AppRow key={`${a.appId}-${a.name}-${a.fields.length}-${a.keyVersion}`} app={a} principal={principal} onSecret={onSecret} />
            ))}
          </ul>
        ) : null}
      </Section>
    </div>
  );
}
