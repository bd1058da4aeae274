# The Smart Tuner image: study workers (`tuner run-study`), the dashboard (`tuner dashboard`) and
# the MLflow server (`mlflow server`) of docker-compose.yml all run from it.
#
# PyPI's Linux torch wheels bundle the CUDA runtime, so a slim Python base is enough; the host
# needs the NVIDIA driver and the NVIDIA Container Toolkit for the workers' GPU reservation.
FROM python:3.11-slim-bookworm

ENV TZ=UTC \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SMART_TUNER_HOME=/studies

# An unprivileged user; the mount points exist in the image so that named volumes start owned by it.
RUN useradd --create-home --uid 1000 tuner \
    && mkdir -p /app /studies /mlartifacts /gpu-locks /data \
    && chown tuner:tuner /app /studies /mlartifacts /gpu-locks

WORKDIR /app
# Dependencies first (a layer reused while only the code changes), then the code.
COPY --chown=tuner:tuner pyproject.toml README.md ./
# (pyproject.toml maps the package tuner.search_spaces onto search_spaces/, so that folder must exist too.)
RUN mkdir -p trainer tuner search_spaces \
    && touch trainer/__init__.py tuner/__init__.py search_spaces/__init__.py \
    && pip install . && pip uninstall -y smart-tuner
COPY --chown=tuner:tuner trainer ./trainer
COPY --chown=tuner:tuner tuner ./tuner
COPY --chown=tuner:tuner search_spaces ./search_spaces
# Editable: the code runs from /app; the search spaces are package data (tuner.search_spaces, mapped
# onto /app/search_spaces), so bare space names resolve from any folder.
RUN pip install --no-deps -e .

USER tuner
CMD ["tuner", "--help"]
