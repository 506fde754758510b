#!/usr/bin/env python3
"""Make doc/report-example.png, the screenshot README shows of
`pmtatail report --html`.

    python3 scripts/report-example.py [BUILD/src/pmtatail] [OUT.png]

A week of hourly archives from bench/report_html.py's generator (150,000
records, a block at outlook.example in one hour), the page, and headless
Chromium's screenshot at 1200x2000 (Debian's chromium). The screenshot is
written again as an indexed PNG of its 256 most frequent colours (the
others, antialiased text, take the nearest of them): a third of the size,
no visible difference. Standard library only.
"""

import collections
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.join(ROOT, "tests", "py"))
import report_html as bench  # noqa: E402
from test_report_screenshot import read_png  # noqa: E402


def chunk(kind, body):
    return (struct.pack(">I", len(body)) + kind + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))


def write_indexed(path, w, h, rows):
    counts = collections.Counter(px for r in rows for px in r)
    palette = [c for c, _ in counts.most_common(256)]
    index = {c: i for i, c in enumerate(palette)}

    def nearest(px):
        return min(range(len(palette)),
                   key=lambda i: sum((a - b) ** 2 for a, b in zip(px, palette[i])))
    for c in counts:
        if c not in index:
            index[c] = nearest(c)
    raw = b"".join(b"\x00" + bytes(index[px] for px in r) for r in rows)
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n")
        fh.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0)))
        fh.write(chunk(b"PLTE", b"".join(bytes(c) for c in palette)))
        fh.write(chunk(b"IDAT", zlib.compress(raw, 9)))
        fh.write(chunk(b"IEND", b""))


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "src", "pmtatail")
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "doc", "report-example.png")
    browser = shutil.which("chromium") or sys.exit("chromium is not installed")
    tmp = tempfile.mkdtemp(prefix="pmtatail-example-")
    try:
        arch = os.path.join(tmp, "accounting")
        bench.generate(arch, 150000, 7, 3)
        page = os.path.join(tmp, "report.html")
        subprocess.run([binary, "report", "--html", page, arch], check=True,
                       stderr=subprocess.DEVNULL)
        shot = os.path.join(tmp, "shot.png")
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                        "--hide-scrollbars", "--user-data-dir=" + os.path.join(tmp, "profile"),
                        "--screenshot=" + shot, "--window-size=1200,2000", "file://" + page],
                       check=True, capture_output=True, cwd=tmp, timeout=180)
        w, h, rows = read_png(shot)
        write_indexed(out, w, h, rows)
        print("%s: %dx%d, %d bytes" % (out, w, h, os.path.getsize(out)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
