#!/usr/bin/env bash
# Multi-node test suite: umtrain across 3 "hosts" that are network namespaces on this machine
# (launch/cluster.sh), launched by launch/multinode.sh over TCP, with real failures injected:
#   1. selftest on 3 hosts x 1 rank passes; --display-map shows one rank per host and the
#      verbose BTL log shows TCP between every pair of hosts (and no shared memory);
#      selftest on 2 hosts x 2 ranks passes with shared memory (vader) inside a host and TCP
#      only between hosts;
#   2. kill -9 of the rank on host 3 mid-run ends the job non-zero within 15 s, and mpirun
#      names the lost rank, its PID and its host;
#   3. cutting host 3's link (veth deleted) mid-run ends the job non-zero within 30 s (ORTE
#      out-of-band keepalive); the cut-off host's daemon and rank exit by themselves; the host
#      is re-plugged ('cluster.sh up') and used again by the next test;
#   4. a stall across hosts: the rank on host 2 sleeps, the others report the stalled
#      collective within the deadline plus a few seconds;
#   5. training (when umtrain has 'train' and Fashion-MNIST is installed, else skipped): 3 hosts
#      x 1 rank gives bitwise the model of 1 host x 3 ranks; kill -9 of the rank on host 3 after
#      a checkpoint, then --resume on the 3 hosts, ends bitwise like an uninterrupted run; so
#      does a graceful stop (SIGUSR1 to mpirun: every rank checkpoints and exits 75) + resume;
#   6. the command multinode.sh builds for real machines (ssh);
#   and the teardown leaves no namespace, veth, bridge, session dir or process behind.
# Every mpirun runs under `timeout -k`. Exit times are measured and printed.
# Skips (exit 0) when this machine does not allow network namespaces.
# Last line: "multinode: N passed, N failed[, N skipped]". Exit 0 iff nothing failed.
#
# Environment: UMN_TEST_PREFIX (host names, default umt), UMN_TEST_SUBNET (default
# 10.77.1.0/24): distinct from cluster.sh's defaults (umn, 10.77.0.0/24) so the suite never
# touches a cluster someone brought up by hand. TEST_LOG_DIR as in launch/test.sh.
#
# Adding tests: write a test_* function that uses start_job/finish_job (or run_job), record(),
# rank_pid/hosts_idle and the cluster helpers below, and call it in the list at the bottom.
# Not covered: all hosts share one filesystem here, so "written on host A, read on host B"
# bugs (per-node data or checkpoint paths) cannot show.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT="$PWD"
export UMN_PREFIX="${UMN_TEST_PREFIX:-umt}"
export UMN_SUBNET="${UMN_TEST_SUBNET:-10.77.1.0/24}"
export UMN_STATE_DIR="/tmp/umtrain-cluster-$UMN_PREFIX"
unset SLOTS UMN_IF UMN_KEEPALIVE
LOG_DIR="${TEST_LOG_DIR:-$ROOT/.build/test-logs}/multinode"
UMTRAIN="${UMTRAIN:-$ROOT/.build/release/umtrain}"
CLUSTER="bash $ROOT/launch/cluster.sh"
HOSTFILE="$UMN_STATE_DIR/hostfile"
H1="${UMN_PREFIX}1"; H2="${UMN_PREFIX}2"; H3="${UMN_PREFIX}3"

passed=0; failed=0; skipped=0
say() { printf '[multinode] %s\n' "$*"; }
record() {  # record NAME STATUS(pass|fail|skip) [detail]
  case "$2" in
    pass) passed=$((passed + 1)); say "ok    $1" ;;
    fail) failed=$((failed + 1)); say "FAIL  $1${3:+: $3}" ;;
    skip) skipped=$((skipped + 1)); say "skip  $1${3:+: $3}" ;;
  esac
}
summary() {
  if [ "$skipped" -gt 0 ]; then echo "multinode: $passed passed, $failed failed, $skipped skipped"
  else echo "multinode: $passed passed, $failed failed"; fi
}
secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", b - a}'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN {exit !(a <= b)}'; }

# ---- preconditions: skip when namespaces are not allowed --------------------------------
if ! reason=$($CLUSTER check 2>&1); then
  say "skip: $(tr '\n' ' ' <<<"$reason")"
  skipped=1; summary; exit 0
fi
mkdir -p "$LOG_DIR"
if [ ! -x "$UMTRAIN" ]; then
  say "no $UMTRAIN: running launch/setup.sh"
  bash launch/setup.sh >"$LOG_DIR/setup.log" 2>&1 || { record "setup (build umtrain)" fail "see $LOG_DIR/setup.log"; summary; exit 1; }
