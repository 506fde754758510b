#!/usr/bin/python3
"""The Debian package, built and installed into throw-away roots.

    python3 tests/py/test_package.py SOURCE_ROOT

1. scripts/build-package.sh builds the .deb from debian/ with
   dpkg-buildpackage -b (debhelper: meson, dh_installsystemd,
   dh_installsysusers) in a copy of the tree in a temporary directory
   (never beside the checkout), and runs lintian on it (no error, no
   warning left without an override). PMTATAIL_DEB=PATH checks that .deb
   instead (CI builds it once, in its package step).
2. The package as dpkg-deb shows it: control fields (Version from
   meson.build, Architecture, a Depends naming the package of every shared
   library the binary links), the file list and its owners, conffiles, the
   maintainer scripts (sh -n, shellcheck when installed), debian/changelog's
   and pmtatail.spec's versions are meson.build's.
3. Its files, extracted with dpkg-deb -x: the binary runs --version and
   loads the packaged configuration, whose webhook URL is commented out so
   that `run` refuses to start unconfigured; the man page documents every
   configuration key of config/keys.c and every command, and renders
   without warnings; the unit carries the directives the brief requires.
4. systemd-analyze verify on the packaged unit (a copy whose ExecStart
   points at the extracted binary, MANPATH at the extracted man page, so
   Documentation=man:pmtatail(8) is checked too) must print nothing, and
   systemd-analyze security --offline must rate it 2.0 or better.
5. A real installation into a throw-away root:
   a. `dpkg --root=ROOT --force-not-root --force-depends
      --force-script-chrootless -i`: the maintainer scripts run on the host
      with DPKG_ROOT=ROOT and touch only ROOT (user through
      dh_installsysusers' systemd-sysusers --root, unit enabled by
      deb-systemd-helper). Then
      a reinstall keeps an edited conffile, and a purge removes the state
      directory, the user, the unit's symlinks and the conffile. (Plain
      `dpkg --root -i` cannot work: dpkg chroots into ROOT to run postinst,
      and ROOT has no /bin/sh.)
   b. As root with unshare(1) and overlayfs: ROOT gets the host's /usr
      under an overlay and a copy of /etc, and dpkg runs the scripts
      chrooted into it, as on a real host: systemd-sysusers creates the
      user, which joins an existing group pmta; the state directory is 0700 and the
      user's; purge removes them. Skipped (with a note) where not possible.
   The host's users and units are checked to be unchanged.

One line per check; exit 1 if any failed, 77 (skipped) when dpkg-deb or
meson is missing or under the sanitizer run (the package does not depend on
how the tree's own build was instrumented).
"""

import gzip
import os
import re
import shutil
import subprocess
import sys
import tempfile

SRC = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../.."))
KEEP = os.environ.get("PMTATAIL_PACKAGE_KEEP")

failures = 0


def check(name, ok, detail=""):
    global failures
    if ok:
        print(f"ok: {name}")
    else:
        failures += 1
        print(f"FAIL: {name}" + (f": {detail}" if detail else ""))
    return ok


def note(msg):
    print(f"note: {msg}")


def run(cmd, **kw):
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 300)
    return subprocess.run(cmd, **kw)


def have(tool):
    return shutil.which(tool) is not None


def host_identity():
    """What the installation must not change on the host."""
    r = run(["getent", "passwd", "pmtatail"])
    g = run(["getent", "group", "pmtatail"])
    wants = "/etc/systemd/system/multi-user.target.wants/pmtatail.service"
    return (r.stdout, g.stdout, os.path.lexists(wants), os.path.exists("/var/lib/pmtatail"))


def project_version():
    text = open(os.path.join(SRC, "meson.build")).read()
    m = re.search(r"project\([^)]*?version\s*:\s*'([^']+)'", text, re.S)
    return m.group(1) if m else None


def config_keys():
    """(section, key) of every key the key table (config/keys.c) accepts."""
    text = open(os.path.join(SRC, "config/keys.c")).read()
    return re.findall(r'\[K_\w+\]\s*=\s*\{SEC_(\w+),\s*"([a-z_]+)"', text)


def deb_field(deb, field):
    return run(["dpkg-deb", "-f", deb, field]).stdout.strip()


def passwd_entry(root, name):
    path = os.path.join(root, "etc/passwd")
    if not os.path.exists(path):
        return None
    for line in open(path):
        if line.split(":")[0] == name:
            return line.strip().split(":")
    return None


