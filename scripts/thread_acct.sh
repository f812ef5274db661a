#!/bin/bash
# scripts/thread_acct.sh MODE HTTP_THREADS INSTANCES WRK_THREADS CONNECTIONS
#   MODE: bin (v2 binary tensor data) or json (/v1); defaults: bin 2 1 2 64.
# Serves the 8×1024 MLP (bench/make_mlp8x1024.ts; MODEL= another [batch, 1024] fp32 model) as a batched `runModel`
# function on Worker isolates (CUDA lanes where there is a GPU; GRAPH=1 adds `cudaGraph: true`), loads it with wrk for
# DUR seconds (default 4) after 2 s of warm-up, and prints the rps and latency, then each runtime thread's CPU time
# (/proc/<pid>/task/*/schedstat) and voluntary and involuntary context switches (status) per answer, busiest first
# (TOP= lines, default 16). MAIN= runs another checkout's main.ts; EXTRA= labels the run. Uses .gpu/wrk's wrk if staged.
mode=${1:-bin}; threads=${2:-2}; inst=${3:-1}; wt=${4:-2}; c=${5:-64}; dur=${DUR:-4}
root=$(pwd)
[ -z "$(ls bench/.models/*.onnx 2>/dev/null)" ] && deno run -A bench/make_mlp8x1024.ts >/dev/null 2>&1
model=${MODEL:-$(ls bench/.models/*.onnx | head -1)}
d=$(mktemp -d); mkdir -p $d/fns/wide; cp $model $d/fns/wide/model.onnx
cat > $d/fns/wide/mod.ts <<EOT
import { defineFunction, runModel } from "isolane";
export default defineFunction({
  description: "wide", models: { mlp: "model.onnx" },
  signature: { inputs: [{ name: "x", datatype: "FP32", shape: [-1, 1024] }], outputs: [{ name: "y", datatype: "FP32", shape: [-1, 1024] }] },
  instances: $inst, queueDepth: 4096, maxBodyBytes: 10000000,
  dynamicBatching: { maxBatchSize: 64, maxQueueDelayMs: 0 },${GRAPH:+ cudaGraph: true,}
  handler: runModel("mlp"),
});
EOT
python3 - <<EOT
import json, math, struct
xs=[round(math.sin(i*0.37)*5000)/10000 for i in range(1024)]
h=json.dumps({"inputs":[{"name":"x","shape":[1,1024],"datatype":"FP32","parameters":{"binary_data_size":4096}}],"outputs":[{"name":"y","parameters":{"binary_data":True}}]}).encode()
open("$d/bin.body","wb").write(h+struct.pack("<1024f",*xs)); open("$d/bin.len","w").write(str(len(h)))
open("$d/body.json","w").write(json.dumps({"x": [xs]}))
EOT
cat > $d/post.lua <<EOT
wrk.method = "POST"
local f = io.open("$d/body.json"); wrk.body = f:read("*a"); f:close()
wrk.headers["Content-Type"] = "application/json"
EOT
cat > $d/bin.lua <<EOT
wrk.method = "POST"
local f = io.open("$d/bin.body", "rb"); wrk.body = f:read("*a"); f:close()
wrk.headers["Content-Type"] = "application/octet-stream"
wrk.headers["Inference-Header-Content-Length"] = "$(cat $d/bin.len)"
EOT
ISOLANE_ISOLATION=worker ISOLANE_HTTP_THREADS=$threads ISOLANE_FUNCTIONS=$d/fns ISOLANE_DATA=$d/data PORT=8111 HOST=127.0.0.1 ISOLANE_LOG_LEVEL=warn deno run -A --unstable-worker-options --unstable-no-legacy-abort --unstable-net ${MAIN:-main.ts} > $d/srv.log 2>&1 &
pid=$!
for i in $(seq 1 240); do curl -sf http://127.0.0.1:8111/readyz >/dev/null && break; sleep 0.25; done
if [ -x "$root/.gpu/wrk/usr/bin/wrk" ]; then W="env LD_LIBRARY_PATH=$root/.gpu/wrk/usr/lib/x86_64-linux-gnu $root/.gpu/wrk/usr/bin/wrk"; else W=wrk; fi
if [ $mode = bin ]; then lua=$d/bin.lua; url=http://127.0.0.1:8111/v2/models/wide/infer; else lua=$d/post.lua; url=http://127.0.0.1:8111/v1/functions/wide; fi
$W -t$wt -c$c -d2 -s $lua $url > /dev/null
snap() { for t in /proc/$pid/task/*; do echo "${t##*/} $(cat $t/comm | tr ' ' _) $(awk '{print $1}' $t/schedstat) $(awk '/^voluntary_ctxt/ {v=$2} /^nonvoluntary/ {n=$2} END {print v, n}' $t/status)"; done; }
m() { curl -s http://127.0.0.1:8111/metrics | awk '/^isolane_requests_total/ {s+=$2} END {print s}'; }
snap > $d/a; m0=$(m)
echo "== $mode http-threads=$threads instances=$inst wrk -t$wt -c$c ${EXTRA:-}"
$W -t$wt -c$c -d$dur -s $lua --latency $url | grep -E "Requests/sec| 50%| 99%|Non-2xx"
snap > $d/b; m1=$(m)
n=$(( ${m1%.*} - ${m0%.*} )); echo "answers $n machine-cores $(nproc) load $(cut -d' ' -f1 /proc/loadavg)"
join <(sort $d/a) <(sort $d/b) | awk -v n=$n '{cpu=($7-$3)/1000/n; v=($8-$4)/n; nv=($9-$5)/n; tc+=cpu; tv+=v; if (cpu>2) printf "%-18s %7.1f us/ans  %5.2f vol-sw/ans  %5.2f invol/ans\n", $1":"$2, cpu, v, nv} END {printf "ALL %7.1f us/ans %5.2f vol-sw/ans\n", tc, tv}' | sort -k2 -rn | head -${TOP:-16}
kill $pid; wait $pid 2>/dev/null
