#!/usr/bin/env bash
# The test command: installs what the suite needs on a fresh Debian machine, then runs the
# whole suite on SQLite and the database-facing tests again on a real PostgreSQL that this
# script starts on a free loopback port, then the demo as a smoke test.
#
#   bash scripts/test.sh            everything
#   bash scripts/test.sh -k route   extra arguments go to both pytest runs
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${HOTLINE_VENV:-$ROOT/.venv}

log() { printf '\n== %s\n' "$*"; }

# --- system packages (Debian) ----------------------------------------------------------
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
command -v sox >/dev/null 2>&1 || need+=(sox)
# a CJK font, so that the browser tests' screenshots show Chinese, not boxes
fc-list 2>/dev/null | grep -qi "wenquanyi\|noto sans cjk" || need+=(fonts-wqy-microhei)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# --- Python environment ----------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  python3 -m venv "$VENV"
fi
log "installing the package with its test extras"
"$VENV/bin/pip" install -q --upgrade pip >/dev/null
"$VENV/bin/pip" install -q -e ".[test]"
PY="$VENV/bin/python"

# --- PostgreSQL on a free port -----------------------------------------------------------
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
PGPORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PGDATA=$(mktemp -d /tmp/hotline-pg.XXXXXX)
AS=()
if [ "$(id -u)" -eq 0 ]; then
  chown postgres "$PGDATA"
  AS=(runuser -u postgres --)
fi
cleanup() {
  "${AS[@]}" "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$PGDATA"
}
trap cleanup EXIT
log "starting PostgreSQL on 127.0.0.1:$PGPORT"
"${AS[@]}" "$PGBIN/initdb" -D "$PGDATA" -U hotline --auth=trust -E UTF8 >/dev/null
"${AS[@]}" "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/log" -w \
  -o "-p $PGPORT -k $PGDATA -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
"${AS[@]}" "$PGBIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U hotline hotline_test
PG_CTL="${AS[*]} $PGBIN/pg_ctl -D $PGDATA"
PG_URL="postgresql+psycopg://hotline@127.0.0.1:$PGPORT/hotline_test"

# --- the suite -------------------------------------------------------------------------
# Test files run side by side, one worker per core (at least two: most of a test's time is
# spent waiting for the simulator's and the CTI's processes); a file stays on one worker, so
# its module fixtures are made once.
WORKERS=${HOTLINE_TEST_WORKERS:-$(nproc)}
[ "$WORKERS" -ge 2 ] || WORKERS=2
PARALLEL=(-n "$WORKERS" --dist loadfile)
# pytest's status 5 is "no test selected" (extra arguments such as -k can select none in a run)
tests() { "$PY" -m pytest -q "$@" || [ $? -eq 5 ]; }
mkdir -p artifacts
log "pytest on SQLite ($WORKERS workers)"
tests "${PARALLEL[@]}" --durations=15 "$@"
log "pytest on PostgreSQL (database-facing tests)"
# Pure code (routing, the simulator's protocol) does not touch the database: not run twice.
# Nor do the headless-Chromium walks: they check pages, whose database side the API tests
# cover on both databases (this keeps the whole run under 20 minutes).
# The tests that stop the server itself (HOTLINE_TEST_PG_CTL) run alone afterwards: a stopped
# server would fail whatever the other workers were doing at that moment.
HOTLINE_TEST_PG_URL="$PG_URL" tests "${PARALLEL[@]}" -m "not vosk and not browser" \
  --ignore=tests/routing --ignore=tests/testing "$@"
log "pytest on PostgreSQL: the server stopped and started under load"
HOTLINE_TEST_PG_URL="$PG_URL" HOTLINE_TEST_PG_CTL="$PG_CTL" tests \
  tests/reliability/test_db_outage.py tests/reliability/test_sole_leader.py "$@"

log "demo smoke test: 20 calls"
demo_dir=$(mktemp -d)
out=$(cd "$demo_dir" && "$VENV/bin/hotline" demo --calls 20 --no-browser --port 0 | tail -n 1)
rm -rf "$demo_dir"
echo "$out"
"$PY" - "$out" <<'PYEOF'
import json, sys
summary = json.loads(sys.argv[1])
assert summary["offered"] == 20 and summary["answered"] == 20, summary
assert summary["tickets"] == 20, summary
PYEOF
echo "demo: ok"
