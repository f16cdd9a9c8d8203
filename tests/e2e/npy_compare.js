#!/usr/bin/env node
// npy_compare.js - compares two float .npy files, for the e2e tests.
//
//   node npy_compare.js GOT.npy REF.npy [--atol A] [--rtol R] [--argmax]
//       Passes (exit 0) when the shapes match and every element has
//       |got - ref| <= A + R * |ref| (defaults A = 1e-4, R = 1e-3; NaN only where ref is NaN),
//       and with --argmax, when the argmax over the last axis is the same in every row.
//       Prints one line: max_abs_diff, max_rel_diff (|got - ref| / max(|ref|, 1e-30)) and
//       the verdict; exit 1 on a mismatch, 2 on a usage or file error.
//   node npy_compare.js --head K IN.npy OUT.npy
//       Writes the first K entries of IN's first axis to OUT (a smaller batch).
'use strict';
const path = require('path');
const { readNpy, writeNpy } = require(path.join(__dirname, '..', '..', 'tools', 'ort', 'npy.js'));

function die(msg) { console.error('npy_compare: ' + msg); process.exit(2); }

function load(file) {
  try { return readNpy(file); } catch (e) { die(e.message); }
}

function head(args) {
  const [k, inp, out] = args;
  const K = Number(k);
  if (!Number.isInteger(K) || K < 1 || !inp || !out) die('usage: --head K IN.npy OUT.npy');
  const t = load(inp);
  if (!t.dims.length || t.dims[0] < K) die(`${inp}: first axis ${t.dims[0]} < ${K}`);
  const per = t.data.length / t.dims[0];
  writeNpy(out, t.type, [K, ...t.dims.slice(1)], t.data.slice(0, K * per));
}

function main() {
  const argv = process.argv.slice(2);
  if (argv[0] === '--head') return head(argv.slice(1));
  let atol = 1e-4, rtol = 1e-3, argmax = false;
  const files = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--atol' || a === '--rtol') {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v < 0) die(`${a}: '${argv[i]}' is not a non-negative number`);
      if (a === '--atol') atol = v; else rtol = v;
    } else if (a === '--argmax') argmax = true;
    else if (a.startsWith('--')) die(`unknown option ${a}`);
    else files.push(a);
  }
  if (files.length !== 2) die('usage: npy_compare.js GOT.npy REF.npy [--atol A] [--rtol R] [--argmax]');
  const [got, ref] = files.map(load);
  const shape = t => '[' + t.dims.join('x') + ']';
  if (!/^float/.test(got.type) || !/^float/.test(ref.type)) die(`float .npy expected, got ${got.type} and ${ref.type}`);
  if (shape(got) !== shape(ref)) {
    console.log(`shape mismatch: got ${shape(got)}, expected ${shape(ref)}: FAIL`);
    process.exit(1);
  }
  let maxAbs = 0, maxRel = 0, bad = 0, firstBad = -1;
  for (let i = 0; i < ref.data.length; i++) {
    const g = got.data[i], r = ref.data[i];
    if (Number.isNaN(r)) {
      if (!Number.isNaN(g)) { bad++; if (firstBad < 0) firstBad = i; }
      continue;
    }
    const d = Math.abs(g - r);
    if (!(d <= atol + rtol * Math.abs(r))) { bad++; if (firstBad < 0) firstBad = i; }
    if (Number.isNaN(d)) { maxAbs = maxRel = NaN; continue; }
    if (d > maxAbs) maxAbs = d;
    const rel = d / Math.max(Math.abs(r), 1e-30);
    if (rel > maxRel) maxRel = rel;
  }
  let msg = `max_abs_diff ${maxAbs.toExponential(2)} max_rel_diff ${maxRel.toExponential(2)}`;
  if (bad) msg += ` (${bad} of ${ref.data.length} beyond atol ${atol} + rtol ${rtol}; first at flat index ${firstBad}: got ${got.data[firstBad]}, expected ${ref.data[firstBad]})`;
  let argBad = 0;
  if (argmax) {
    const C = ref.dims.length ? ref.dims[ref.dims.length - 1] : 1;
    const rows = C ? ref.data.length / C : 0;
    const am = (d, r) => { let b = 0; for (let c = 1; c < C; c++) if (d[r * C + c] > d[r * C + b]) b = c; return b; };
    for (let r = 0; r < rows; r++) if (am(got.data, r) !== am(ref.data, r)) argBad++;
    msg += argBad ? ` argmax differs in ${argBad} of ${rows} rows` : ' argmax same';
  }
  const ok = !bad && !argBad;
  console.log(msg + (ok ? ': ok' : ': FAIL'));
  process.exit(ok ? 0 : 1);
}

main();