def group_entry(root, name):
    path = os.path.join(root, "etc/group")
    if not os.path.exists(path):
        return None
    for line in open(path):
        if line.split(":")[0] == name:
            return line.strip().split(":")
    return None


def dpkg_status(root, pkg="pmtatail"):
    r = run(["dpkg", f"--root={root}", "-s", pkg])
    m = re.search(r"^Status: (.*)$", r.stdout, re.M)
    return m.group(1) if m else None


def new_dpkg_root(root):
    for d in ("var/lib/dpkg/info", "var/lib/dpkg/updates", "var/log", "etc"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    open(os.path.join(root, "var/lib/dpkg/status"), "a").close()


def clean_env():
    env = dict(os.environ)
    for k in ("DPKG_ROOT", "DPKG_ADMINDIR", "ASAN_OPTIONS", "UBSAN_OPTIONS"):
        env.pop(k, None)
    return env


# --- 1. build -------------------------------------------------------------


def build(tmp):
    given = os.environ.get("PMTATAIL_DEB")
    if given:
        note(f"checking the package built before: {given}")
        if not check("PMTATAIL_DEB names a .deb", os.path.isfile(given), given):
            return None
        return given
    out_dir = os.path.join(tmp, "out")
    # what dpkg-buildpackage would put beside the tree (the parent directory
    # may be shared: only its kind of files count)
    parent = os.path.dirname(SRC)

    def artefacts():
        return {f for f in os.listdir(parent)
                if f.startswith("pmtatail") and f.endswith((".deb", ".changes", ".buildinfo", ".dsc", ".tar.xz"))}

    before = artefacts()
    r = run([os.path.join(SRC, "scripts/build-package.sh"), out_dir], env=clean_env(), timeout=900)
    lines = r.stdout.strip().splitlines()
    deb = lines[-1] if lines else ""
    if not check("dpkg-buildpackage (scripts/build-package.sh) builds a .deb, lintian clean",
                 r.returncode == 0 and deb.endswith(".deb") and os.path.isfile(deb),
                 f"exit {r.returncode}\n{r.stdout}\n{r.stderr[-3000:]}"):
        return None
    check("the build wrote no package beside the source tree", artefacts() == before, str(artefacts() ^ before))
    check("the build left no obj-* or debian/pmtatail in the source tree",
          not [f for f in os.listdir(SRC) if f.startswith("obj-")]
          and not os.path.exists(os.path.join(SRC, "debian/pmtatail")))
    print(f"  {os.path.basename(deb)}: {os.path.getsize(deb)} bytes")
    return deb


# --- 2. the package as dpkg-deb shows it --------------------------------------


def check_control(deb, tmp):
    version = project_version()
    arch = run(["dpkg", "--print-architecture"]).stdout.strip()
    check("control: Package is pmtatail", deb_field(deb, "Package") == "pmtatail", deb_field(deb, "Package"))
    check("control: Version is meson.build's project version", version and deb_field(deb, "Version") == version,
          f"{deb_field(deb, 'Version')!r} vs {version!r}")
    check("control: Architecture is dpkg's", deb_field(deb, "Architecture") == arch, deb_field(deb, "Architecture"))
    check("control: Maintainer and Description are set",
          "@" in deb_field(deb, "Maintainer") and len(deb_field(deb, "Description").splitlines()) > 2)
    check("control: Installed-Size is a number of KiB", deb_field(deb, "Installed-Size").isdigit())
    depends = deb_field(deb, "Depends")
    names = {d.strip().split()[0] for d in depends.split(",") if d.strip()}
    check("control: Depends has systemd-sysusers (dh_installsysusers) and passwd (usermod, userdel)",
          "passwd" in names and re.search(r"systemd \| systemd-standalone-sysusers", depends), depends)
    m = re.match(r"pmtatail \(([^)]+)\)", open(os.path.join(SRC, "debian/changelog")).readline())
    check("debian/changelog: its version is meson.build's", m and m.group(1) == version,
          f"{m.group(1) if m else None!r} vs {version!r}")
    m = re.search(r"^Version:\s*(\S+)$", open(os.path.join(SRC, "pmtatail.spec")).read(), re.M)
    check("pmtatail.spec: its Version is meson.build's", m and m.group(1) == version,
          f"{m.group(1) if m else None!r} vs {version!r}")
    return names


def check_depends_cover_libraries(root, names):
    """Every library the binary links comes from a package named in Depends."""
    binary = os.path.join(root, "usr/sbin/pmtatail")
    if not have("readelf"):
        note("readelf not installed (binutils): Depends not compared with the linked libraries")
        return
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", run(["readelf", "-d", binary]).stdout)
    cache = run(["ldconfig", "-p"]).stdout if have("ldconfig") else ""
    missing = []
    for soname in needed:
        m = re.search(r"^\s*" + re.escape(soname) + r" \([^)]*\) => (\S+)$", cache, re.M)
        if not m:
            missing.append(f"{soname} (not in the ld cache)")
            continue
        path = os.path.realpath(m.group(1))
        owner = None
        for p in (m.group(1), path, path.replace("/usr/lib/", "/lib/", 1), path.replace("/lib/", "/usr/lib/", 1)):
            r = run(["dpkg", "-S", p])
            if r.returncode == 0:
                owner = r.stdout.split(":")[0].strip()
                break
        if owner is None:
            missing.append(f"{soname} (no package owns {path})")
        elif owner not in names:
            missing.append(f"{soname} from {owner}")
    check(f"control: Depends covers the {len(needed)} linked libraries", needed and not missing,
          "; ".join(missing) or "no NEEDED entries")


def check_listing(deb):
    r = run(["dpkg-deb", "-c", deb])
    entries = {}
    for line in r.stdout.splitlines():
        parts = line.split(None, 5)
        if len(parts) == 6:
            path = parts[5].split(" -> ")[0]
            entries[path.rstrip("/") if path != "./" else path] = (parts[0], parts[1])
    unit_paths = [p for p in ("./lib/systemd/system/pmtatail.service", "./usr/lib/systemd/system/pmtatail.service")
                  if p in entries]
    check("contents: the unit in /lib/systemd/system or /usr/lib/systemd/system", len(unit_paths) == 1,
          ", ".join(unit_paths) or "absent")
    for path in ("./usr/sbin/pmtatail", "./etc/pmtatail/pmtatail.conf", "./usr/share/man/man8/pmtatail.8.gz",
                 "./usr/share/doc/pmtatail/acct-files.conf", "./usr/share/doc/pmtatail/copyright",
                 "./usr/share/doc/pmtatail/pmtatail-archives.tmpfiles.conf",
                 "./usr/share/bash-completion/completions/pmtatail",
                 "./usr/share/pmtatail/prometheus/pmtatail.rules.yml",
                 "./usr/share/pmtatail/prometheus/pmtatail.rules.test.yml",
                 "./usr/share/pmtatail/grafana/pmtatail.json",
                 "./usr/lib/sysusers.d/pmtatail.conf"):
        check(f"contents: {path[1:]}", path in entries)
    mode = entries.get("./usr/sbin/pmtatail", ("", ""))[0]
    check("contents: the binary is -rwxr-xr-x", mode == "-rwxr-xr-x", mode)
    owners = {owner for _, owner in entries.values()}
    check("contents: everything owned by root/root", owners == {"root/root"}, str(owners))
    stray = [p for p in entries if p.endswith(".example") and p.startswith("./etc/")]
    check("contents: no example file under /etc (the conffile is the configuration)", not stray, str(stray))
    tops = {p.split("/")[1] for p in entries if p.count("/") >= 1 and p != "./"}
    check("contents: only /etc, /lib and /usr", tops <= {"etc", "lib", "usr"}, str(tops))
    outside = [p for p in entries if p.startswith("./usr/local") or "/build" in p or "/tmp" in p]
    check("contents: nothing from the build or /usr/local", not outside, str(outside))
    return unit_paths[0][2:] if unit_paths else None


def check_control_files(deb, tmp):
    ctl = os.path.join(tmp, "control")
    run(["dpkg-deb", "-e", deb, ctl])
    conffiles = open(os.path.join(ctl, "conffiles")).read().split() if os.path.exists(
        os.path.join(ctl, "conffiles")) else []
    check("conffiles lists /etc/pmtatail/pmtatail.conf", conffiles == ["/etc/pmtatail/pmtatail.conf"], str(conffiles))
    scripts = ["postinst", "prerm", "postrm"]
    for s in scripts:
        path = os.path.join(ctl, s)
        ok = os.path.exists(path) and os.access(path, os.X_OK)
        if check(f"{s}: present and executable", ok):
            r = run(["sh", "-n", path])
            check(f"{s}: sh -n", r.returncode == 0, r.stderr)
    if have("shellcheck"):
        r = run(["shellcheck", "-s", "sh"] + [os.path.join(ctl, s) for s in scripts])
        check("maintainer scripts: shellcheck", r.returncode == 0, r.stdout + r.stderr)
    else:
        note("shellcheck not installed: maintainer scripts checked with sh -n only")


# --- 3. the files ------------------------------------------------------------


def check_binary_and_config(root, tmp):
    binary = os.path.join(root, "usr/sbin/pmtatail")
    r = run([binary, "--version"], timeout=30)
    check("pmtatail --version", r.returncode == 0 and r.stdout.strip() == f"pmtatail {project_version()}",
          f"exit {r.returncode}: {r.stdout!r} {r.stderr!r}")
    conf = os.path.join(root, "etc/pmtatail/pmtatail.conf")
    fixture = os.path.join(SRC, "tests/fixtures/fbl.csv")
    if os.path.exists(fixture):
        r = run([binary, "-c", conf, "replay", "--dry-run", fixture], timeout=30)
        check("the packaged configuration loads (replay --dry-run with it)", r.returncode == 0, r.stderr[-500:])
    text = open(conf).read()
    check("the packaged configuration has its webhook commented out",
          not re.search(r"^url\s*=", text, re.M) and re.search(r"^; url = https://", text, re.M), text[:200])
    # `run` unconfigured must refuse, not send to oempro.example.com. The
    # state directory is moved into the temporary directory, whatever the
    # daemon does first.
    state = os.path.join(tmp, "state")
    local = os.path.join(tmp, "unconfigured.conf")
    with open(local, "w") as f:
        f.write(re.sub(r"^dir = .*$", f"dir = {state}", text, flags=re.M))
    try:
        r = run([binary, "-c", local, "run"], timeout=20)
        check("run with the packaged configuration refuses: no [output], exit 78 (EX_CONFIG)",
              r.returncode == 78 and "output" in r.stderr, f"exit {r.returncode}: {r.stderr[-300:]}")
    except subprocess.TimeoutExpired:
        check("run with the packaged configuration refuses: no [output]", False, "it kept running")


def check_man_page(root, tmp):
    gz = os.path.join(root, "usr/share/man/man8/pmtatail.8.gz")
    page = gzip.open(gz, "rt").read()
    check("man page: .TH PMTATAIL 8", re.search(r"^\.TH PMTATAIL 8 ", page, re.M) is not None)
    plain = page.replace("\\-", "-").replace("\\fB", "").replace("\\fI", "").replace("\\fR", "").replace("\\fP", "")
    missing = [f"[{sec.lower()}] {key}" for sec, key in config_keys()
               if not re.search(r"^\.B[IR]? " + re.escape(key) + r"\b", plain, re.M)]
    check(f"man page: documents the {len(config_keys())} configuration keys of config/keys.c", config_keys() and not missing,
          ", ".join(missing))
    commands = ["run", "replay", "status", "check-config", "dead-letter list", "dead-letter resend", "pmta-config",
                "reload", "report", "import-sincedb", "--max-behind", "RestartPreventExitStatus", "78", "acct-file", "record-fields", "world-readable",
                "--dry-run", "--since", "--until", "--from-start", "--json", "--help", "--version"]
    gone = [c for c in commands if c not in plain]
    check("man page: documents every command and option", not gone, ", ".join(gone))
    for sec in ("SYNOPSIS", "COMMANDS", "CONFIGURATION", "FILES", "SIGNALS", "EXIT STATUS", "EXAMPLES"):
        check(f"man page: section {sec}", re.search(r"^\.SH " + sec + r"\s*$", page, re.M) is not None)
    for f in ("offsets.json", "dead-letter.ndjson", "replay.json", "STATE_DIR/lock", "/etc/pmtatail/pmtatail.conf"):
        check(f"man page: FILES names {f}", f in plain)
    src = os.path.join(tmp, "pmtatail.8")
    with open(src, "w") as f:
        f.write(page)
    if have("groff"):
        r = run(["groff", "-man", "-Tutf8", "-ww", "-z", src])
        check("man page: groff -ww renders it without warnings", r.returncode == 0 and not r.stderr.strip(), r.stderr)
    else:
        note("groff not installed (groff-base): rendering not checked")
    if have("mandoc"):
        r = run(["mandoc", "-T", "lint", "-W", "warning", src])
        check("man page: mandoc -T lint", r.returncode == 0, r.stdout + r.stderr)
    if have("man"):
        r = run(["man", "-l", src], env=dict(clean_env(), MANPAGER="cat", PAGER="cat", MANWIDTH="80"))
        check("man page: man -l shows it", r.returncode == 0 and "pmtatail" in r.stdout, r.stderr)


UNIT_REQUIRED = [
    "Type=notify",
    "ExecStart=/usr/sbin/pmtatail -c /etc/pmtatail/pmtatail.conf run",
    "ExecReload=/usr/sbin/pmtatail -c /etc/pmtatail/pmtatail.conf reload",
    "ExecStartPost=-/usr/sbin/pmtatail -c /etc/pmtatail/pmtatail.conf status",
    "Restart=on-failure",
    "RestartPreventExitStatus=78",
    "RestartSec=5",
    "WatchdogSec=60",
    "User=pmtatail",
    "Group=pmtatail",
    "StateDirectory=pmtatail",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    "NoNewPrivileges=yes",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "ProtectKernelLogs=yes",
    "ProtectControlGroups=yes",
    "ProtectClock=yes",
    "ProtectHostname=yes",
    "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
    "RestrictNamespaces=yes",
    "RestrictRealtime=yes",
    "RestrictSUIDSGID=yes",
    "LockPersonality=yes",
    "MemoryDenyWriteExecute=yes",
    "SystemCallFilter=@system-service",
    "SystemCallArchitectures=native",
    "CapabilityBoundingSet=",
    "UMask=0077",
    "LimitNOFILE=65536",
    "WantedBy=multi-user.target",
]


def check_unit(root, unit_rel, tmp):
    unit = os.path.join(root, unit_rel)
    lines = [l.strip() for l in open(unit) if l.strip() and not l.lstrip().startswith("#")]
    missing = [d for d in UNIT_REQUIRED if d not in lines]
    check("unit: has the required directives", not missing, ", ".join(missing))
    check("unit: /var/log/pmta read-only",
          any(re.fullmatch(r"ReadOnlyPaths=-?/var/log/pmta", l) for l in lines))
    if not have("systemd-analyze"):
        note("systemd-analyze not installed (Debian package systemd): the unit is not verified")
        return
    # verify needs ExecStart's binary to exist: a copy pointing at the
    # extracted one. MANPATH lets it check Documentation=man:pmtatail(8)
    # against the packaged page. It reports problems on stderr but exits 0
    # for most of them, so any output is a failure.
    vdir = os.path.join(tmp, "verify")
    os.makedirs(vdir, exist_ok=True)
    copy = os.path.join(vdir, "pmtatail.service")
    with open(copy, "w") as f:
        f.write(open(unit).read().replace("/usr/sbin/pmtatail", os.path.join(root, "usr/sbin/pmtatail")))
    env = dict(clean_env(), MANPATH=os.path.join(root, "usr/share/man"), SYSTEMD_LOG_COLOR="0")
    r = run(["systemd-analyze", "verify", copy], env=env, timeout=60)
    out = (r.stdout + r.stderr).strip()
    check("unit: systemd-analyze verify (man page included) prints nothing", r.returncode == 0 and not out,
          f"exit {r.returncode}: {out}")
    r = run(["systemd-analyze", "security", "--offline=yes", "--threshold=20", "--no-pager", copy], env=env,
            timeout=60)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout + r.stderr)
    check("unit: systemd-analyze security --offline exposure <= 2.0", r.returncode == 0 and m,
          f"exit {r.returncode}: {m.group(1) if m else (r.stdout + r.stderr)[-300:]}")
    if m:
        print(f"  exposure {m.group(1)}")


