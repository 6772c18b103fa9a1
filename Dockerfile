# syntax=docker/dockerfile:1
# The HubSpot CRM service for Sesam. Build: docker build -t hubspot-sesam .
# Sesam runs it as a system:microservice; configuration comes from docker.environment.
# BASE: an image with Python 3.11 or newer and its venv module. Releases use the official
# image; CI builds on a root filesystem of Debian's packages (tests/test_image.py). The
# packages go into a virtual environment, which lays them out the same on every base.
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
WORKDIR /src
# Dependencies first, in their own layer: the code changes far more often than they do.
COPY pyproject.toml constraints.txt ./
RUN python -m venv /opt/venv \
 && python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
 && /opt/venv/bin/pip install --no-cache-dir -c constraints.txt -r requirements.txt
COPY openapi.yaml ./
COPY app ./app
RUN python -m compileall -q app

FROM ${BASE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    HOST=0.0.0.0 \
    PORT=5000
COPY --from=build /opt/venv /opt/venv
WORKDIR /srv
COPY --from=build /src/openapi.yaml ./
COPY --from=build /src/app ./app
RUN useradd --system --uid 10001 --no-create-home service
USER 10001
EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '5000'), timeout=4)"]
CMD ["python", "-m", "app"]
