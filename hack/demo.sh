#!/usr/bin/env bash
# `make demo`: warmpool as a user runs it, on one real local Kubernetes node, no Docker needed.
#
#   1. builds or reuses every component (hack/setup.sh: binaries, node, S3 server, Prometheus,
#      and the images from hack/build-images.sh)
#   2. starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler and one real node
#      (kubelet, containerd, runc, CNI, kube-proxy, a stand-in GPU device plugin) in namespaces
#      of its own, the built images imported into its containerd (state in ./.demo/)
#   3. runs the demo's S3 server (holding the model tests/models/warmup_curve) and a Prometheus
#      as pods (a sidecar lists the pods to scrape from the apiserver: hack/demo/servers.yaml)
#   4. installs the chart with `helm install`: the operator and the activator run as pods from
#      the built images, under the chart's ServiceAccounts
#   5. applies the examples that can run here (examples/cpu-python-demo.yaml; the others need
#      GPUs or a model hub and say so) and a scale-to-zero copy of it; waits for Ready:
#      `warmpool prefetch` fetched the weights from S3, real Triton (CPU) serves them
#   6. sends a request through the activator to the pool at zero: it wakes and answers; then
#      waits until the idle pool is back at zero
#
# It prints each step's time. Everything keeps running for you to look at; `make demo-down`
# stops it and leaves nothing behind. WARMPOOL_DEMO_TIMEOUT (default 900) bounds each wait;
# WARMPOOL_DEMO_SETUP=0 skips step 1 (when hack/setup.sh has just run).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "${ROOT}"
STATE=${WARMPOOL_DEMO_STATE:-${ROOT}/.demo}
PYTHON=${PYTHON:-${ROOT}/.venv/bin/python}
TIMEOUT=${WARMPOOL_DEMO_TIMEOUT:-900}
# The chart names its objects after a release whose name contains the chart's: warmpool,
# warmpool-activator.
RELEASE=warmpool
SYSTEM_NS=warmpool-system
SERVERS_NS=warmpool-demo
POOLS_NS=demo
# Fixed ClusterIPs (the demo cluster has no DNS); examples/cpu-python-demo.yaml names S3's.
S3_IP=10.96.100.10
PROMETHEUS_IP=10.96.100.20
IDLE_POOL=warmup-curve-idle

trap 'echo "demo.sh failed (see above); what started still runs: make demo-down" >&2' ERR

