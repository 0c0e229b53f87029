"""The HTML report in a real browser: headless Chromium opens it from disk with no console error and no request,
and a screenshot shows every plot drawn (non-blank, of the expected size).

Chromium is driven over the DevTools protocol through ``--remote-debugging-pipe``
(JSON messages on file descriptors 3 and 4), so no websocket client or other
dependency is needed. `.ci/run` installs Debian's ``chromium`` package when it
is absent; the tests skip, saying so, only when no Chromium is installed.
"""

from __future__ import annotations

import base64
import fcntl
import io
import json
import os
import select
import shutil
import subprocess
import tempfile
import time

import numpy as np
import pytest

from test_html import healthy_report, synthetic_report

WIDTH = 1280
CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed and could not be (.ci/run installs it with `apt-get install -y chromium`)",
)


class Browser:
    """A headless Chromium page driven over the DevTools protocol on a pipe."""

    def __init__(self, timeout: float = 60.0) -> None:
        self.timeout = timeout
        cmd_read, self._cmd_write = os.pipe()  # we write commands; Chromium reads them on fd 3
        self._res_read, res_write = os.pipe()  # Chromium writes replies and events on fd 4
        self._profile = tempfile.mkdtemp(prefix="whylow-chromium-")

        def child_fds():  # move the pipe ends to fds 3 and 4 without clobbering one with the other
            high_read = fcntl.fcntl(cmd_read, fcntl.F_DUPFD, 10)
            high_write = fcntl.fcntl(res_write, fcntl.F_DUPFD, 10)
            os.dup2(high_read, 3)
            os.dup2(high_write, 4)

        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
             "--disable-extensions", "--mute-audio", "--remote-debugging-pipe", f"--user-data-dir={self._profile}",
             "about:blank"],
            pass_fds=(3, 4, cmd_read, res_write), preexec_fn=child_fds,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        os.close(cmd_read)
        os.close(res_write)
        self._buffer = b""
        self._id = 0
        self.events: list[dict] = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": WIDTH, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=True)

    # -- protocol ---------------------------------------------------------
    def _receive(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._res_read], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._res_read, 1 << 20)
            if not chunk:
                err = self.proc.stderr.read().decode(errors="replace")[-2000:] if self.proc.poll() is not None else ""
                raise RuntimeError(f"Chromium closed the DevTools pipe. {err}")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def call(self, method: str, params: dict | None = None, session: bool = False) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self._cmd_write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method} failed: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str) -> dict:
        deadline = time.monotonic() + self.timeout
        while True:
            event = self._receive(deadline)
            self.events.append(event)
            if event.get("method") == method:
                return event

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"evaluation failed: {result['exceptionDetails']}")
        return result["result"]["value"]

    # -- page -------------------------------------------------------------
    def open(self, url: str) -> list[str]:
        """Load ``url``; return the console errors, exceptions and network requests it caused."""
        self.events.clear()
        self.call("Page.navigate", {"url": url}, session=True)
        self.wait_for("Page.loadEventFired")
        time.sleep(0.3)  # let late console messages arrive
        self.call("Runtime.evaluate", {"expression": "1"}, session=True)  # drains events queued meanwhile
        return problems(self.events, url)

    def screenshot(self) -> tuple[bytes, dict]:
        """A full-page PNG at device scale 1, and the page size in CSS pixels."""
        size = self.evaluate("({w: document.documentElement.scrollWidth, h: document.documentElement.scrollHeight})")
        shot = self.call("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["w"], "height": size["h"], "scale": 1},
        }, session=True)
        return base64.b64decode(shot["data"]), size

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except Exception:  # noqa: BLE001 - the browser may already be gone
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        for fd in (self._cmd_write, self._res_read):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self._profile, ignore_errors=True)


def problems(events: list[dict], page_url: str) -> list[str]:
    """Console errors and warnings, uncaught exceptions, and any request for something other than the page itself."""
    found = []
    for e in events:
        method, params = e.get("method"), e.get("params", {})
        if method == "Runtime.exceptionThrown":
            found.append(f"uncaught: {params['exceptionDetails'].get('exception', {}).get('description') or params['exceptionDetails'].get('text')}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "warning", "assert"):
            found.append(f"console.{params['type']}: {[a.get('value', a.get('description')) for a in params.get('args', [])]}")
        elif method == "Log.entryAdded" and params["entry"].get("level") in ("error", "warning"):
            found.append(f"log {params['entry']['level']}: {params['entry'].get('text')}")
        elif method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            if url != page_url and not url.startswith("data:"):
                found.append(f"request: {url}")
    return found


@pytest.fixture(scope="module")
def browser():
    b = Browser()
    yield b
    b.close()


def _region_is_drawn(image, box: dict) -> tuple[bool, str]:
    """Whether the screenshot region ``box`` (CSS pixels) holds a drawn plot: varied pixels, ink on white."""
    left, top = int(round(box["x"])), int(round(box["y"]))
    crop = np.asarray(image.crop((left, top, left + int(box["w"]), top + int(box["h"]))).convert("L"), dtype=np.float64)
    ink = float(np.mean(crop < 200))
    return crop.std() > 20 and 0.01 < ink < 0.9, f"std {crop.std():.1f}, ink {ink:.3f}"


_MEASURE = """
(() => {
  const box = e => { const r = e.getBoundingClientRect(); return {x: r.left + scrollX, y: r.top + scrollY, w: r.width, h: r.height}; };
  return {
    svgs: [...document.querySelectorAll('figure.plot > svg')].map(e => ({...box(e), vw: e.viewBox.baseVal.width, vh: e.viewBox.baseVal.height})),
    imgs: [...document.querySelectorAll('img')].map(e => ({...box(e), complete: e.complete, nw: e.naturalWidth, nh: e.naturalHeight})),
    sections: [...document.querySelectorAll('section')].map(e => e.id),
    text: document.body.innerText,
    scripts: document.scripts.length,
  };
})()
"""


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("html")
    synthetic = folder / "synthetic.html"
    synthetic_report().save_html(synthetic)
    healthy = folder / "healthy.html"
    healthy_report().save_html(healthy)
    return {"synthetic": synthetic, "healthy": healthy}


def test_the_problem_detector_catches_errors_and_fetches(browser, tmp_path):
    """A control page with a script error and a remote image: the detector must see both (else the real test means nothing)."""
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><body><img src="http://192.0.2.1/x.png">'
                    '<script>throw new Error("boom")</script></body></html>', encoding="utf-8")
    found = browser.open(page.as_uri())
    assert any("boom" in p for p in found), found
    assert any("192.0.2.1" in p for p in found), found


