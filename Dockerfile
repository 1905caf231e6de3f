FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg libgl1 nodejs npm curl \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY moodstream moodstream
COPY ingest ingest
COPY workers workers
COPY dashboard dashboard
COPY models models
RUN pip install --no-cache-dir -e . && npm ci --prefix dashboard --no-audit --no-fund
ENV TF_CPP_MIN_LOG_LEVEL=3 PYTHONUNBUFFERED=1
ENTRYPOINT ["moodstream"]
