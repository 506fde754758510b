#!/bin/bash
# Run by scripts/boot-test.sh inside the booted container, as a oneshot
# unit: the package installed, driven through systemd, upgraded, removed and
# purged. One line per check in DIR/result ("ok: ..." or "FAIL: ...", the
# journal after a failure), "DONE" at the end.
#
#   run.sh DIR      (DIR holds prev.deb and new.deb)
#
# The output is an NDJSON file in the state directory (`[output] file`,
# acknowledged once fsync'd): every record written is looked for there by
# its rcpt, each must arrive, and (outside kill -9) arrive once.
set -u
export DEBIAN_FRONTEND=noninteractive
dir=$1
result=$dir/result
: >"$result"
conf=/etc/pmtatail/pmtatail.conf
events=/var/lib/pmtatail/events.ndjson
pmta=/var/log/pmta
failed=0
t_start=$(date +%s)

journal() {
  echo "--- journal of pmtatail.service" >>"$result"
  journalctl -b --no-pager -o short-monotonic -u pmtatail.service | tail -n 60 >>"$result"
  echo "--- systemctl status" >>"$result"
  systemctl status --no-pager pmtatail.service 2>&1 | tail -n 15 >>"$result"
  echo "---" >>"$result"
}
check() { # name, then a command (its status decides), or: check NAME -- test...
  local name=$1
  shift
  if "$@" >"$dir/last.log" 2>&1; then
    echo "ok: $name" >>"$result"
  else
    echo "FAIL: $name" >>"$result"
    failed=$((failed + 1))
    echo "--- output of: $*" >>"$result"
    tail -n 25 "$dir/last.log" >>"$result"
    journal
  fi
  cat "$dir/last.log" >>"$dir/commands.log"
}
note() { echo "note: $*" >>"$result"; }
prop() { systemctl show -p "$1" --value pmtatail.service; }
# Signal the daemon; never pid 0 (no daemon): that would be our own group.
signal_daemon() { # signal
  local pid
  pid=$(prop MainPID)
  [ -n "$pid" ] && [ "$pid" != 0 ] || { echo "no daemon to send $1 to" >>"$result"; return 1; }
  kill "-$1" "$pid"
}
# until SECONDS COMMAND...: poll every 0.2 s
until_ok() {
  local end=$(($(date +%s) + $1))
  shift
  while ! "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || return 1
    sleep 0.2
  done
}

# --- PowerMTA's side: the live files and their move-to directories --------
# Records carry a unique rcpt (rN@SOURCE.test) so that each can be found in
# the output.
next=0
header='type,timeLogged,orig,rcpt,dsnStatus,dsnDiag,bounceCat'
write() { # file, count, type
  local f=$1 n=$2 type=${3:-b} i
  [ -s "$f" ] || printf '%s\r\n' "$header" >"$f"
  for ((i = 0; i < n; i++)); do
    next=$((next + 1))
    printf '%s,%s,bounce@sender.test,r%d@%s.test,5.1.1 (bad destination mailbox address),"smtp;550 5.1.1 unknown, user",bad-mailbox\r\n' \
      "$type" "$(date +%s)" "$next" "$(basename "$f" .csv)" >>"$f"
  done
  chmod 0644 "$f"
}
written() { seq 1 "$next" | sort; }
delivered() { grep -o '"rcpt":"r[0-9]*@' "$events" 2>/dev/null | sed 's/.*"r\([0-9]*\)@/\1/' | sort; }
all_delivered() { [ "$(delivered | sort -u)" = "$(written)" ]; }
once_each() { [ "$(delivered)" = "$(written)" ]; }
mkdir -p $pmta/accounting/bounces $pmta/accounting/fbl
chmod -R 0755 $pmta
write $pmta/bounces.csv 20

# --- 1. first installation: enabled, not started -----------------------------
check "install the previous version ($(dpkg-deb -f "$dir/prev.deb" Version))" dpkg -i "$dir/prev.deb"
check "the system user pmtatail exists, no login" sh -c 'getent passwd pmtatail | grep -q ":/var/lib/pmtatail:/usr/sbin/nologin$"'
check "the unit is enabled" sh -c '[ "$(systemctl is-enabled pmtatail.service)" = enabled ]'
check "the unit is not started ([output] not configured)" sh -c '! systemctl -q is-active pmtatail.service'
check "the packaged configuration has the webhook commented out" grep -q '^; url = ' $conf

