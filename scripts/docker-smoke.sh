#!/usr/bin/env bash
# Builds the image, runs the compose stack on the shared demo video with 3 detectors, and
# checks that frames flow to labels and that a bulk job runs. Needs a Docker daemon.
#   BASE=<image> scripts/docker-smoke.sh   # another base than python:3.11-slim
set -euo pipefail
cd "$(dirname "$0")/.."
video=${VIDEO:-../shared/data/media/fer_woman2.mp4}
[ -f "$video" ] || { echo "no demo video at $video" >&2; exit 2; }
work=$(mktemp -d)
trap 'cd "$work" && docker-compose down -v >/dev/null 2>&1; rm -rf "$work"' EXIT
docker build -q ${BASE:+--build-arg BASE="$BASE"} -t moodstream:latest . >/dev/null
mkdir "$work/media" && cp "$video" "$work/media/sample.mp4" && cp docker-compose.yml "$work/"
export MOODSTREAM_TOKEN=smoke-token-$RANDOM MOODSTREAM_SECRET_KEY=smoke-$RANDOM \
  MOODSTREAM_ADMIN_PASSWORD=smoke-password MOODSTREAM_REDIS_PASSWORD=smoke-redis-$RANDOM \
  MOODSTREAM_DB_PASSWORD=smoke-db-$RANDOM
cd "$work"
docker-compose up -d --no-build --scale detector=3 >/dev/null 2>&1
stats() { curl -sf -m 5 -H "Authorization: Bearer $MOODSTREAM_TOKEN" localhost:5000/api/stats; }
for _ in $(seq 90); do
  if stats | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(not (d["labels"] > 20 and d["workers"].get("detector") == 3))' 2>/dev/null; then
    echo "live: $(stats)"
    docker-compose run --rm bulk-worker analyze /media/sample.mp4 --out /tmp/out --fps 2
    exit 0
  fi
  sleep 2
done
docker-compose ps; docker-compose logs --tail 20; exit 1
