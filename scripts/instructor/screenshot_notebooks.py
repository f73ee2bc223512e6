"""Screenshots of executed notebooks, to check the figures and text as participants will see them.

A maintainer's tool: it is not run by `make test` or in CI (it needs a Chromium browser, which the
workshop's setup does not install). On Debian/Ubuntu: `apt-get install --no-install-recommends chromium`
(or point $CHROMIUM at any Chrome/Chromium binary).

    python scripts/instructor/screenshot_notebooks.py                       # outputs/cpu/executed/*.ipynb
    python scripts/instructor/screenshot_notebooks.py outputs/gpu/executed/04_lora_sft.ipynb --out /tmp/shots

Each notebook is converted to HTML with nbconvert (the JupyterLab look), Chromium measures the page's
height, and headless Chromium screenshots the whole page, 1280 px wide: `NAME.png`, or `NAME-1.png`,
`NAME-2.png`, ... when the page is taller than --max-height. Earlier PNGs of the same notebook are removed
first, so the script can be rerun. The machines have no Japanese system font, so Chromium is given a
fontconfig file that adds IPAexGothic from matplotlib-fontja (requirements.txt); otherwise the Japanese
markdown would be drawn as empty boxes.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_NOTEBOOKS = "outputs/cpu/executed/*.ipynb"
DEFAULT_OUT = ROOT / "outputs" / "screenshots"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")

# After loading: record the page height for --dump-dom, and for ?y=N (a later part of a tall page) move the
# page up by N pixels. (Scrolling instead gives a blank screenshot: headless Chromium paints from the top.)
PAGE_SCRIPT = """<script>
window.addEventListener("load", () => {
  document.body.setAttribute("data-page-height", document.documentElement.scrollHeight);
  const y = new URLSearchParams(location.search).get("y");
  if (y) document.body.style.transform = `translateY(-${Number(y)}px)`;
});
</script>
"""
FONTS_CONF = """<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "fonts.dtd">
<fontconfig>
  <include ignore_missing="yes">/etc/fonts/fonts.conf</include>
  <dir>{font_dir}</dir>
  <cachedir>{cache_dir}</cachedir>
</fontconfig>
"""


def find_browser() -> str:
    candidates = [os.environ["CHROMIUM"]] if os.environ.get("CHROMIUM") else BROWSERS
    for name in candidates:
        path = shutil.which(name)
        if path:
            return path
    sys.exit("Chromium not found: install it (Debian: apt-get install --no-install-recommends chromium) "
             "or set CHROMIUM=/path/to/chrome")


def notebook_html(path: Path) -> str:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="lab").from_filename(str(path))
    return body.replace("</body>", PAGE_SCRIPT + "</body>", 1)


def browser_env(tmp: Path) -> dict[str, str]:
    """The environment for Chromium: fontconfig with the bundled Japanese font added, when it is installed."""
    env = dict(os.environ)
    try:
        from matplotlib_fontja import get_font_path
    except ImportError:
        print("matplotlib-fontja is not installed: Japanese text may be drawn as boxes", file=sys.stderr)
        return env
    conf = tmp / "fonts.conf"
    conf.write_text(FONTS_CONF.format(font_dir=get_font_path(), cache_dir=tmp / "fontconfig-cache"), encoding="utf-8")
    env["FONTCONFIG_FILE"] = str(conf)
    return env


class Browser:
    def __init__(self, binary: str, tmp: Path, width: int, timeout: int):
        self.binary, self.width, self.timeout = binary, width, timeout
        self.env = browser_env(tmp)
        self.flags = ["--headless", "--disable-gpu", "--hide-scrollbars", "--no-first-run", "--mute-audio",
                      "--disable-extensions", "--force-device-scale-factor=1",
                      f"--user-data-dir={tmp / 'profile'}",  # a fresh profile: no lock left from another run
                      "--virtual-time-budget=5000"]  # wait for the page's scripts (and the load event)
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            self.flags.append("--no-sandbox")  # Chromium refuses to run as root with the sandbox

    def _run(self, args: list[str]) -> str:
        result = subprocess.run([self.binary, *self.flags, *args], env=self.env, capture_output=True, text=True,
                                timeout=self.timeout, preexec_fn=lambda: os.nice(10))  # low priority: other jobs first
        if result.returncode != 0:
            raise RuntimeError(f"{Path(self.binary).name} exited with {result.returncode}:\n{result.stderr[-2000:]}")
        return result.stdout

    def page_height(self, url: str) -> int:
        dom = self._run([f"--window-size={self.width},800", "--dump-dom", url])
        match = re.search(r'data-page-height="(\d+)"', dom)
        if not match:
            raise RuntimeError("could not measure the page height (the page's load event did not run)")
        return int(match.group(1))

    def screenshot(self, url: str, height: int, png: Path) -> None:
        self._run([f"--window-size={self.width},{height}", f"--screenshot={png}", url])
        if not png.is_file():
            raise RuntimeError(f"no screenshot written to {png}")


def screenshot_notebook(browser: Browser, notebook: Path, out_dir: Path, tmp: Path, max_height: int) -> list[Path]:
    for old in [*out_dir.glob(f"{notebook.stem}.png"), *out_dir.glob(f"{notebook.stem}-*.png")]:
        old.unlink()
    html = tmp / f"{notebook.stem}.html"
    html.write_text(notebook_html(notebook), encoding="utf-8")
    url = html.as_uri()
    height = browser.page_height(url)
    parts = max(1, math.ceil(height / max_height))
    if parts == 1:
        pngs = [out_dir / f"{notebook.stem}.png"]
        browser.screenshot(url, height, pngs[0])
        return pngs
    pngs = []
    for k in range(parts):
        top = k * max_height
        png = out_dir / f"{notebook.stem}-{k + 1}.png"
        browser.screenshot(f"{url}?y={top}", min(max_height, height - top), png)  # the last part: what is left
        pngs.append(png)
    return pngs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help=f"executed notebooks (default: {DEFAULT_NOTEBOOKS})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the PNGs (default: %(default)s)")
    parser.add_argument("--width", type=int, default=1280, help="window width in pixels (default: %(default)s)")
    parser.add_argument("--max-height", type=int, default=10000,
                        help="taller pages are split into several PNGs of this height (default: %(default)s)")
    parser.add_argument("--timeout", type=int, default=120, help="seconds per Chromium run (default: %(default)s)")
    args = parser.parse_args(argv)

    notebooks = args.notebooks or sorted(ROOT.glob(DEFAULT_NOTEBOOKS))
    if not notebooks:
        sys.exit(f"no notebooks given and none in {DEFAULT_NOTEBOOKS} (run `make workshop` or `make test` first)")
    missing = [str(nb) for nb in notebooks if not nb.is_file()]
    if missing:
        sys.exit(f"not found: {', '.join(missing)}")
    args.out.mkdir(parents=True, exist_ok=True)
    binary = find_browser()
    with tempfile.TemporaryDirectory(prefix="nb-screenshots-") as tmp_name:
        tmp = Path(tmp_name)
        browser = Browser(binary, tmp, args.width, args.timeout)
        for notebook in notebooks:
            pngs = screenshot_notebook(browser, notebook, args.out, tmp, args.max_height)
            print(f"{notebook}: {', '.join(str(p) for p in pngs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
