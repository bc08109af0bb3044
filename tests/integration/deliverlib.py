"""Helpers of the delivery tests (test_deliver.py, test_breaker.py): a real
`hookq run` (intake, workers, admin listener) on a redis-server of the
harness, configured section by section, and what to read from it: its
stderr log, `hookq stats --json`, /metrics, and the CLI."""
import base64
import hashlib
import hmac
import json
import os
import subprocess
import tempfile
import urllib.error
import urllib.request

from harness import HOOKQ, free_port, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
INTEROP = os.path.join(HERE, "..", "interop")


class Run:
    """`hookq run -c FILE` where FILE has [redis] url = rs, an intake and an
    admin listener on free ports, `sections` ({"worker": ["k = v", ...]})
    and `events` ({code: ["deliver = ...", ...]})."""

    def __init__(self, start, rs, events, sections=None):
        self.intake = free_port()
        self.admin = free_port()
        self.dir = tempfile.mkdtemp(prefix="hq-deliver-")
        lines = ["[redis]", "url = " + rs.url, "",
                 "[intake]", "listen = 127.0.0.1:%d" % self.intake, "",
                 "[admin]", "listen = 127.0.0.1:%d" % self.admin, ""]
        for name, body in (sections or {}).items():
            lines += ["[%s]" % name] + body + [""]
        for code, body in events.items():
            lines += ["[event %s]" % code] + body + [""]
        self.cfg = os.path.join(self.dir, "hookq.ini")
        with open(self.cfg, "w") as f:
            f.write("\n".join(lines))
        self.errlog = os.path.join(self.dir, "stderr.log")
        self.proc = start([HOOKQ, "run", "-c", self.cfg], cwd=self.dir,
                          stdout=open(os.path.join(self.dir, "stdout.log"), "w"),
                          stderr=open(self.errlog, "w"))
        wait_until(self._up, 20, what="hookq run's admin listener")

    def _up(self):
        if not self.proc.alive():
            raise AssertionError("hookq run exited: " + self.log())
        try:
            return self.http("GET", self.admin, "/healthz")[0] == 200
        except OSError:
            return False

    def log(self):
        with open(self.errlog) as f:
            return f.read()

    def http(self, method, port, path, body=None, headers=None):
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=data,
                                     method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def post(self, customer, code, data):
        """POST a webhook to the intake: (status, answer as JSON)."""
        d = dict(data)
        d["customer_id"] = customer
        status, text = self.http("POST", self.intake, "/webhook", {"code": code, "data": d})
        return status, json.loads(text)

    def stats(self):
        out = subprocess.run([HOOKQ, "stats", "--json", "-c", self.cfg], capture_output=True,
                             text=True, timeout=20)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def target(self, name):
        """The stats entry of target `name`, or None."""
        for t in self.stats()["targets"]:
            if t["target"] == name:
                return t
        return None

    def target_up_metric(self, name):
        """hookq_target_up{target="name"} from /metrics, or None."""
        status, text = self.http("GET", self.admin, "/metrics")
        assert status == 200, text
        want = 'hookq_target_up{target="%s"} ' % name
        for line in text.splitlines():
            if line.startswith(want):
                return float(line[len(want):])
        return None

    def cli(self, *args, **kw):
        return subprocess.run([HOOKQ] + list(args) + ["-c", self.cfg], capture_output=True,
                              text=True, timeout=20, **kw)


def python_verify(secret, msg_id, timestamp, raw, signature):
    """Standard Webhooks verification with Python's hmac, as a receiver
    would write it: HMAC-SHA256 of "id.timestamp.body" under the base64 key
    after "whsec_", compared with each "v1,<base64>" of the header."""
    key = base64.b64decode(secret[len("whsec_"):] if secret.startswith("whsec_") else secret)
    signed = ("%s.%s." % (msg_id, timestamp)).encode() + raw.encode("utf-8")
    want = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(want, s) for s in signature.split(" "))


def node_verify(secret, deliveries):
    """The npm `standardwebhooks` verifier (tests/interop) on each delivery
    (sink records): a list of (ok, id or error)."""
    inst = subprocess.run([os.path.join(INTEROP, "install")], capture_output=True, text=True,
                          timeout=300)
    assert inst.returncode == 0, "tests/interop/install failed: " + inst.stderr
    doc = {"secret": secret, "deliveries": [
        {"raw": d["raw"], "headers": {"webhook-id": d["webhook_id"],
                                      "webhook-timestamp": d["webhook_timestamp"],
                                      "webhook-signature": d["webhook_signature"]}}
        for d in deliveries]}
    path = tempfile.NamedTemporaryFile(prefix="hq-sw-", suffix=".json", delete=False).name
    with open(path, "w") as f:
        json.dump(doc, f)
    env = dict(os.environ, NODE_PATH=os.path.join(INTEROP, ".node", "node_modules"))
    out = subprocess.run(["node", os.path.join(INTEROP, "verify_standardwebhooks.js"), path],
                         capture_output=True, text=True, timeout=60, env=env)
    os.unlink(path)
    res = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(res) == len(deliveries), (out.stdout, out.stderr)
    return [(r["ok"], r.get("id") if r["ok"] else r["error"]) for r in res]
