import { defineConfig } from "vitest/config";

/**
 * Unit tests (`*.test.ts`) and integration tests (`*.int.test.ts`, which talk to a real
 * PostgreSQL and NATS JetStream) sit beside the code they exercise; tests that start the mesh or
 * its processes and call it as a client, and repository checks, live in tests/. Every shared test
 * helper lives in tests/support/ (polling: `eventually.ts`; a suite's JetStream streams:
 * `nats-streams.ts`).
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
    env: {
      NEXUS_RATE_LIMIT_ENABLED: "false",
      // A master key for tests only (never used anywhere else): meshes on PostgreSQL in tests
      // have a keyring, so document contents, chunk texts and messages are sealed as in
      // production. Suites that test the keyring without one pass their own settings.
      NEXUS_MASTER_KEYS: "1:3oDnrfr7HEPFBj+3fO7fzwXTHNFKfdq6W7RsMij69oU=",
    },
  },
});
