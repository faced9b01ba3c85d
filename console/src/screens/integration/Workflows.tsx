import { clone, create } from "@bufbuild/protobuf";
import { useQuery } from "@connectrpc/connect-query";
import {
  applyNodeChanges,
  Background,
  type Connection,
  Controls,
  type Edge,
  Handle,
  MarkerType,
  type Node,
  type NodeChange,
  type NodeProps,
  Position,
  ReactFlow,
} from "@xyflow/react";
import "@xyflow/react/dist/style.css";
import { useMemo, useState } from "react";
import { IntegrationService } from "../../../../gen/nexus/integration/v1/integration_service_pb.js";
import {
  type Destination,
  OnError,
  SqlWriteSchema,
  type Step,
  StepSchema,
  StepType,
  type Target,
  TargetSchema,
  type Workflow,
  type WorkflowDefinition,
  WorkflowDefinitionSchema,
  WorkflowKind,
} from "../../../../gen/nexus/integration/v1/resources_pb.js";
import type { Principal } from "../../../../services/kernel/context.js";
import { describe } from "../../api.js";
import { can } from "../../can.js";
import { Empty, ErrorBox, Loading, Section, when } from "../../ui.js";
import { IN, integration, Managed, useAct } from "./common.js";
import { kindLabel } from "./Destinations.js";
import { FieldMapper } from "./FieldMapper.js";

const STEP_TYPES: ReadonlyArray<[StepType, string]> = [
  [StepType.REST_CALL, "rest_call"],
  [StepType.DB_QUERY, "db_query"],
  [StepType.TRANSFORM, "transform"],
  [StepType.CONDITION, "condition"],
  [StepType.DELAY, "delay"],
];
const stepTypeName = (t: StepType) => STEP_TYPES.find(([v]) => v === t)?.[1] ?? "step";

/** A target or step with a key of its own (stable across edits, for node ids and positions). */
interface Item<T> {
  key: string;
  value: T;
}
interface Model {
  kind: WorkflowKind;
  appId: string;
  targets: Item<Target>[];
  steps: Item<Step>[];
  retentionHours: number;
}
let keys = 0;
const item = <T,>(value: T): Item<T> => ({ key: `n${++keys}`, value });

function modelOf(def: WorkflowDefinition | undefined): Model {
  return {
    kind: def?.kind || WorkflowKind.FAN_OUT,
    appId: def?.source?.appId ?? "",
    targets: (def?.targets ?? []).map((t) => item(clone(TargetSchema, t))),
    steps: (def?.steps ?? []).map((s) => item(clone(StepSchema, s))),
    retentionHours: def?.retentionHours ?? 0,
  };
}
function definitionOf(m: Model): WorkflowDefinition {
  return create(WorkflowDefinitionSchema, {
    kind: m.kind,
    source: m.appId ? { appId: m.appId } : undefined,
    targets: m.kind === WorkflowKind.FAN_OUT ? m.targets.map((t) => t.value) : [],
    steps: m.kind === WorkflowKind.SEQUENTIAL ? m.steps.map((s) => s.value) : [],
    retentionHours: m.retentionHours,
  });
}

/** A save refusal naming a part of the definition, placed on that node ("definition.targets[1].transform: …"). */
function problemAt(err: unknown, m: Model): { key: string; message: string } | undefined {
  const { detail } = describe(err);
  const at = /^definition\.(targets|steps|source)(?:\[(\d+)\])?(?:\.([\w.[\]]+))?: (.*)$/s.exec(detail);
  if (!at) return undefined;
  const [, list, index, field, message] = at;
  const where = field ? `${field}: ` : "";
  if (list === "source") return { key: "source", message: `${where}${message}` };
  const items = list === "targets" ? m.targets : m.steps;
  const it = items[Number(index)];
  return it ? { key: it.key, message: `${where}${message}` } : undefined;
}

interface NodeData extends Record<string, unknown> {
  title: string;
  subtitle: string;
  kind: "source" | "target" | "step";
  condition: boolean;
  expression?: { label: string; value: string; onChange: (v: string) => void };
  error?: string;
  readOnly: boolean;
}
type WfNode = Node<NodeData, "wf">;