def test_the_drawn_plot_check_tells_blank_from_drawn(browser, tmp_path):
    """Control: an empty SVG must not pass for a drawn plot, a drawn one must."""
    from PIL import Image

    page = tmp_path / "plots.html"
    lines = "".join(f'<line x1="0" y1="{y}" x2="400" y2="{300 - y}" stroke="#0072B2" stroke-width="3"/>' for y in range(0, 300, 12))
    page.write_text(
        '<!DOCTYPE html><html><body style="margin:0">'
        '<figure class="plot"><svg width="400" height="300" viewBox="0 0 400 300"></svg></figure>'
        f'<figure class="plot"><svg width="400" height="300" viewBox="0 0 400 300">{lines}</svg></figure>'
        "</body></html>", encoding="utf-8")
    assert browser.open(page.as_uri()) == []
    blank, drawn = browser.evaluate(_MEASURE)["svgs"]
    image = Image.open(io.BytesIO(browser.screenshot()[0]))
    assert not _region_is_drawn(image, blank)[0]
    assert _region_is_drawn(image, drawn)[0]


@pytest.mark.parametrize("name", ["synthetic", "healthy"])
def test_report_opens_cleanly_and_plots_are_drawn(browser, reports, name, tmp_path):
    from PIL import Image

    path = reports[name]
    found = browser.open(path.as_uri())
    assert found == [], found
    page = browser.evaluate(_MEASURE)
    assert page["scripts"] == 0
    assert "<script>alert(1)</script>" in page["text"] or name != "synthetic"  # the hostile class name shows as text
    svgs = page["svgs"]
    assert len(svgs) >= (10 if name == "synthetic" else 3), svgs
    png, size = browser.screenshot()
    image = Image.open(io.BytesIO(png))
    (tmp_path / f"{name}.png").write_bytes(png)
    assert image.size == (size["w"], size["h"]) and size["w"] == WIDTH  # no horizontal overflow
    for box in svgs:
        # drawn at its natural aspect ratio, neither collapsed nor blown up, and fully on the page
        assert 200 <= box["w"] <= WIDTH and box["h"] >= 120, box
        assert abs(box["w"] / box["h"] - box["vw"] / box["vh"]) < 0.02 * box["vw"] / box["vh"], box
        assert box["x"] >= 0 and box["x"] + box["w"] <= WIDTH, box
        drawn, why = _region_is_drawn(image, box)
        assert drawn, (box, why)
    for img in page["imgs"]:
        assert img["complete"] and img["nw"] > 0 and img["nh"] > 0, img
        assert (round(img["w"]), round(img["h"])) == (96, 96), img
        drawn, why = _region_is_drawn(image, img)
        assert drawn, (img, why)
    if name == "synthetic":
        assert len(page["imgs"]) == 6
        assert page["sections"][:2] == ["findings", "calibration"]


def test_print_layout(browser, reports, tmp_path):
    """The report prints: Chromium's PDF of it has pages and the figures survive."""
    browser.open(reports["synthetic"].as_uri())
    pdf = base64.b64decode(browser.call("Page.printToPDF", {"printBackground": True}, session=True)["data"])
    (tmp_path / "report.pdf").write_bytes(pdf)
    assert pdf.startswith(b"%PDF")
    pages = pdf.count(b"/Type /Page") - pdf.count(b"/Type /Pages")
    assert 3 <= pages <= 30, pages
    browser.call("Emulation.setEmulatedMedia", {"media": "print"}, session=True)
    try:
        shown = browser.evaluate("""({
          folded: [...document.querySelectorAll('details.print-open table')].map(e => e.checkVisibility()),
          nav: document.querySelector('nav').checkVisibility(),
        })""")
    finally:
        browser.call("Emulation.setEmulatedMedia", {"media": ""}, session=True)
    assert shown["folded"] and all(shown["folded"]), shown  # folded evidence and the per-class table print
    assert shown["nav"] is False
