"""The Debian package, installed where nothing else is (DESIGN §4, issue 11).

Builds the packages with tools/build-deb (lintian included: an error fails
it), unpacks a clean Debian 12 root (debootstrap --variant=minbase, cached
as a tarball like /work/shared/tools/fresh-check does) and, chrooted in it:
`dpkg -i hookq_*.deb` then `apt-get -f install` (the dependencies from the
archive); `hookq check` names /etc/hookq/hookq.ini and passes on it as
shipped; `hookq --version`; `man -w` finds both man pages; `systemd-analyze
verify` passes on the installed units; the hookq system user and
/var/lib/hookq exist; then `hookq run`, as the hookq user, with the
shipped configuration plus one event, answers a webhook 202 and delivers it,
and drains on SIGTERM. Finally `dpkg --purge` leaves nothing of hookq
behind but the system user (Debian keeps system users): the root's files
are the same as after an install and purge that never ran hookq.
Then, in a second root, systemd itself (systemd-nspawn --boot) runs
hookq.service and hookq-work.service: READY, the hardening, a webhook,
the stop, the watchdog.

Label `long` (make test-long, .ci/run): it builds the package and installs
packages from the archive. Needs root (chroot, mount), dpkg-buildpackage,
lintian and debootstrap (and systemd-nspawn for the second part: tools/
install-deps deb); without them it says "skipped: no ..." and passes.
Knobs: HQ_DEB_DIR=dir of already built .debs (skips the build);
HQ_DEB_ROOT_TAR=a Debian 12 root tarball to use.
"""
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

from harness import Suite, free_port, wait_until

suite = Suite("deb")
SRC = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
FRESH_TAR = os.environ.get("FRESH_ROOT", "/var/tmp/hookq-fresh-root") + ".tar"
OWN_TAR = "/var/tmp/hookq-deb-test-root.tar"


def missing_tools():
    if os.geteuid() != 0:
        return "root (chroot and mount need it)"
    for tool in ("dpkg-buildpackage", "lintian", "debootstrap", "chroot"):
        if shutil.which(tool) is None:
            return tool + " (tools/install-deps deb)"
    return None


def root_tarball():
    """A clean Debian 12 (bookworm) minbase root, as a tarball."""
    for t in (os.environ.get("HQ_DEB_ROOT_TAR"), FRESH_TAR, OWN_TAR):
        if t and os.path.exists(t):
            return t
    mirror = ""
    try:
        with open("/etc/apt/sources.list.d/debian.sources") as f:
            for line in f:
                if line.startswith("URIs:"):
                    mirror = line.split(":", 1)[1].split()[0]
                    break
    except OSError:
        pass
    base = tempfile.mkdtemp(prefix="hq-debootstrap-", dir="/var/tmp")
    try:
        subprocess.run(["debootstrap", "--variant=minbase", "bookworm", base] +
                       ([mirror] if mirror else []), check=True,
                       stdout=subprocess.DEVNULL, timeout=1200)
        if os.path.exists("/etc/apt/sources.list.d/debian.sources"):
            shutil.copy("/etc/apt/sources.list.d/debian.sources",
                        base + "/etc/apt/sources.list.d/")
            if os.path.exists(base + "/etc/apt/sources.list"):
                os.unlink(base + "/etc/apt/sources.list")
        tmp = OWN_TAR + ".%d" % os.getpid()
        subprocess.run(["tar", "-C", base, "-cf", tmp, "."], check=True)
        os.rename(tmp, OWN_TAR)  # atomic: a parallel run sees all or nothing
    finally:
        subprocess.run(["rm", "-rf", "--one-file-system", base])
    return OWN_TAR


