"""Open a report in headless Chromium: did every image load, does anything overflow, and a screenshot.

Used by the tests and by ``simplebits report DIR --check``. Needs Debian's ``chromium`` (or any
Chromium/Chrome binary); started with ``--headless --no-sandbox --disable-gpu``. The report
itself carries no script: the check runs on a temporary copy with one inline script added,
whose result Chromium prints with ``--dump-dom``.
"""

from __future__ import annotations

import html as html_lib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from ..errors import BadInputError, NotFoundError

__all__ = ["check_report", "find_browser"]

_CHECK = """<script>
window.addEventListener('load', function () {
  var imgs = [].slice.call(document.images);
  var broken = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
                   .map(function (i) { return i.alt || i.src.slice(0, 40); });
  var vw = document.documentElement.clientWidth, over = [];
  [].slice.call(document.body.querySelectorAll('*')).forEach(function (el) {
    if (el.id === 'sb-check') return;
    for (var p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      var o = getComputedStyle(p).overflowX;
      if (o === 'auto' || o === 'hidden' || o === 'scroll') return;  // inside a scroll box: clipped, not overflowing
    }
    var r = el.getBoundingClientRect();
    if (r.right > vw + 1) over.push(el.tagName.toLowerCase() + (el.className ? '.' + el.className : '') +
                                    ' right=' + Math.round(r.right));
  });
  var res = {images: imgs.length, broken: broken, overflow: over.slice(0, 20), clientWidth: vw,
             scrollWidth: document.documentElement.scrollWidth, height: document.documentElement.scrollHeight};
  var pre = document.createElement('pre'); pre.id = 'sb-check'; pre.style.display = 'none';
  pre.textContent = 'SBCHECK' + JSON.stringify(res) + 'SBCHECK'; document.body.appendChild(pre);
});
</script>"""

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--mute-audio",
         "--no-first-run", "--disable-extensions"]


def find_browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def check_report(path: str | os.PathLike, *, screenshot: str | os.PathLike | None = None, width: int = 1280,
                 browser: str | None = None, timeout: float = 120) -> dict[str, Any]:
    """Render ``path`` at ``width`` CSS pixels; returns ``{images, broken, overflow, clientWidth,
    scrollWidth, height}`` and writes a full-page PNG to ``screenshot`` when given."""
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"report not found: {p}")
    exe = browser or find_browser()
    if exe is None:
        raise NotFoundError("no Chromium found; install Debian's chromium (apt-get install chromium)")
    html = p.read_text(encoding="utf-8")
    if "</body>" not in html:
        raise BadInputError(f"{p} is not an HTML page with a body")
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "check.html"
        page.write_text(html.replace("</body>", _CHECK + "</body>", 1), encoding="utf-8")
        env = {**os.environ, "HOME": tmp}  # Chromium writes its profile under HOME
        r = subprocess.run([exe, *FLAGS, f"--user-data-dir={tmp}/profile", f"--window-size={width},900",
                            "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
                           capture_output=True, text=True, timeout=timeout, env=env)
        m = re.search(r"SBCHECK(\{.*?\})SBCHECK", r.stdout, re.S)  # the result, not the script's own text
        if m is None:
            raise BadInputError(f"Chromium did not render {p} (exit {r.returncode}): {r.stderr.strip()[-300:]}")
        res = json.loads(html_lib.unescape(m.group(1)))
        if screenshot is not None:
            shot = Path(screenshot)
            shot.parent.mkdir(parents=True, exist_ok=True)
            height = max(900, min(int(res["height"]) + 20, 16000))
            subprocess.run([exe, *FLAGS, f"--user-data-dir={tmp}/profile2", f"--window-size={width},{height}",
                            f"--screenshot={shot}", p.resolve().as_uri()],
                           capture_output=True, text=True, timeout=timeout, env=env)
            if not shot.is_file():
                raise BadInputError(f"Chromium wrote no screenshot of {p}")
    return res
