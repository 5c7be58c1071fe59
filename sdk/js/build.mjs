// Builds dist/: herald.mjs (minified ES module), herald.d.ts (its types,
// one self-contained file) and herald.js (minified IIFE; global Herald).
// The output depends only on the sources and the pinned esbuild and tsc, so
// CI can rebuild it and compare with what is committed.
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const common = { bundle: true, minify: true, target: "es2020", legalComments: "none", logLevel: "warning" };
await build({ ...common, entryPoints: ["src/herald.ts"], format: "esm", outfile: "dist/herald.mjs" });
await build({ ...common, entryPoints: ["src/global.ts"], format: "iife", outfile: "dist/herald.js" });

const tmp = mkdtempSync(join(tmpdir(), "herald-dts-"));
try {
  execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", ".", "--emitDeclarationOnly", "--outDir", tmp], { stdio: "inherit" });
  const dts = readFileSync(join(tmp, "herald.d.ts"), "utf8");
  if (/^import /m.test(dts)) throw new Error("herald.d.ts imports another file: keep the public types in src/herald.ts");
  writeFileSync("dist/herald.d.ts", dts);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
