#!/usr/bin/env python
"""Run notebooks the way a participant does: `make lab` (scripts/participant/lab.py) + a real browser, "Restart Kernel and Run
All Cells" from JupyterLab's own command, then check what is on the screen.

nbmake (make test) runs the notebooks headless through a kernel; it cannot see what JupyterLab shows: widgets and
progress bars ("Error displaying widget"), popups over the notebook, which kernel JupyterLab picked. This drives
headless Chromium (Debian's package, /usr/bin/chromium; Playwright from PyPI, no browser download) against the
project's own JupyterLab and reports, per notebook: every code cell ran, no error output, widgets rendered, images
rendered, no news popup, and the kernel is this venv's Python. A full-page screenshot goes to --out.

    .venv/bin/pip install playwright==1.65.2          # once (make browser-test does it)
    .venv/bin/python scripts/ci/browser_check.py 01_base_model_selection.ipynb 04_lora_sft.ipynb --out outputs/browser

Exit code 1 if a check fails. The notebooks run in the cpu profile, offline, with their outputs under --out.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run by its path: the repository root, for scripts.participant
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# flags for a headless Chromium on a machine with no display and no outside network (see the env notes)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
NEWS_POPUP = "official Jupyter news"


def lab_env(out: Path) -> dict:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("WORKSHOP_") and k != "SSH_CONNECTION"},
           "WORKSHOP_PROFILE": "cpu", "HF_HUB_OFFLINE": "1", "WORKSHOP_OUTPUT_DIR": str(out / "outputs"),
           "JUPYTER_CONFIG_DIR": str(out / "jupyter" / "config"), "JUPYTER_RUNTIME_DIR": str(out / "jupyter" / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(out / "jupyter" / "lab-user-settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(out / "jupyter" / "workspaces")}


def kernelspec_dir(out: Path, name: str) -> str:
    """Where the server (same venv, same environment) finds kernelspec ``name``: a user-level kernelspec (e.g. in
    ~/.local/share/jupyter/kernels) would win over the venv's own, and start another Python."""
    code = f"from jupyter_client.kernelspec import KernelSpecManager as K; print(K().get_kernel_spec({name!r}).resource_dir)"
    return subprocess.run([sys.executable, "-c", code], env=lab_env(out), capture_output=True, text=True,
                          timeout=60).stdout.strip()


def start_lab(out: Path, port: int, extra: dict[str, dict] | None = None) -> tuple[subprocess.Popen, str, str]:
    """scripts/participant/lab.py as `make lab` runs it (cpu profile, offline, Jupyter's state under out/); (process, base URL, token)."""
    env = lab_env(out)
    # copies of the notebooks: JupyterLab autosaves what it runs, and the committed notebooks stay without outputs
    copies = out / "notebooks"
    copies.mkdir(parents=True, exist_ok=True)
    for notebook in (ROOT / "notebooks").glob("0[1-5]_*.ipynb"):
        (copies / notebook.name).write_bytes(notebook.read_bytes())
    for name, notebook in (extra or {}).items():  # a notebook a test writes (tests/test_browser.py: the try-it view)
        (copies / name).write_text(json.dumps(notebook, ensure_ascii=False), encoding="utf-8")
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "participant" / "lab.py"), "--port", str(port), "--no-browser",
                             "--expose-app", "--root", str(copies)], env=env, cwd=out, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    head = ""
    while "token=" not in head:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"scripts/participant/lab.py stopped: {head}")
        head += line
    url = head.split("http://localhost:", 1)[1].split()[0]
    port_text, token = url.split("/", 1)[0], url.split("token=", 1)[1]
    base = f"http://127.0.0.1:{port_text}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5).read()
            break
        except OSError:
            time.sleep(1)
    else:
        raise RuntimeError("JupyterLab did not answer")
    return proc, base, token


def api(base: str, token: str, path: str):
    return json.loads(urllib.request.urlopen(f"{base}{path}?token={token}", timeout=10).read())


PROMPTS_JS = """() => Array.from(document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt'))
                     .map(p => p.textContent.trim())"""
FINDINGS_JS = """() => {
  const text = sel => Array.from(document.querySelectorAll(sel)).map(e => e.textContent);
  return {
    errors: text('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
              .filter(t => t.includes('Traceback') || /Error:/.test(t)).map(t => t.slice(0, 400)),
    widget_errors: document.body.innerText.includes('Error displaying widget'),
    widgets: document.querySelectorAll('.jp-OutputArea .jupyter-widgets, .jp-OutputArea .widget-progress').length,
    images: document.querySelectorAll('.jp-OutputArea .jp-RenderedImage img').length,
    news_popup: document.body.innerText.includes('""" + NEWS_POPUP + """'),
  };
}"""


