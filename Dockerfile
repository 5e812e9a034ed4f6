FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    HAMROH_ENV=production HAMROH_HOST=0.0.0.0 HAMROH_PORT=8000 \
    HAMROH_FLOWS_DIR=/app/flows HAMROH_LOCALES_DIR=/app/locales HAMROH_VAR_DIR=/app/var

# The program is installed as a package, not run from its source: code, migrations, templates and static
# files go into site-packages, and the copy it was built from is removed.
# (tests/test_installed_package.py builds from what these COPY lines copy, so keep them in step.)
COPY pyproject.toml /build/
COPY bot /build/bot
COPY api /build/api
COPY migrations /build/migrations
RUN cd /build && pip install . && cd / && rm -rf /build

# Content is data beside the program, found through HAMROH_FLOWS_DIR and HAMROH_LOCALES_DIR.
WORKDIR /app
COPY flows /app/flows
COPY locales /app/locales
RUN pybabel compile --domain messages --directory /app/locales \
    && useradd --system --home /app hamroh && mkdir -p /app/var && chown hamroh /app/var
USER hamroh
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["sh", "-c", "hamroh db upgrade && exec hamroh serve"]
