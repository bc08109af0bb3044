"""Any valid JSON in `data` (DESIGN §3.3 ★): integers beyond 64 bits, reals
beyond a double and long decimals are accepted by a real `hookq run` and
reach the delivery with their exact decimal text, byte for byte (a `log:FILE`
delivery writes the payload as it is sent); a fetch template fills a big
integer with its digits; malformed JSON around them is still 400."""
import json
import os
import re

from harness import RedisServer, Suite, processes, wait_until
from proclib import Double, Queue
from test_admin_http import Hookq

suite = Suite("exact_numbers")

NUMBERS = ["123456789012345678901234567890", "-98765432109876543210",
           "1e400", "-1.5E+999", "0.1000000000000000055511151231257827",
           "1e-400", "18446744073709551616"]


def lines(path):
    """The whole lines written so far (a line being written is left for the
    next look)."""
    try:
        with open(path, "rb") as f:
            return [l[:-1] for l in f.read().splitlines(keepends=True) if l.endswith(b"\n")]
    except FileNotFoundError:
        return []


@suite.test
def big_numbers_in_data_are_delivered_with_their_exact_text():
    with RedisServer() as rs, processes() as start:
        mock = Double(start, "mockapi", "--quiet")
        d = os.path.dirname(mock.log)
        out = os.path.join(d, "hq-exact-%d.jsonl" % mock.port)
        fout = out + ".fetch"
        hq = Hookq(start, rs, mock.url, {
            "num": ["deliver = log:" + out],
            "fetchnum": ["fetch = GET /posts/{data.id}", "deliver = log:" + fout]})
        Queue(rs.client()).set_token("acme", "tok-acme")
        texts = []
        for i, n in enumerate(NUMBERS):
            # The number's own text in the body, with blanks around it.
            body = ('{"code": "num", "data": {"customer_id": "acme", "i": %d, '
                    '"n": %s ,\n "list": [ %s ]}}' % (i, n, n))
            assert hq.post_webhook(body.encode()) == 202, n
            texts.append(n)
        big = "123456789012345678901234567890123"
        assert hq.post_webhook(('{"code":"fetchnum","data":{"customer_id":"acme",'
                                '"id":%s}}' % big).encode()) == 202
        # A big integer customer is kept as its digits.
        assert hq.post_webhook(('{"code":"num","data":{"customer_id":%s,"i":99,'
                                '"n":1}}' % big).encode()) == 202
        wait_until(lambda: len(lines(out)) >= len(NUMBERS) + 1, 20,
                   what="the deliveries")
        got = lines(out)
        assert len(got) == len(NUMBERS) + 1, got
        # Two keys (acme:num and <big>:num) run in parallel: their
        # deliveries may interleave; each key's come in its own order.
        acme = [l for l in got if json.loads(l)["customer"] == "acme"]
        assert [int(re.search(rb'"i":(\d+)', l).group(1)) for l in acme] == \
            list(range(len(NUMBERS))), acme
        for i, line in enumerate(acme):
            n = NUMBERS[i].encode()
            # Compacted, every byte of the number as sent.
            want = b'"data":{"customer_id":"acme","i":%d,"n":%s,"list":[%s]}' % (i, n, n)
            assert want in line, (want, line)
        other = [json.loads(l) for l in got if json.loads(l)["customer"] != "acme"]
        assert len(other) == 1, other
        assert other[0]["customer"] == big and other[0]["key"] == big + ":num", other
        wait_until(lambda: len(lines(fout)) >= 1, 20, what="the fetch job's delivery")
        assert any(r.get("path") == "/posts/" + big for r in mock.records()), \
            mock.records()[-3:]
        assert b'"id":%s' % big.encode() in lines(fout)[0]


@suite.test
def malformed_json_around_big_numbers_is_still_invalid_json():
    with RedisServer() as rs, processes() as start:
        hq = Hookq(start, rs, "http://127.0.0.1:9", {"num": ["deliver = log"]})
        import urllib.request
        import urllib.error

        def post(body):
            req = urllib.request.Request("http://127.0.0.1:%d/webhook" % hq.intake,
                                         data=body, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as e:
                return e.code, json.loads(e.read())

        status, ans = post(b'{"code":"num","data":{"customer_id":"a",\n'
                           b'"n":[99999999999999999999999, 1e999 x]}}')
        assert status == 400 and ans["error"] == "invalid_json", ans
        # Where the error is in the text as sent: the x is its 37th character.
        assert "line 2 column 37" in ans["detail"], ans
        for bad in (b'{"code":"num","data":[1e400', b'{"code":"num","data":01e400}',
                    b'{"code":"num","data":-}', b'{"code":"num","data":1.e5}'):
            status, ans = post(bad)
            assert status == 400 and ans["error"] == "invalid_json", (bad, ans)
        assert post(b'{"code":"num","data":{"customer_id":"a","n":1e400}}')[0] == 202


if __name__ == "__main__":
    suite.run()
