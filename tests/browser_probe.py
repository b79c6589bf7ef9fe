"""Open HTML files in headless Chromium and say what a person would see: run as
`python browser_probe.py OUT.json PAGE.html [PAGE.html ...] [--screenshot PNG]`, inside a
network namespace with only loopback (tests/test_report_browser.py starts it so).

For each page: console messages and page errors, every request the page made (URL), the
number of SVG charts and of circles per chart series, every element tagged with
data-field (its field, data-value, data-scale and the text shown), and every table's
cells as shown.
"""
import json
import os
import shutil
import sys

from playwright.sync_api import sync_playwright

PROBE = """() => ({
  charts: document.querySelectorAll('svg.chart').length,
  series: Object.fromEntries([...document.querySelectorAll('g.series')].map(
      g => [g.dataset.series, g.querySelectorAll('circle').length])),
  fields: [...document.querySelectorAll('[data-field]')].map(e => ({
      field: e.dataset.field, value: e.dataset.value, scale: e.dataset.scale || '1',
      text: e.innerText})),
  verdicts: [...document.querySelectorAll('[data-verdict]')].map(e => [e.dataset.verdict, e.dataset.state]),
  regressions: document.querySelectorAll('[data-regression]').length,
  tables: [...document.querySelectorAll('table')].map(t => [...t.rows].map(
      r => [...r.cells].map(c => c.innerText.trim()))),
  geometry: [...document.querySelectorAll('svg.chart')].map(svg => ({
      title: svg.getAttribute('aria-label'),
      plot: (svg.dataset.plot || '').split(' ').filter(x => x).map(Number),
      series: [...svg.querySelectorAll('g.series')].map(g => ({
          name: g.dataset.series,
          dash: (g.querySelector('line') || {getAttribute: () => ''}).getAttribute('stroke-dasharray') || '',
          stroke: (g.querySelector('line') || {getAttribute: () => ''}).getAttribute('stroke') || '',
          circles: [...g.querySelectorAll('circle')].map(c => [c.cx.baseVal.value, c.cy.baseVal.value,
                                                               c.r.baseVal.value])})),
      onbar: [...svg.querySelectorAll('text.onbar')].map(t => ({
          text: t.textContent, width: t.getComputedTextLength(),
          room: t.previousElementSibling.x.baseVal.value + t.previousElementSibling.width.baseVal.value
                - t.x.baseVal[0].value}))})),
  title: document.title,
  location: document.location.href,
  active: document.querySelectorAll('script, img, iframe, object, embed, link, base, form, meta[http-equiv="refresh" i]').length,
  text: document.body.innerText,
})"""


def chromium() -> str:
    path = os.environ.get("CLSBENCH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        raise SystemExit("no chromium on PATH (apt-get install chromium)")
    return path


def main(argv):
    out, pages, shot = argv[0], argv[1:], None
    if "--screenshot" in pages:
        i = pages.index("--screenshot")
        shot, pages = pages[i + 1], pages[:i] + pages[i + 2:]
    args = ["--no-sandbox"] if os.geteuid() == 0 else []  # Chromium refuses root otherwise
    results = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=args)
        for path in pages:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            console, requests = [], []
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
            page.on("request", lambda r: requests.append(r.url))
            page.goto("file://" + os.path.abspath(path), wait_until="load")
            page.wait_for_timeout(300)  # late requests, if the page made any
            info = page.evaluate(PROBE)
            if shot and path == pages[0]:
                page.screenshot(path=shot, full_page=True)
            results[path] = {**info, "console": console, "requests": requests}
            page.close()
        browser.close()
    with open(out, "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main(sys.argv[1:])
