import { create, type JsonValue } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { useQuery } from "@connectrpc/connect-query";
import { useState } from "react";
import { IntegrationService } from "../../../../gen/nexus/integration/v1/integration_service_pb.js";
import {
  type FieldMapping,
  FieldMappingSchema,
  FieldType,
  NullStrategy,
  SqlOperation,
  type SqlWrite,
} from "../../../../gen/nexus/integration/v1/resources_pb.js";
import { Empty, ErrorBox, Loading } from "../../ui.js";
import { FIELD_TYPES } from "./common.js";

const OPERATIONS: ReadonlyArray<[SqlOperation, string]> = [
  [SqlOperation.INSERT, "insert"],
  [SqlOperation.UPSERT, "upsert"],
  [SqlOperation.UPDATE, "update"],
  [SqlOperation.DELETE, "delete"],
  [SqlOperation.SELECT, "select"],
];

/** A column's database type as the closest field type (the mapper's default conversion). */
function typeForColumn(dbType: string): FieldType {
  const t = dbType.toLowerCase();
  if (/bool|tinyint\(1\)/.test(t)) return FieldType.BOOLEAN;
  if (/int|serial/.test(t)) return FieldType.INTEGER;
  if (/numeric|decimal|real|double|float/.test(t)) return FieldType.NUMBER;
  if (/time|date/.test(t)) return FieldType.TIMESTAMP;
  if (/json/.test(t)) return FieldType.JSON;
  return FieldType.STRING;
}

/** A default as typed: JSON when it parses (42, true, "x", {…}), otherwise the text itself. */
function parseDefault(text: string) {
  if (text === "") return undefined;
  let v: JsonValue;
  try {
    v = JSON.parse(text) as JsonValue;
  } catch {
    v = text;
  }
  return create(ValueSchema, toValueInit(v));
}
function toValueInit(v: JsonValue): Parameters<typeof create<typeof ValueSchema>>[1] {
  if (v === null) return { kind: { case: "nullValue", value: 0 } };
  if (typeof v === "number") return { kind: { case: "numberValue", value: v } };
  if (typeof v === "string") return { kind: { case: "stringValue", value: v } };
  if (typeof v === "boolean") return { kind: { case: "boolValue", value: v } };
  // Objects and arrays: kept as their JSON text (a string default).
  return { kind: { case: "stringValue", value: JSON.stringify(v) } };
}
function showDefault(m: FieldMapping | undefined): string {
  const k = m?.default?.kind;
  if (!k || k.case === undefined) return "";
  if (k.case === "stringValue") return k.value;
  if (k.case === "nullValue") return "null";
  if (k.case === "numberValue" || k.case === "boolValue") return String(k.value);
  return "";
}

/**
 * The visual field mapper of a database target: source fields (the sender app's schema, or any
 * dot path) on the left, the table's columns (schema browsing) on the right, with the type
 * conversion, default and null strategy of each mapping; the operation and key columns.
 */
