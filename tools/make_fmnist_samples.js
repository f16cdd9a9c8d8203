#!/usr/bin/env node
// make_fmnist_samples.js - the first K Fashion-MNIST test images as the .npy inputs the
// README's main job runs on: pixels scaled to [0, 1] (K x 1 x 28 x 28 float32) and
// labels (K int64).
//   node tools/make_fmnist_samples.js [K] [dir]   (default 1000, models/)
'use strict';
const fs = require('fs'), zlib = require('zlib'), path = require('path');
const { writeNpy } = require('./ort/npy.js');
const k = Number(process.argv[2] || 1000), out = process.argv[3] || 'models';
const src = '/usr/share/datasets/fashion-mnist';
const rd = f => { const b = fs.readFileSync(path.join(src, f)); return b[0] === 0x1f ? zlib.gunzipSync(b) : b; };
const img = rd('t10k-images-idx3-ubyte.gz'), lab = rd('t10k-labels-idx1-ubyte.gz');
if (img.readUInt32BE(0) !== 2051 || lab.readUInt32BE(0) !== 2049) throw new Error('not IDX files');
const x = new Float32Array(k * 784);
for (let i = 0; i < k * 784; i++) x[i] = img[16 + i] / 255;
const y = new BigInt64Array(k);
for (let i = 0; i < k; i++) y[i] = BigInt(lab[8 + i]);
writeNpy(path.join(out, `fmnist_test${k}.npy`), 'float32', [k, 1, 28, 28], x);
writeNpy(path.join(out, `fmnist_test${k}_labels.npy`), 'int64', [k], y);
console.log(`wrote ${out}/fmnist_test${k}.npy and ${out}/fmnist_test${k}_labels.npy`);
