#!/usr/bin/env bash
# Sets up moodstream on a fresh Debian/Ubuntu machine: system packages, a Python venv with
# the project, and the dashboard's front-end packages from npm. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v ffmpeg >/dev/null || need_apt+=(ffmpeg)
command -v rtsp-server-perl >/dev/null || need_apt+=(rtsp-server-perl)  # a real RTSP server for tests
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v npm >/dev/null || need_apt+=(nodejs npm)
command -v docker-compose >/dev/null || need_apt+=(docker-compose)  # validates docker-compose.yml
command -v openssl >/dev/null || need_apt+=(openssl)  # TLS Redis test certificates
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need_apt+=(postgresql)  # history store tests
python3 -c "import venv, ensurepip" 2>/dev/null || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "==> installing system packages: ${need_apt[*]}"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need_apt[@]}"
  else
    echo "!! please install: ${need_apt[*]}" >&2
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  python3 -m venv .venv
fi
echo "==> installing moodstream and its Python packages"
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e ".[train,test]"

echo "==> installing the dashboard's front-end packages (npm)"
npm ci --prefix dashboard --no-audit --no-fund --loglevel=error
# Into the package (moodstream.assets.VENDOR_FILES), so a wheel built from here serves them.
mkdir -p dashboard/static/vendor
cp dashboard/node_modules/socket.io-client/dist/socket.io.min.js \
   dashboard/node_modules/chart.js/dist/chart.umd.min.js dashboard/static/vendor/

echo "==> ready: .venv/bin/moodstream --help"