fi
UMTRAIN_REAL=$(readlink -f "$UMTRAIN")
export UMTRAIN

# One suite at a time per prefix (another checkout's run would otherwise tear our hosts down).
exec 9>"/tmp/umtrain-cluster-$UMN_PREFIX.lock"
if ! flock -w 600 9; then
  record "lock /tmp/umtrain-cluster-$UMN_PREFIX.lock" fail "another multinode suite held it for 10 min"; summary; exit 1
fi

cleanup() {
  $CLUSTER down >/dev/null 2>&1 || true
  [ -z "${TRAIN_OUT:-}" ] || rm -rf "$TRAIN_OUT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- helpers ----------------------------------------------------------------------------
# start_job LOG CAP multinode-args... : starts launch/multinode.sh under timeout -k in the
# background; sets JOB_PID, JOB_T0, JOB_CAP, JOB_LOG.
start_job() {
  JOB_LOG=$1; JOB_CAP=$2; shift 2
  JOB_T0=$(date +%s.%N)
  timeout -k 10 "$JOB_CAP" bash "$ROOT/launch/multinode.sh" "$@" >"$JOB_LOG" 2>&1 &
  JOB_PID=$!
}
# finish_job: waits; sets JOB_RC, JOB_T1, JOB_HUNG (1 if the timeout had to end it).
finish_job() {
  wait "$JOB_PID"; JOB_RC=$?
  JOB_T1=$(date +%s.%N)
  JOB_HUNG=0
  if [ "$JOB_RC" = 124 ] || ! le "$(secs "$JOB_T0" "$JOB_T1")" "$((JOB_CAP - 1))"; then JOB_HUNG=1; fi
}
run_job() { start_job "$@"; finish_job; }
# rank_pid HOST: PIDs of umtrain ranks running on HOST.
rank_pid() {
  local p
  for p in $(ip netns pids "$1" 2>/dev/null); do
    [ "$(readlink -f "/proc/$p/exe" 2>/dev/null)" = "$UMTRAIN_REAL" ] && echo "$p"
  done
}
# wait_ranks HOST... : wait (up to 30 s) until every HOST runs a rank, then 2 s more so the
# job is inside its collective loop. Returns 1 if the job ended or never got there.
wait_ranks() {
  local t h ok
  for t in $(seq 1 60); do
    kill -0 "$JOB_PID" 2>/dev/null || return 1
    ok=1; for h in "$@"; do [ -n "$(rank_pid "$h")" ] || ok=0; done
    if [ "$ok" = 1 ]; then sleep 2; kill -0 "$JOB_PID" 2>/dev/null; return; fi
    sleep 0.5
  done
  return 1
}
# hosts_idle MAX HOST... : wait up to MAX s until no process runs on the HOSTs; prints the seconds.
hosts_idle() {
  local max=$1; shift
  local s h busy; s=$(date +%s.%N)
  while :; do
    busy=""; for h in "$@"; do [ -n "$(ip netns pids "$h" 2>/dev/null)" ] && busy="$busy $h"; done
    [ -z "$busy" ] && { secs "$s" "$(date +%s.%N)"; return 0; }
    le "$(secs "$s" "$(date +%s.%N)")" "$max" || { echo "still busy:$busy"; return 1; }
    sleep 0.25
  done
}
# selftest_summary LOG: "N M" from the "N passed, M failed" line, or nothing.
selftest_summary() { grep -aE '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -1 | sed -E 's/^([0-9]+) passed, ([0-9]+) failed.*/\1 \2/'; }
# job_map LOG: "rank host" lines from --display-map output.
job_map() {
  awk '/Data for node:/ {sub(/.*Data for node: */, ""); split($0, a, /[ \t]/); host = a[1]}
       /Process rank:/ {r = $0; sub(/.*Process rank: */, "", r); split(r, b, /[ \t]/); print b[1], host}' "$1"
}
# check_map NAME LOG EXPECTED ("host:count ..."): the job map puts that many ranks on each host,
# and umtrain's own header (from MPI_Get_processor_name on every rank) agrees.
check_map() {
  local name=$1 log=$2 want=$3 got header want_header
  got=$(job_map "$log" | awk '{n[$2]++} END {for (h in n) print h ":" n[h]}' | sort | tr '\n' ' ')
  want=$(tr ' ' '\n' <<<"$want" | grep . | sort | tr '\n' ' ')
  want_header=$(tr ' ' '\n' <<<"$want" | grep . | sed 's/:/ x/' | paste -sd, | sed 's/,/, /g')
  header=$(grep -aoE 'ranks: [0-9]+ on [0-9]+ host\(s\): .*' "$log" | head -1)
  if [ "$got" != "$want" ]; then record "$name" fail "--display-map gives '$got', expected '$want'; see $log"
  elif [[ "$header" != *": $want_header" ]]; then record "$name" fail "umtrain header '$header' does not end in '$want_header'; see $log"
  else record "$name (map: ${got% }; header: ${header#ranks: })" pass
  fi
}
# check_transport NAME LOG: from btl_base_verbose 30 output. Open MPI's BML logs, for every rank
# and every peer, "Using B btl for send to [[job,1],R] on node N". Each must be vader when the
# peer is on the same host and tcp when it is on another (self for itself); the counts must
# cover every ordered pair of ranks; every TCP connection must go to the peer host's cluster
# address, and every pair of hosts must be connected.
check_transport() {
  local name=$1 log=$2 base verdict
  base=$(sed -n 's/^UMN_CLUSTER_BASE=//p' "$UMN_STATE_DIR/cluster.env")
  verdict=$(job_map "$log" | awk -v base="$base" -v prefix="$UMN_PREFIX" '
    FILENAME == "-" { host[$1] = $2; nh[$2]++; np++; next }
    function src_host(s) { s = $1; sub(/^\[/, "", s); sub(/:.*/, "", s); return s }
    / mca: bml: Using [a-z]+ btl for send to / {
      src = src_host(); btl = $0; sub(/.* Using /, "", btl); sub(/ .*/, "", btl)
      r = $0; sub(/.*\],/, "", r); sub(/\].*/, "", r)
      node = $0; sub(/.* on node /, "", node); sub(/[ \t].*/, "", node)
      if (host[r] != node) { bad = bad " BML says rank " r " is on " node ", map says " host[r] ";"; next }
      if (btl == "self") next
      if (btl == "vader" && node != src) bad = bad " vader from " src " to rank " r " on " node ";"
      else if (btl == "tcp" && node == src) bad = bad " tcp inside host " src " (to rank " r ");"
      else if (btl != "vader" && btl != "tcp") bad = bad " unexpected btl " btl ";"
      used[btl]++
      next
    }
    /btl:tcp: now connected to/ {
      src = src_host()
      ip = $0; sub(/.*now connected to /, "", ip); sub(/,.*/, "", ip)
      r = $0; sub(/.*\],/, "", r); sub(/\].*/, "", r)
      dst = host[r]; nconn++
      want = base "." substr(dst, length(prefix) + 1)
      if (dst == src || ip != want) { bad = bad " " src " -> rank " r " (" dst ") via " ip ", expected " want ";"; next }
      pair[src < dst ? src " " dst : dst " " src] = 1
    }
    END {
      for (a in nh) { wv += nh[a] * (nh[a] - 1); for (b in nh) if (a != b) wt += nh[a] * nh[b] }
      for (a in nh) for (b in nh) if (a < b && !((a " " b) in pair)) bad = bad " no TCP connection between " a " and " b ";"
      if (np == 0) bad = bad " no --display-map in the log;"
      if (used["vader"] + 0 != wv || used["tcp"] + 0 != wt)
        bad = bad " BML chose vader for " used["vader"] + 0 " and tcp for " used["tcp"] + 0 " ordered rank pairs, expected " wv " and " wt ";"
      if (bad != "") print "bad:" bad
      else print "ok: BML uses vader for " wv " and tcp for " wt " ordered rank pairs, all as the hosts require; " nconn " TCP connections, all to the peer host cluster address"
    }' - "$log")
  if [[ "$verdict" == ok:* ]]; then record "$name (${verdict#ok: })" pass
  else record "$name" fail "${verdict#bad:}; see $log"; fi
}

