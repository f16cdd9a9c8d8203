# mpi.sh - sourced by the tests/e2e/mpi_*.sh scripts after common.sh: skips (77) unless
# mpirun is installed and this fewmul is MPI-enabled, and sets what Open MPI needs to
# run as root (CI) on a machine with fewer cores than ranks.
#   mpi2 ARGS...      mpirun -np 2 fewmul ARGS...
#   mpin N ARGS...    mpirun -np N fewmul ARGS...
command -v mpirun >/dev/null || { echo "SKIP: mpirun is not installed (openmpi-bin)"; exit 77; }
"$FEWMUL" train --help 2>/dev/null | grep -q 'MPI-enabled' ||
  { echo "SKIP: this fewmul was built without MPI (libopenmpi-dev missing at configure time)"; exit 77; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_mpi_yield_when_idle=1 OMP_WAIT_POLICY=passive
# an ASan build: Open MPI's own allocations at exit are not this project's leaks
ldd "$FEWMUL" 2>/dev/null | grep -q libasan && export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
# (a time limit, so that a hung job fails the test instead of the CI run)
mpin() { local n=$1; shift; timeout 300 mpirun --oversubscribe -np "$n" "$FEWMUL" "$@"; }
mpi2() { mpin 2 "$@"; }
# the parameters of two checkpoints: max |a-b| / max |a| <= tol (tests/e2e/lib/ckpt_diff.c)
CKDIFF=$WORK.ckpt_diff
cc -O2 -o "$CKDIFF" "$SRC/tests/e2e/lib/ckpt_diff.c" -lm || { echo "FAIL: cannot build ckpt_diff"; exit 1; }
