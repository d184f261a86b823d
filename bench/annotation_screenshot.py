"""The screenshot in docs/annotation.md: a Label Studio task with gpner's pre-annotations.

    python bench/annotation_screenshot.py runs/demo/model docs/annotation_label_studio.png

Starts Label Studio (.venv-ls, as `make test-slow` installs it, or GPNER_LABEL_STUDIO) on
127.0.0.1 with a temporary SQLite data directory, creates a NER project, imports a few texts,
connects `gpner label-studio MODEL`, asks for predictions and saves the first task's labeling
page from headless Chromium (Debian's chromium and chromium-driver; CJK text needs a CJK font,
fonts-noto-cjk).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from tests.test_labelstudio_real import (  # noqa: E402
    CONFIG,
    PASSWORD,
    TOKEN,
    USER,
    LabelStudio,
    free_port,
    label_studio_exe,
    screenshot,
    wait_for,
)

TEXTS = ["张伟昨天从上海飞往北京，在北京大学工作。",
         "据杭州人民医院消息，李娜将访问成都。",
         "Emma Brown flew from Tokyo to London with the Bank of London team ."]


def main() -> None:
    model, out = Path(sys.argv[1]), Path(sys.argv[2])
    exe = label_studio_exe()
    if exe is None:
        sys.exit("Label Studio is not installed (make .venv-ls/bin/label-studio)")
    with tempfile.TemporaryDirectory() as tmp:
        port, bport = free_port(), free_port()
        env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": tmp, "ML_BLOCK_LOCAL_IP": "false",
               "SSRF_PROTECTION_ENABLED": "false", "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true"}
        ls_proc = subprocess.Popen([exe, "start", "-b", "-p", str(port), "--internal-host",
                                    "127.0.0.1", "--data-dir", tmp, "--username", USER,
                                    "--password", PASSWORD, "--user-token", TOKEN], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        backend = subprocess.Popen([sys.executable, "-m", "gpner.cli", "label-studio",
                                    str(model), "--port", str(bport), "--workdir",
                                    f"{tmp}/work", "--label-map", "PER=Person"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(url + "/health", ls_proc)
            wait_for(f"http://127.0.0.1:{bport}/health", backend)
            ls = LabelStudio(url)
            pid = ls.call("POST", "/api/projects", {"title": "gpner pre-annotations",
                                                    "label_config": CONFIG})["id"]
            ls.call("POST", f"/api/projects/{pid}/import", [{"content": t} for t in TEXTS])
            ls.call("POST", "/api/ml", {"url": f"http://127.0.0.1:{bport}", "project": pid,
                                        "title": "gpner"})
            ls.retrieve_predictions(pid)
            task = ls.tasks(pid)[0]["id"]
            screenshot(url, pid, task, out)
            print(f"wrote {out}")
        finally:
            backend.terminate()
            ls_proc.terminate()


if __name__ == "__main__":
    main()
