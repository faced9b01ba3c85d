/**
 * Classification of driver errors that the integration suite cannot make a real server produce
 * on demand (deadlocks and serialization failures pick their victim; shutdowns would stop the
 * shared server). The objects have the shape the drivers give: `pg` sets `code` to the SQLSTATE,
 * `mysql2` sets `code` (ER_…), `errno`, `sqlState` and `fatal`. Refused connections, rejections,
 * wrong credentials and too many connections are proven against the real servers in sql.int.test.ts.
 */
import { describe, expect, it } from "vitest";
import type { SqlConnection } from "../ports.js";
import { classifyMysqlError, classifyPgError } from "./errors.js";

const pgConn: SqlConnection = { engine: "postgres", host: "db", port: 5432, database: "app", user: "u", password: "s3cret-pw" };
const myConn: SqlConnection = { ...pgConn, engine: "mysql", port: 3306 };
const err = (props: Record<string, unknown>) => Object.assign(new Error(String(props.message ?? "failed")), props);

describe("classifyPgError", () => {
  it.each([
    ["deadlock", "40P01", "DESTINATION_UNAVAILABLE"],
    ["serialization failure", "40001", "DESTINATION_UNAVAILABLE"],
    ["statement timeout", "57014", "DESTINATION_UNAVAILABLE"],
    ["admin shutdown", "57P01", "DESTINATION_UNAVAILABLE"],
    ["lock not available", "55P03", "DESTINATION_UNAVAILABLE"],
    ["connection failure", "08006", "DESTINATION_UNAVAILABLE"],
    ["check violation", "23514", "DESTINATION_REJECTED"],
    ["invalid text representation", "22P02", "DESTINATION_REJECTED"],
    ["undefined table", "42P01", "DESTINATION_REJECTED"],
    ["invalid password", "28P01", "INVALID_DESTINATION_CONFIG"],
  ])("%s (%s) → %s", (_, code, reason) => {
    const e = classifyPgError(err({ code }), pgConn, "insert on t");
    expect(e.reason).toBe(reason);
    expect(e.retryable).toBe(reason === "DESTINATION_UNAVAILABLE");
  });
  it("takes the password out of a driver message that contains it", () => {
    expect(classifyPgError(err({ message: "bad login s3cret-pw", code: "28P01" }), pgConn, "x").message).not.toContain("s3cret-pw");
  });
});

describe("classifyMysqlError", () => {
  it.each([
    ["deadlock", { code: "ER_LOCK_DEADLOCK", errno: 1213, sqlState: "40001" }, "DESTINATION_UNAVAILABLE"],
    ["lock wait timeout", { code: "ER_LOCK_WAIT_TIMEOUT", errno: 1205, sqlState: "HY000" }, "DESTINATION_UNAVAILABLE"],
    ["too many connections", { code: "ER_CON_COUNT_ERROR", errno: 1040, sqlState: "08004" }, "DESTINATION_UNAVAILABLE"],
    ["server shutdown", { code: "ER_SERVER_SHUTDOWN", errno: 1053, sqlState: "08S01" }, "DESTINATION_UNAVAILABLE"],
    ["connection lost", { code: "PROTOCOL_CONNECTION_LOST", fatal: true }, "DESTINATION_UNAVAILABLE"],
    ["query timeout", { code: "PROTOCOL_SEQUENCE_TIMEOUT", fatal: true }, "DESTINATION_UNAVAILABLE"],
    ["data too long", { code: "ER_DATA_TOO_LONG", errno: 1406, sqlState: "22001" }, "DESTINATION_REJECTED"],
    ["foreign key", { code: "ER_NO_REFERENCED_ROW_2", errno: 1452, sqlState: "23000" }, "DESTINATION_REJECTED"],
    ["no such table", { code: "ER_NO_SUCH_TABLE", errno: 1146, sqlState: "42S02" }, "DESTINATION_REJECTED"],
    ["unknown database", { code: "ER_BAD_DB_ERROR", errno: 1049, sqlState: "42000" }, "INVALID_DESTINATION_CONFIG"],
  ])("%s → %s", (_, props, reason) => {
    const e = classifyMysqlError(err(props), myConn, "insert on t");
    expect(e.reason).toBe(reason);
    expect(e.retryable).toBe(reason === "DESTINATION_UNAVAILABLE");
    expect(e.message).toContain("MySQL at db:3306/app");
  });
});
