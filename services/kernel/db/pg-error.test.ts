import { describe, expect, it } from "vitest";
import { isDatabaseUnavailableError } from "./pg-error.js";

const coded = (code: string, message = "x") => Object.assign(new Error(message), { code });

describe("isDatabaseUnavailableError", () => {
  it("recognises refused, dropped and restarting servers and pool timeouts", () => {
    for (const err of [
      coded("ECONNREFUSED", "connect ECONNREFUSED 127.0.0.1:5432"),
      coded("ECONNRESET"),
      coded("57P01", "terminating connection due to administrator command"),
      coded("57P03", "the database system is starting up"),
      coded("08006"),
      coded("08001"),
      new Error("Connection terminated unexpectedly"),
      new Error("Connection terminated due to connection timeout"),
      new Error("timeout exceeded when trying to connect"),
      new Error("Client has encountered a connection error and is not queryable"),
      new AggregateError([coded("ECONNREFUSED"), coded("ECONNREFUSED")], ""),
      new Error("wrapped", { cause: coded("57P01") }),
    ]) {
      expect(isDatabaseUnavailableError(err), String((err as Error).message)).toBe(true);
    }
  });

  it("leaves statement errors alone (they are bugs or client errors, not outages)", () => {
    for (const err of [coded("23505"), coded("42P01"), coded("22021"), coded("40001"), new Error("boom"), "text", undefined, null]) {
      expect(isDatabaseUnavailableError(err)).toBe(false);
    }
  });
});
