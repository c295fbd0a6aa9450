"""A task whose run() writes its output straight to its path, run in its own process (killed, failed, checked).

Shared by the tests of direct writes, of their takeover and of ``kart verify``: ``run_writer`` runs the
script below with a mode:
- ``run``: build ``ByPath`` (``rerun`` given) and print the value, or ``failed <error class>``;
- ``kill``: SIGKILL itself after writing the first two characters of ``text``;
- ``fail``: raise after writing them;
- ``check``: print ``complete()`` and the loaded value (``None`` when incomplete);
- ``marker``: print the full path of the task's manifest.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = str(Path(__file__).resolve().parents[2])

WRITER = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, sys.argv[2])
    import luigi, kart_core

    class ByPath(kart_core.TaskOnKart):
        text = luigi.Parameter(default="whole", significant=False)
        mode = luigi.Parameter(default="run", significant=False)

        def output(self):
            return self.make_target("dw/out.txt")

        def run(self):
            path = self.output().path()
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if self.mode == "kill-old":
                # What a kart before 2026-12-02 left when killed half way: its marker naming the output's path it
                # wrote in place (and where it moved the old output aside), that partial file, the old one aside.
                from kart_core import commit_marker, target_config, transaction
                from kart_core.storage import storage_for
                from kart_core.storage.base import temporary_name

                path, record = self.output()._path, self.output().record
                aside = temporary_name(path) if os.path.exists(path) else None
                commit_marker.put_direct(
                    storage_for(record.manifest), record, transaction.current().commit_id, ((path, aside),),
                    target_config.current().signer,
                )
                if aside is not None:
                    os.replace(path, aside)
            with open(path, "w") as file:
                file.write(self.text[:2])
                file.flush()
                if self.mode in ("kill", "kill-old"):
                    os.kill(os.getpid(), signal.SIGKILL)
                if self.mode == "fail":
                    raise RuntimeError("fails half way")
                file.write(self.text[2:])

    mode, text, rerun = sys.argv[3], sys.argv[4], sys.argv[5] == "rerun"
    task = ByPath(text=text, mode=mode, rerun=rerun, workspace_directory=sys.argv[1])
    if mode == "check":
        done = task.complete()
        print(done, task.output().load() if done else None)
    elif mode == "marker":
        print(task.output().record.manifest)
    else:
        try:
            print(kart_core.build(task, log_level=30))
        except Exception as error:
            print("failed", type(error).__name__)
    """
)


def run_writer(
    tmp_path: Path, workspace: str, mode: str, text: str = "whole", rerun: str = "", cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the writer (script in ``tmp_path``, working directory ``cwd`` or ``tmp_path``) on ``workspace``."""
    script = tmp_path / "by_path_writer.py"
    script.write_text(WRITER)
    return subprocess.run(
        [sys.executable, str(script), workspace, REPO, mode, text, rerun],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd or tmp_path,
    )
