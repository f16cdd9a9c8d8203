#!/usr/bin/env node
// ort_bench.js - ONNX Runtime latency of a model on random inputs, for side-by-side
// comparison with `fewmul bench`. Prints median_ms / min_ms / max_ms / peak_rss_mb last.
//   node bench/ort_bench.js model.onnx --batch 1 --threads 1 [--warmup 10] [--iters 50]
'use strict';
const path = require('path');
let ort;
try { ort = require(path.join(__dirname, '..', 'tools', 'ort', 'node_modules', 'onnxruntime-node')); } catch (e) {
  console.error('ort_bench: onnxruntime-node is not installed (bash scripts/install-deps.sh)');
  process.exit(77);
}
const argv = process.argv.slice(2);
const opt = (k, d) => { const i = argv.indexOf(k); return i >= 0 ? Number(argv[i + 1]) : d; };
const model = argv[0];
const batch = opt('--batch', 1), threads = opt('--threads', 1), warmup = opt('--warmup', 10), iters = opt('--iters', 50);

function rand(type, n) {
  if (type === 'float32') { const a = new Float32Array(n); for (let i = 0; i < n; i++) a[i] = Math.random(); return a; }
  if (type === 'int64') return new BigInt64Array(n);
  if (type === 'uint8' || type === 'bool') return new Uint8Array(n);
  throw new Error(`input type ${type} unsupported`);
}

async function main() {
  const sess = await ort.InferenceSession.create(model, {
    intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential' });
  const feeds = {};
  for (const name of sess.inputNames) {
    const meta = sess.inputMetadata ? sess.inputMetadata.find(m => m.name === name) : null;
    if (!meta || !meta.shape) throw new Error('this onnxruntime-node exposes no input metadata');
    const dims = meta.shape.map((d, i) => (typeof d === 'number' && d > 0) ? d : (i === 0 ? batch : 1));
    const type = meta.type || 'float32';
    feeds[name] = new ort.Tensor(type, rand(type, dims.reduce((a, b) => a * b, 1)), dims);
  }
  for (let i = 0; i < warmup; i++) await sess.run(feeds);
  const ts = [];
  for (let i = 0; i < iters; i++) {
    const t0 = process.hrtime.bigint();
    await sess.run(feeds);
    ts.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  ts.sort((a, b) => a - b);
  const rss = process.resourceUsage().maxRSS / 1024;
  console.log(`ort ${path.basename(model)} batch=${batch} threads=${threads} iters=${iters}`);
  console.log(`median_ms: ${ts[ts.length >> 1].toFixed(3)}`);
  console.log(`min_ms: ${ts[0].toFixed(3)}`);
  console.log(`max_ms: ${ts[ts.length - 1].toFixed(3)}`);
  console.log(`peak_rss_mb: ${rss.toFixed(1)}`);
}
main().catch(e => { console.error('ort_bench: ' + e.message); process.exit(1); });
