import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { RetryInfoSchema } from "../../../gen/google/rpc/error_details_pb.js";
import { errorMetadata, errorReason } from "../../kernel/errors.js";
import { Bulkhead } from "./bulkhead.js";

describe("bulkhead", () => {
  it("admits up to max runs, refuses the next with SERVICE_BUSY and RetryInfo, and frees slots on release", () => {
    const bulkhead = new Bulkhead(2);
    const a = bulkhead.enter();
    bulkhead.enter();
    let refused: unknown;
    try {
      bulkhead.enter();
    } catch (err) {
      refused = err;
    }
    expect(refused).toBeInstanceOf(ConnectError);
    const err = refused as ConnectError;
    expect(err.code).toBe(Code.Unavailable);
    expect(errorReason(err)).toBe("SERVICE_BUSY");
    expect(errorMetadata(err).max_concurrent_runs).toBe("2");
    expect(err.findDetails(RetryInfoSchema)).toHaveLength(1);
    a();
    a();
    expect(bulkhead.active).toBe(1);
    bulkhead.enter();
    expect(bulkhead.active).toBe(2);
  });
});
