"""`moodstream dashboard`: serve the web dashboard (Flask-SocketIO, threading mode) with
gunicorn (dashboard.server), never the Werkzeug development server."""

from __future__ import annotations

import argparse
import logging
import secrets

from moodstream.config import Settings
from moodstream.dashboard.server import serve
from moodstream.dashboard.users import ensure_admin
from moodstream.history.records import open_records
from moodstream.redis_client import connect, wait_until_reachable

log = logging.getLogger("moodstream.dashboard")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (0.0.0.0 for every interface)")
    parser.add_argument("--port", type=int, default=5000, help="port to listen on")
    parser.add_argument("--secure-cookies", action="store_true", default=None,
                        help="mark cookies Secure (behind HTTPS; or MOODSTREAM_SECURE_COOKIES=1)")
    parser.add_argument("--threads", type=int, default=None,
                        help="request threads; each live browser holds one "
                             "(default: MOODSTREAM_DASHBOARD_THREADS, 100)")
    parser.add_argument("--trusted-proxies", type=int, default=None, metavar="N",
                        help="number of reverse proxies in front (trust their X-Forwarded-For, "
                             "-Proto and -Host; or MOODSTREAM_TRUSTED_PROXIES; default 0)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    d = settings.dashboard
    token, generated = d.token, False
    if not token:
        token, generated = secrets.token_urlsafe(24), True
    settings = settings.with_options("dashboard", token=token,
                                     secure_cookies=args.secure_cookies,
                                     trusted_proxies=args.trusted_proxies)
    r = connect(settings.redis_url)
    wait_until_reachable(r, "dashboard")
    admin = ensure_admin(r, d.admin_user, d.admin_password, open_records(settings.history))
    if admin:
        log.info("admin user %s is ready", admin)

    def make_app():  # in gunicorn's worker process (see moodstream.dashboard.server)
        from moodstream.dashboard.app import create_app, vendor_missing

        missing = vendor_missing()
        if missing:
            log.warning("front-end libraries missing (%s): run ./scripts/setup.sh",
                        ", ".join(missing))
        return create_app(settings)[0]

    host = "localhost" if args.host in ("127.0.0.1", "0.0.0.0", "::") else args.host
    url = f"http://{host}:{args.port}/"
    if generated:  # a token from the environment is not echoed into logs
        url += f"login?token={token}"
        print("MOODSTREAM_TOKEN was not set; this run's token is in the link below", flush=True)
    print(f"dashboard: {url}", flush=True)

    # gunicorn handles SIGTERM and SIGINT itself: it stops accepting, finishes requests, exits.
    serve(make_app, args.host, args.port, threads=args.threads or d.threads,
          request_timeout=d.request_timeout_s)
    return 0