export function FieldMapper({
  destinationId,
  sourceFields,
  value,
  onChange,
  readOnly,
  idPrefix,
  canBrowse,
}: {
  destinationId: string;
  sourceFields: string[];
  value: SqlWrite;
  onChange: (w: SqlWrite) => void;
  readOnly: boolean;
  idPrefix: string;
  /** Whether the principal may browse the database's schema (admins); others type table and columns. */
  canBrowse: boolean;
}) {
  const tables = useQuery(
    IntegrationService.method.listDestinationTables,
    { destinationId },
    { enabled: canBrowse && destinationId !== "" },
  );
  const browsed = useQuery(
    IntegrationService.method.listDestinationColumns,
    { destinationId, table: value.table },
    { enabled: canBrowse && destinationId !== "" && value.table !== "" },
  );
  const [typed, setTyped] = useState("");
  // Without schema browsing the rows are the mapped columns plus the ones typed in.
  const columns = canBrowse
    ? browsed
    : {
        isPending: false,
        error: null,
        data: { columns: value.mappings.map((m) => ({ name: m.column, type: "", nullable: true, primaryKey: false })) },
      };
  const byColumn = new Map(value.mappings.map((m) => [m.column, m]));
  const setMapping = (column: string, dbType: string, patch: Partial<FieldMapping>) => {
    const old = byColumn.get(column) ?? create(FieldMappingSchema, { column, source: "", type: typeForColumn(dbType) });
    const next = { ...old, ...patch };
    const mappings = value.mappings.some((m) => m.column === column)
      ? value.mappings.map((m) => (m.column === column ? next : m))
      : [...value.mappings, next];
    onChange({ ...value, mappings: mappings.filter((m) => m.source !== "") });
  };
  const listId = `${idPrefix}-source-fields`;
  return (
    <fieldset className="mapper" disabled={readOnly} data-testid="field-mapper">
      <legend>Field mapping</legend>
      <div className="row">
        <label htmlFor={`${idPrefix}-op`}>Operation</label>
        <select
          id={`${idPrefix}-op`}
          value={value.operation || SqlOperation.INSERT}
          onChange={(e) => onChange({ ...value, operation: Number(e.target.value) as SqlOperation })}
        >
          {OPERATIONS.map(([v, label]) => (
            <option key={v} value={v}>
              {label}
            </option>
          ))}
        </select>
        <label htmlFor={`${idPrefix}-table`}>Table</label>
        {canBrowse && tables.isPending && destinationId ? <Loading what="tables" /> : null}
        {canBrowse ? null : (
          <input id={`${idPrefix}-table`} value={value.table} onChange={(e) => onChange({ ...value, table: e.target.value })} />
        )}
        {canBrowse ? (
          <select
            id={`${idPrefix}-table`}
            value={value.table}
            onChange={(e) => onChange({ ...value, table: e.target.value, mappings: [], keyColumns: [] })}
          >
            <option value="">— choose —</option>
            {tables.data?.tables.map((t) => {
              const name = t.schema && t.schema !== "public" ? `${t.schema}.${t.name}` : t.name;
              return (
                <option key={`${t.schema}.${t.name}`} value={name}>
                  {name}
                </option>
              );
            })}
          </select>
        ) : null}
        <label>
          <input type="checkbox" checked={value.partial} onChange={(e) => onChange({ ...value, partial: e.target.checked })} /> partial
          (only fields present)
        </label>
      </div>
      {canBrowse ? null : (
        <div className="row">
          <span className="muted">Your role cannot browse the database schema (admins can): type the columns.</span>
          <label htmlFor={`${idPrefix}-add-col`}>Column</label>
          <input id={`${idPrefix}-add-col`} value={typed} onChange={(e) => setTyped(e.target.value)} />
          <button
            type="button"
            disabled={typed.trim() === "" || value.mappings.some((m) => m.column === typed.trim())}
            onClick={() => {
              onChange({
                ...value,
                mappings: [...value.mappings, create(FieldMappingSchema, { column: typed.trim(), source: typed.trim() })],
              });
              setTyped("");
            }}
          >
            Map column
          </button>
        </div>
      )}
      {tables.error ? <ErrorBox error={tables.error} /> : null}
      {columns.error ? <ErrorBox error={columns.error} /> : null}
      <datalist id={listId}>
        {sourceFields.map((f) => (
          <option key={f} value={f} />
        ))}
      </datalist>
      {value.table && columns.isPending ? <Loading what="columns" /> : null}
      {columns.data && columns.data.columns.length === 0 ? <Empty>This table has no columns.</Empty> : null}
      {value.table && columns.data && columns.data.columns.length > 0 ? (
        <table className="mapping">
          <caption className="sr-only">Source fields to columns of {value.table}</caption>
          <thead>
            <tr>
              <th scope="col">Source field</th>
              <th scope="col">
                <span className="sr-only">maps to</span>
              </th>
              <th scope="col">Column</th>
              <th scope="col">Convert to</th>
              <th scope="col">Default</th>
              <th scope="col">When null or missing</th>
              <th scope="col">Key</th>
            </tr>
          </thead>
          <tbody>
            {columns.data.columns.map((c) => {
              const m = byColumn.get(c.name);
              const id = `${idPrefix}-map-${c.name}`;
              return (
                <tr key={c.name} data-testid={`map-${c.name}`}>
                  <td>
                    <input
                      id={id}
                      list={listId}
                      value={m?.source ?? ""}
                      placeholder="not mapped"
                      aria-label={`Source field for ${c.name}`}
                      onChange={(e) => setMapping(c.name, c.type, { source: e.target.value })}
                    />
                  </td>
                  <td aria-hidden="true">→</td>
                  <td>
                    <label htmlFor={id}>
                      {c.name}{" "}
                      <span className="muted">
                        {c.type}
                        {c.nullable ? "" : ", not null"}
                        {c.primaryKey ? ", primary key" : ""}
                      </span>
                    </label>
                  </td>
                  <td>
                    <select
                      aria-label={`Type conversion for ${c.name}`}
                      value={m?.type ?? typeForColumn(c.type)}
                      disabled={!m}
                      onChange={(e) => setMapping(c.name, c.type, { type: Number(e.target.value) as FieldType })}
                    >
                      {FIELD_TYPES.map(([v, label]) => (
                        <option key={v} value={v}>
                          {label}
                        </option>
                      ))}
                    </select>
                  </td>
                  <td>
                    <input
                      aria-label={`Default for ${c.name}`}
                      value={showDefault(m)}
                      disabled={!m}
                      size={8}
                      onChange={(e) => setMapping(c.name, c.type, { default: parseDefault(e.target.value) })}
                    />
                  </td>
                  <td>
                    <select
                      aria-label={`Null strategy for ${c.name}`}
                      value={m?.nullStrategy ?? NullStrategy.UNSPECIFIED}
                      disabled={!m}
                      onChange={(e) => setMapping(c.name, c.type, { nullStrategy: Number(e.target.value) as NullStrategy })}
                    >
                      <option value={NullStrategy.UNSPECIFIED}>skip the column</option>
                      <option value={NullStrategy.NULL}>write NULL</option>
                      <option value={NullStrategy.DEFAULT}>write the default</option>
                    </select>
                  </td>
                  <td>
                    <input
                      type="checkbox"
                      aria-label={`${c.name} is a key column`}
                      checked={value.keyColumns.includes(c.name)}
                      onChange={(e) =>
                        onChange({
                          ...value,
                          keyColumns: e.target.checked ? [...value.keyColumns, c.name] : value.keyColumns.filter((k) => k !== c.name),
                        })
                      }
                    />
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      ) : null}
    </fieldset>
  );
}