# ---- the tests --------------------------------------------------------------------------
KILL_SECS="-"; CUT_SECS="-"; STALL_SECS="-"

test_selftest_3x1() {
  local log="$LOG_DIR/selftest-3x1.log" s
  run_job "$log" 180 --hostfile "$HOSTFILE" -np 3 --display-map --mca btl_base_verbose 30 \
    umtrain selftest --stall-timeout 60
  s=$(selftest_summary "$log")
  if [ "$JOB_RC" = 0 ] && [ -n "$s" ] && [ "${s#* }" = 0 ] && [ "${s% *}" -gt 0 ]; then
    record "selftest on 3 hosts x 1 rank over TCP: ${s% *} checks passed ($(secs "$JOB_T0" "$JOB_T1") s)" pass
  else
    record "selftest on 3 hosts x 1 rank" fail "exit $JOB_RC, summary '${s:-none}'; see $log"
  fi
  check_map "3 hosts x 1 rank: one rank per host" "$log" "$H1:1 $H2:1 $H3:1"
  check_transport "3 hosts x 1 rank: TCP between hosts, no shared memory" "$log"
}

test_selftest_2x2() {
  local log="$LOG_DIR/selftest-2x2.log" hf="$LOG_DIR/hostfile-2x2" s
  { head -1 "$HOSTFILE"; echo "$H1 slots=2"; echo "$H2 slots=2"; } >"$hf"
  run_job "$log" 180 --hostfile "$hf" -np 4 --display-map --mca btl_base_verbose 30 \
    umtrain selftest --stall-timeout 60
  s=$(selftest_summary "$log")
  if [ "$JOB_RC" = 0 ] && [ -n "$s" ] && [ "${s#* }" = 0 ] && [ "${s% *}" -gt 0 ]; then
    record "selftest on 2 hosts x 2 ranks: ${s% *} checks passed ($(secs "$JOB_T0" "$JOB_T1") s)" pass
  else
    record "selftest on 2 hosts x 2 ranks" fail "exit $JOB_RC, summary '${s:-none}'; see $log"
  fi
  check_map "2 hosts x 2 ranks: two ranks per host" "$log" "$H1:2 $H2:2"
  check_transport "2 hosts x 2 ranks: vader inside a host, TCP only between hosts" "$log"
}

