"""`make install` gives a usable C library: the header, libhookq (shared
and static) and hookq.pc (and the man pages); a program built with `pkg-config --cflags --libs
hookq` links against it and pushes a job to a real redis-server."""
import os
import subprocess
import tempfile

from harness import RedisServer, Suite

suite = Suite("install")
PROGRAM = r"""
#include <hookq/hookq.h>
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv)
{
    struct hq_store_options so = {.url = argv[1]};
    struct hq_push p = {"acme", 4, "post-create", 11, "{}", 2, NULL, 0};
    struct hq_push_result res;
    hq_client *c;
    if (hq_client_new(&so, &c) != HQ_OK || hq_client_push(c, &p, NULL, &res) != HQ_OK) {
        fprintf(stderr, "%s\n", hq_client_errmsg(c));
        return 1;
    }
    printf("%s %d %lld\n", hq_version(), res.status, (long long)res.seq);
    hq_client_free(c);
    return 0;
}
"""


@suite.test
def an_installed_hookq_builds_and_runs_a_client_program():
    build = os.environ["HQ_BUILD_DIR"]
    with tempfile.TemporaryDirectory(prefix="hq-install-") as d:
        prefix = os.path.join(d, "prefix")
        subprocess.run(["cmake", "--install", build, "--prefix", prefix], check=True,
                       stdout=subprocess.DEVNULL)
        for f in ("include/hookq/hookq.h", "lib/libhookq.a", "lib/pkgconfig/hookq.pc", "bin/hookq",
                  # scdoc is installed by tools/install-deps test.
                  "share/man/man1/hookq.1", "share/man/man5/hookq.ini.5"):
            assert os.path.exists(os.path.join(prefix, f)), f
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(prefix, "lib", "pkgconfig"))
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "hookq"], env=env,
                               check=True, capture_output=True, text=True).stdout.split()
        src = os.path.join(d, "use.c")
        with open(src, "w") as f:
            f.write(PROGRAM)
        exe = os.path.join(d, "use")
        # Sanitizer builds need the runtime of the library's build.
        san = [a for a in os.environ.get("HQ_SANITIZE_FLAGS", "").split() if a]
        subprocess.run(["cc", src, "-o", exe] + flags + san, check=True)
        with RedisServer() as srv:
            out = subprocess.run([exe, srv.url], capture_output=True, text=True, timeout=30,
                                 env=dict(os.environ, LD_LIBRARY_PATH=os.path.join(prefix, "lib")))
            assert out.returncode == 0, out.stderr
            version, status, seq = out.stdout.split()
            assert status == "0" and seq == "1"
            assert srv.client().llen("{hookq:0}:q:acme:post-create") == 1


if __name__ == "__main__":
    suite.run()
