#!/usr/bin/env bash
# Container smoke test: builds the CPU image from ./Dockerfile for real and serves from it.
#
#   bash deploy/container-test.sh          (root; podman, debootstrap, util-linux, iproute2, node,
#                                           /usr/bin/python3 with python3-grpcio; .ci/run installs them)
#
# 1. base image: deploy/base-image.sh makes localhost/pairpref-base:trixie (debootstrapped Debian trixie
#    + nodejs + npm), a stand-in for node:20-bookworm-slim on machines that cannot pull images; reused
#    when it exists with the same recipe.
# 2. podman build --isolation=chroot --format docker --build-arg BASE_IMAGE=<that> (npm ci --omit=dev
#    from the registry; the layer cache is reused when podman storage survives between runs).
# 3. what is in the image: non-root numeric user, tini entrypoint, ports, HEALTHCHECK, no dev
#    dependency installed, no test/training/web folders, onnxruntime binaries for linux/<arch> only.
# 4. `podman run` is refused in this sandbox (crun cannot set rlimits), so: podman create + podman
#    mount, then the image's own ENTRYPOINT + CMD, env, workdir and user (chroot --userspec) in new
#    mount, PID and network namespaces (unshare): tini is PID 1 as in a container, the fixed ports
#    of the image's CMD cannot collide with anything on the host, and the image is mounted read-only
#    with a tmpfs on /tmp (what Kubernetes' readOnlyRootFilesystem + an emptyDir give).
# 5. from the host, inside that network namespace (nsenter --net): grpc.health.v1.Health/Check with a
#    Python grpcio client on the gRPC and health ports, the image's HEALTHCHECK command in the
#    container, GET /metrics, and `pairpref score --server` on a few rows, compared with the same rows
#    scored in-process on the host from models/default.
# 6. SIGTERM to PID 1: health turns NOT_SERVING during the drain grace, then the server exits 0.
# Mounts, the container and the namespaces go away on exit, also on failure. Each step's time is
# printed at the end.
#
# Environment (optional): PAIRPREF_TEST_IMAGE (tag built, default localhost/pairpref:test),
# PAIRPREF_BASE_IMAGE (default localhost/pairpref-base:trixie), PAIRPREF_NPM_CA (a CA bundle for a
# TLS-intercepting proxy, passed as the npm_ca build secret; default: $NODE_EXTRA_CA_CERTS when set),
# PAIRPREF_START_TIMEOUT_S (default 180), PAIRPREF_KEEP_WORK=1 (keep the work folder with the logs).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

IMAGE=${PAIRPREF_TEST_IMAGE:-localhost/pairpref:test}
export PAIRPREF_BASE_IMAGE=${PAIRPREF_BASE_IMAGE:-localhost/pairpref-base:trixie}
BASE=$PAIRPREF_BASE_IMAGE
START_TIMEOUT_S=${PAIRPREF_START_TIMEOUT_S:-180}
CTR_NAME=pairpref-container-test-$$
PY=/usr/bin/python3
[[ -x $PY ]] || PY=python3

# ---- logging and timing ---------------------------------------------------------------------
T_START=$SECONDS
STEP_NAMES=()
STEP_TIMES=()
CUR_STEP=""
CUR_T0=0
ts() { date +%H:%M:%S; }
log() { printf '[container-test %s] %s\n' "$(ts)" "$*"; }
end_step() {
  if [[ -n $CUR_STEP ]]; then
    STEP_NAMES+=("$CUR_STEP")
    STEP_TIMES+=("$((SECONDS - CUR_T0))")
    CUR_STEP=""
  fi
}
step() {
  end_step
  CUR_STEP=$*
  CUR_T0=$SECONDS
  printf '\n[container-test %s] === %s\n' "$(ts)" "$*"
}
fail() { printf '[container-test %s] FAIL: %s\n' "$(ts)" "$*" >&2; exit 1; }
summary() {
  local i
  printf '\n[container-test] step times (s):\n'
  for i in "${!STEP_NAMES[@]}"; do printf '  %5d  %s\n' "${STEP_TIMES[$i]}" "${STEP_NAMES[$i]}"; done
  printf '  %5d  total\n' "$((SECONDS - T_START))"
}

