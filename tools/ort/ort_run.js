#!/usr/bin/env node
// ort_run.js - runs an ONNX model in ONNX Runtime on .npy inputs, writes .npy outputs.
//   node tools/ort/ort_run.js model.onnx outdir [name=in.npy | in.npy]...
// Inputs without a name are bound in graph input order. Outputs: outdir/<name>.npy.
// Exit 77 when onnxruntime-node is not installed (callers report a skip).
'use strict';
const path = require('path');
const fs = require('fs');
const { readNpy, writeNpy } = require('./npy.js');
let ort;
try { ort = require(path.join(__dirname, 'node_modules', 'onnxruntime-node')); } catch (e) {
  console.error('ort_run: onnxruntime-node is not installed (bash scripts/install-deps.sh)');
  process.exit(77);
}

async function main() {
  const [model, outdir, ...args] = process.argv.slice(2);
  if (!model || !outdir) { console.error('usage: ort_run.js model.onnx outdir [name=in.npy]...'); process.exit(2); }
  const sess = await ort.InferenceSession.create(model, { intraOpNumThreads: 1, graphOptimizationLevel: 'all' });
  const feeds = {};
  args.forEach((a, i) => {
    let name = sess.inputNames[i], file = a;
    const eq = a.indexOf('=');
    if (eq > 0 && !fs.existsSync(a)) { name = a.slice(0, eq); file = a.slice(eq + 1); }
    const t = readNpy(file);
    feeds[name] = new ort.Tensor(t.type, t.data, t.dims);
  });
  const res = await sess.run(feeds);
  fs.mkdirSync(outdir, { recursive: true });
  for (const name of sess.outputNames) {
    const t = res[name];
    writeNpy(path.join(outdir, name.replace(/[^A-Za-z0-9_.-]/g, '_') + '.npy'), t.type, t.dims, t.data);
  }
}
main().catch(e => { console.error('ort_run: ' + e.message); process.exit(1); });
