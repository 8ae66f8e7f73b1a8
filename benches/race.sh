#!/usr/bin/env bash
# The replica races a thousand rounds on each store. Two of them:
# - takeovers racing the old lease holder's writes (`adapters::store::tests::fencing`): none
#   of its writes is kept after the new holder has the lease;
# - a manual stop event through one tracker while another (a second replica on the same
#   store) recomputes the same shipment (`outbox::a_manual_event_racing_a_recompute_is_never_lost`):
#   the event is kept, and every notice matches the record.
# CI runs 50 and 200 rounds of them on each store; this is the longer run, outside it.
#   bash benches/race.sh            # 1,000 rounds
#   ROUNDS=5000 bash benches/race.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ROUNDS=${ROUNDS:-1000}
export ETAPE_RACE_ROUNDS=$ROUNDS
ensure_lightgbm_build_deps
ensure_postgres
trap stop_postgres EXIT
step "takeovers racing the old holder's writes, $ROUNDS rounds, on SQLite and PostgreSQL"
ETAPE_REQUIRE_POSTGRES=1 cargo test --locked --lib -- adapters::store::tests::fencing
step "a manual event racing a recompute, $ROUNDS rounds, on SQLite"
cargo test --locked --test api -- --exact outbox::a_manual_event_racing_a_recompute_is_never_lost
step "a manual event racing a recompute, $ROUNDS rounds, on PostgreSQL"
ETAPE_TEST_STORE=postgres ETAPE_REQUIRE_POSTGRES=1 \
  cargo test --locked --test api -- --exact outbox::a_manual_event_racing_a_recompute_is_never_lost
steps_report
