import { defineConfig } from "vitest/config";

/**
 * Unit tests (`*.test.ts`) sit beside the code; integration tests (`*.int.test.ts`) talk to a
 * real PostgreSQL and NATS JetStream; whole-mesh end-to-end tests live in tests/.
 */
export default defineConfig({
  test: {
    include: ["services/**/*.test.ts", "operator/**/*.test.ts", "tests/**/*.test.ts", "scripts/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Integration suites share one PostgreSQL and one NATS server; each uses its own
    // schema/stream names, so files may run in parallel, but keep the pool small on 2 cores.
    maxWorkers: 2,
    globalSetup: ["tests/support/global-setup.ts"],
    // Rate limits are on by default for users; suites that exercise them turn them on. The
    // rest call far faster than a person would, so they run without (child processes inherit).
    env: { NEXUS_RATE_LIMIT_ENABLED: "false" },
  },
});