# --- 2. the packaged configuration: exit 78 and no restart loop --------------
systemctl start pmtatail.service >/dev/null 2>&1
sleep 7 # longer than RestartSec=5: a restart would have happened
check "start unconfigured: main process exit status 78 (EX_CONFIG)" sh -c '[ "$(systemctl show -p ExecMainStatus --value pmtatail.service)" = 78 ]'
check "start unconfigured: not restarted (RestartPreventExitStatus), unit failed" \
  sh -c '[ "$(systemctl show -p NRestarts --value pmtatail.service)" = 0 ] && [ "$(systemctl show -p ActiveState --value pmtatail.service)" = failed ]'
check "start unconfigured: the journal says why, once" \
  sh -c '[ "$(journalctl -b -u pmtatail.service --no-pager | grep -c "run needs an \[output\]")" = 1 ]'
systemctl reset-failed pmtatail.service

# --- 3. configured and started: READY, delivery -------------------------------
# The webhook replaced by the NDJSON file; one source to begin with, the
# packaged [source fbl] comes back with the reload below.
sed -i -e "s|^; url = .*|file = $events|" -e '/^\[source fbl\]/,/^\[output\]/{/^\[output\]/!d}' $conf
echo "; edited by the administrator" >>$conf
# A short watchdog and restart delay, to see both within seconds.
mkdir -p /etc/systemd/system/pmtatail.service.d
cat >/etc/systemd/system/pmtatail.service.d/boot-test.conf <<'EOF'
[Service]
WatchdogSec=3s
RestartSec=1s
TimeoutAbortSec=5s
EOF
systemctl daemon-reload
check "systemctl start (Type=notify: returns at READY=1)" systemctl start pmtatail.service
check "READY reached: active (running)" sh -c '[ "$(systemctl show -p ActiveState,SubState --value pmtatail.service | tr "\n" " ")" = "active running " ]'
check "the first 20 records delivered" until_ok 20 all_delivered
check "STATUS= shows what it does" sh -c 'systemctl show -p StatusText --value pmtatail.service | grep -q delivered'
write $pmta/bounces.csv 10
check "10 more delivered, each once" until_ok 20 once_each

# --- 4. upgrade from the previous version ---------------------------------------
pid_before=$(prop MainPID)
# --force-confold as apt is told on unattended hosts: when the packaged
# configuration changed too, the edited one is kept (else dpkg would ask).
check "upgrade to $(dpkg-deb -f "$dir/new.deb" Version)" dpkg -i --force-confold "$dir/new.deb" </dev/null
check "upgrade: the package is the new version" sh -c "[ \"\$(dpkg-query -W -f='\${Version}' pmtatail)\" = \"$(dpkg-deb -f "$dir/new.deb" Version)\" ]"
check "upgrade: the edited conffile kept" grep -q '^; edited by the administrator' $conf
check "upgrade: the running daemon restarted on the new binary" \
  until_ok 20 sh -c "[ \"\$(systemctl show -p MainPID --value pmtatail.service)\" != $pid_before ] && systemctl -q is-active pmtatail.service"
check "upgrade: offsets kept (the new process resumes at a saved offset, nothing resent)" \
  sh -c "journalctl -b -u pmtatail.service --no-pager _PID=\$(systemctl show -p MainPID --value pmtatail.service) | grep -q 'resuming file=.*offset=[1-9]' && sleep 1 && [ \"\$(grep -c . $events)\" = 30 ]"
write $pmta/bounces.csv 5
check "after the upgrade: new records delivered from the kept offsets, each once" until_ok 20 once_each

# --- 5. rotation (PowerMTA's move-to) -----------------------------------------------
write $pmta/bounces.csv 5
mv $pmta/bounces.csv $pmta/accounting/bounces/bounces-2026-12-01-1300.csv
write $pmta/bounces.csv 5
check "a rotation followed: the moved file's tail and the new file delivered, each once" until_ok 20 once_each
check "the journal carries the rotation line" \
  until_ok 10 sh -c 'journalctl -b -u pmtatail.service --no-pager | grep -q "rotated file=.*source=bounces"'

