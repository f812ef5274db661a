import assert from "node:assert/strict";
import { lineOf } from "./log.ts";

Deno.test("log: a line is one JSON object: time, level, msg, then the fields in their order", () => {
  const cases: Record<string, unknown>[] = [
    {},
    { id: 'a"b\\c\u0000', method: "POST", path: "/v1/functions/é", status: 200, ms: 0.3 },
    { nested: { list: [1, "two", null] }, skipped: undefined, flag: false },
    // Keys named like the first ones replace them in place, as an object spread does.
    { msg: "other", level: "custom", extra: 1 },
  ];
  for (const fields of cases) {
    const { line, toErr } = lineOf("info", 'request "quoted"', fields);
    const parsed = JSON.parse(line);
    assert.deepEqual(
      Object.keys(parsed),
      Object.keys({ time: 0, level: 0, msg: 0, ...JSON.parse(JSON.stringify(fields)) }),
    );
    assert.equal(parsed.level, fields.level ?? "info");
    assert.equal(parsed.msg, fields.msg ?? 'request "quoted"');
    assert.match(parsed.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.deepEqual({ ...parsed, time: undefined, level: undefined, msg: undefined }, {
      ...JSON.parse(JSON.stringify(fields)),
      time: undefined,
      level: undefined,
      msg: undefined,
    });
    assert.equal(toErr, false);
  }
  assert.equal(lineOf("warn", "x", {}).toErr, true);
});
