import { ConnectError } from "@connectrpc/connect";

/** The error an RPC failed with, as a ConnectError (a call that succeeds fails the test). */
export async function callFailure(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to fail");
}
