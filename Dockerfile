FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    HAMROH_ENV=production HAMROH_HOST=0.0.0.0 HAMROH_PORT=8000
WORKDIR /app
COPY pyproject.toml README.md babel.cfg ./
COPY bot bot
COPY api api
COPY flows flows
COPY locales locales
COPY migrations migrations
RUN pip install . \
    && for po in locales/*/LC_MESSAGES/messages.po; do pybabel compile -d locales -D messages -i "$po" -o "${po%.po}.mo"; done \
    && useradd --system --home /app hamroh && mkdir -p /app/var && chown hamroh /app/var
ENV HAMROH_FLOWS_DIR=/app/flows HAMROH_LOCALES_DIR=/app/locales
USER hamroh
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["sh", "-c", "hamroh db upgrade && exec hamroh serve"]
