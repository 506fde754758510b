#!/usr/bin/python3
"""The monitoring shipped with pmtatail, against the metrics it exports.

    python3 tests/py/test_monitoring.py SOURCE_ROOT

1. The metric names src/pipeline/status.c writes into the textfile (its
   "# TYPE name" lines).
2. contrib/prometheus/pmtatail.rules.yml: `promtool check rules` and
   `promtool test rules` on pmtatail.rules.test.yml (every alert firing on
   the series that mean trouble, quiet on a healthy daemon); it names only
   exported metrics (and node_exporter's node_textfile_mtime_seconds), and
   has the alerts the README lists.
3. contrib/grafana/pmtatail.json: parses as a dashboard (panels with
   targets, a Prometheus data source variable), every query names only
   exported metrics, and the metrics an operator needs are all shown.

Standard library only. One line per check; exit 1 if any failed, 77
(skipped) when promtool is not installed and nothing else failed (Debian's
package prometheus has it: scripts/deps.sh --test).
"""

import json
import os
import re
import shutil
import subprocess
import sys

SRC = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../.."))
RULES = os.path.join(SRC, "contrib/prometheus/pmtatail.rules.yml")
RULES_TEST = os.path.join(SRC, "contrib/prometheus/pmtatail.rules.test.yml")
DASHBOARD = os.path.join(SRC, "contrib/grafana/pmtatail.json")
# node_exporter's, for the metrics file's age
NODE_METRICS = {"node_textfile_mtime_seconds"}
ALERTS = ["PmtatailNotRunning", "PmtatailBehind", "PmtatailFilesBlocked", "PmtatailDeadLettersGrowing",
          "PmtatailEndpointRefusing", "PmtatailDeliveryFailing"]

failures = 0


def check(name, ok, detail=""):
    global failures
    print(("ok: " if ok else "FAIL: ") + name + ("" if ok or not detail else "\n    " + str(detail)[-3000:]))
    if not ok:
        failures += 1
    return ok


def exported():
    text = open(os.path.join(SRC, "src/pipeline/status.c")).read()
    return set(re.findall(r"# TYPE (pmtatail_[a-z0-9_]+) (?:counter|gauge)", text))


def names_in(expr):
    """Metric names in a PromQL expression: pmtatail_* and node_* words."""
    return set(re.findall(r"\b((?:pmtatail|node)_[a-zA-Z0-9_]+)\b", expr))


def main():
    metrics = exported()
    check("status.c exports metrics (%d: %s)" % (len(metrics), ", ".join(sorted(metrics))), len(metrics) >= 10)
    known = metrics | NODE_METRICS

    rules = open(RULES).read()
    used = names_in("\n".join(ln for ln in rules.splitlines() if not ln.lstrip().startswith("#")))
    check("rules: name only exported metrics", used and used <= known, sorted(used - known))
    alerts = re.findall(r"^\s*- alert: (\w+)", rules, re.M)
    check("rules: the alerts " + ", ".join(ALERTS), all(a in alerts for a in ALERTS), alerts)
    tested = set(re.findall(r"alertname: (\w+)", open(RULES_TEST).read()))
    check("rules test: every alert tested", set(alerts) <= tested, sorted(set(alerts) - tested))
    promtool = shutil.which("promtool")
    if promtool:
        r = subprocess.run([promtool, "check", "rules", RULES], capture_output=True, text=True, timeout=60)
        check("promtool check rules", r.returncode == 0 and "SUCCESS: %d rules found" % len(alerts) in r.stdout,
              r.stdout + r.stderr)
        r = subprocess.run([promtool, "test", "rules", os.path.basename(RULES_TEST)], capture_output=True,
                           text=True, timeout=120, cwd=os.path.dirname(RULES_TEST))
        check("promtool test rules", r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr)
    else:
        print("note: promtool not installed (Debian package prometheus): the rules are not run")

    try:
        dash = json.load(open(DASHBOARD))
    except ValueError as e:
        check("dashboard: parses as JSON", False, e)
        return 1
    panels = dash.get("panels") or []
    check("dashboard: a titled dashboard with panels", dash.get("title") and len(panels) >= 5, len(panels))
    variables = {v.get("name"): v for v in (dash.get("templating") or {}).get("list", [])}
    check("dashboard: a Prometheus data source variable",
          variables.get("datasource", {}).get("type") == "datasource"
          and variables["datasource"].get("query") == "prometheus", list(variables))
    exprs = [t.get("expr", "") for p in panels for t in p.get("targets", [])]
    check("dashboard: every panel has a query", all(p.get("targets") for p in panels) and all(exprs))
    shown = set().union(*(names_in(e) for e in exprs)) | set().union(
        *(names_in(json.dumps(v.get("query"))) for v in variables.values()))
    check("dashboard: names only exported metrics", shown <= known, sorted(shown - known))
    needed = {"pmtatail_bytes_behind", "pmtatail_records_delivered_total", "pmtatail_files_blocked",
              "pmtatail_records_refused_total", "pmtatail_endpoint_refusing", "pmtatail_http_answers_total",
              "pmtatail_last_success_timestamp_seconds", "node_textfile_mtime_seconds"}
    check("dashboard: shows what the alerts watch", needed <= shown, sorted(needed - shown))
    print("%s: %d failure(s)" % ("FAILED" if failures else "passed", failures))
    if failures:
        return 1
    return 0 if promtool else 77


if __name__ == "__main__":
    sys.exit(main())
