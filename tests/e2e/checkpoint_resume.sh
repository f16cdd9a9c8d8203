#!/bin/bash
# checkpoint_resume.sh - a run stopped inside an epoch resumes exactly: the checkpoint
# records the global step and the position inside the epoch (whose order is a function
# of seed and epoch), so `--steps 77` then `--resume` gives the same bytes (export and
# checkpoint) as the uninterrupted run, with dropout and augmentation on; so does Ctrl-C
# at any moment. A resumed mid-epoch run refuses another --batch. A checkpoint write
# killed half-way leaves PATH.tmp.HOST.PID.XXXXXX: the next save removes it when PID is
# dead (and leaves a live writer's file alone).
#   bash checkpoint_resume.sh <fewmul> <source-dir> <scratch-dir>
. "$(dirname "$0")/lib/common.sh"
enter_work

C="--model mlp --data synthetic:1x8x8:4 --batch 32 --threads 1 --augment flip --quiet"
"$FEWMUL" train $C --epochs 2 --checkpoint u.fm -o u.onnx >/dev/null 2>u.err || bad "uninterrupted run: $(cat u.err)"

# 1. --steps inside epoch 1, then resume (--steps 0: no limit)
"$FEWMUL" train $C --epochs 2 --steps 77 --checkpoint s.fm >/dev/null 2>&1 || bad "the --steps 77 run failed"
"$FEWMUL" train --resume s.fm --steps 0 -o s.onnx >/dev/null 2>s.err || bad "resume: $(cat s.err)"
cmp -s u.onnx s.onnx && ok "stopped at step 77 and resumed: the same export as the uninterrupted run" ||
  bad "stopped at step 77 and resumed: the export differs from the uninterrupted run"
cmp -s u.fm s.fm && ok "... and the same final checkpoint" || bad "the final checkpoints differ"

# 2. a mid-epoch checkpoint refuses another global batch
m=$("$FEWMUL" train $C --epochs 2 --steps 5 --checkpoint b.fm 2>&1 >/dev/null; "$FEWMUL" train --resume b.fm --batch 16 2>&1 >/dev/null)
[ $? != 0 ] && [ "$(echo "$m" | wc -l)" = 1 ] && echo "$m" | grep -q -- "--batch 32" && ok "mid-epoch resume with another --batch: $m" ||
  bad "mid-epoch resume with another --batch: $m"

# 3. Ctrl-C at some moment in epoch 2 of 3, then resume
"$FEWMUL" train $C --epochs 3 --checkpoint u3.fm -o u3.onnx >/dev/null 2>&1 || bad "3-epoch run"
"$FEWMUL" train $C --epochs 3 --checkpoint c.fm >/dev/null 2>c.err &
pid=$!
for _ in $(seq 300); do [ -s c.fm ] && break; sleep 0.05; done
sleep 0.2
kill -INT $pid; wait $pid; rc=$?
where=$(sed -n 's/^interrupted: checkpoint written to c.fm at \(.*\) (resume.*/\1/p' c.err)
[ $rc = 130 ] || [ $rc = 0 ] || bad "Ctrl-C: status $rc"
"$FEWMUL" train --resume c.fm -o c.onnx >/dev/null 2>&1 || bad "resume after Ctrl-C"
cmp -s u3.onnx c.onnx && ok "Ctrl-C (${where:-after the run ended}) and resume: the uninterrupted run's export" ||
  bad "Ctrl-C at ${where:-?} and resume: the export differs from the uninterrupted run"

# 4. stale temporary files of a killed save
host=$(hostname)
dead=$(sh -c 'echo $$')
touch "k.fm.tmp.$host.$dead.AbCdEf" "k.fm.tmp.$host.$$.AbCdEf" "other.fm.tmp.$host.$dead.AbCdEf"
"$FEWMUL" train $C --epochs 1 --checkpoint k.fm >/dev/null 2>&1 || bad "run with stale temporary files"
[ ! -e "k.fm.tmp.$host.$dead.AbCdEf" ] && ok "a dead writer's k.fm.tmp.* is removed by the next save" ||
  bad "k.fm.tmp.$host.$dead.AbCdEf (dead writer) is still there"
[ -e "k.fm.tmp.$host.$$.AbCdEf" ] && [ -e "other.fm.tmp.$host.$dead.AbCdEf" ] &&
  ok "a live writer's temp file and another checkpoint's are kept" || bad "a live writer's or another checkpoint's temp file was removed"
[ -z "$(ls k.fm.tmp.* 2>/dev/null | grep -v "\.$$\.")" ] && ok "no temp file of this run is left" || bad "left: $(ls k.fm.tmp.*)"
finish checkpoint_resume