/** A node: its name and what it points at; the JSONata expression edited in place; the save error on it. */
function WfNodeView({ id, data, selected }: NodeProps<WfNode>) {
  return (
    <div className={`wf-node ${data.kind}${selected ? " selected" : ""}${data.error ? " invalid" : ""}`} data-testid={`node-${data.title}`}>
      {data.kind !== "source" ? <Handle type="target" position={Position.Left} /> : null}
      <div className="wf-node-title">{data.title}</div>
      <div className="wf-node-sub">{data.subtitle}</div>
      {data.expression ? (
        <label className="wf-expr">
          <span>{data.expression.label}</span>
          <textarea
            className="nodrag nowheel"
            id={`expr-${id}`}
            rows={2}
            spellCheck={false}
            value={data.expression.value}
            readOnly={data.readOnly}
            aria-invalid={data.error ? true : undefined}
            aria-describedby={data.error ? `err-${id}` : undefined}
            onChange={(e) => data.expression?.onChange(e.target.value)}
          />
        </label>
      ) : null}
      {data.error ? (
        <p className="wf-node-error" id={`err-${id}`} role="alert">
          {data.error}
        </p>
      ) : null}
      {data.condition ? (
        <>
          <Handle type="source" id="then" position={Position.Right} style={{ top: "35%" }} />
          <Handle type="source" id="else" position={Position.Bottom} />
        </>
      ) : (
        <Handle type="source" position={Position.Right} />
      )}
    </div>
  );
}
const NODE_TYPES = { wf: WfNodeView };

/** Where a step goes next, as edges: then/else for conditions, next_step or the following step. */
function stepEdges(m: Model): Edge[] {
  const edges: Edge[] = [];
  const byName = new Map(m.steps.map((s) => [s.value.name, s.key]));
  const arrow = { markerEnd: { type: MarkerType.ArrowClosed } };
  if (m.steps[0]) edges.push({ id: `e-source-${m.steps[0].key}`, source: "source", target: m.steps[0].key, ...arrow });
  m.steps.forEach((s, i) => {
    const following = m.steps[i + 1]?.key;
    if (s.value.type === StepType.CONDITION) {
      const then = s.value.thenStep ? byName.get(s.value.thenStep) : following;
      const otherwise = s.value.elseStep ? byName.get(s.value.elseStep) : undefined;
      if (then) edges.push({ id: `e-${s.key}-then`, source: s.key, sourceHandle: "then", target: then, label: "then", ...arrow });
      if (otherwise) edges.push({ id: `e-${s.key}-else`, source: s.key, sourceHandle: "else", target: otherwise, label: "else", ...arrow });
      return;
    }
    if (s.value.nextStep === "end") return;
    const next = s.value.nextStep ? byName.get(s.value.nextStep) : following;
    if (next) edges.push({ id: `e-${s.key}-next`, source: s.key, target: next, ...arrow });
  });
  return edges;
}