# --- 5. installation ---------------------------------------------------------


def install_chrootless(deb, tmp):
    root = os.path.join(tmp, "root-chrootless")
    new_dpkg_root(root)
    dpkg = ["dpkg", f"--root={root}", "--force-not-root", "--force-depends", "--force-script-chrootless"]
    r = run(dpkg + ["-i", deb], env=clean_env())
    if not check("dpkg --root (chrootless scripts) -i", r.returncode == 0 and dpkg_status(root) == "install ok installed",
                 f"exit {r.returncode}: {r.stdout[-400:]} {r.stderr[-800:]}"):
        return
    status = open(os.path.join(root, "var/lib/dpkg/status")).read()
    check("installed: the conffile registered with its hash",
          re.search(r"^ /etc/pmtatail/pmtatail.conf [0-9a-f]{32}$", status, re.M) is not None)
    wants = os.path.join(root, "etc/systemd/system/multi-user.target.wants/pmtatail.service")
    if have("deb-systemd-helper"):
        check("installed: the unit enabled (multi-user.target.wants)", os.path.islink(wants))
    else:
        note("deb-systemd-helper not installed (init-system-helpers): enabling not checked")
    if have("systemd-sysusers"):
        pw = passwd_entry(root, "pmtatail")
        check("installed: user pmtatail in ROOT/etc/passwd (systemd-sysusers --root)",
              pw is not None and pw[5] == "/var/lib/pmtatail" and pw[6].endswith("nologin"), str(pw))
        check("installed: group pmtatail in ROOT/etc/group", group_entry(root, "pmtatail") is not None)
    else:
        note("systemd-sysusers not installed: the user in a chrootless root not checked")

    conf = os.path.join(root, "etc/pmtatail/pmtatail.conf")
    with open(conf, "a") as f:
        f.write("; edited by the administrator\n")
    r = run(dpkg + ["--force-confold", "-i", deb], env=clean_env())
    check("reinstall (upgrade path) succeeds", r.returncode == 0 and dpkg_status(root) == "install ok installed",
          r.stderr[-800:])
    check("reinstall keeps the edited conffile", "edited by the administrator" in open(conf).read())

    os.makedirs(os.path.join(root, "var/lib/pmtatail"), exist_ok=True)
    open(os.path.join(root, "var/lib/pmtatail/offsets.json"), "w").write("{}\n")
    r = run(dpkg + ["--remove", "pmtatail"], env=clean_env())
    check("dpkg --remove", r.returncode == 0, r.stderr[-800:])
    check("removed: the conffile and the state stay until purge",
          os.path.exists(conf) and os.path.exists(os.path.join(root, "var/lib/pmtatail/offsets.json")))
    check("removed: the binary is gone", not os.path.exists(os.path.join(root, "usr/sbin/pmtatail")))
    r = run(dpkg + ["--purge", "pmtatail"], env=clean_env())
    check("dpkg --purge", r.returncode == 0 and dpkg_status(root) is None, r.stderr[-800:])
    check("purged: conffile, state directory, unit symlink gone",
          not os.path.exists(conf) and not os.path.exists(os.path.join(root, "var/lib/pmtatail"))
          and not os.path.lexists(wants))
    if have("systemd-sysusers"):
        check("purged: user and group gone from ROOT",
              passwd_entry(root, "pmtatail") is None and group_entry(root, "pmtatail") is None)


