"""The C client's push path (hq_client_push_many through pushjobs) against a
real redis-server: per-key order and seq, the depth cap, and a clear error
when Redis is unreachable."""
import json
import subprocess

from harness import RedisServer, Suite, free_port, helper

P = "{hookq:0}:"
suite = Suite("client")


def push(url, *spec, extra=()):
    out = subprocess.run([helper("pushjobs"), "--url", url, *extra, *spec],
                         capture_output=True, text=True, timeout=120)
    return out


@suite.test
def pipelined_pushes_keep_each_keys_order_and_seq():
    with RedisServer() as srv:
        out = push(srv.url, "@50:e*40", extra=["--interleave", "--batch", "64"])
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["stored"] == 2000
        r = srv.client()
        for k in range(50):
            recs = r.lrange(P + "q:c%d:e" % k, 0, -1)
            seqs = [int(x.split(b"\n")[1]) for x in recs]
            ns = [json.loads(x.split(b"\n", 4)[4])["n"] for x in recs]
            assert seqs == list(range(1, 41)) and ns == seqs
        assert r.llen(P + "rc") == 50


@suite.test
def depth_cap_refuses_the_rest():
    with RedisServer() as srv:
        out = push(srv.url, "a:e*10", extra=["--depth", "4"])
        assert json.loads(out.stdout) ["full"] == 6
        assert srv.client().llen(P + "q:a:e") == 4


@suite.test
def scripts_are_sent_again_after_script_flush():
    with RedisServer() as srv:
        assert push(srv.url, "a:e*3").returncode == 0
        srv.client().script_flush()
        out = push(srv.url, "a:e*3", extra=["--batch", "3"])
        assert out.returncode == 0, out.stderr
        assert srv.client().llen(P + "q:a:e") == 6


@suite.test
def shards_spread_customers_over_hash_tags():
    with RedisServer() as srv:
        assert push(srv.url, "@40:e*1", extra=["--shards", "4"]).returncode == 0
        r = srv.client()
        used = [s for s in range(4) if r.exists("{hookq:%d}:rc" % s)]
        assert len(used) >= 3, used


@suite.test
def unreachable_redis_is_a_clear_error():
    port = free_port()
    out = push("redis://127.0.0.1:%d/0" % port, "a:e*1")
    assert out.returncode == 1
    assert "cannot connect to redis at '127.0.0.1:%d'" % port in out.stderr, out.stderr


if __name__ == "__main__":
    suite.run()