# Victim workload: every rank loops over allreduces (1 ms apart) for ~20 min; rank 99 does not
# exist, so nothing fails by itself. The stall deadline (120 s) is far beyond the fault
# timings, so what ends the job is Open MPI's failure detection, not umtrain's watchdog.
VICTIM=(umtrain debug fail --rank 99 --after 0 --stall-timeout 120)

test_kill() {
  local log="$LOG_DIR/kill.log" victim tf t
  start_job "$log" 90 --hostfile "$HOSTFILE" -np 3 "${VICTIM[@]}"
  if ! wait_ranks "$H1" "$H2" "$H3"; then
    finish_job; record "kill -9 of a rank" fail "victim job did not get running on all hosts (exit $JOB_RC); see $log"; return
  fi
  victim=$(rank_pid "$H3" | head -1)
  tf=$(date +%s.%N)
  kill -9 "$victim"
  finish_job
  t=$(secs "$tf" "$JOB_T1"); KILL_SECS=$t
  say "kill -9 rank 2 (PID $victim on $H3): mpirun exited $JOB_RC after $t s"
  if [ "$JOB_HUNG" = 1 ]; then record "kill -9 of the rank on $H3" fail "job hung until the ${JOB_CAP} s timeout; see $log"
  elif [ "$JOB_RC" = 0 ]; then record "kill -9 of the rank on $H3" fail "job exited 0; see $log"
  elif ! grep -aqE "process rank 2 with PID $victim on node $H3 exited on signal 9" "$log"; then
    record "kill -9 of the rank on $H3" fail "no 'process rank 2 with PID $victim on node $H3 exited on signal 9' in $log"
  elif ! le "$t" 15; then record "kill -9 of the rank on $H3" fail "job ended ${t} s after the kill (limit 15 s)"
  else record "kill -9 of the rank on $H3 ends the job (exit $JOB_RC) ${t} s later, naming rank 2, PID and host" pass
  fi
  if t=$(hosts_idle 10 "$H1" "$H2" "$H3"); then record "no process left on any host after the kill (${t} s)" pass
  else record "no process left on any host after the kill" fail "$t after 10 s"; $CLUSTER reap >/dev/null; fi
}

