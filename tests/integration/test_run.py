"""`kiln run`: the image as in production, its port on 127.0.0.1, its log followed, and the
container removed when it stops. Busybox test base."""

from __future__ import annotations

import signal
import time
import urllib.request

from enginescope import session_containers

from kiln.engine import Engine
from kiln.pipeline import build_image
from kiln.run import free_port


def files(port: int) -> dict[str, str]:
    return {
        "layers/web/layer.yaml": f"""\
            run:
              - mkdir -p /www && echo served > /www/index.html
            expose: ["{port}"]
            entrypoint: ["sh", "-c", "echo web starting; exec httpd -f -v -p {port} -h /www"]
        """,
        "layers/web/tests/test_web.py": "def test_web(image):\n    assert image.service\n",
        # busybox httpd as root: `kiln run` is under test here, not the restricted profile
        "images/web.yaml": "{busybox}\nlayers: [web]\n"
                           "unrestricted: a root busybox httpd stands in for a service\n",
    }


def runs(engine: Engine) -> list[str]:
    """This session's `kiln run` containers (the engine may hold other people's)."""
    return [c.name for c in session_containers(engine)
            if c.labels.get("dev.kiln.purpose") == "run"]


def test_run_publishes_on_loopback_follows_logs_and_removes(make_project, kiln_ctx, engine,
                                                            kiln_cli):
    port = free_port()
    project = make_project(files(port))
    build_image(kiln_ctx(project), "web")
    proc = kiln_cli.start(project.root, "run", "web", env={"KILN_PROJECT": str(project.root)})
    try:
        body = ""
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    body = r.read().decode()
                break
            except OSError:
                time.sleep(0.2)
        assert body == "served\n"
        assert len(runs(engine)) == 1
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "web starting" in out  # the service's own log, followed
    assert f"127.0.0.1:{port}" in err
    assert runs(engine) == []