# --- 6. reload after adding a source ---------------------------------------------------
write $pmta/fbl.csv 4 f
cat >>$conf <<EOF

[source fbl]
path = $pmta/fbl.csv
archive_dir = $pmta/accounting/fbl
records = f
EOF
pid_before=$(prop MainPID)
check "systemctl reload (ExecReload=pmtatail reload)" systemctl reload pmtatail.service
check "reload: same process, active" sh -c "[ \"\$(systemctl show -p MainPID --value pmtatail.service)\" = $pid_before ] && systemctl -q is-active pmtatail.service"
check "reload: the journal shows the new configuration (2 sources)" \
  sh -c 'journalctl -b -u pmtatail.service --no-pager | grep -q "running sources=2"'
write $pmta/bounces.csv 3
check "reload: the new source delivered, no record lost or doubled" until_ok 20 once_each
check "pmtatail status: healthy (exit 0)" pmtatail status

# --- 7. the watchdog --------------------------------------------------------------------
w1=$(prop WatchdogTimestampMonotonic)
sleep 2.5
w2=$(prop WatchdogTimestampMonotonic)
check "watchdog pings arrive (WatchdogSec=3s: timestamp $w1 -> $w2)" test "$w2" -gt "$w1"
pid_before=$(prop MainPID)
restarts=$(prop NRestarts)
signal_daemon STOP
check "a SIGSTOP'd daemon is restarted by systemd (watchdog timeout)" \
  until_ok 30 sh -c "[ \"\$(systemctl show -p NRestarts --value pmtatail.service)\" -gt $restarts ] && systemctl -q is-active pmtatail.service"
check "the journal names the watchdog timeout" \
  sh -c 'journalctl -b -u pmtatail.service --no-pager | grep -qi "watchdog timeout"'
write $pmta/bounces.csv 3
check "after the watchdog restart: delivered, nothing lost" until_ok 20 all_delivered

# --- 8. kill -9 --------------------------------------------------------------------------
restarts=$(prop NRestarts)
write $pmta/bounces.csv 200
signal_daemon KILL
write $pmta/bounces.csv 20
check "kill -9: restarted (Restart=on-failure)" \
  until_ok 20 sh -c "[ \"\$(systemctl show -p NRestarts --value pmtatail.service)\" -gt $restarts ] && systemctl -q is-active pmtatail.service"
check "kill -9: no record lost" until_ok 30 all_delivered
note "records written $next, events delivered $(grep -c . $events) (repeats after kill -9: $(($(grep -c . $events) - next)))"

# --- 9. stop, hardening -----------------------------------------------------------------------
check "systemctl stop" systemctl stop pmtatail.service
check "stop: the daemon exited 0" sh -c '[ "$(systemctl show -p ExecMainStatus --value pmtatail.service)" = 0 ] && [ "$(systemctl show -p Result --value pmtatail.service)" = success ]'
exposure=$(systemd-analyze security --no-pager pmtatail.service 2>&1 | sed -n 's/.*Overall exposure level for pmtatail.service: \([0-9.]*\).*/\1/p')
note "systemd-analyze security: exposure ${exposure:-unknown}"
check "systemd-analyze security: exposure <= 1.5" awk -v e="${exposure:-99}" 'BEGIN { exit !(e <= 1.5) }'

# --- 10. remove, purge ---------------------------------------------------------------------------
systemctl start pmtatail.service
check "remove" dpkg -r pmtatail
check "remove: the daemon stopped, the binary gone" sh -c '! systemctl -q is-active pmtatail.service && [ ! -e /usr/sbin/pmtatail ]'
check "remove: the conffile and the state stay" sh -c "[ -f $conf ] && [ -f /var/lib/pmtatail/offsets.json ]"
check "purge" dpkg -P pmtatail
check "purge: state directory, conffile, user and group gone" \
  sh -c "[ ! -e /var/lib/pmtatail ] && [ ! -e $conf ] && ! getent passwd pmtatail && ! getent group pmtatail"
check "purge: the unit no longer enabled" sh -c '[ ! -e /etc/systemd/system/multi-user.target.wants/pmtatail.service ]'

note "checks inside the container took $(($(date +%s) - t_start)) s"
echo DONE >>"$result"
sync
exit 0
