# taskrun server image. Postgres is external: set TASKRUN_DATABASE_URL.
#   docker build -t taskrun .
#   docker run -p 50051:50051 -p 8080:8080 -e TASKRUN_AUTH_TOKENS=... -e TASKRUN_DATABASE_URL=postgresql://user:pw@db:5432/taskrun taskrun
FROM python:3.11-slim AS build
WORKDIR /src
RUN pip install --no-cache-dir build==1.*
COPY pyproject.toml README.md ./
COPY protos protos
COPY gen gen
COPY server server
COPY client client
RUN python -m build --wheel --outdir /dist

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 taskrun
# The server's dependencies from the lock (pinned and hashed), then the wheel alone.
COPY requirements/server.lock /tmp/server.lock
RUN pip install --no-cache-dir --require-hashes -r /tmp/server.lock && rm /tmp/server.lock
COPY --from=build /dist/*.whl /tmp/
RUN pip install --no-cache-dir --no-deps /tmp/*.whl && rm /tmp/*.whl
USER taskrun
# Outside loopback the server refuses plaintext unless told: this image assumes TLS ends at the
# load balancer or mesh. To serve TLS itself, mount the files, set TASKRUN_TLS_CERT_FILE and
# TASKRUN_TLS_KEY_FILE (TASKRUN_TLS_CLIENT_CA_FILE for mTLS) and TASKRUN_PLAINTEXT=false.
ENV TASKRUN_HOST=0.0.0.0 \
    TASKRUN_PORT=50051 \
    TASKRUN_PLAINTEXT=true \
    TASKRUN_METRICS_HOST=0.0.0.0 \
    TASKRUN_METRICS_PORT=9464 \
    TASKRUN_DASHBOARD_HOST=0.0.0.0 \
    TASKRUN_DASHBOARD_PORT=8080 \
    TASKRUN_LOG_FORMAT=json \
    PYTHONUNBUFFERED=1
EXPOSE 50051 9464 8080
# Migrations run at start (TASKRUN_MIGRATE_ON_START); SIGTERM drains in-flight calls.
STOPSIGNAL SIGTERM
CMD ["taskrun-server", "serve"]
