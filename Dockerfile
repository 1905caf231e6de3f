# One image for every moodstream service; docker-compose.yml picks the subcommand.
# BASE: any Debian-based image with Python 3.11+ and its venv module.
ARG BASE=python:3.11-slim

# The dashboard's front-end packages, from npm; Node.js stays in this stage.
FROM ${BASE} AS frontend
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY dashboard/package.json dashboard/package-lock.json dashboard/
RUN mkdir -p dashboard/static
RUN npm ci --prefix dashboard --no-audit --no-fund \
    && mkdir dashboard/static/vendor \
    && cp dashboard/node_modules/socket.io-client/dist/socket.io.min.js \
          dashboard/node_modules/chart.js/dist/chart.umd.min.js dashboard/static/vendor/

# OpenCV's wheel brings its own FFmpeg, so the runtime needs no system packages.
FROM ${BASE}
# A venv keeps pip off the base image's Python (Debian bases refuse system-wide installs).
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH TF_CPP_MIN_LOG_LEVEL=3 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bench bench
COPY moodstream moodstream
COPY analysis analysis
COPY detection detection
COPY bulk bulk
COPY ingest ingest
COPY edge edge
COPY workers workers
COPY dashboard dashboard
COPY --from=frontend /app/dashboard/static/vendor dashboard/static/vendor
COPY models/*.py models/emotion.onnx models/emotion.json models/emotion-int8.onnx \
     models/emotion-int8.json models/
COPY models/mtcnn models/mtcnn
# The workers and the dashboard need no TensorFlow; EXTRAS=train adds training and export.
ARG EXTRAS=""
RUN pip install --no-cache-dir -e ".${EXTRAS:+[$EXTRAS]}"
# Frames and crops live in Redis only; the container writes nothing but bulk results.
RUN mkdir /bulk && chown nobody /bulk
ENV MPLCONFIGDIR=/tmp/matplotlib HOME=/tmp
USER nobody
ENTRYPOINT ["moodstream"]
