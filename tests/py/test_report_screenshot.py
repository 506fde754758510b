#!/usr/bin/python3
"""The page of `pmtatail report --html` as a browser draws it: a headless
Chromium screenshot, checked to be non-blank and to show the charts.

    python3 tests/py/test_report_screenshot.py PMTATAIL_BINARY [KEEP.png]

Needs Debian's `chromium` (apt-get install chromium); without it the test is
skipped (exit 77, said on stdout). The page is the one test_report_html.py
checks (three days of hourly archives, a block at blocked.example in one
hour), opened from a file:// URL with

    chromium --headless --no-sandbox --disable-gpu --hide-scrollbars
             --screenshot=FILE --window-size=1200,2000 file://PAGE

and the PNG is decoded here (zlib and the five PNG row filters; no imaging
library). What is checked, on the pixels:

  - the image is 1200x2000 and not blank: at least 10% of it is not white;
  - the colours of the charts are drawn: at least 7 of the palette's
    Okabe-Ito colours cover 150 pixels or more each;
  - the bounceCat chart is there and wide: the rows where its first layer's
    colour (orange) runs over 100 pixels or more span at least 60% of the
    page's width;
  - the spike is where it belongs: in that chart, the column with the most
    coloured pixels (a saturated colour, not the grey of axes, text or
    "other") lies within the spike's hour of the 72 (one bucket either way);
  - the hard/soft chart and the small multiples are there: vermillion (hard)
    appears in at least 4 separate bands of rows (the hard/soft chart and at
    least three rows of domain charts).

KEEP.png, when given, receives the screenshot.
"""

import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

from harness import check, finish
import test_report_html as pages

OKABE_ITO = {
    "orange": (0xE6, 0x9F, 0x00), "sky blue": (0x56, 0xB4, 0xE9),
    "bluish green": (0x00, 0x9E, 0x73), "yellow": (0xF0, 0xE4, 0x42),
    "blue": (0x00, 0x72, 0xB2), "vermillion": (0xD5, 0x5E, 0x00),
    "reddish purple": (0xCC, 0x79, 0xA7),
}


def read_png(path):
    """(width, height, rows of (r, g, b) tuples) of an 8-bit RGB or RGBA PNG."""
    with open(path, "rb") as fh:
        data = fh.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, w = 8, [], None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or ctype not in (2, 6) or interlace:
                raise ValueError("PNG form not handled: depth %d type %d" % (depth, ctype))
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    raw = zlib.decompress(b"".join(idat))
    stride = w * bpp
    rows, prev = [], bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif f == 2:
            for i in range(stride):
                line[i] = (line[i] + prev[i]) & 255
        elif f == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
        elif f == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pr = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pr) & 255
        rows.append([tuple(line[x * bpp:x * bpp + 3]) for x in range(w)])
        prev = line
    return w, h, rows


def near(px, rgb, tol=6):
    return abs(px[0] - rgb[0]) <= tol and abs(px[1] - rgb[1]) <= tol and abs(px[2] - rgb[2]) <= tol


def coloured(px):
    return max(px) - min(px) > 60


def bands(ys):
    """Runs of consecutive row numbers, as (first, last)."""
    out = []
    for y in ys:
        if out and y - out[-1][1] <= 3:
            out[-1][1] = y
        else:
            out.append([y, y])
    return out


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        print("SKIP: chromium is not installed (apt-get install chromium): the page's "
              "screenshot is not checked")
        return 77
    pages.BINARY = os.path.abspath(sys.argv[1])
    keep = sys.argv[2] if len(sys.argv) > 2 else None
    tmp = tempfile.mkdtemp(prefix="pmtatail-shot-")
    try:
        arch = os.path.join(tmp, "archive")
        os.mkdir(arch)
        for name, rows in sorted(pages.spike_rows().items()):
            pages.write(os.path.join(arch, name), pages.csv_bytes(rows))
        page = os.path.join(tmp, "report.html")
        rc, _, err = pages.run(["--html", page, arch])
        if not check("the page is written", rc == 0, [err[-500:]]):
            return finish()
        shot = os.path.join(tmp, "shot.png")
        p = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                            "--hide-scrollbars", "--user-data-dir=" + os.path.join(tmp, "profile"),
                            "--screenshot=" + shot, "--window-size=1200,2000", "file://" + page],
                           capture_output=True, timeout=180, cwd=tmp)
        if not check("chromium wrote a screenshot", os.path.exists(shot),
                     [p.returncode, p.stderr.decode(errors="replace")[-800:]]):
            return finish()
        if keep:
            shutil.copyfile(shot, keep)
        w, h, rows = read_png(shot)
        check("1200x2000", (w, h) == (1200, 2000), [(w, h)])
        white = sum(1 for r in rows for px in r if px[0] > 245 and px[1] > 245 and px[2] > 245)
        check("not blank: %.0f%% of the pixels are not white" % (100 - 100.0 * white / (w * h)),
              white < 0.9 * w * h)
        found = {name: sum(1 for r in rows for px in r if near(px, rgb))
                 for name, rgb in OKABE_ITO.items()}
        shown = [n for n, c in found.items() if c >= 150]
        check("the palette drawn: %d of its 7 colours" % len(shown), len(shown) >= 7, [found])

        orange = OKABE_ITO["orange"]
        orows = [y for y in range(h) if sum(1 for px in rows[y] if near(px, orange)) >= 100]
        if not check("the bounceCat chart: its first layer drawn", orows, [found]):
            return finish()
        chart_rows = bands(orows)[0]
        xs = [x for y in range(chart_rows[0], chart_rows[1] + 1) for x in range(w)
              if near(rows[y][x], orange)]
        x0, x1 = min(xs), max(xs)
        check("the bounceCat chart spans %d of 1200 pixels" % (x1 - x0), x1 - x0 >= 0.6 * w,
              [(x0, x1)])
        # the plot is 886 x 264 of the chart's 960 x 300: look that high
        top = max(0, chart_rows[1] - int(0.3 * (x1 - x0)))
        col = [sum(1 for y in range(top, chart_rows[1] + 1) if coloured(rows[y][x]))
               for x in range(x0, x1 + 1)]
        peak = x0 + col.index(max(col))
        hour = (peak - x0) * 72.0 / (x1 - x0 + 1)
        want = (pages.SPIKE_HOUR - pages.T0) // 3600
        check("the spike drawn at bucket %.1f of 72 (its hour: %d)" % (hour, want),
              want - 1 <= hour < want + 2, [col[:10]])
        verm = OKABE_ITO["vermillion"]
        vrows = [y for y in range(h) if sum(1 for px in rows[y] if near(px, verm)) >= 20]
        vb = bands(vrows)
        check("hard bounces drawn in %d bands (the hard/soft chart, rows of domain charts)"
              % len(vb), len(vb) >= 4, [vb])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