CHROOT_SCRIPT = r"""
set -eu
root=$1 deb=$2 upper=$3 work=$4
mkdir -p "$root/usr" "$root/dev" "$root/run" "$root/tmp" "$root/var/lib/dpkg/info" \
  "$root/var/lib/dpkg/updates" "$root/var/log"
touch "$root/var/lib/dpkg/status" "$root/dev/null"
mount -t overlay overlay -o "lowerdir=/usr,upperdir=$upper,workdir=$work" "$root/usr"
for d in bin sbin lib lib32 lib64 libx32; do [ -L "/$d" ] && ln -s "usr/$d" "$root/$d"; done
cp -a /etc "$root/etc"
mount --bind /dev/null "$root/dev/null"
# Whatever the host has, the throw-away root starts without our user, and
# with a group pmta as on a PowerMTA host.
chroot "$root" sh -c 'userdel pmtatail 2>/dev/null; groupdel pmtatail 2>/dev/null; groupadd --system pmta 2>/dev/null; true'
dpkg --root="$root" --force-depends -i "$deb"
echo "=== installed"
dpkg --root="$root" -s pmtatail | grep '^Status:'
grep -E '^(pmtatail|pmta):' "$root/etc/passwd" "$root/etc/group" || true
chroot "$root" stat -c 'state %a %U' /var/lib/pmtatail 2>/dev/null || echo "state missing"
[ -L "$root/etc/systemd/system/multi-user.target.wants/pmtatail.service" ] && echo "enabled"
dpkg --root="$root" --force-depends --force-confold -i "$deb"
echo "=== reinstalled"
dpkg --root="$root" --purge pmtatail
echo "=== purged"
grep -E '^pmtatail:' "$root/etc/passwd" "$root/etc/group" || echo "no user"
[ -e "$root/var/lib/pmtatail" ] || echo "no state"
[ -e "$root/etc/pmtatail/pmtatail.conf" ] || echo "no conffile"
[ -L "$root/etc/systemd/system/multi-user.target.wants/pmtatail.service" ] || echo "not enabled"
"""