test_cut() {
  local log="$LOG_DIR/cut-link.log" tf t
  start_job "$log" 90 --hostfile "$HOSTFILE" -np 3 "${VICTIM[@]}"
  if ! wait_ranks "$H1" "$H2" "$H3"; then
    finish_job; record "cut link" fail "victim job did not get running on all hosts (exit $JOB_RC); see $log"; return
  fi
  tf=$(date +%s.%N)
  $CLUSTER cut "$H3" >/dev/null
  finish_job
  t=$(secs "$tf" "$JOB_T1"); CUT_SECS=$t
  say "cut $H3's link: mpirun exited $JOB_RC after $t s"
  if [ "$JOB_HUNG" = 1 ]; then record "cut link of $H3" fail "job hung until the ${JOB_CAP} s timeout (OOB keepalive not in effect?); see $log"
  elif [ "$JOB_RC" = 0 ]; then record "cut link of $H3" fail "job exited 0; see $log"
  elif ! grep -aq "ORTE has lost communication with a remote daemon" "$log" ||
       ! grep -aqE "Remote daemon: .* on node $H3" "$log"; then
    record "cut link of $H3" fail "no 'ORTE has lost communication ... on node $H3' in $log"
  elif ! le "$t" 30; then record "cut link of $H3" fail "job ended ${t} s after the cut (limit 30 s)"
  else record "cut link of $H3 ends the job (exit $JOB_RC) ${t} s later: 'lost communication with a remote daemon ... on node $H3'" pass
  fi
  # The daemon and rank behind the cut cannot be reached by mpirun; they must exit by
  # themselves (their own OOB keepalive), not spin forever as orphans.
  if t=$(hosts_idle 20 "$H1" "$H2" "$H3"); then record "cut-off host's daemon and rank exit by themselves (${t} s after the job)" pass
  else record "cut-off host's daemon and rank exit by themselves" fail "$t 20 s after the job; reaping"; $CLUSTER reap >/dev/null; fi
  if $CLUSTER up 3 >"$LOG_DIR/replug.log" 2>&1 && $CLUSTER status >>"$LOG_DIR/replug.log" 2>&1; then
    record "re-plug $H3 (cluster.sh up 3 is idempotent and repairs the cut)" pass
  else
    record "re-plug $H3" fail "see $LOG_DIR/replug.log"
  fi
}

test_stall() {
  local log="$LOG_DIR/stall.log" deadline=5 t tr h ok limit
  start_job "$log" 60 --hostfile "$HOSTFILE" -np 3 umtrain debug stall --rank 1 --sleep 60 --at 2 --stall-timeout "$deadline"
  # When did every rank start? (the deadline counts from a collective a few ms after MPI_Init)
  tr=""
  while kill -0 "$JOB_PID" 2>/dev/null; do
    ok=1; for h in "$H1" "$H2" "$H3"; do [ -n "$(rank_pid "$h")" ] || ok=0; done
    [ "$ok" = 1 ] && { tr=$(date +%s.%N); break; }
    sleep 0.1
  done
  finish_job
  t=$(secs "${tr:-$JOB_T0}" "$JOB_T1"); STALL_SECS="$t (job $(secs "$JOB_T0" "$JOB_T1"))"; limit=$((deadline + 5))
  say "stall (rank 1 on $H2 sleeps 60 s, deadline $deadline s): job exited $JOB_RC, $t s after all ranks started ($(secs "$JOB_T0" "${tr:-$JOB_T0}") s start-up)"
  if [ "$JOB_HUNG" = 1 ]; then record "stall across hosts" fail "job hung until the ${JOB_CAP} s timeout; see $log"
  elif [ "$JOB_RC" = 0 ]; then record "stall across hosts" fail "job exited 0; see $log"
  elif [ -z "$tr" ]; then record "stall across hosts" fail "the ranks were never seen running on all hosts; see $log"
  elif ! grep -aqE '^\[rank [02]\] error: collective allreduce.* stalled during debug stall step 2' "$log"; then
    record "stall across hosts" fail "no '[rank 0|2] error: collective ... stalled during debug stall step 2' in $log"
  elif ! le "$t" "$limit"; then record "stall across hosts" fail "job ended ${t} s after the ranks started (limit: deadline $deadline s + 5 s)"
  else record "stall across hosts (rank 1 on $H2 sleeps): '$(grep -aoE '^\[rank [02]\] error: collective [^:]*' "$log" | head -1)' ends the job ${t} s after the ranks started (deadline $deadline s)" pass
  fi
  if t=$(hosts_idle 10 "$H1" "$H2" "$H3"); then :; else record "no process left after the stall" fail "$t"; $CLUSTER reap >/dev/null; fi
}