class Chroot:
    """A Debian 12 root unpacked from the tarball, with /proc and /dev
    mounted; unmounted and removed on exit (never across a mount)."""

    def __init__(self, tarball):
        self.root = tempfile.mkdtemp(prefix="hq-deb-root-", dir="/var/tmp")
        self.mounts = []
        subprocess.run(["tar", "-C", self.root, "-xf", tarball], check=True)
        shutil.copy("/etc/resolv.conf", self.root + "/etc/resolv.conf")
        for args, target in ((["-t", "proc", "proc"], "proc"), (["--bind", "/dev"], "dev"),
                             (["-t", "sysfs", "sysfs"], "sys")):
            subprocess.run(["mount"] + args + [os.path.join(self.root, target)], check=True)
            self.mounts.append(os.path.join(self.root, target))

    def sh(self, cmd, check=True, timeout=600, user=None):
        """Run `cmd` with bash in the root; returns the CompletedProcess."""
        argv = ["chroot", self.root, "/usr/bin/env", "-i", "HOME=/root", "LANG=C.UTF-8",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "DEBIAN_FRONTEND=noninteractive", "bash", "-c", cmd]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError("in the root: %s\nexit %d\nstdout: %s\nstderr: %s" %
                                 (cmd, r.returncode, r.stdout[-3000:], r.stderr[-3000:]))
        return r

    def path(self, p):
        return os.path.join(self.root, p.lstrip("/"))

    def unmount(self):
        for m in reversed(self.mounts):
            subprocess.run(["umount", "-l", m])
        left = [m for m in self.mounts if os.path.ismount(m)]
        self.mounts = left
        return not left

    def close(self):
        if not self.unmount():
            print("warning: %s still has mounts; left in place" % self.root)
            return
        subprocess.run(["rm", "-rf", "--one-file-system", self.root])


# What a purge may leave that is not hookq's: logs and the package manager's
# own records. Everything else must be as before.
LISTING = ("find / -xdev \\( -path /proc -o -path /sys -o -path /dev -o -path /tmp "
           "-o -path /var/log -o -path /var/cache -o -path /var/lib/apt "
           "-o -path /var/lib/dpkg -o -path /run \\) -prune -o -print | sort")


_built = {}


def hookq_deb():
    """The hookq .deb of this tree, built once for both tests (lintian has
    passed on it: build-deb fails on an E:)."""
    if "deb" not in _built:
        debdir = os.environ.get("HQ_DEB_DIR")
        if not debdir:
            work = tempfile.mkdtemp(prefix="hq-deb-build-", dir="/var/tmp")
            _built["work"] = work
            r = subprocess.run([os.path.join(SRC, "tools", "build-deb"), work],
                               capture_output=True, text=True, timeout=1500, cwd=SRC)
            assert r.returncode == 0, "build-deb failed:\n" + r.stdout[-3000:] + r.stderr[-3000:]
            debdir = os.path.join(work, "deb")
        debs = glob.glob(os.path.join(debdir, "hookq_*_*.deb"))
        assert len(debs) == 1, os.listdir(debdir)
        lint = os.path.join(debdir, "lintian.txt")
        if os.path.exists(lint):
            with open(lint) as f:
                report = f.read()
            assert not [l for l in report.splitlines() if l.startswith("E:")], report
            print("lintian:\n" + report)
        print("dpkg -c %s:\n%s" % (os.path.basename(debs[0]),
                                   subprocess.run(["dpkg", "-c", debs[0]], capture_output=True,
                                                  text=True).stdout))
        _built["deb"] = debs[0]
    return _built["deb"]


def install(root, deb):
    """dpkg -i, then apt-get -f install, as an operator would."""
    shutil.copy(deb, root.path("/root/hookq.deb"))
    root.sh("apt-get update -q", timeout=300)
    # dpkg -i fails on the missing dependencies; apt-get -f install brings
    # them and configures hookq.
    root.sh("dpkg -i /root/hookq.deb", check=False)
    root.sh("apt-get -f install -y -q", timeout=900)
    st = root.sh("dpkg-query -W -f='${Status}' hookq").stdout
    assert st == "install ok installed", st


