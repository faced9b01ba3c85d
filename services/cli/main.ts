#!/usr/bin/env -S node --liftoff-only --max-semi-space-size=32
// --liftoff-only: V8 compiles WebAssembly (PGlite in `nexus dev`) with its baseline compiler
// only. TurboFan's compilation of PostgreSQL's hot functions was ~600 MB of `nexus dev`'s
// peak RSS (docs/performance.md); other commands run no WebAssembly, so it changes nothing.
// --max-semi-space-size=32: V8 sizes the young generation from the machine's memory (here
// 2 × 64 MiB); capped at 2 × 32 MiB, `nexus dev` peaks 65 MiB lower after an ingest and ~100 MiB
// lower under RPC load, at the same CPU per call (docs/performance.md, "memory").
import { ConnectError } from "@connectrpc/connect";
import type { Command } from "./command.js";
import { UsageError } from "./command.js";
import { commands } from "./commands/index.js";
import { describeError } from "./output.js";

/** Picks the command whose path is the longest prefix of argv. */
function resolve(argv: string[]): { command: Command; rest: string[] } | undefined {
  let best: Command | undefined;
  for (const c of commands) {
    if (c.path.every((w, i) => argv[i] === w) && (!best || c.path.length > best.path.length)) best = c;
  }
  return best ? { command: best, rest: argv.slice(best.path.length) } : undefined;
}

function help(): string {
  const width = Math.max(...commands.map((c) => c.path.join(" ").length));
  const lines = commands.map((c) => `  nexus ${c.path.join(" ").padEnd(width)}  ${c.summary}`);
  return [
    "nexus — multi-tenant platform for retrieval-augmented agents",
    "",
    "Usage: nexus <command> [options]",
    "",
    "Commands:",
    ...lines,
    "",
    "`nexus <command> --help` shows a command's options. Client commands read NEXUS_URL and NEXUS_API_KEY.",
  ].join("\n");
}

async function main(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === "help" || argv[0] === "--help" || argv[0] === "-h") {
    console.log(help());
    return 0;
  }
  if (argv[0] === "--version" || argv[0] === "version") {
    const { readFileSync } = await import("node:fs");
    const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version: string };
    console.log(pkg.version);
    return 0;
  }
  const found = resolve(argv);
  if (!found) {
    console.error(`nexus: unknown command "${argv.join(" ")}"\n\n${help()}`);
    return 2;
  }
  const { command, rest } = found;
  if (rest.includes("--help") || rest.includes("-h")) {
    console.log(`${command.summary}\n\nUsage:\n  ${command.usage}`);
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    if (err instanceof UsageError || (err instanceof TypeError && "code" in err && String(err.code).startsWith("ERR_PARSE_ARGS"))) {
      console.error(`nexus ${command.path.join(" ")}: ${err.message}\n\nUsage:\n  ${command.usage}`);
      return 2;
    }
    if (err instanceof ConnectError) {
      console.error(`nexus ${command.path.join(" ")}: ${describeError(err)}`);
      return 1;
    }
    console.error(`nexus ${command.path.join(" ")}: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