# ---- cleanup -----------------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/pairpref-container-test.XXXXXX)
UNSHARE_PID=""
INIT_PID=""
CID=""
cleanup() {
  local rc=$?
  set +e
  [[ -n $CUR_STEP ]] && end_step
  if [[ -n $INIT_PID ]] && kill -0 "$INIT_PID" 2>/dev/null; then
    # SIGKILL to the namespace's PID 1 ends every process in it; its mounts go with the namespace.
    kill -KILL "$INIT_PID" 2>/dev/null
  fi
  if [[ -n $UNSHARE_PID ]]; then
    kill -KILL "$UNSHARE_PID" 2>/dev/null
    wait "$UNSHARE_PID" 2>/dev/null
  fi
  if [[ -n $CID ]]; then
    podman umount "$CID" >/dev/null 2>&1
    podman rm --force "$CID" >/dev/null 2>&1
  fi
  if ((rc != 0)) && [[ -s $WORK/server.log ]]; then
    printf '\n[container-test] server log (last 40 lines):\n' >&2
    tail -n 40 "$WORK/server.log" >&2
  fi
  if [[ ${PAIRPREF_KEEP_WORK:-0} == 1 ]]; then log "work folder kept: $WORK"; else rm -rf "$WORK"; fi
  summary
  if ((rc == 0)); then log "PASSED"; else log "FAILED (exit $rc)"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- 0. tools ----------------------------------------------------------------------------------
step "tools"
((EUID == 0)) || fail "run as root (podman mount, chroot and unshare need it)"
for tool in podman unshare nsenter chroot ip node; do
  command -v "$tool" >/dev/null || fail "missing $tool (.ci/run installs podman, debootstrap, iproute2 and friends)"
done
"$PY" -c 'import grpc' 2>/dev/null || fail "$PY cannot import grpc (apt-get install python3-grpcio)"
[[ -f node_modules/tsx/package.json ]] || fail "node_modules missing: run npm ci first (the host runs the pairpref CLI as the client)"
log "$(podman --version); $(unshare --version); node $(node --version); python grpcio $("$PY" -c 'import grpc; print(grpc.__version__)')"

# Containers left by runs that were killed before their cleanup (their pid label is not running).
for c in $(podman ps --all --quiet --filter label=pairpref.container-test.pid 2>/dev/null); do
  pid=$(podman inspect --format '{{index .Config.Labels "pairpref.container-test.pid"}}' "$c" 2>/dev/null || true)
  if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
    log "removing container ${c:0:12} left by an earlier run (pid $pid)"
    podman umount "$c" >/dev/null 2>&1 || true
    podman rm --force "$c" >/dev/null 2>&1 || true
  fi
done

# ---- 1. base image -----------------------------------------------------------------------------
step "base image $BASE"
bash deploy/base-image.sh

# ---- 2. build ----------------------------------------------------------------------------------
step "podman build $IMAGE"
build_args=(--isolation=chroot --format docker --pull=never --build-arg "BASE_IMAGE=$BASE" --tag "$IMAGE")
NPM_CA=${PAIRPREF_NPM_CA:-${NODE_EXTRA_CA_CERTS:-}}
if [[ -n $NPM_CA && -s $NPM_CA ]]; then
  log "npm_ca build secret: $NPM_CA"
  build_args+=(--secret "id=npm_ca,src=$NPM_CA")
fi
old_id=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
log "+ podman build ${build_args[*]} ."
podman build "${build_args[@]}" . 2>&1 | sed -u 's/^/  | /'
new_id=$(podman image inspect --format '{{.Id}}' "$IMAGE")
if [[ -n $old_id && $old_id != "$new_id" ]]; then
  if podman rmi "$old_id" >/dev/null 2>&1; then log "removed the previous $IMAGE (${old_id:0:12})"; fi
fi

# ---- 3. image contents -------------------------------------------------------------------------
step "image metadata and contents"
inspect() { podman image inspect --format "$1" "$IMAGE"; }
SIZE=$(inspect '{{.Size}}')
USER_SPEC=$(inspect '{{.Config.User}}')
WORKDIR=$(inspect '{{.Config.WorkingDir}}')
node -e 'const c = JSON.parse(require("fs").readFileSync(0, "utf8"));
  for (const [k, v] of [["Env", c.Env], ["Entrypoint", c.Entrypoint], ["Cmd", c.Cmd]]) require("fs").writeFileSync(process.argv[1] + "/" + k, (v ?? []).join("\0"));' \
  "$WORK" < <(inspect '{{json .Config}}')
mapfile -d '' -t IMG_ENV < "$WORK/Env"
mapfile -d '' -t IMG_ENTRYPOINT < "$WORK/Entrypoint"
mapfile -d '' -t IMG_CMD < "$WORK/Cmd"
# shellcheck disable=SC2016
PORTS=$(inspect '{{range $p, $v := .Config.ExposedPorts}}{{$p}} {{end}}')
HEALTH=$(inspect '{{json .Config.Healthcheck}}')
log "size: $SIZE bytes ($((SIZE / 1000000)) MB)"
log "user: $USER_SPEC; workdir: $WORKDIR; ports: $PORTS"
log "entrypoint: ${IMG_ENTRYPOINT[*]}"
log "cmd: ${IMG_CMD[*]}"
[[ $USER_SPEC =~ ^[0-9]+(:[0-9]+)?$ ]] || fail "USER should be numeric uid:gid (Kubernetes runAsNonRoot), got '$USER_SPEC'"
[[ ${USER_SPEC%%:*} != 0 ]] || fail "the image runs as root"
[[ ${IMG_ENTRYPOINT[0]:-} == tini || ${IMG_ENTRYPOINT[0]:-} == */tini ]] || fail "entrypoint does not start with tini"
for p in 50051/tcp 50052/tcp 9464/tcp; do [[ " $PORTS " == *" $p "* ]] || fail "port $p not exposed"; done
[[ $HEALTH == *grpc.health.v1.Health/Check* ]] || fail "no HEALTHCHECK in the image config (built without --format docker?)"
mapfile -d '' -t HEALTH_TEST < <(node -e 'const h = JSON.parse(process.argv[1]); if (h.Test[0] !== "CMD") process.exit(1); process.stdout.write(h.Test.slice(1).join("\0"))' "$HEALTH") \
  || fail "HEALTHCHECK should use the exec form"

# --no-healthcheck: podman would otherwise set up (and on rm, try to remove) a systemd timer for it.
CID=$(podman create --name "$CTR_NAME" --label "pairpref.container-test.pid=$$" --network none --no-healthcheck "$IMAGE")
MNT=$(podman mount "$CID")
log "container ${CID:0:12} mounted at $MNT"
for d in test training web test-artifacts .git src; do [[ ! -e $MNT$WORKDIR/$d ]] || fail "$WORKDIR/$d is in the image"; done
[[ -f $MNT/models/default/model.onnx ]] || fail "/models/default/model.onnx missing"
# Every package the lockfile marks dev-only must be absent.
dev_present=$(node -e 'const l = require(process.argv[1]); const fs = require("fs");
  const bad = Object.entries(l.packages).filter(([k, v]) => v.dev && k.startsWith("node_modules/") && fs.existsSync(process.argv[2] + "/" + k));
  console.log(bad.map(([k]) => k).join(" "))' "$REPO/package-lock.json" "$MNT$WORKDIR")
[[ -z $dev_present ]] || fail "dev dependencies in the image: $dev_present"
ort_dirs=$(cd "$MNT$WORKDIR/node_modules/onnxruntime-node/bin/napi-v6" && find . -mindepth 2 -maxdepth 2 -type d | sort | tr '\n' ' ')
[[ $ort_dirs == "./linux/x64 " || $ort_dirs == "./linux/arm64 " ]] || fail "onnxruntime-node binaries for other platforms left: $ort_dirs"
tok_bins=$(cd "$MNT$WORKDIR/node_modules/tokenizers" && ls tokenizers.*.node | tr '\n' ' ')
[[ $tok_bins == "tokenizers.linux-x64-gnu.node " || $tok_bins == "tokenizers.linux-arm64-gnu.node " ]] || fail "native tokenizer binaries other than linux glibc for this arch left: $tok_bins"
log "onnxruntime-node binaries: $ort_dirs; native tokenizer: $tok_bins; no dev dependency of package-lock.json installed"
log "sizes: $(du -sh "$MNT$WORKDIR/node_modules" | cut -f1) node_modules, $(du -sh --exclude=node_modules "$MNT$WORKDIR" | cut -f1) app sources, $(du -sh "$MNT/models" | cut -f1) models"

# ---- 4. start ----------------------------------------------------------------------------------
step "start the image's entrypoint + cmd (chroot as $USER_SPEC, read-only root, new mount/pid/net namespaces)"
log "+ ${IMG_ENTRYPOINT[*]} ${IMG_CMD[*]}"
# Inside the namespaces, the container's filesystem as a strict Kubernetes pod would have it: the
# image read-only (readOnlyRootFilesystem) with an empty tmpfs on /tmp (an emptyDir; tsx keeps its
# transform cache there), /proc of the new PID namespace, the host's /dev and a read-only /sys; the
# loopback interface up. Then chroot as the image's user, with exactly the image's env and workdir.
# shellcheck disable=SC2016
unshare --mount --pid --net --fork \
  /bin/bash -c 'set -e; mnt=$1 user=$2 wd=$3; shift 3
    ip link set lo up
    mount --bind "$mnt" "$mnt" && mount -o remount,bind,ro "$mnt"
    mount -t proc proc "$mnt/proc"
    mount --rbind /dev "$mnt/dev"
    mount --rbind /sys "$mnt/sys" && mount -o remount,bind,ro "$mnt/sys"
    mount -t tmpfs -o mode=1777,size=256m tmpfs "$mnt/tmp"
    exec chroot --userspec="$user" "$mnt" /usr/bin/env -i --chdir="$wd" "$@"' \
  container-init "$MNT" "$USER_SPEC" "$WORKDIR" "${IMG_ENV[@]}" "${IMG_ENTRYPOINT[@]}" "${IMG_CMD[@]}" \
  >"$WORK/server.log" 2>&1 </dev/null &
UNSHARE_PID=$!

# The namespace's PID 1 is unshare's only child.
for _ in $(seq 100); do
  INIT_PID=$(awk '{print $1}' "/proc/$UNSHARE_PID/task/$UNSHARE_PID/children" 2>/dev/null || true)
  [[ -n $INIT_PID ]] && break
  kill -0 "$UNSHARE_PID" 2>/dev/null || fail "unshare exited at once"
  sleep 0.1
done
[[ -n $INIT_PID ]] || fail "no child of unshare $UNSHARE_PID"
# A watchdog for when this script is killed without running its trap (SIGKILL): it kills the
# namespace's PID 1, which ends every process in the namespace. (A parent-death signal cannot do it:
# the kernel clears it when chroot --userspec changes the user.)
(
  trap '' INT TERM
  while kill -0 "$$" 2>/dev/null && kill -0 "$INIT_PID" 2>/dev/null; do sleep 1; done
  kill -KILL "$INIT_PID" 2>/dev/null || true
) </dev/null >/dev/null 2>&1 &
innet() { nsenter --target "$INIT_PID" --net -- "$@"; }

cat >"$WORK/health.py" <<'EOF'
# grpc.health.v1.Health/Check with grpcio and hand-encoded messages (no generated code needed):
# request = field 1 (service, string); response = field 1 (status, enum). Prints the status name;
# exit 0 only for SERVING.
import sys
import grpc

target = sys.argv[1]
service = sys.argv[2].encode() if len(sys.argv) > 2 else b""
request = b"\x0a" + bytes([len(service)]) + service if service else b""
names = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}
with grpc.insecure_channel(target) as channel:
    check = channel.unary_unary("/grpc.health.v1.Health/Check", request_serializer=None, response_deserializer=None)
    try:
        response = check(request, timeout=3)
    except grpc.RpcError as e:
        print("RPC_ERROR", e.code().name)
        sys.exit(2)
status = response[1] if len(response) >= 2 and response[0] == 0x08 else 0
print(names.get(status, status))
sys.exit(0 if status == 1 else 1)
EOF
health() { innet "$PY" "$WORK/health.py" "$@" 2>/dev/null || true; }

t0=$SECONDS
while :; do
  kill -0 "$UNSHARE_PID" 2>/dev/null || { wait "$UNSHARE_PID" || true; fail "the server exited before serving"; }
  h=$(health 127.0.0.1:50052)
  [[ $h == SERVING ]] && break
  ((SECONDS - t0 < START_TIMEOUT_S)) || fail "not SERVING after ${START_TIMEOUT_S} s (last: $h)"
  sleep 0.5
done
log "SERVING on the health port after $((SECONDS - t0)) s"
sed 's/^/  | /' "$WORK/server.log"

# ---- 5. probes and scoring ---------------------------------------------------------------------
step "probes, metrics, process tree"
for check in "127.0.0.1:50052 " "127.0.0.1:50051 " "127.0.0.1:50051 pairpref.v1.PairwisePreference"; do
  read -r target service <<<"$check"
  h=$(health "$target" ${service:+"$service"})
  [[ $h == SERVING ]] || fail "Health/Check $target service '${service}': $h"
  log "Health/Check $target service '${service}': $h"
done
# The image's own HEALTHCHECK, run in the container (its root, namespaces, user and env).
uid=${USER_SPEC%%:*}
gid=${USER_SPEC#*:}
[[ $gid == "$USER_SPEC" ]] && gid=$uid
in_container() { nsenter --target "$INIT_PID" --mount --net --root --wd --setuid "$uid" --setgid "$gid" -- /usr/bin/env -i "${IMG_ENV[@]}" "$@"; }
in_container "${HEALTH_TEST[@]}" || fail "the image's HEALTHCHECK command failed while the server is SERVING"
log "image HEALTHCHECK command: exit 0"
# shellcheck disable=SC2016
metrics=$(innet "$PY" -c 'import urllib.request, sys; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' http://127.0.0.1:9464/metrics)
grep -q '^pairpref_' <<<"$metrics" || fail "GET :9464/metrics has no pairpref_ series"
log "GET :9464/metrics: $(grep -c '^pairpref_' <<<"$metrics") pairpref_ samples"
# PID 1 of the namespace is tini, running as the image's user; its child is node.
init_comm=$(cat "/proc/$INIT_PID/comm")
init_nspid=$(awk '/^NSpid:/ {print $NF}' "/proc/$INIT_PID/status")
init_uid=$(awk '/^Uid:/ {print $2}' "/proc/$INIT_PID/status")
node_pid=$(awk '{print $1}' "/proc/$INIT_PID/task/$INIT_PID/children")
node_comm=$(cat "/proc/$node_pid/comm" 2>/dev/null || echo '?')
node_uid=$(awk '/^Uid:/ {print $2}' "/proc/$node_pid/status" 2>/dev/null || echo '?')
nsenter --target "$INIT_PID" --mount -- touch "$MNT/.rw-probe" 2>/dev/null && fail "the container's root is writable"
log "root filesystem read-only, /tmp a tmpfs: $(nsenter --target "$INIT_PID" --mount -- ls "$MNT/tmp" | tr '\n' ' ')"
log "PID 1: $init_comm (host pid $INIT_PID, pid $init_nspid in the namespace, uid $init_uid); its child: $node_comm (uid $node_uid)"
[[ $init_comm == tini && $init_nspid == 1 ]] || fail "PID 1 is not tini"
[[ $init_uid == "$uid" && $node_uid == "$uid" ]] || fail "not running as uid $uid"
[[ $node_comm == node* || $node_comm == MainThread ]] || fail "tini's child is $node_comm, not node"

step "score rows through the container, compare with in-process scoring"
cat >"$WORK/rows.csv" <<'EOF'
id,prompt,response_a,response_b
c1,"[""What is the capital of Australia?""]","[""Canberra. Many guess Sydney, but Canberra was chosen as a compromise and has been the capital since 1927.""]","[""Sydney.""]"
c2,"[""Write a haiku about rain.""]","[""Rain.""]","[""Cold rain on the eaves\nmaple leaves drift in puddles\nthe kettle murmurs""]"
c3,"[""How do I reverse a list in Python?"", ""And a string?""]","[""Use my_list[::-1] or my_list.reverse()."", ""s[::-1]""]","[""You cannot."", null]"
c4,"[""Say hi""]","[""hi""]","[""hi""]"
EOF
innet node bin/pairpref.mjs score --server 127.0.0.1:50051 --input "$WORK/rows.csv" --output "$WORK/served.csv" --tta 2>&1 | sed 's/^/  | /'
node bin/pairpref.mjs score --model models/default --devices cpu --input "$WORK/rows.csv" --output "$WORK/local.csv" --tta 2>&1 | sed 's/^/  | /'
sed 's/^/  served | /' "$WORK/served.csv"
# shellcheck disable=SC2016
node -e 'const fs = require("fs");
  const read = (f) => fs.readFileSync(f, "utf8").trim().split("\n").slice(1).map((l) => l.split(","));
  const a = read(process.argv[1]), b = read(process.argv[2]);
  if (a.length !== 4 || b.length !== 4) throw new Error(`expected 4 rows, got ${a.length} and ${b.length}`);
  let max = 0;
  a.forEach((r, i) => {
    if (r[0] !== b[i][0]) throw new Error(`row ${i}: id ${r[0]} vs ${b[i][0]}`);
    const p = r.slice(1).map(Number), q = b[i].slice(1).map(Number);
    if (Math.abs(p[0] + p[1] + p[2] - 1) > 1e-6) throw new Error(`row ${r[0]} does not sum to 1`);
    p.forEach((x, j) => { max = Math.max(max, Math.abs(x - q[j])); });
  });
  console.log(`max |served - in-process| = ${max.toExponential(2)}`);
  if (max > 1e-5) process.exit(1);' "$WORK/served.csv" "$WORK/local.csv" | sed 's/^/  /' \
  || fail "probabilities from the container differ from in-process scoring"

# ---- 6. drain ----------------------------------------------------------------------------------
step "SIGTERM: drain and exit 0"
t0=$SECONDS
kill -TERM "$INIT_PID"
saw_not_serving=""
while kill -0 "$UNSHARE_PID" 2>/dev/null; do
  if [[ -z $saw_not_serving ]]; then
    h=$(health 127.0.0.1:50052)
    if [[ $h == NOT_SERVING ]]; then
      saw_not_serving=1
      log "health during the drain grace: NOT_SERVING"
      in_container "${HEALTH_TEST[@]}" && fail "the image's HEALTHCHECK command passed while NOT_SERVING"
      log "image HEALTHCHECK command while draining: exit 1"
    fi
  fi
  ((SECONDS - t0 < 60)) || fail "still running 60 s after SIGTERM"
  sleep 0.2
done
rc=0
wait "$UNSHARE_PID" || rc=$?
UNSHARE_PID=""
INIT_PID=""
sed -n '/SIGTERM\|drain\|stopp\|exit/Ip' "$WORK/server.log" | sed 's/^/  | /'
log "exit code $rc after SIGTERM, $((SECONDS - t0)) s"
[[ -n $saw_not_serving ]] || fail "health never answered NOT_SERVING during the drain"
((rc == 0)) || fail "exit code $rc after SIGTERM (want 0)"

step "clean up"
podman umount "$CID" >/dev/null
podman rm "$CID" >/dev/null
CID=""
end_step
log "image $IMAGE: $SIZE bytes ($((SIZE / 1000000)) MB)"
