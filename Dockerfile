# The inference service: ONNX Runtime + PyAV + FastAPI (+ the Gradio page at /ui). No torch, no training stack.
#   dvc repro                      # or use the demo model bundled in the package
#   docker build -t accident-serve .
#   docker run -p 8000:8000 accident-serve
# The model baked in is models/serve when it exists, else the package's bundled demo model; mount another at
# /models/serve (docker run -v $PWD/models/serve:/models/serve ...) to serve it instead.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1 \
    ACCIDENT_LOG_DIR=/data/logs ACCIDENT_CACHE=/data/cache

WORKDIR /app
COPY docker/requirements-serve.txt /app/docker/requirements-serve.txt
RUN pip install -r docker/requirements-serve.txt

# the package only (its own requirements are the training stack's; serving needs what is installed above)
COPY settings.ini setup.py README.md /app/
COPY accident_nbdev /app/accident_nbdev
RUN pip install --no-deps /app && rm -rf /app/accident_nbdev /app/build

# models/serve is optional in the build context (.dockerignore keeps nothing else of models/); setup.py is
# listed too so that the COPY matches something when models/ is absent
COPY setup.py models* /tmp/context/
RUN mkdir -p /models && if [ -f /tmp/context/serve/model_card.json ]; then mv /tmp/context/serve /models/serve; \
    else cp -r "$(python -c 'from accident_nbdev.predict import bundled_model_dir as b; print(b())')" /models/serve; fi \
    && rm -rf /tmp/context
ENV ACCIDENT_MODEL_DIR=/models/serve

RUN useradd --create-home --uid 10001 accident && mkdir -p /data && chown accident /data
USER accident
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=4).status != 200)"
CMD ["accident", "serve", "--host", "0.0.0.0", "--port", "8000"]