function WorkflowEditor({
  workflow,
  principal,
  destinations,
  onSaved,
  onClose,
}: {
  workflow: Workflow | undefined;
  principal: Principal;
  destinations: Destination[];
  onSaved: (w: Workflow) => void;
  onClose: () => void;
}) {
  const apps = useQuery(IntegrationService.method.listSenderApps, {});
  const [name, setName] = useState(workflow?.name ?? "");
  const [model, setModel] = useState<Model>(() => modelOf(workflow?.definition));
  /** What React Flow measured and where nodes were dragged, by node id (the nodes themselves are derived from the model). */
  const [layout, setLayout] = useState<Record<string, Pick<WfNode, "position" | "measured">>>({});
  const [selected, setSelected] = useState<string>("source");
  const [saved, setSaved] = useState("");
  const { error, setError, act, busy } = useAct();
  const readOnly = workflow?.managedByKubernetes === true || !can(principal, workflow ? `${IN}/UpdateWorkflow` : `${IN}/CreateWorkflow`);
  const problem = error ? problemAt(error, model) : undefined;
  const destName = (id: string) => destinations.find((d) => d.destinationId === id);
  const app = apps.data?.apps.find((a) => a.appId === model.appId);
  const sourceFields = app?.fields.map((f) => f.name) ?? [];

  const setTarget = (key: string, patch: Partial<Target>) =>
    setModel((m) => ({ ...m, targets: m.targets.map((t) => (t.key === key ? { key, value: { ...t.value, ...patch } } : t)) }));
  const setStep = (key: string, patch: Partial<Step>) =>
    setModel((m) => ({ ...m, steps: m.steps.map((s) => (s.key === key ? { key, value: { ...s.value, ...patch } } : s)) }));
  const stepByKey = (key: string) => model.steps.find((s) => s.key === key);

  const nodes: WfNode[] = (() => {
    const list: WfNode[] = [];
    const fanOut = model.kind === WorkflowKind.FAN_OUT;
    const count = fanOut ? model.targets.length : 1;
    const pos = (key: string, x: number, y: number) => layout[key]?.position ?? { x, y };
    list.push({
      id: "source",
      type: "wf",
      position: pos("source", 0, Math.max(0, ((count - 1) * 170) / 2)),
      selected: selected === "source",
      data: {
        title: "Source",
        subtitle: app ? `sender app ${app.name}` : model.appId ? `sender app ${model.appId}` : "ExecuteWorkflow only",
        kind: "source",
        condition: false,
        readOnly,
        ...(problem?.key === "source" ? { error: problem.message } : {}),
      },
    });
    if (fanOut) {
      model.targets.forEach((t, i) => {
        const d = destName(t.value.destinationId);
        list.push({
          id: t.key,
          type: "wf",
          position: pos(t.key, 340, i * 170),
          selected: selected === t.key,
          data: {
            title: d?.name ?? `target ${i + 1}`,
            subtitle: d ? `${kindLabel(d.config)} destination` : "choose a destination",
            kind: "target",
            condition: false,
            readOnly,
            expression: {
              label: "Transform (JSONata)",
              value: t.value.transform,
              onChange: (transform) => setTarget(t.key, { transform }),
            },
            ...(problem?.key === t.key ? { error: problem.message } : {}),
          },
        });
      });
    } else {
      model.steps.forEach((s, i) => {
        const d = s.value.target ? destName(s.value.target.destinationId) : undefined;
        const hasExpression = s.value.type === StepType.TRANSFORM || s.value.type === StepType.CONDITION;
        list.push({
          id: s.key,
          type: "wf",
          position: pos(s.key, 340 + i * 300, i % 2 === 0 ? 0 : 120),
          selected: selected === s.key,
          data: {
            title: s.value.name,
            subtitle:
              s.value.type === StepType.DELAY
                ? `delay ${s.value.delayMs} ms`
                : `${stepTypeName(s.value.type)}${d ? ` → ${d.name}` : s.value.target ? " → choose a destination" : ""}`,
            kind: "step",
            condition: s.value.type === StepType.CONDITION,
            readOnly,
            ...(hasExpression
              ? {
                  expression: {
                    label: s.value.type === StepType.CONDITION ? "Condition (JSONata)" : "Expression (JSONata)",
                    value: s.value.expression,
                    onChange: (expression: string) => setStep(s.key, { expression }),
                  },
                }
              : {}),
            ...(problem?.key === s.key ? { error: problem.message } : {}),
          },
        });
      });
    }
    return list.map((n) => ({ ...n, measured: layout[n.id]?.measured }));
  })();

  const edges: Edge[] = useMemo(
    () =>
      model.kind === WorkflowKind.FAN_OUT
        ? model.targets.map((t) => ({
            id: `e-source-${t.key}`,
            source: "source",
            target: t.key,
            markerEnd: { type: MarkerType.ArrowClosed },
          }))
        : stepEdges(model),
    [model],
  );

  const onNodesChange = (changes: NodeChange<WfNode>[]) => {
    const next = applyNodeChanges(changes, nodes);
    setLayout(Object.fromEntries(next.map((n) => [n.id, { position: n.position, measured: n.measured }])));
    const chosen = changes.find((c) => c.type === "select" && c.selected);
    if (chosen && chosen.type === "select") setSelected(chosen.id);
  };
  /** Drawing an edge between steps sets where the first goes next (then/else from a condition). */
  const onConnect = (c: Connection) => {
    if (readOnly || model.kind !== WorkflowKind.SEQUENTIAL) return;
    const from = stepByKey(c.source);
    const to = stepByKey(c.target);
    if (!from || !to || from.key === to.key) return;
    if (from.value.type === StepType.CONDITION)
      setStep(from.key, c.sourceHandle === "else" ? { elseStep: to.value.name } : { thenStep: to.value.name });
    else setStep(from.key, { nextStep: to.value.name });
  };

  const firstOf = (kinds: string[]) => destinations.find((d) => kinds.includes(d.config?.kind.case ?? ""))?.destinationId ?? "";
  const addTarget = () => {
    const t = item(create(TargetSchema, { destinationId: destinations[0]?.destinationId ?? "" }));
    setModel((m) => ({ ...m, targets: [...m.targets, t] }));
    setSelected(t.key);
  };
  const addStep = (type: StepType) => {
    const base = stepTypeName(type).replace("_", "");
    let n = 1;
    while (model.steps.some((s) => s.value.name === `${base}${n}`)) n++;
    const s = item(
      create(StepSchema, {
        name: `${base}${n}`,
        type,
        ...(type === StepType.REST_CALL ? { target: { destinationId: firstOf(["rest"]) } } : {}),
        ...(type === StepType.DB_QUERY ? { target: { destinationId: firstOf(["sql"]), sql: { table: "" } } } : {}),
        ...(type === StepType.DELAY ? { delayMs: 1000 } : {}),
        ...(type === StepType.CONDITION ? { expression: "true" } : {}),
        ...(type === StepType.TRANSFORM ? { expression: "$" } : {}),
      }),
    );
    setModel((m) => ({ ...m, steps: [...m.steps, s] }));
    setSelected(s.key);
  };
  const remove = (key: string) => {
    setModel((m) => ({ ...m, targets: m.targets.filter((t) => t.key !== key), steps: m.steps.filter((s) => s.key !== key) }));
    setSelected("source");
  };
  const save = () =>
    act(async () => {
      const definition = definitionOf(model);
      const res = workflow
        ? await integration.updateWorkflow({ workflowId: workflow.workflowId, definition, expectedVersion: workflow.currentVersion })
        : await integration.createWorkflow({ name, definition });
      if (res.workflow) {
        setSaved(`Saved as version ${res.workflow.currentVersion}.`);
        onSaved(res.workflow);
      }
    });

  const allNodes = nodes.map((n) => ({ id: n.id, label: n.data.title }));
  const selTarget = model.targets.find((t) => t.key === selected);
  const selStep = stepByKey(selected);
  const targetOf = selTarget?.value ?? selStep?.value.target;
  const setTargetOf = (patch: Partial<Target>) => {
    if (selTarget) setTarget(selTarget.key, patch);
    else if (selStep?.value.target) setStep(selStep.key, { target: { ...selStep.value.target, ...patch } });
  };
  const targetDest = targetOf ? destName(targetOf.destinationId) : undefined;
  const destKinds = selStep?.value.type === StepType.REST_CALL ? ["rest"] : selStep?.value.type === StepType.DB_QUERY ? ["sql"] : undefined;

  return (
    <Section
      title={workflow ? `Workflow ${workflow.name} (version ${workflow.currentVersion})` : "New workflow"}
      actions={
        <button type="button" className="link" onClick={onClose}>
          Close editor
        </button>
      }
    >
      {workflow?.managedByKubernetes ? <Managed resource={workflow.kubernetesResource} /> : null}
      <div className="row">
        {workflow ? null : (
          <>
            <label htmlFor="wf-name">Name</label>
            <input id="wf-name" value={name} onChange={(e) => setName(e.target.value)} required maxLength={200} />
          </>
        )}
        <label htmlFor="wf-kind">Kind</label>
        <select
          id="wf-kind"
          value={model.kind}
          disabled={readOnly}
          onChange={(e) => {
            setModel({ ...model, kind: Number(e.target.value) as WorkflowKind });
            setSelected("source");
          }}
        >
          <option value={WorkflowKind.FAN_OUT}>fan-out (every destination in parallel)</option>
          <option value={WorkflowKind.SEQUENTIAL}>sequential (steps in order)</option>
        </select>
        {readOnly ? null : model.kind === WorkflowKind.FAN_OUT ? (
          <button type="button" onClick={addTarget} disabled={destinations.length === 0}>
            Add destination
          </button>
        ) : (
          STEP_TYPES.map(([t, label]) => (
            <button key={t} type="button" onClick={() => addStep(t)}>
              Add {label}
            </button>
          ))
        )}
      </div>
      {destinations.length === 0 ? <p className="warn">Create a destination first (Destinations).</p> : null}
      <div className="wf-editor">
        <div className="wf-canvas" data-testid="workflow-canvas">
          <ReactFlow
            // A node added or removed: mount again, so the view fits every node.
            key={nodes.length}
            nodes={nodes}
            edges={edges}
            nodeTypes={NODE_TYPES}
            onNodesChange={onNodesChange}
            onConnect={onConnect}
            nodesConnectable={!readOnly && model.kind === WorkflowKind.SEQUENTIAL}
            deleteKeyCode={null}
            fitView
            fitViewOptions={{ padding: 0.2, maxZoom: 1 }}
            minZoom={0.3}
          >
            <Background />
            <Controls showInteractive={false} />
          </ReactFlow>
        </div>
        <aside className="wf-panel" aria-label="Node properties">
          <fieldset className="tabs">
            <legend>Nodes</legend>
            {allNodes.map((n) => (
              <button key={n.id} type="button" aria-pressed={selected === n.id} onClick={() => setSelected(n.id)}>
                {n.label}
              </button>
            ))}
          </fieldset>
          {selected === "source" ? (
            <div className="row">
              <label htmlFor="wf-app">Sender app</label>
              <select id="wf-app" value={model.appId} disabled={readOnly} onChange={(e) => setModel({ ...model, appId: e.target.value })}>
                <option value="">none (ExecuteWorkflow only)</option>
                {apps.data?.apps.map((a) => (
                  <option key={a.appId} value={a.appId}>
                    {a.name}
                  </option>
                ))}
              </select>
              <label htmlFor="wf-retention">Keep the log (hours)</label>
              <input
                id="wf-retention"
                inputMode="numeric"
                size={6}
                placeholder="168"
                readOnly={readOnly}
                value={model.retentionHours || ""}
                onChange={(e) => setModel({ ...model, retentionHours: Number(e.target.value) || 0 })}
              />
            </div>
          ) : null}
          {selStep ? (
            <div>
              <div className="row">
                <label htmlFor="st-name">Step name</label>
                <input
                  id="st-name"
                  value={selStep.value.name}
                  readOnly={readOnly}
                  pattern="[A-Za-z_][A-Za-z0-9_]*"
                  onChange={(e) => setStep(selStep.key, { name: e.target.value })}
                />
                <span className="muted">{stepTypeName(selStep.value.type)}</span>
              </div>
              {selStep.value.type === StepType.DELAY ? (
                <div className="row">
                  <label htmlFor="st-delay">Delay (ms)</label>
                  <input
                    id="st-delay"
                    inputMode="numeric"
                    readOnly={readOnly}
                    value={selStep.value.delayMs}
                    onChange={(e) => setStep(selStep.key, { delayMs: Number(e.target.value) || 0 })}
                  />
                </div>
              ) : null}
              {selStep.value.type === StepType.CONDITION ? (
                <div className="row">
                  <label htmlFor="st-then">Then</label>
                  <select
                    id="st-then"
                    value={selStep.value.thenStep}
                    disabled={readOnly}
                    onChange={(e) => setStep(selStep.key, { thenStep: e.target.value })}
                  >
                    <option value="">next step</option>
                    {model.steps.map((s) => (
                      <option key={s.key}>{s.value.name}</option>
                    ))}
                  </select>
                  <label htmlFor="st-else">Else</label>
                  <select
                    id="st-else"
                    value={selStep.value.elseStep}
                    disabled={readOnly}
                    onChange={(e) => setStep(selStep.key, { elseStep: e.target.value })}
                  >
                    <option value="">end the run</option>
                    {model.steps.map((s) => (
                      <option key={s.key}>{s.value.name}</option>
                    ))}
                  </select>
                </div>
              ) : (
                <div className="row">
                  <label htmlFor="st-next">Next</label>
                  <select
                    id="st-next"
                    value={selStep.value.nextStep}
                    disabled={readOnly}
                    onChange={(e) => setStep(selStep.key, { nextStep: e.target.value })}
                  >
                    <option value="">the following step</option>
                    <option value="end">end the run</option>
                    {model.steps.map((s) => (
                      <option key={s.key}>{s.value.name}</option>
                    ))}
                  </select>
                  <label htmlFor="st-onerror">On error</label>
                  <select
                    id="st-onerror"
                    value={selStep.value.onError}
                    disabled={readOnly}
                    onChange={(e) => setStep(selStep.key, { onError: Number(e.target.value) as OnError })}
                  >
                    <option value={OnError.UNSPECIFIED}>stop</option>
                    <option value={OnError.SKIP}>skip the step</option>
                    <option value={OnError.RETRY}>retry</option>
                  </select>
                </div>
              )}
            </div>
          ) : null}
          {targetOf ? (
            <div>
              <div className="row">
                <label htmlFor="tg-dest">Destination</label>
                <select
                  id="tg-dest"
                  value={targetOf.destinationId}
                  disabled={readOnly}
                  onChange={(e) => setTargetOf({ destinationId: e.target.value })}
                >
                  <option value="">— choose —</option>
                  {destinations
                    .filter((d) => !destKinds || destKinds.includes(d.config?.kind.case ?? ""))
                    .map((d) => (
                      <option key={d.destinationId} value={d.destinationId}>
                        {d.name} ({kindLabel(d.config)})
                      </option>
                    ))}
                </select>
                {targetDest?.config?.kind.case === "rest" ? (
                  <>
                    <label htmlFor="tg-path">Path</label>
                    <input id="tg-path" value={targetOf.path} readOnly={readOnly} onChange={(e) => setTargetOf({ path: e.target.value })} />
                  </>
                ) : null}
              </div>
              {selTarget ? (
                <div className="row">
                  <label htmlFor="tg-cond">Condition (JSONata; empty: always)</label>
                  <input
                    id="tg-cond"
                    value={targetOf.condition}
                    readOnly={readOnly}
                    size={30}
                    onChange={(e) => setTargetOf({ condition: e.target.value })}
                  />
                </div>
              ) : null}
              {targetDest?.config?.kind.case === "corpus" ? (
                <div className="row">
                  <label htmlFor="tg-title">Document title (JSONata)</label>
                  <input
                    id="tg-title"
                    value={targetOf.title}
                    readOnly={readOnly}
                    onChange={(e) => setTargetOf({ title: e.target.value })}
                  />
                </div>
              ) : null}
            </div>
          ) : null}
          {selected !== "source" && !readOnly ? (
            <button type="button" className="danger" onClick={() => remove(selected)}>
              Remove this node
            </button>
          ) : null}
        </aside>
      </div>
      {targetOf && targetDest?.config?.kind.case === "sql" ? (
        <FieldMapper
          idPrefix={`fm-${selected}`}
          destinationId={targetOf.destinationId}
          sourceFields={sourceFields}
          value={targetOf.sql ?? create(SqlWriteSchema, {})}
          onChange={(sql) => setTargetOf({ sql })}
          readOnly={readOnly}
          canBrowse={can(principal, `${IN}/ListDestinationColumns`)}
        />
      ) : null}
      {readOnly ? null : (
        <div className="row">
          <button type="button" disabled={busy} onClick={() => void save()}>
            {workflow ? "Save new version" : "Create workflow"}
          </button>
          {saved && !error ? (
            <span className="ok" role="status">
              {saved}
            </span>
          ) : null}
        </div>
      )}
      {error ? (
        <>
          <ErrorBox error={error} />
          {problem ? <p className="muted">The problem is marked on its node.</p> : null}
          <button type="button" className="link" onClick={() => setError(undefined)}>
            Dismiss
          </button>
        </>
      ) : null}
    </Section>
  );
}

