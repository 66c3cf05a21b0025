# syntax=docker/dockerfile:1.7
# Image for genesys-kafka-connector. Build: docker build -t genesys-kafka-connector:0.1.0 .
#
# glibc base on purpose: confluent-kafka publishes manylinux_2_28 wheels only (they bundle librdkafka);
# Alpine/musl would need librdkafka-dev and a compiler. Pin the base by digest in your registry mirror
# (--build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:...) for reproducible builds.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build stage: a virtualenv with the connector and its wheels, byte-compiled ----
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml README.md ./
COPY connector ./connector
RUN pip install . \
 && python -m compileall -q /opt/venv

# ---- runtime stage: no compilers, no pip cache, no source tree, non-root ----
FROM ${PYTHON_IMAGE} AS runtime
ARG APP_UID=10001
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="genesys-kafka-connector" \
      org.opencontainers.image.description="Streams Genesys Cloud conversation detail records into Kafka" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# tini is PID 1: it forwards SIGTERM to the connector (which flushes Kafka and writes its checkpoint)
# and reaps zombies. The pin is the bookworm candidate; change it together with the base image.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini=0.19.0-1+b3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid ${APP_UID} app \
 && useradd --system --uid ${APP_UID} --gid app --home-dir /nonexistent --no-create-home \
            --shell /usr/sbin/nologin app \
 && install -d -o ${APP_UID} -g ${APP_UID} -m 0750 /var/lib/genesys-connector \
 && install -d -m 0755 /etc/genesys-connector
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONFAULTHANDLER=1
# Numeric user so Kubernetes can verify runAsNonRoot without reading /etc/passwd.
USER 10001:10001
WORKDIR /var/lib/genesys-connector
# Prometheus /metrics, /healthz and /readyz (config `metrics.port`).
EXPOSE 9464
# Checkpoint file and change store (config `checkpoint.directory`): must survive restarts.
VOLUME ["/var/lib/genesys-connector"]
# Docker only (Kubernetes ignores it and uses the chart's probes). Assumes the default metrics port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=4)"]
ENTRYPOINT ["/usr/bin/tini", "--", "genesys-connector"]
# The config (and secrets through *_file keys or GENESYS_CONNECTOR__* env) are supplied at run time:
#   docker run -v $PWD/config.yaml:/etc/genesys-connector/config.yaml:ro -v state:/var/lib/genesys-connector ...
CMD ["run", "--config", "/etc/genesys-connector/config.yaml"]