def install_chroot(deb, tmp):
    why = None
    if os.geteuid() != 0:
        why = "not root"
    elif not have("unshare") or not have("chroot"):
        why = "unshare or chroot missing"
    elif not os.path.islink("/bin"):
        why = "the host is not merged-/usr"
    elif not have("systemd-sysusers"):
        why = "systemd-sysusers not installed"
    else:
        probe = run(["unshare", "-m", "--propagation", "private", "true"])
        if probe.returncode != 0:
            why = "unshare -m not permitted here"
    if why:
        note(f"installation chrooted with adduser skipped: {why}")
        return
    base = os.path.join(tmp, "chroot")
    root, upper, work = (os.path.join(base, d) for d in ("root", "upper", "work"))
    for d in (root, upper, work):
        os.makedirs(d)
    r = run(["unshare", "-m", "--propagation", "private", "bash", "-c", CHROOT_SCRIPT, "chroot-install", root, deb,
             upper, work], env=clean_env(), timeout=180)
    out = r.stdout
    if "overlay" in r.stderr and "=== installed" not in out:
        note(f"installation chrooted with adduser skipped: overlayfs not available ({r.stderr.strip()[-200:]})")
        return
    if not check("dpkg --root (scripts chrooted, real adduser) -i, reinstall, purge", r.returncode == 0,
                 f"exit {r.returncode}:\n{out[-1500:]}\n{r.stderr[-1500:]}"):
        return
    installed = out.split("=== installed")[1].split("=== reinstalled")[0]
    purged = out.split("=== purged")[1]
    check("chroot: installed", "Status: install ok installed" in installed, installed)
    m = re.search(r"passwd:pmtatail:x:(\d+):(\d+):[^:]*:([^:]*):(\S*)", installed)
    check("chroot: systemd-sysusers made a system user, home /var/lib/pmtatail, no login",
          m and int(m.group(1)) < 1000 and m.group(3) == "/var/lib/pmtatail" and m.group(4).endswith("nologin"),
          installed)
    check("chroot: its own group pmtatail", re.search(r"group:pmtatail:x:\d+:", installed) is not None, installed)
    check("chroot: member of the existing group pmta",
          re.search(r"group:pmta:x:\d+:(\S*,)?pmtatail(,|$)", installed, re.M) is not None, installed)
    check("chroot: /var/lib/pmtatail is 0700 and the user's", "state 700 pmtatail" in installed, installed)
    check("chroot: the unit enabled, not started", "enabled" in installed)
    for what in ("no user", "no state", "no conffile", "not enabled"):
        check(f"chroot: purge leaves {what}", what in purged, purged)


def main():
    if os.environ.get("PMTATAIL_SANITIZED"):
        print("skip: the package test runs in the normal build only")
        return 77
    for tool in ("dpkg-deb", "dpkg", "meson", "ninja"):
        if not have(tool):
            print(f"skip: {tool} not installed")
            return 77
    before = host_identity()
    tmp = tempfile.mkdtemp(prefix="pmtatail-package-")
    try:
        deb = build(tmp)
        if not deb:
            return 1
        names = check_control(deb, tmp)
        unit_rel = check_listing(deb)
        check_control_files(deb, tmp)
        root = os.path.join(tmp, "extracted")
        r = run(["dpkg-deb", "-x", deb, root])
        if not check("dpkg-deb -x", r.returncode == 0, r.stderr):
            return 1
        check_depends_cover_libraries(root, names)
        check_binary_and_config(root, tmp)
        check_man_page(root, tmp)
        if unit_rel:
            check_unit(root, unit_rel, tmp)
        install_chrootless(deb, tmp)
        install_chroot(deb, tmp)
        check("the host's users, units and /var/lib are unchanged", host_identity() == before,
              f"{before} -> {host_identity()}")
    finally:
        if KEEP:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"{'FAILED' if failures else 'passed'}: {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