def check_notebook(page, base: str, token: str, name: str, out: Path, timeout: float, after_run=None) -> dict:
    page.goto(f"{base}/lab/tree/{name}?token={token}&reset")
    page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=120_000)
    page.wait_for_function("() => !!(window.jupyterapp && window.jupyterapp.shell.currentWidget)", timeout=60_000)
    # JupyterLab starts the notebook's kernel (its kernelspec: python3) by itself; wait until it is idle, as a
    # participant waits for "Python 3 (ipykernel) | Idle" (asking earlier pops up a "Select Kernel" dialog)
    page.wait_for_function("""() => { const s = window.jupyterapp.shell.currentWidget.sessionContext;
        return !!(s && s.session && s.session.kernel) && s.kernelDisplayStatus === 'idle'; }""", timeout=120_000)
    t0 = time.time()
    # the participant's "Kernel → Restart Kernel and Run All Cells…", then "Restart" in its dialog
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:restart-run-all'); }")
    page.wait_for_selector(".jp-Dialog .jp-mod-accept", timeout=60_000)
    page.click(".jp-Dialog .jp-mod-accept")
    # done when every code cell has its execution count, or when Run All stopped at an error (the rest stay "[ ]")
    page.wait_for_function(f"""() => {{
        const p = ({PROMPTS_JS})();
        const busy = p.some(t => t.includes('*'));
        const error = document.querySelector('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]');
        const stopped = !busy && error && /Traceback|Error/.test(error.textContent);
        return p.length > 0 && (p.every(t => /\\[\\d+\\]/.test(t)) || stopped);
    }}""", timeout=timeout * 1000, polling=1000)
    seconds = time.time() - t0
    page.wait_for_timeout(1500)  # the last widgets and images settle
    interaction = after_run(page) if after_run else None  # what a participant then does on the page (a button)
    findings = page.evaluate(FINDINGS_JS)
    sessions = [s for s in api(base, token, "/api/sessions") if s["path"].endswith(name)]
    kernel = sessions[0]["kernel"]["name"] if sessions else None
    spec = api(base, token, "/api/kernelspecs")["kernelspecs"].get(kernel or "", {})
    argv = spec.get("spec", {}).get("argv", [])
    resource_dir = kernelspec_dir(out, kernel) if kernel else ""
    shot = out / f"{Path(name).stem}.png"
    page.screenshot(path=str(shot), full_page=True)
    # and the outputs a participant looks at: progress bars (widgets) and figures, a few of each
    shown = page.locator(".jp-CodeCell:has(.jupyter-widgets), .jp-CodeCell:has(.jp-RenderedImage)")
    for i in range(min(shown.count(), 4)):
        shown.nth(i).scroll_into_view_if_needed()
        shown.nth(i).screenshot(path=str(out / f"{Path(name).stem}-output{i + 1}.png"))
    findings.update({"notebook": name, "seconds": round(seconds, 1), "interaction": interaction, "cells": len(page.evaluate(PROMPTS_JS)),
                     "kernel": kernel, "kernel_python": argv[0] if argv else None, "screenshot": str(shot)})
    # the kernelspec JupyterLab picked lives in this venv (share/jupyter/kernels/python3) and starts "python", which
    # jupyter_client runs as the server's own interpreter: this venv's Python
    findings["kernelspec_dir"] = resource_dir
    findings["kernel_is_this_venv"] = (bool(kernel) and Path(resource_dir).resolve().is_relative_to(Path(sys.prefix).resolve())
                                       and (argv[:1] == ["python"] or argv[:1] == [sys.executable]))
    findings["page_text"] = page.evaluate("() => document.body.textContent")[:500_000]
    findings["ran_every_cell"] = all(re.search(r"\[\d+\]", p) for p in page.evaluate(PROMPTS_JS))
    findings["ok"] = (findings["ran_every_cell"] and not findings["errors"] and not findings["widget_errors"] and not findings["news_popup"]
                      and findings["kernel_is_this_venv"])
    return findings


def summary(result: dict) -> dict:
    """A result without its page text (kept for the tests' checks, too long to print or store)."""
    return {k: v for k, v in result.items() if k != "page_text"}


def run(notebooks: list[str], out: Path, port: int = 18960, timeout: float = 900, extra: dict[str, dict] | None = None,
        after_run=None) -> list[dict]:
    """Start the project's JupyterLab, run each notebook through its UI in headless Chromium, return the findings.
    ``extra``: notebooks to add beside the copies ({file name: notebook JSON}); ``after_run(page)``: what to do on the
    page once a notebook has run (its return value is the finding "interaction")."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    out = out.resolve()
    proc, base, token = start_lab(out, port, extra)
    results = []
    try:
        with sync_playwright() as pw:
            # this machine has no Japanese system font (a participant's has): fontconfig with the bundled IPAexGothic,
            # as scripts/instructor/screenshot_notebooks.py does, so that the screenshots can be read
            from scripts.instructor.screenshot_notebooks import browser_env

            (out / "fonts").mkdir(exist_ok=True)
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
                                         env=browser_env(out / "fonts"))
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            for name in notebooks:
                results.append(check_notebook(page, base, token, name, out, timeout, after_run))
                print(json.dumps(summary(results[-1]), ensure_ascii=False), flush=True)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="*", default=["01_base_model_selection.ipynb", "02_dataset_formatting.ipynb",
                                                     "04_lora_sft.ipynb"], help="in order (04 needs 02's splits)")
    ap.add_argument("--out", type=Path, default=ROOT / "outputs" / "browser")
    ap.add_argument("--port", type=int, default=18960)
    ap.add_argument("--timeout", type=float, default=900, help="seconds per notebook")
    args = ap.parse_args(argv)
    results = run(args.notebooks, args.out, args.port, args.timeout)
    out = args.out.resolve()
    (out / "browser_check.json").write_text(json.dumps([summary(r) for r in results], ensure_ascii=False, indent=1),
                                            encoding="utf-8")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
