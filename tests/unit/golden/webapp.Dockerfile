# Rendered by kiln 0.1.0 (render 3) from images/webapp.yaml. Do not edit: change the definitions and run `invoke render`.
FROM kiln/python:90522990b72ad5d9
USER 0:0

# --- layer: webapp ---
ENV APP_PORT="8000"
COPY files/webapp/app /srv/app/

# --- image configuration ---
WORKDIR /srv/app
EXPOSE 8000/tcp
HEALTHCHECK --interval=10s --timeout=3s --start-period=2s --retries=3 CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
ENTRYPOINT ["python3", "/srv/app/server.py"]
USER 10001:10001
LABEL dev.kiln.fingerprint="b5ff959e6b67ab4e464aa67040aa889652678d9dc6b3dcb7db7d6f3ec0857a5f" \
      dev.kiln.image="webapp" \
      dev.kiln.layers="minimal,core,hardening,user,python,webapp" \
      dev.kiln.version="0.1.0" \
      org.opencontainers.image.description="A Python web app on the python image, unprivileged, on port 8000." \
      org.opencontainers.image.title="webapp" \
      org.opencontainers.image.version="1.0"
