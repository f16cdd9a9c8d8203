#!/bin/bash
# make_corpus.sh [BUILD_DIR] - regenerates the checked-in seed corpus tests/fuzz/corpus/:
#   compile/  hostile models (sizes that overflow int64) and hostile .npy/.pb inputs,
#             written by tests/unit/test_overflow --write-corpus (arrays go to arrays/)
#   arrays/   those .npy/.pb files plus a good .npy and .pb
#   idx/      tiny IDX image/label pairs, plain and gzipped, in fuzz_idx's input format
#             (4-byte little-endian offset of the labels, then images, then labels)
# BUILD_DIR holds a built test_overflow (default: build). Files stay tiny (< 2 KB).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../../build}
out=$here/corpus
rm -rf "$out"
mkdir -p "$out/compile" "$out/arrays" "$out/idx"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$build/tests/test_overflow" --write-corpus "$tmp" >/dev/null
mv "$tmp"/*.onnx "$out/compile/"
mv "$tmp"/*.npy "$tmp"/*.pb "$out/arrays/"
python3 - "$out" <<'PY'
import gzip, struct, sys
out = sys.argv[1]
def idx(dims, body):
    return struct.pack('>I', 0x0800 | len(dims)) + b''.join(struct.pack('>I', d) for d in dims) + body
def pair(name, img, lab):
    open(f'{out}/idx/{name}', 'wb').write(struct.pack('<I', len(img)) + img + lab)
img = idx([2, 2, 2], bytes(range(8)))
lab = idx([2], bytes([1, 9]))
pair('plain', img, lab)
pair('gzip', gzip.compress(img, mtime=0), gzip.compress(lab, mtime=0))
pair('huge_dims', idx([1 << 30, 1 << 30, 1 << 30], b''), lab)
pair('count_mismatch', img, idx([3], bytes([0, 1, 2])))
pair('bad_label', img, idx([2], bytes([0, 200])))
open(f'{out}/arrays/good.npy', 'wb').write(
    b'\x93NUMPY\x01\x00' + struct.pack('<H', 118) +
    b"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }".ljust(117) + b'\n' + bytes(24))
# a good TensorProto: dims 2, 3 (packed), float32, raw_data of 24 bytes
open(f'{out}/arrays/good.pb', 'wb').write(bytes([0x08, 2, 0x08, 3, 0x10, 1, 0x4a, 24]) + bytes(24))
PY
ls -l "$out"/*