/** Versions of a workflow, newest first, with rollback to an earlier one. */
function Versions({
  workflow,
  principal,
  onRolledBack,
}: {
  workflow: Workflow;
  principal: Principal;
  onRolledBack: (w: Workflow) => void;
}) {
  const versions = useQuery(IntegrationService.method.listWorkflowVersions, { workflowId: workflow.workflowId });
  const { error, act } = useAct();
  const mayRollBack = !workflow.managedByKubernetes && can(principal, `${IN}/RollbackWorkflow`);
  return (
    <Section title="Versions">
      {versions.isPending ? <Loading what="versions" /> : null}
      {versions.error ? <ErrorBox error={versions.error} onRetry={() => void versions.refetch()} /> : null}
      {versions.data && versions.data.versions.length === 0 ? <Empty>No versions.</Empty> : null}
      {versions.data && versions.data.versions.length > 0 ? (
        <table>
          <thead>
            <tr>
              <th scope="col">Version</th>
              <th scope="col">Saved</th>
              <th scope="col">By key</th>
              <th scope="col">What</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {versions.data.versions.map((v) => (
              <tr key={v.version} data-testid={`version-${v.version}`}>
                <td>
                  {v.version}
                  {v.version === workflow.currentVersion ? <span className="muted"> (current)</span> : null}
                </td>
                <td>{when(v.createTime)}</td>
                <td>
                  <code>{v.createdBy}</code>
                </td>
                <td>
                  {v.definition?.kind === WorkflowKind.SEQUENTIAL
                    ? `${v.definition.steps.length} step(s)`
                    : `${v.definition?.targets.length ?? 0} destination(s)`}
                </td>
                <td>
                  {mayRollBack && v.version !== workflow.currentVersion ? (
                    <button
                      type="button"
                      onClick={() =>
                        void act(async () => {
                          const res = await integration.rollbackWorkflow({ workflowId: workflow.workflowId, version: v.version });
                          if (res.workflow) onRolledBack(res.workflow);
                        })
                      }
                    >
                      Roll back to version {v.version}
                    </button>
                  ) : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {error ? <ErrorBox error={error} /> : null}
    </Section>
  );
}

/** Workflows: list; the visual editor (React Flow) for a new or an existing one; versions and rollback. */
export default function Workflows({ principal }: { principal: Principal }) {
  const list = useQuery(IntegrationService.method.listWorkflows, {});
  const destinations = useQuery(IntegrationService.method.listDestinations, {});
  const [open, setOpen] = useState<{ workflow: Workflow | undefined; rev: number } | undefined>();
  const { error, act } = useAct();
  return (
    <div>
      <Section
        title="Workflows"
        actions={
          can(principal, `${IN}/CreateWorkflow`) ? (
            <button type="button" onClick={() => setOpen({ workflow: undefined, rev: Date.now() })}>
              New workflow
            </button>
          ) : null
        }
      >
        {list.isPending ? <Loading what="workflows" /> : null}
        {list.error ? <ErrorBox error={list.error} onRetry={() => void list.refetch()} /> : null}
        {list.data && list.data.workflows.length === 0 ? <Empty>No workflows yet.</Empty> : null}
        {list.data && list.data.workflows.length > 0 ? (
          <table>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Kind</th>
                <th scope="col">Version</th>
                <th scope="col">Created</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {list.data.workflows.map((w) => (
                <tr key={w.workflowId} data-testid={`workflow-${w.name}`}>
                  <td>
                    {w.name} <code>{w.workflowId}</code>
                    {w.managedByKubernetes ? <span className="muted"> · managed by Kubernetes</span> : null}
                  </td>
                  <td>{w.definition?.kind === WorkflowKind.SEQUENTIAL ? "sequential" : "fan-out"}</td>
                  <td>{w.currentVersion}</td>
                  <td>{when(w.createTime)}</td>
                  <td>
                    <button type="button" onClick={() => setOpen({ workflow: w, rev: Date.now() })}>
                      Open<span className="sr-only"> {w.name}</span>
                    </button>{" "}
                    {!w.managedByKubernetes && can(principal, `${IN}/DeleteWorkflow`) ? (
                      <button
                        type="button"
                        className="danger"
                        onClick={() => {
                          if (window.confirm(`Delete ${w.name}? Messages queued for it are dropped.`)) {
                            void act(() => integration.deleteWorkflow({ workflowId: w.workflowId })).then(
                              () => open?.workflow?.workflowId === w.workflowId && setOpen(undefined),
                            );
                          }
                        }}
                      >
                        Delete<span className="sr-only"> {w.name}</span>
                      </button>
                    ) : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : null}
        {error ? <ErrorBox error={error} /> : null}
      </Section>
      {open && destinations.isPending ? <Loading what="destinations" /> : null}
      {open && destinations.error ? <ErrorBox error={destinations.error} onRetry={() => void destinations.refetch()} /> : null}
      {open && destinations.data ? (
        <WorkflowEditor
          key={open.rev}
          workflow={open.workflow}
          principal={principal}
          destinations={destinations.data.destinations}
          onSaved={(w) => setOpen({ workflow: w, rev: open.rev })}
          onClose={() => setOpen(undefined)}
        />
      ) : null}
      {open?.workflow ? (
        <Versions workflow={open.workflow} principal={principal} onRolledBack={(w) => setOpen({ workflow: w, rev: Date.now() })} />
      ) : null}
    </div>
  );
}
