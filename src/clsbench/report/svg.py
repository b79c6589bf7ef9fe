"""Charts as inline SVG text: no library, no script, nothing fetched, so a report that holds
them opens offline in any browser and its numbers stay selectable text.

Two shapes cover the reports: a line chart (images/s against batch size) and a stacked
horizontal bar (where the time of a run went).
"""
from __future__ import annotations

import math
from markupsafe import Markup, escape  # the escaping the report's templates use (Jinja2's)

# Okabe & Ito's palette: distinguishable with the common colour-vision deficiencies
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#8C6D1F", "#000000")
# reference series (the guide's devices) are grey and told apart by their dashes and greys
REFERENCE_STYLES = (("#5f5f5f", "7 4"), ("#8a8a8a", "2 3"), ("#a0a0a0", "12 3 3 3"), ("#777777", "4 2 1 2"))
CHAR_WIDTH = 7.4  # px per character of the 12-13 px sans-serif labels, wide letters included


def _fmt(v: float) -> str:
    if v >= 1000:
        return f"{v / 1000:g}k" if v % 1000 == 0 else f"{v:,.0f}"
    return f"{v:g}"


def log_ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 ticks spanning [lo, hi] on a log axis (at most ~8)."""
    out = []
    for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        for m in (1, 2, 5):
            v = m * 10 ** e
            if lo <= v <= hi:
                out.append(v)
    while len(out) > 8:
        out = out[::2]
    return out or [lo, hi]


def linear_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    span = hi - lo or abs(hi) or 1.0
    step = 10 ** math.floor(math.log10(span / n))
    for m in (1, 2, 5, 10):
        if span / (m * step) <= n:
            step *= m
            break
    first = math.floor(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 2) if first + i * step <= hi * 1.0001]


class _Axis:
    def __init__(self, lo, hi, a, b, log):
        if log:
            lo, hi = lo / 1.25, hi * 1.25
        else:
            lo, hi = 0.0, hi * 1.1 or 1.0
        self.lo, self.hi, self.a, self.b, self.log = lo, hi, a, b, log

    def __call__(self, v: float) -> float:
        if self.log:
            f = (math.log(v) - math.log(self.lo)) / (math.log(self.hi) - math.log(self.lo))
        else:
            f = (v - self.lo) / (self.hi - self.lo)
        return self.a + f * (self.b - self.a)


def line_chart(series: list[dict], *, xlabel: str, ylabel: str, title: str, xticks: list[float],
               width: int = 760, height: int = 400, xtick_labels: dict | None = None) -> Markup:
    """series: {name, points: [(x, y, tooltip, flagged)], dashed, colour}. x is drawn on a
    log axis with a tick at each of `xticks`; y on a log axis when it spans more than 20x.
    A flagged point (an unstable measurement) is drawn hollow with a red ring."""
    pts = [(p[0], p[1]) for s in series for p in s["points"] if p[1] and p[1] > 0]
    if not pts:
        return Markup("")
    left, right, top, bottom = 70, width - 230, 34, height - 48
    xs, ys = [p[0] for p in pts] + list(xticks), [p[1] for p in pts]
    logy = max(ys) / min(ys) > 20
    X = _Axis(min(xs), max(xs), left, right, True)
    Y = _Axis(min(ys), max(ys), bottom, top, logy)
    yt = log_ticks(Y.lo, Y.hi) if logy else linear_ticks(Y.lo, Y.hi)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
           f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}" '
           f'data-plot="{left} {top} {right} {bottom}">',
           f'<text x="{left}" y="18" class="title">{escape(title)}</text>']
    for v in yt:
        out.append(f'<line x1="{left}" x2="{right}" y1="{Y(v):.1f}" y2="{Y(v):.1f}" class="grid"/>'
                   f'<text x="{left - 6}" y="{Y(v) + 4:.1f}" text-anchor="end">{_fmt(v)}</text>')
    for v in xticks:
        out.append(f'<line x1="{X(v):.1f}" x2="{X(v):.1f}" y1="{top}" y2="{bottom}" class="grid"/>'
                   f'<text x="{X(v):.1f}" y="{bottom + 16}" text-anchor="middle">'
                   f'{escape((xtick_labels or {}).get(v, _fmt(v)))}</text>')
    out.append(f'<text x="{(left + right) / 2}" y="{height - 10}" text-anchor="middle">{escape(xlabel)}</text>'
               f'<text transform="translate(16 {(top + bottom) / 2}) rotate(-90)" text-anchor="middle">'
               f'{escape(ylabel)}{" (log scale)" if logy else ""}</text>')
    for i, s in enumerate(series):
        out += _series(s, X, Y, right + 14, top + 6 + 18 * i)
    out.append("</svg>")
    return Markup("\n".join(out))  # every text in it went through escape()


def _series(s: dict, X, Y, lx: float, ly: float) -> list[str]:
    c = escape(s["colour"])
    dashed = s.get("dashed")
    dash = f' stroke-dasharray="{escape(dashed if isinstance(dashed, str) else "6 4")}"' if dashed else ""
    pts = [p for p in s["points"] if p[1] and p[1] > 0]
    path = " ".join(f"{X(x):.1f},{Y(y):.1f}" for x, y, *_ in pts)
    out = [f'<g class="series" data-series="{escape(s["name"])}">']
    if len(pts) > 1:
        out.append(f'<polyline points="{path}" fill="none" stroke="{c}" stroke-width="2"{dash}/>')
    for x, y, tip, flagged in pts:
        fill, ring = ("white", ' stroke="#c00" stroke-width="2.5"') if flagged else (c, "")
        r = 3 if dashed else 4.5 if len(pts) > 1 else 6  # a lone measurement stands out from the lines
        out.append(f'<circle cx="{X(x):.1f}" cy="{Y(y):.1f}" r="{r}" fill="{fill}"'
                   f'{ring}><title>{escape(tip)}</title></circle>')
        if len(pts) == 1 and not dashed:  # its value beside it: no line to follow to the legend
            out.append(f'<text x="{X(x) + 10:.1f}" y="{Y(y) + 4:.1f}" class="value" fill="{c}">{_fmt(round(y, 1))}</text>')
    out.append(f'<line x1="{lx}" x2="{lx + 22}" y1="{ly}" y2="{ly}" stroke="{c}" stroke-width="2"{dash}/>'
               f'<text x="{lx + 28}" y="{ly + 4}">{escape(s["name"])}</text></g>')
    return out


def stacked_bar(parts: list[tuple[str, float]], *, unit: str, title: str, width: int = 760) -> Markup:
    """One horizontal bar split into its parts (label, value), each labelled with its value
    and share; parts too narrow for a label are named in the legend below."""
    parts = [(k, v) for k, v in parts if v and v > 0]
    total = sum(v for _, v in parts)
    if not total:
        return Markup("")
    left, right, height = 10, width - 10, 96
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
           f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}">',
           f'<text x="{left}" y="16" class="title">{escape(title)}</text>']
    x = float(left)
    legend = []
    for i, (k, v) in enumerate(parts):
        w = (right - left) * v / total
        c = PALETTE[i % len(PALETTE)]
        label = f"{k}: {v:,.3g} {unit} ({v / total:.0%})"
        out.append(f'<rect x="{x:.1f}" y="26" width="{w:.1f}" height="30" fill="{c}"><title>{escape(label)}</title></rect>')
        if w > len(label) * CHAR_WIDTH + 10:
            out.append(f'<text x="{x + 5:.1f}" y="46" class="onbar">{escape(label)}</text>')
        legend.append((c, label))
        x += w
    lx, ly = left, 68
    for c, label in legend:
        w = 22 + int(len(label) * 6.3)
        if lx + w > right and lx > left:  # wrap the legend
            lx, ly = left, ly + 18
        out.append(f'<rect x="{lx}" y="{ly}" width="10" height="10" fill="{c}"/>'
                   f'<text x="{lx + 14}" y="{ly + 9}">{escape(label)}</text>')
        lx += w
    out[0] = out[0].replace(f'0 0 {width} {height}"', f'0 0 {width} {ly + 20}"').replace(
        f'height="{height}"', f'height="{ly + 20}"')
    out.append("</svg>")
    return Markup("\n".join(out))  # every text in it went through escape()
