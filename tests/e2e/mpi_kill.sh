#!/bin/bash
# mpi_kill.sh - a rank that dies mid-epoch ends the job: `mpirun -np 2 fewmul train` with
# a checkpoint; once the first checkpoint exists, rank 1 is killed (SIGKILL) during the
# next epoch. The job must exit non-zero, the checkpoint must still load (magic, sizes,
# checksum), and `fewmul train --resume` in one process must continue from it. Then
# SIGTERM stops the job at a batch boundary with a mid-epoch checkpoint that
# one process resumes; Ctrl-C ends it non-zero with a loadable checkpoint; and a run
# resumed with -np 2 from a checkpoint written by one process trains on.
#   bash mpi_kill.sh <fewmul> <source-dir> <scratch-dir>   (77: no mpirun / no MPI build)
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/mpi.sh"
enter_work

C="--model mlp --data synthetic:1x8x8:4 --subset 1024 --batch 32 --threads 1 --epochs 100000"
rank_pid() {   # checkpoint rank: the pid of the rank (OMPI_COMM_WORLD_RANK) of the run writing it
  local p
  for p in $(pgrep -f -- "--checkpoint $1"); do
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2" && { echo "$p"; return; }
  done
}
wait_file() { for _ in $(seq 300); do [ -s "$1" ] && return 0; sleep 0.1; done; return 1; }

# 1. kill rank 1
timeout 300 mpirun --oversubscribe -np 2 "$FEWMUL" train $C --checkpoint "$WORK/k.fm" >k.out 2>k.err &
mp=$!
victim=
if wait_file k.fm; then
  sleep 0.3
  victim=$(rank_pid "$WORK/k.fm" 1)
  [ -n "$victim" ] && kill -9 "$victim"
fi
[ -n "$victim" ] || { bad "no rank 1 to kill"; kill -TERM $mp; }
wait $mp; rc=$?
[ "$rc" != 0 ] && ok "a killed rank ends the job with status $rc" || bad "the job exited 0 after a rank was killed"
out=$("$FEWMUL" train --resume "$WORK/k.fm" --epochs 0 --quiet 2>&1) && ok "the checkpoint is intact after the kill" ||
  bad "the checkpoint does not load after the kill: $out"
ep=$(grep -o 'epoch [0-9]*: weights checksum' k.err | tail -1 | awk '{print $2+0}')
out=$("$FEWMUL" train --resume "$WORK/k.fm" --epochs $((ep + 1)) 2>&1)
echo "$out" | grep -q "^resumed $WORK/k.fm at epoch" && echo "$out" | grep -q '^test accuracy' &&
  ok "resume with one process continues (after epoch $ep)" || bad "resume with one process: $(echo "$out" | tail -2)"

# 2. SIGTERM to the ranks (as a batch system sends it to every process of the job): a
#    mid-epoch checkpoint, resumed by one process. (Sent to mpirun instead, it reaches the
#    ranks too, but mpirun kills them about a second later: on a loaded machine a step
#    may not finish in time; that case is 2b.)
timeout 300 mpirun --oversubscribe -np 2 "$FEWMUL" train $C --checkpoint "$WORK/c.fm" >c.out 2>c.err &
mp=$!
wait_file c.fm && sleep 0.3
r0=$(rank_pid "$WORK/c.fm" 0) r1=$(rank_pid "$WORK/c.fm" 1)
if [ -n "$r0" ] && [ -n "$r1" ]; then kill -TERM "$r0" "$r1"; else bad "SIGTERM: ranks not found"; kill -TERM $mp; fi
wait $mp; rc=$?
[ "$rc" != 0 ] && [ "$rc" != 124 ] && grep -q "interrupted: checkpoint written to $WORK/c.fm" c.err &&
  ok "SIGTERM: checkpoint written, status $rc" || bad "SIGTERM: status $rc: $(tail -2 c.err)"
ep=$(sed -n 's/^interrupted: .* at epoch \([0-9]*\), batch.*/\1/p' c.err)
out=$("$FEWMUL" train --resume "$WORK/c.fm" --epochs "${ep:-1}" 2>&1) && echo "$out" | grep -q '^test accuracy' &&
  ok "one process resumes the interrupted epoch $ep" || bad "resume after SIGTERM: $(echo "$out" | tail -2)"

# 2b. Ctrl-C to mpirun: it SIGTERMs the ranks and kills them a second later; whether or
#     not they made it to a checkpoint in that second, the job ends non-zero and the
#     checkpoint loads
timeout 300 mpirun --oversubscribe -np 2 "$FEWMUL" train $C --checkpoint i.fm >i.out 2>i.err &
mp=$!
wait_file i.fm && sleep 0.3
kill -INT $mp; wait $mp; rc=$?
[ "$rc" != 0 ] && [ "$rc" != 124 ] && ok "Ctrl-C: the job ends with status $rc" || bad "Ctrl-C: status $rc"
out=$("$FEWMUL" train --resume i.fm --epochs 0 --quiet 2>&1) && ok "the checkpoint is intact after Ctrl-C" ||
  bad "the checkpoint does not load after Ctrl-C: $out"

# 3. a one-process checkpoint resumed with -np 2
"$FEWMUL" train --model mlp --data synthetic:1x8x8:4 --batch 32 --threads 1 --steps 10 --checkpoint o.fm >/dev/null 2>&1
out=$(mpi2 train --resume o.fm --steps 20 2>&1) && echo "$out" | grep -q '^test accuracy' &&
  echo "$out" | grep -q 'at epoch 1, batch 10, step 10' && ok "-np 2 resumes a one-process checkpoint mid-epoch" ||
  bad "-np 2 resume: $(echo "$out" | tail -3)"
finish mpi_kill
