import { register } from "prom-client";
import { describe, expect, it } from "vitest";
import { counter, gauge, histogram } from "./metrics.js";

describe("metric helpers", () => {
  it("return the same metric for the same name, so many instances in one process share it", async () => {
    const a = counter("nexus_test_things_total", "Things.", ["kind"]);
    const b = counter("nexus_test_things_total", "Things.", ["kind"]);
    expect(b).toBe(a);
    a.inc({ kind: "x" });
    b.inc({ kind: "x" });
    expect(await register.getSingleMetricAsString("nexus_test_things_total")).toContain('nexus_test_things_total{kind="x"} 2');

    expect(gauge("nexus_test_level", "Level.")).toBe(gauge("nexus_test_level", "Level."));
    const h = histogram("nexus_test_seconds", "Seconds.", ["op"]);
    expect(histogram("nexus_test_seconds", "Seconds.", ["op"])).toBe(h);
    h.observe({ op: "a" }, 0.02);
    expect(await register.getSingleMetricAsString("nexus_test_seconds")).toContain('nexus_test_seconds_bucket{le="0.025",op="a"} 1');
  });

  it("refuse a second registration with another type or other labels", () => {
    counter("nexus_test_clash_total", "Clash.", ["a"]);
    expect(() => gauge("nexus_test_clash_total", "Clash.", ["a"])).toThrow(/another type/);
    expect(() => counter("nexus_test_clash_total", "Clash.", ["b"])).toThrow(/labels/);
  });
});
