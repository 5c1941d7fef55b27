# Rendered by kiln 0.1.0 (render 2) from images/webapp.yaml. Do not edit: change the definitions and run `invoke render`.
FROM kiln/python:c4c0eb361f8fe850
USER root

# --- layer: webapp ---
ENV APP_PORT="8000"
COPY files/webapp/app /srv/app/

# --- image configuration ---
WORKDIR /srv/app
EXPOSE 8000/tcp
HEALTHCHECK --interval=10s --timeout=3s --start-period=2s --retries=3 CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
ENTRYPOINT ["python3", "/srv/app/server.py"]
USER app
LABEL dev.kiln.fingerprint="c0c8721a16db4bca5f6f5ccb045929a818fa089ff99dac5d3aaf7e4942aee7cc" \
      dev.kiln.image="webapp" \
      dev.kiln.layers="minimal,core,hardening,user,python,webapp" \
      dev.kiln.version="0.1.0" \
      org.opencontainers.image.description="A Python web app on the python image, unprivileged, on port 8000." \
      org.opencontainers.image.title="webapp" \
      org.opencontainers.image.version="1.0"
