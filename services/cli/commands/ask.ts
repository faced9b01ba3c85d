import { parseArgs } from "node:util";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { toJsonString } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { type RunRequestSchema, RunResponseSchema, RunStatus } from "../../../gen/nexus/agent/v1/agent_service_pb.js";
import type { Citation } from "../../../gen/nexus/agent/v1/session_pb.js";
import type { Command } from "../command.js";
import { UsageError } from "../command.js";
import { DEMO_CORPUS_ID } from "../demo/demo-corpus.js";
import { CLIENT_OPTIONS, clientFrom } from "./client-options.js";

/** How a citation reads in the terminal: `[1] keys.md, chars 120–245 (document keys, chunk 0)`. */
export function describeCitation(c: Citation, index: number): string {
  const name = c.filename || c.documentId;
  const quote = c.quote.length > 160 ? `${c.quote.slice(0, 157)}…` : c.quote;
  return `[${index + 1}] ${name}, chars ${c.charStart}–${c.charEnd} (document ${c.documentId}, chunk ${c.chunkOrdinal}, score ${c.score.toFixed(3)})\n    “${quote.replace(/\s+/g, " ")}”`;
}

/** `nexus ask`: one Run, streamed to the terminal. */
export const askCommand: Command = {
  path: ["ask"],
  summary: "Ask a question: streams the grounded answer as it is generated, then its citations",
  usage:
    `nexus ask "question" [--corpus ${DEMO_CORPUS_ID}] [--session ID] [--provider extractive|openai] [--model NAME] [--top-k N] [--url URL] [--json]\n` +
    `  --corpus defaults to NEXUS_CORPUS, else the demo corpus "${DEMO_CORPUS_ID}" that nexus dev seeds; --json prints every event as one JSON line`,
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      options: {
        ...CLIENT_OPTIONS,
        corpus: { type: "string" },
        session: { type: "string" },
        provider: { type: "string" },
        model: { type: "string" },
        "top-k": { type: "string" },
      },
      strict: true,
      allowPositionals: true,
    });
    const message = positionals.join(" ").trim();
    if (message === "") throw new UsageError("the question is required");
    let topK: number | undefined;
    if (values["top-k"] !== undefined) {
      topK = Number(values["top-k"]);
      if (!Number.isInteger(topK) || topK < 1 || topK > 50) throw new UsageError("--top-k must be an integer from 1 to 50");
    }
    const request: MessageInitShape<typeof RunRequestSchema> = {
      corpusId: values.corpus ?? process.env.NEXUS_CORPUS ?? DEMO_CORPUS_ID,
      message,
      sessionId: values.session ?? "",
      ...(topK !== undefined ? { topK } : {}),
      options: { provider: values.provider ?? "", model: values.model ?? "" },
    };
    const client = clientFrom(values);
    // Ctrl-C cancels the run on the server too (the model call stops at once).
    const controller = new AbortController();
    const onSigint = () => controller.abort();
    process.once("SIGINT", onSigint);
    let status = RunStatus.UNSPECIFIED;
    let wroteText = false;
    try {
      for await (const res of client.agent.run(request, { signal: controller.signal })) {
        if (values.json) {
          console.log(toJsonString(RunResponseSchema, res));
          if (res.event.case === "done") status = res.event.value.status;
          continue;
        }
        const e = res.event;
        switch (e.case) {
          case "tokenDelta":
            process.stdout.write(e.value.text);
            wroteText = true;
            break;
          case "messageFinal":
            if (wroteText) process.stdout.write("\n");
            if (e.value.citations.length > 0) console.log(`\nSources:\n${e.value.citations.map(describeCitation).join("\n")}`);
            break;
          case "error":
            if (wroteText) process.stdout.write("\n");
            console.error(`nexus ask: ${e.value.code.toLowerCase()} ${e.value.reason}: ${e.value.message}`);
            break;
          case "done":
            status = e.value.status;
            break;
          case "accepted":
            process.stderr.write(`session ${e.value.sessionId} · ${e.value.provider}/${e.value.model} · request ${e.value.requestId}\n`);
            break;
          default:
            break;
        }
      }
    } catch (err) {
      if (controller.signal.aborted && err instanceof ConnectError && err.code === Code.Canceled) {
        console.error("\nnexus ask: cancelled");
        return 130;
      }
      throw err;
    } finally {
      process.off("SIGINT", onSigint);
    }
    return status === RunStatus.COMPLETED ? 0 : 1;
  },
};