# ---- training across hosts (enabled when umtrain has 'train' and Fashion-MNIST is installed) --
FMNIST=/usr/share/datasets/fashion-mnist
TRAIN_OUT=""; TRAIN_WHY=""; TRAIN_CK22=""; cmd=()
train_ready() {  # sets TRAIN_OUT and cmd; or TRAIN_WHY and returns 1 when the tests cannot run
  # (an unknown subcommand with --help prints the top-level help and exits 0: look at the list)
  if ! "$UMTRAIN" --help 2>/dev/null | grep -qE '^[[:space:]]+train[[:space:]]'; then
    TRAIN_WHY="this umtrain has no 'train' subcommand"; return 1
  fi
  if [ ! -f "$FMNIST/train-images-idx3-ubyte.gz" ]; then TRAIN_WHY="no Fashion-MNIST in $FMNIST (apt-get install dataset-fashion-mnist; launch/setup.sh does it)"; return 1; fi
  TRAIN_OUT=$(mktemp -d /tmp/umtrain-multinode-XXXXXX)
  cmd=(umtrain train --config "$TRAIN_OUT/tiny.yaml" --stall-timeout 60)
  # Small real-data run: 640 training images, 3 ranks -> 11 steps per epoch, a checkpoint per epoch.
  cat >"$TRAIN_OUT/tiny.yaml" <<YAML
name: tiny
output_dir: $TRAIN_OUT
seed: 3
model:
  arch: cnn5
  width: 8
data:
  train_images: $FMNIST/train-images-idx3-ubyte.gz
  train_labels: $FMNIST/train-labels-idx1-ubyte.gz
  test_images: $FMNIST/t10k-images-idx3-ubyte.gz
  test_labels: $FMNIST/t10k-labels-idx1-ubyte.gz
  validation_size: 1000
  train_subset: 640
train:
  epochs: 200
  batch_size: 64
  lr: 0.05
  momentum: 0.9
  nesterov: true
  weight_decay: 5.0e-4
  schedule: cosine
  per_step_schedule: true
  checkpoint_every: 1
  keep_checkpoints: 3
  consistency_every: 5
  eval_batch_size: 1000
YAML
}
checksum() { grep -ao 'state checksum: [0-9a-f]*' "$1" | tail -1 | awk '{print $3}'; }
# wait_checkpoint NAME: until the run NAME has a complete checkpoint (up to 60 s) while the job runs.
wait_checkpoint() {
  local t
  for t in $(seq 1 600); do
    compgen -G "$TRAIN_OUT/$1/train/checkpoints/step-*/COMPLETE" >/dev/null && return 0
    kill -0 "$JOB_PID" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# 3 hosts x 1 rank must give bitwise the same model as 1 host x 3 ranks (same world size,
# same reduction order; only the transport differs).
test_train_equal() {
  local lh="$LOG_DIR/train-3hosts.log" l1="$LOG_DIR/train-1host.log" a b rc1
  run_job "$lh" 300 --hostfile "$HOSTFILE" -np 3 "${cmd[@]}" --name hosts --set train.max_steps=22
  timeout -k 5 300 bash "$ROOT/launch/mpirun.sh" -np 3 "${cmd[@]}" --name onehost --set train.max_steps=22 >"$l1" 2>&1; rc1=$?
  a=$(checksum "$lh"); b=$(checksum "$l1")
  if [ "$JOB_RC" = 0 ] && [ "$rc1" = 0 ] && [ -n "$a" ] && [ "$a" = "$b" ] && grep -aq "ranks: 3 on 3 host(s)" "$lh"; then
    record "training 22 steps on 3 hosts x 1 rank = 1 host x 3 ranks bitwise (state checksum $a)" pass
    TRAIN_CK22=$a
  else
    record "training on 3 hosts = on 1 host" fail "exits $JOB_RC/$rc1, checksums '$a' (3 hosts) vs '$b' (1 host); see $lh, $l1"
  fi
}

# A rank killed mid-training on host 3 ends the job; --resume on the 3 hosts continues from the
# newest complete checkpoint and ends bitwise where an uninterrupted run ends. The same for a
# graceful stop: SIGUSR1 to mpirun reaches every rank on every host, each finishes its step,
# a checkpoint is written, every rank exits 75.
test_train_kill_resume() {
  local lref="$LOG_DIR/train-ref.log" lk="$LOG_DIR/train-kill.log" lr="$LOG_DIR/train-kill-resume.log"
  local lp="$LOG_DIR/train-usr1.log" lpr="$LOG_DIR/train-usr1-resume.log" ref victim tf t mp got p
  run_job "$lref" 300 --hostfile "$HOSTFILE" -np 3 "${cmd[@]}" --name ref --set train.max_steps=44
  ref=$(checksum "$lref")
  if [ "$JOB_RC" != 0 ] || [ -z "$ref" ]; then record "training reference run (44 steps)" fail "exit $JOB_RC; see $lref"; return; fi
  # The checksum must depend on the training, or the equalities below could not fail.
  if [ -n "${TRAIN_CK22:-}" ] && [ "$TRAIN_CK22" = "$ref" ]; then
    record "training checksums differ between 22 and 44 steps" fail "both $ref: the checksum does not reflect the weights"
  fi

  start_job "$lk" 120 --hostfile "$HOSTFILE" -np 3 "${cmd[@]}" --name killed
  if ! wait_checkpoint killed; then finish_job; record "training: kill -9 after a checkpoint" fail "no checkpoint (exit $JOB_RC); see $lk"; return; fi
  victim=$(rank_pid "$H3" | head -1); tf=$(date +%s.%N)
  kill -9 "$victim"; finish_job; t=$(secs "$tf" "$JOB_T1")
  if [ "$JOB_HUNG" = 0 ] && [ "$JOB_RC" != 0 ] && le "$t" 15 && grep -aq "process rank 2 with PID $victim on node $H3 exited on signal 9" "$lk"; then
    record "training: kill -9 of the rank on $H3 after a checkpoint ends the job (exit $JOB_RC) ${t} s later" pass
  else
    record "training: kill -9 of the rank on $H3" fail "exit $JOB_RC after ${t} s; see $lk"
  fi
  run_job "$lr" 300 --hostfile "$HOSTFILE" -np 3 "${cmd[@]}" --name killed --resume --set train.max_steps=44
  got=$(checksum "$lr")
  if [ "$JOB_RC" = 0 ] && grep -aq "resumed from" "$lr" && [ "$got" = "$ref" ]; then
    record "training: --resume on 3 hosts after the kill ends bitwise like the uninterrupted run ($(grep -ao 'resumed from [^ ]*' "$lr" | sed 's|.*/||'), checksum $got)" pass
  else
    record "training: resume after the kill" fail "exit $JOB_RC, checksum '$got' vs uninterrupted '$ref'; see $lr"
  fi

  # The lost host does not come back: resume on the 2 remaining hosts (world size 2, with the
  # re-sharding warning), from the newest complete checkpoint.
  local l2="$LOG_DIR/train-kill2.log" l2r="$LOG_DIR/train-kill2-resume-2hosts.log" hf2="$LOG_DIR/hostfile-2hosts"
  grep -v "^$H3\b" "$HOSTFILE" > "$hf2"
  start_job "$l2" 120 --hostfile "$HOSTFILE" -np 3 "${cmd[@]}" --name lost
  if wait_checkpoint lost; then
    victim=$(rank_pid "$H3" | head -1); kill -9 "$victim"; finish_job
    run_job "$l2r" 300 --hostfile "$hf2" -np 2 "${cmd[@]}" --name lost --resume --set train.max_steps=44
    if [ "$JOB_RC" = 0 ] && grep -aq "resumed from" "$l2r" && grep -aq "resuming a world-size-3 checkpoint on 2 ranks" "$l2r"; then
      record "training: after losing $H3, --resume on the 2 remaining hosts continues from $(grep -ao 'resumed from [^ ]*' "$l2r" | sed 's|.*/||') with the world-size warning" pass
    else
      record "training: resume on the 2 remaining hosts" fail "exit $JOB_RC; see $l2r"
    fi
  else
    finish_job; record "training: kill before the 2-host resume" fail "no checkpoint (exit $JOB_RC); see $l2"
  fi

  start_job "$lp" 120 --hostfile "$HOSTFILE" -np 3 "${cmd[@]}" --name usr1
  if ! wait_checkpoint usr1; then finish_job; record "training: SIGUSR1 stop" fail "no checkpoint (exit $JOB_RC); see $lp"; return; fi
  mp=""; for p in $(ip netns pids "$H1"); do [ "$(cat "/proc/$p/comm" 2>/dev/null)" = mpirun ] && mp=$p; done
  tf=$(date +%s.%N); kill -USR1 "$mp"; finish_job; t=$(secs "$tf" "$JOB_T1")
  if [ "$JOB_HUNG" = 0 ] && [ "$JOB_RC" = 75 ] && grep -aq "stopped on request after step" "$lp"; then
    record "training: SIGUSR1 to mpirun stops every host's rank with a checkpoint (exit 75, ${t} s; $(grep -ao 'stopped on request after step [0-9]*' "$lp"))" pass
  else
    record "training: SIGUSR1 stop" fail "exit $JOB_RC after ${t} s (expected 75); see $lp"
  fi
  run_job "$lpr" 300 --hostfile "$HOSTFILE" -np 3 "${cmd[@]}" --name usr1 --resume --set train.max_steps=44
  got=$(checksum "$lpr")
  if [ "$JOB_RC" = 0 ] && grep -aq "resumed from" "$lpr" && [ "$got" = "$ref" ]; then
    record "training: --resume after SIGUSR1 ends bitwise like the uninterrupted run (checksum $got)" pass
  else
    record "training: resume after SIGUSR1" fail "exit $JOB_RC, checksum '$got' vs uninterrupted '$ref'; see $lpr"
  fi
}

test_training() {
  if ! train_ready; then record "training across hosts" skip "$TRAIN_WHY"; return; fi
  test_train_equal
  test_train_kill_resume
}

# launch/multinode.sh for real machines (ssh) cannot be run here (no sshd, no second machine);
# check the command it builds: Open MPI's own launcher (no agent, no namespace), both interface
# filters, the keepalive, and the environment every node needs.
test_ssh_command() {
  local hf="$LOG_DIR/hostfile-ssh" cmd want missing=""
  printf 'node01 slots=4\nnode02 slots=4\n' >"$hf"
  cmd=$(OPENBLAS_NUM_THREADS=1 UMTRAIN_TEST_MARK=1 bash "$ROOT/launch/multinode.sh" --hostfile "$hf" --if 10.1.0.0/16 \
        --dry-run -np 8 umtrain selftest 2>&1 | tr -d '\\')   # printf %q escapes commas
  [[ "$cmd" == "mpirun "* ]] || missing=" (does not start with mpirun)"
  for want in "--hostfile $hf" "--mca btl self,vader,tcp" "--mca btl_tcp_if_include 10.1.0.0/16" \
              "--mca oob_tcp_if_include 10.1.0.0/16" "--mca oob_tcp_keepalive_time 5" "--mca oob_tcp_keepalive_intvl 1" \
              "--mca oob_tcp_keepalive_probes 3" "-x OPENBLAS_NUM_THREADS" "-x UMTRAIN_TEST_MARK" "-np 8 $UMTRAIN selftest"; do
    grep -qF -- "$want" <<<"$cmd" || missing="$missing '$want'"
  done
  grep -qE "plm_rsh_agent|ip netns|bind-to" <<<"$cmd" && missing="$missing (has namespace-only options)"
  if [ -z "$missing" ]; then record "multinode.sh for real machines builds the ssh command (filters, keepalive, -x)" pass
  else record "multinode.sh ssh command" fail "missing:$missing in: $cmd"; fi
}

test_teardown() {
  local left=""
  $CLUSTER down >"$LOG_DIR/down.log" 2>&1 || left="down failed (see $LOG_DIR/down.log);"
  $CLUSTER down >>"$LOG_DIR/down.log" 2>&1 || left="$left second down failed;"
  ip netns list | awk '{print $1}' | grep -qE "^${UMN_PREFIX}[0-9]+$" && left="$left namespaces;"
  ip -br link | awk '{print $1}' | grep -qE "^(v-${UMN_PREFIX}[0-9]+|${UMN_PREFIX}br0)(@|$)" && left="$left links;"
  compgen -G "/tmp/ompi.${UMN_PREFIX}[0-9]*.*" >/dev/null && left="$left session dirs;"
  [ -e "$UMN_STATE_DIR" ] && left="$left state dir;"
  if [ -z "$left" ]; then record "teardown (twice) leaves no namespace, veth, bridge, session dir or state" pass
  else record "teardown" fail "left behind:$left"; fi
}

# ---- run --------------------------------------------------------------------------------
t0=$(date +%s)
$CLUSTER down >/dev/null 2>&1 || true      # a previous run that was killed hard
if ! $CLUSTER up 3 >"$LOG_DIR/up.log" 2>&1; then
  record "cluster.sh up 3" fail "see $LOG_DIR/up.log"; summary; exit 1
fi
say "$(tail -1 "$LOG_DIR/up.log" | sed 's/^\[cluster\] //')"

test_selftest_3x1
test_selftest_2x2
test_kill
test_cut
test_stall
test_training
test_ssh_command
test_teardown

say "exit times: kill -9 -> ${KILL_SECS} s, cut link -> ${CUT_SECS} s, stall (deadline 5 s) -> ${STALL_SECS} s after the ranks started; $(( $(date +%s) - t0 )) s for the suite; logs in $LOG_DIR"
summary
[ "$failed" = 0 ]
