// The ESM entry as shipped stays under 8 KB with gzip -9, and the README
// states its current size.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

test("dist/herald.mjs is under 8 KB gzip -9", () => {
  const n = gzipSync(readFileSync(new URL("../dist/herald.mjs", import.meta.url)), { level: 9 }).length;
  console.log(`dist/herald.mjs: ${n} bytes gzip -9`);
  assert.ok(n < 8192, `${n} bytes`);
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
  const stated = Number(/(\d[\d,]*) bytes gzip -9/.exec(readme)?.[1].replace(",", ""));
  assert.ok(Math.abs(stated - n) <= 256, `README.md states ${stated} bytes; the build is ${n}: update it`);
});
