#!/usr/bin/python3
"""The command line against its documentation.

    python3 tests/py/test_cli.py PMTATAIL_BINARY SOURCE_ROOT

`pmtatail --help` lists every command with a line each; the commands are
those of the man page's COMMANDS section, of README's command table and of
the bash completion. `pmtatail COMMAND --help` (and `pmtatail help COMMAND`)
exits 0 with that command's usage and options; every option it lists is in
the man page and completed by the bash completion, which is run in bash
(without bash-completion's helpers, as on a minimal system) for the
commands, a command's options and dead-letter's words.

Standard library only. One line per check; exit 1 if any failed.
"""

import os
import re
import subprocess
import sys

BINARY = os.path.abspath(sys.argv[1])
SRC = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "../.."))
COMPLETION = os.path.join(SRC, "contrib/bash-completion/pmtatail")

failures = 0


def check(name, ok, detail=""):
    global failures
    print(("ok: " if ok else "FAIL: ") + name + ("" if ok or not detail else "\n    " + str(detail)[-2000:]))
    if not ok:
        failures += 1
    return ok


def run(*args):
    r = subprocess.run([BINARY] + list(args), capture_output=True, text=True, timeout=20,
                       stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout, r.stderr


def help_commands(text):
    """The first word of each line under "commands:" up to a blank line."""
    block = text.split("commands:\n", 1)[1].split("\n\n", 1)[0]
    return [ln.split()[0] for ln in block.splitlines() if ln.strip()]


def man_commands():
    page = open(os.path.join(SRC, "doc/pmtatail.8")).read()
    sect = page.split("\n.SH COMMANDS\n", 1)[1].split("\n.SH ", 1)[0]
    heads = re.findall(r"^\.TP\n(.*)$", sect, re.M)
    words = set()
    for h in heads:
        plain = re.sub(r"\\f[BIRP]", "", h).replace("\\-", "-")
        plain = re.sub(r'^\.(B|BR|BI|IR|RB)\s+', "", plain).strip('"')
        first = plain.split()[0].strip('"') if plain.split() else ""
        if first and not first.startswith("-"):
            words.add(first)
    return words, page.replace("\\-", "-")


def readme_commands():
    text = open(os.path.join(SRC, "README.md")).read()
    sect = text.split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    words = set()
    for cell in re.findall(r"^\| `pmtatail (?:\[-c FILE\] )?([a-z][a-z-]*)", sect, re.M):
        words.add(cell)
    return words


def complete(*words, cur=""):
    """What the completion offers after `pmtatail WORDS... CUR`."""
    line = ["pmtatail"] + list(words) + [cur]
    script = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); '
              '_pmtatail; printf "%s\\n" "${COMPREPLY[@]}"')
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c", script, "bash", COMPLETION] + line,
                       capture_output=True, text=True, timeout=20)
    return sorted(w for w in r.stdout.split("\n") if w), r.stderr


def options_of(help_text):
    return sorted(set(re.findall(r"^\s+(--[a-z-]+)", help_text, re.M)))


def main():
    rc, out, err = run("--help")
    cmds = help_commands(out) if "commands:\n" in out else []
    check("--help: exit 0, a line per command (%s)" % " ".join(cmds), rc == 0 and len(cmds) >= 9, out + err)
    lines = out.split("commands:\n", 1)[-1].split("\n\n", 1)[0].splitlines()
    check("--help: each command line fits 80 columns", all(len(ln) <= 80 for ln in lines),
          [ln for ln in lines if len(ln) > 80])
    for daemon in ("run", "status", "check-config", "dead-letter", "pmta-config", "replay", "report",
                   "reload", "import-sincedb"):
        check("--help lists %s" % daemon, daemon in cmds, cmds)
    rc, out2, _ = run("help")
    check("`pmtatail help` is --help", rc == 0 and out2 == out)

    man, page = man_commands()
    check("man page COMMANDS: the same commands as --help", man == set(cmds),
          "only in --help: %s; only in the man page: %s" % (sorted(set(cmds) - man), sorted(man - set(cmds))))
    readme = readme_commands()
    check("README's command table: the same commands as --help", readme == set(cmds),
          "only in --help: %s; only in README: %s" % (sorted(set(cmds) - readme), sorted(readme - set(cmds))))
    comp_cmds, cerr = complete()
    check("completion: `pmtatail <TAB>` offers the commands of --help (and help)",
          comp_cmds == sorted(set(cmds) | {"help"}), "%s %s" % (comp_cmds, cerr))
    got, _ = complete(cur="--")
    check("completion: `pmtatail --<TAB>`: the global options", got == ["--config", "--help", "--version"], got)
    got, _ = complete("-c", "/etc/pmtatail/pmtatail.conf", "dead-letter")
    check("completion: `pmtatail -c FILE dead-letter <TAB>`: list, resend", got == ["list", "resend"], got)

    for c in cmds:
        rc, h, e = run(c, "--help")
        check("%s --help: exit 0, its usage line" % c,
              rc == 0 and h.startswith("usage: pmtatail [-c FILE] %s" % c), h + e)
        rc, h2, _ = run("help", c)
        check("help %s: the same as %s --help" % (c, c), rc == 0 and h2 == h)
        opts = [o for o in options_of(h) if o != "--help"]
        missing = [o for o in opts if o not in page]
        check("%s: every option of its --help in the man page %s" % (c, opts), not missing, missing)
        got, cerr = complete(c, cur="--")
        want = sorted(set(opts) | {"--help"})
        check("completion: `pmtatail %s --<TAB>` offers its options" % c, got == want,
              "got %s, want %s %s" % (got, want, cerr))
    rc, _, e = run("no-such-command")
    check("an unknown command: exit 2, named", rc == 2 and "no-such-command" in e, e)
    rc, _, e = run("status", "--no-such-option")
    check("an unknown option of status: exit 2", rc == 2, e)
    print("%s: %d failure(s)" % ("FAILED" if failures else "passed", failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
