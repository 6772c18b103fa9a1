# syntax=docker/dockerfile:1
# The HubSpot CRM service for Sesam. Build: docker build -t hubspot-sesam .
# Sesam runs it as a system:microservice; configuration comes from docker.environment.

FROM python:3.11-slim AS build
WORKDIR /src
# Dependencies first, in their own layer: the code changes far more often than they do.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
 && pip install --no-cache-dir --prefix=/install -c constraints.txt -r requirements.txt
COPY openapi.yaml ./
COPY app ./app
RUN python -m compileall -q app

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=5000
COPY --from=build /install /usr/local
WORKDIR /srv
COPY --from=build /src/openapi.yaml ./
COPY --from=build /src/app ./app
RUN useradd --system --uid 10001 --no-create-home service
USER 10001
EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '5000'), timeout=4)"]
CMD ["python", "-m", "app"]