@suite.test
def the_package_installs_runs_and_purges_on_a_clean_debian_12():
    why = missing_tools()
    if why:
        print("skipped: no " + why)
        return
    root = None
    try:
        deb = hookq_deb()
        root = Chroot(root_tarball())
        install(root, deb)
        # man-db is no dependency (Debian's man pages never pull it in).
        root.sh("apt-get install -y -q --no-install-recommends man-db", timeout=600)

        # Install and purge once without running anything: the baseline.
        root.sh("dpkg --purge hookq")
        before = root.sh(LISTING).stdout
        root.sh("dpkg -i /root/hookq.deb")

        # What it ships and makes.
        r = root.sh("cd / && hookq check")
        assert r.stdout == "ok: /etc/hookq/hookq.ini: 0 events\n", r
        version = os.path.basename(deb).split("_")[1]
        assert root.sh("hookq --version").stdout == "hookq %s\n" % version
        assert root.sh("man -w hookq").stdout.strip() == "/usr/share/man/man1/hookq.1.gz"
        assert root.sh("man -w 5 hookq.ini").stdout.strip() == "/usr/share/man/man5/hookq.ini.5.gz"
        r = root.sh("systemd-analyze verify /lib/systemd/system/hookq.service "
                    "/lib/systemd/system/hookq-serve.service /lib/systemd/system/hookq-work.service")
        assert r.stderr.strip() == "", r.stderr
        conff = root.sh("dpkg-query -W -f='${Conffiles}' hookq").stdout
        assert "/etc/hookq/hookq.ini" in conff, conff
        uid = int(root.sh("id -u hookq").stdout)
        assert 0 < uid < 1000, uid  # a system user
        assert root.sh("stat -c '%U:%G %a' /var/lib/hookq").stdout.strip() == "hookq:hookq 700"
        assert "/usr/sbin/nologin" in root.sh("getent passwd hookq").stdout
        # The configuration may hold secrets: root and the hookq group only.
        assert root.sh("stat -c '%U:%G %a' /etc/hookq/hookq.ini").stdout.strip() == "root:hookq 640"

        # hookq run as the hookq user, on the shipped config plus an event.
        with open(root.path("/etc/hookq/hookq.ini"), "a") as f:
            f.write("\n[event post-create]\ndeliver = log:/var/lib/hookq/out.log\n")
        ip, ap = free_port(), free_port()
        p = subprocess.Popen(
            ["chroot", root.root, "/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
             "HOOKQ_INTAKE_LISTEN=127.0.0.1:%d" % ip, "HOOKQ_ADMIN_LISTEN=127.0.0.1:%d" % ap,
             "setpriv", "--reuid=hookq", "--regid=hookq", "--init-groups",
             "sh", "-c", "cd /var/lib/hookq && exec hookq run"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            def healthy():
                try:
                    with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % ap, timeout=2) as r:
                        return r.status == 200
                except OSError:
                    assert p.poll() is None, "hookq run exited: " + p.stderr.read()
                    return False
            wait_until(healthy, 60, interval=0.2, what="hookq run's /healthz")
            req = urllib.request.Request(
                "http://127.0.0.1:%d/webhook" % ip, method="POST",
                data=b'{"code":"post-create","data":{"customer_id":"acme","n":1}}')
            with urllib.request.urlopen(req, timeout=10) as r:
                assert r.status == 202, r.status
            out = root.path("/var/lib/hookq/out.log")
            wait_until(lambda: os.path.exists(out) and '"acme:post-create"' in open(out).read(),
                       30, interval=0.2, what="the delivery in out.log")
            owner = root.sh("stat -c %U /var/lib/hookq/redis.sock /var/lib/hookq/out.log").stdout
            assert owner.split() == ["hookq", "hookq"], owner
            p.send_signal(signal.SIGTERM)
            assert p.wait(60) == 0, p.stderr.read()
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()

        # Purge: nothing of hookq is left but its system user.
        root.sh("dpkg --purge hookq")
        os.unlink(root.path("/root/hookq.deb"))
        # (/var/cache/man: man-db's formatted pages, its own cache.)
        left = root.sh("find / -xdev \\( -path /proc -o -path /sys -o -path /dev "
                       "-o -path /var/cache/man \\) -prune -o -name '*hookq*' -print").stdout
        assert left.strip() == "", "left after purge:\n" + left
        after = root.sh(LISTING).stdout
        before = before.replace("/root/hookq.deb\n", "")
        gone = sorted(set(before.splitlines()) - set(after.splitlines()))
        new = sorted(set(after.splitlines()) - set(before.splitlines()))
        assert not new and not gone, "purge differs from a clean purge: new %r, gone %r" % (new, gone)
        assert root.sh("getent passwd hookq", check=False).returncode == 0  # kept, as Debian does
    finally:
        if root is not None:
            root.close()


# Run by systemd as PID 1 in the container once hookq.service is up (it is
# Type=notify: After= waits for READY=1); writes KEY=VALUE lines and what it
# saw to /root/check.txt, then powers the container off.
CHECK = r"""#!/bin/bash
exec > /root/check.txt 2>&1
show() { systemctl show "$1" -p ActiveState,SubState,Result,NRestarts,StatusText | sed "s/^/$2/"; }
show hookq.service up_
exec 3<>/dev/tcp/127.0.0.1/8080
body='{"code":"post-create","data":{"customer_id":"acme"}}'
printf 'POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' ${#body} "$body" >&3
echo "webhook=$(head -n 1 <&3 | tr -d '\r')"
exec 3<&-
for i in $(seq 50); do [ -s /var/lib/hookq/out.log ] && break; sleep 0.1; done
echo "delivered=$(grep -c '"key":"acme:post-create"' /var/lib/hookq/out.log)"
echo "owner=$(stat -c %U /proc/$(systemctl show -p MainPID --value hookq))"
systemctl stop hookq
show hookq.service stopped_
echo "left=$(pgrep -u hookq | wc -l)"
# hookq-work next to it (its own admin port), with a watchdog of 2 s: it
# must stay up without a restart for 6 s, so WATCHDOG=1 keeps coming.
systemctl start hookq
mkdir -p /etc/systemd/system/hookq-work.service.d
printf '[Service]\nEnvironment=HOOKQ_ADMIN_LISTEN=127.0.0.1:8082\nWatchdogSec=2s\n' \
    > /etc/systemd/system/hookq-work.service.d/test.conf
systemctl daemon-reload
systemctl start hookq-work
sleep 6
show hookq-work.service work_
systemctl stop hookq-work hookq
echo "== journal"
journalctl --no-pager -u hookq -u hookq-work | tail -n 40
systemctl poweroff
"""


@suite.test
def hookq_service_runs_under_systemd():
    """Boot the installed root with systemd-nspawn: hookq.service starts
    (READY=1) as the hookq user with all its hardening, takes a webhook,
    delivers it, stops cleanly (drain, embedded Redis last) with no process
    left; hookq-work.service with WatchdogSec=2s stays up."""
    why = missing_tools() or (None if shutil.which("systemd-nspawn") else
                              "systemd-nspawn (tools/install-deps deb: systemd-container)")
    if why:
        print("skipped: no " + why)
        return
    root = None
    try:
        deb = hookq_deb()
        root = Chroot(root_tarball())
        install(root, deb)
        root.sh("apt-get install -y -q --no-install-recommends procps", timeout=600)
        with open(root.path("/etc/hookq/hookq.ini"), "a") as f:
            f.write("\n[event post-create]\ndeliver = log:/var/lib/hookq/out.log\n")
        with open(root.path("/root/check.sh"), "w") as f:
            f.write(CHECK)
        os.chmod(root.path("/root/check.sh"), 0o755)
        with open(root.path("/etc/systemd/system/hq-check.service"), "w") as f:
            f.write("[Unit]\nAfter=hookq.service\n"
                    "[Service]\nType=oneshot\nExecStart=/root/check.sh\n")
        os.symlink("/etc/systemd/system/hq-check.service",
                   root.path("/etc/systemd/system/multi-user.target.wants/hq-check.service"))
        assert root.unmount()
        # --private-network: the container's own loopback, so the shipped
        # ports (8080, 8081) cannot be taken by the host's processes.
        # --keep-unit --register=no: no systemd needed on the host.
        subprocess.run(["systemd-nspawn", "-q", "-D", root.root, "--register=no", "--keep-unit",
                        "--private-network", "-b"], capture_output=True, text=True, timeout=300)
        with open(root.path("/root/check.txt")) as f:
            out = f.read()
        print(out)
        got = dict(l.split("=", 1) for l in out.splitlines() if "=" in l and not l.startswith(" "))
        assert got.get("up_ActiveState") == "active" and got.get("up_SubState") == "running", out
        assert got.get("up_StatusText", "").startswith("run: intake http://127.0.0.1:8080/webhook"), out
        assert got.get("webhook") == "HTTP/1.1 202 Accepted", out
        assert got.get("delivered") == "1", out
        assert got.get("owner") == "hookq", out
        assert got.get("stopped_Result") == "success" and got.get("stopped_ActiveState") == "inactive", out
        assert got.get("left") == "0", out  # the embedded redis-server is gone too
        assert "embedded redis stopped" in out and "draining signal=SIGTERM" in out, out
        assert got.get("work_ActiveState") == "active" and got.get("work_NRestarts") == "0", out
        assert "watchdog timeout" not in out, out
    finally:
        if root is not None:
            root.close()
        if "work" in _built:
            subprocess.run(["rm", "-rf", "--one-file-system", _built["work"]])


if __name__ == "__main__":
    suite.run()
