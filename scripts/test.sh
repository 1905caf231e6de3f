#!/usr/bin/env bash
# Runs the whole test suite: lint, unit, integration (real redis-server, ffmpeg RTSP server),
# and browser tests (real headless Chromium through Playwright).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
if command -v docker-compose >/dev/null; then
  MOODSTREAM_TOKEN=ci MOODSTREAM_SECRET_KEY=ci MOODSTREAM_ADMIN_PASSWORD=ci \
    MOODSTREAM_REDIS_PASSWORD=ci MOODSTREAM_DB_PASSWORD=ci \
    docker-compose -f docker-compose.yml config -q
fi
exec .venv/bin/python -m pytest -q -ra "$@"
