// Parse Mermaid files with Mermaid's own parser: `node parse.mjs FILE...`.
// Prints "ok FILE (diagram type)" or "error FILE: message" per file; exit 1 if any failed.
// Mermaid wants a DOM even to parse; jsdom provides one (no browser is needed).
import { readFileSync } from "node:fs";
import { JSDOM } from "jsdom";

const dom = new JSDOM("<!doctype html><html><body></body></html>");
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import("mermaid");

let failed = 0;
for (const file of process.argv.slice(2)) {
  try {
    const result = await mermaid.parse(readFileSync(file, "utf8"));
    console.log(`ok ${file} (${result.diagramType})`);
  } catch (error) {
    failed += 1;
    console.log(`error ${file}: ${String(error.message ?? error).replaceAll("\n", " | ")}`);
  }
}
process.exit(failed ? 1 : 0);
