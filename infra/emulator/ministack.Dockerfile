# MiniStack, pinned, from PyPI, as released: the compose stack's emulator when
# docker-compose.ministack.yml is added (see that file). The local stack runs
# the same version from .venv-ministack (scripts/setup.sh).
FROM python:3.11-slim

ARG MINISTACK_VERSION=1.5.33
RUN pip install --no-cache-dir --disable-pip-version-check "ministack==${MINISTACK_VERSION}"

# Unprivileged; the port moto's service listens on, so that everything that
# talks to the emulator (http://moto:5000) stays as it is. Its access log (a
# line per request) is off, as moto's is.
USER 10001:10001
ENV BIND_HOST=0.0.0.0 \
    GATEWAY_PORT=5000 \
    LOG_LEVEL=WARNING
EXPOSE 5000
ENTRYPOINT ["ministack"]