declare -a TIMES=()
STEP_NAME="" STEP_START=0
step() {
  finish_step
  STEP_NAME=$1
  STEP_START=$(date +%s.%N)
  printf '\n==> %s\n' "$1"
}
finish_step() {
  if [[ -n ${STEP_NAME} ]]; then
    local took
    took=$(awk -v a="${STEP_START}" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
    TIMES+=("$(printf '%7s s  %s' "${took}" "${STEP_NAME}")")
    printf '    (%s s)\n' "${took}"
    STEP_NAME=""
  fi
}

image_ref() {
  "${PYTHON}" -c 'import sys; from warmpool.envtest.images import built_image
print(built_image(sys.argv[1]).ref)' "$1"
}

step "build or reuse every component and image (hack/setup.sh, cached)"
if [[ ${WARMPOOL_DEMO_SETUP:-1} != 0 ]]; then
  hack/setup.sh
fi
if [[ ! -x ${PYTHON} ]]; then
  echo "no Python at ${PYTHON}: run hack/setup.sh python first, or set PYTHON" >&2
  exit 1
fi

step "start the control plane and one real node, images imported (state in ${STATE})"
"${PYTHON}" -m warmpool.envtest up --state "${STATE}" --gpu-nodes 0 --real-node \
  --images pause,agent,operator,triton-cpu,demo-s3,demo-prometheus
export KUBECONFIG=${STATE}/kubeconfig
# kubectl's discovery cache and helm's homes inside the state directory: nothing in ~ to clean.
export KUBECACHEDIR=${STATE}/kube-cache HELM_CACHE_HOME=${STATE}/helm/cache \
  HELM_CONFIG_HOME=${STATE}/helm/config HELM_DATA_HOME=${STATE}/helm/data
KUBECTL=$("${PYTHON}" -c 'from warmpool.envtest import find_binary; print(find_binary("kubectl"))')
HELM=$("${PYTHON}" -c 'from warmpool.envtest import find_binary; print(find_binary("helm"))')
"${KUBECTL}" get nodes -o wide

OPERATOR_IMAGE=$(image_ref operator)
AGENT_IMAGE=$(image_ref agent)
TRITON_IMAGE=$(image_ref triton-cpu)

fill() {
  sed -e "s#@DEMO_S3_IMAGE@#$(image_ref demo-s3)#g" \
    -e "s#@DEMO_PROMETHEUS_IMAGE@#$(image_ref demo-prometheus)#g" \
    -e "s#@S3_IP@#${S3_IP}#g" -e "s#@PROMETHEUS_IP@#${PROMETHEUS_IP}#g" \
    -e "s#@TRITON_IMAGE@#${TRITON_IMAGE}#g" -e "s#@AGENT_IMAGE@#${AGENT_IMAGE}#g" \
    -e "s#localhost/warmpool/triton-cpu:latest#${TRITON_IMAGE}#g" "$1"
}

step "S3 server (the model's weights) and Prometheus, as pods"
for ns in "${SERVERS_NS}" "${POOLS_NS}"; do
  "${KUBECTL}" create namespace "${ns}" --dry-run=client -o yaml | "${KUBECTL}" apply -f -
done
"${KUBECTL}" -n "${SERVERS_NS}" create configmap demo-model --dry-run=client -o yaml \
  --from-file=config.pbtxt=tests/models/warmup_curve/config.pbtxt \
  --from-file=model.py=tests/models/warmup_curve/1/model.py | "${KUBECTL}" apply -f -
fill hack/demo/servers.yaml | "${KUBECTL}" apply -f -
# The pools read the same credentials in their own namespace.
"${KUBECTL}" -n "${SERVERS_NS}" get secret s3-credentials -o json |
  "${PYTHON}" -c 'import json, sys; s = json.load(sys.stdin); m = s["metadata"]
print(json.dumps({"apiVersion": "v1", "kind": "Secret", "type": s.get("type", "Opaque"),
  "metadata": {"name": m["name"], "namespace": sys.argv[1]}, "data": s["data"]}))' "${POOLS_NS}" |
  "${KUBECTL}" apply -f -
"${KUBECTL}" -n "${SERVERS_NS}" rollout status deployment/s3 --timeout="${TIMEOUT}s"
"${KUBECTL}" -n "${SERVERS_NS}" rollout status deployment/prometheus --timeout="${TIMEOUT}s"

step "helm install the chart: operator and activator as pods from the built images"
"${HELM}" upgrade --install "${RELEASE}" charts/warmpool --namespace "${SYSTEM_NS}" \
  --create-namespace \
  --set "operator.image.repository=${OPERATOR_IMAGE%:*}" \
  --set "operator.image.tag=${OPERATOR_IMAGE##*:}" \
  --set "agent.image.repository=${AGENT_IMAGE%:*}" \
  --set "agent.image.tag=${AGENT_IMAGE##*:}" \
  --set operator.logFormat=text \
  --set "prometheus.url=http://${PROMETHEUS_IP}:9090" \
  --set activator.enabled=true \
  --set activator.replicaCount=1
"${KUBECTL}" -n "${SYSTEM_NS}" rollout status "deployment/${RELEASE}" \
  --timeout="${TIMEOUT}s"
"${KUBECTL}" -n "${SYSTEM_NS}" rollout status "deployment/${RELEASE}-activator" \
  --timeout="${TIMEOUT}s"
"${KUBECTL}" -n "${SYSTEM_NS}" get pods -o wide

step "apply the examples that run here, and a scale-to-zero copy"
for example in examples/*.yaml; do
  if grep -q '^# Not applied by `make demo`' "${example}"; then
    # The reason: that comment paragraph, joined into one line.
    reason=$(awk 'on && /^#$/ {exit}
      /^# Not applied by `make demo`: / {on = 1; sub(/^# Not applied by `make demo`: /, "# ")}
      on {sub(/^# /, ""); printf "%s ", $0}' "${example}")
    printf '    skipped %s: %s\n' "${example}" "${reason}"
    continue
  fi
  echo "    applying ${example}"
  fill "${example}" | "${KUBECTL}" apply -f -
done
fill hack/demo/idle-pool.yaml | "${KUBECTL}" apply -f -

step "wait for examples/cpu-python-demo.yaml's pool to be Ready (prefetch from S3, Triton, warm-up)"
"${KUBECTL}" -n "${POOLS_NS}" wait inferencepool/warmup-curve \
  --for=jsonpath='{.status.phase}'=Ready --timeout="${TIMEOUT}s"
"${KUBECTL}" get inferencepools -A

step "wait for ${IDLE_POOL} (warm floor 0, idle) to be at zero"
"${KUBECTL}" -n "${POOLS_NS}" wait "inferencepool/${IDLE_POOL}" \
  --for=jsonpath='{.status.phase}'=ScaledToZero --timeout="${TIMEOUT}s"

step "a request to ${IDLE_POOL} at zero: the activator holds it, wakes the pool, it answers"
IDLE_IP=$("${KUBECTL}" -n "${POOLS_NS}" get service "${IDLE_POOL}" -o jsonpath='{.spec.clusterIP}')
# A client pod (the agent image's Python) inside the node; its answer comes back as the pod's
# termination message, so nothing on the host talks to a pod address.
"${KUBECTL}" -n "${POOLS_NS}" delete pod request-at-zero --ignore-not-found --wait=true
"${KUBECTL}" apply -f - <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: request-at-zero
  namespace: ${POOLS_NS}
spec:
  restartPolicy: Never
  securityContext: {runAsNonRoot: true, runAsUser: 65532}
  containers:
    - name: client
      image: ${AGENT_IMAGE}
      imagePullPolicy: IfNotPresent
      command: [python3, -c]
      args:
        - |
          import json, time, urllib.request
          body = json.dumps({"inputs": [{"name": "INPUT0", "datatype": "FP32",
                                         "shape": [1, 1024], "data": [0.5] * 1024}]}).encode()
          request = urllib.request.Request(
              "http://${IDLE_IP}:8000/v2/models/warmup_curve/infer", data=body,
              headers={"Host": "${IDLE_POOL}.${POOLS_NS}", "Content-Type": "application/json"})
          started = time.monotonic()
          with urllib.request.urlopen(request, timeout=${TIMEOUT}) as response:
              answer = json.load(response)
          output = answer["outputs"][0]
          message = (f"HTTP {response.status} after {time.monotonic() - started:.1f} s: "
                     f"{output['name']} {output['shape']} from model {answer['model_name']}")
          print(message)
          open("/dev/termination-log", "w").write(message)
EOF
"${KUBECTL}" -n "${POOLS_NS}" wait pod/request-at-zero \
  --for=jsonpath='{.status.phase}'=Succeeded --timeout="${TIMEOUT}s"
echo "    answer: $("${KUBECTL}" -n "${POOLS_NS}" get pod request-at-zero \
  -o jsonpath='{.status.containerStatuses[0].state.terminated.message}')"
"${KUBECTL}" get inferencepools -A

step "wait until ${IDLE_POOL} is idle and back at zero"
"${KUBECTL}" -n "${POOLS_NS}" wait "inferencepool/${IDLE_POOL}" \
  --for=jsonpath='{.status.phase}'=ScaledToZero --timeout="${TIMEOUT}s"
finish_step

printf '\n==> what took how long\n'
printf '%s\n' "${TIMES[@]}"
cat <<EOF

The cluster keeps running in the background.
  export KUBECONFIG=${KUBECONFIG}
  ${KUBECTL} get inferencepools,pods -A
  logs: ${STATE}/ (envtest.log, cluster/logs/)
Stop it and remove what it started with: make demo-down   (or hack/demo-down.sh)
EOF
