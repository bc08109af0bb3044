/*
 * The embedded Redis of `hookq run` when no [redis] url is set: a private
 * redis-server child with its data, AOF, unix socket, pid file and log in
 * data_dir, and no TCP port. Restarting hookq keeps the queue (AOF,
 * appendfsync everysec).
 *
 * Ownership of a data_dir is an flock() on data_dir/hookq.lock, held for
 * the life of the handle: a second `hookq run` on the same data_dir is
 * refused, naming the pid that holds it. A redis-server left behind by a
 * hookq that was killed (its pid file names a live redis-server) is stopped
 * first. The child leaves the terminal's process group (Ctrl-C reaches
 * hookq only, which then drains and stops Redis last) and gets SIGTERM if
 * hookq dies (PR_SET_PDEATHSIG).
 *
 * Call start before creating threads (it forks).
 */
#ifndef HQ_EMBEDDED_REDIS_H
#define HQ_EMBEDDED_REDIS_H

#include <stddef.h>
#include <sys/types.h>

struct hk_embedded_redis;

/* Names of the files in data_dir. */
#define HQ_EMBEDDED_SOCKET "redis.sock"
#define HQ_EMBEDDED_PIDFILE "redis.pid"
#define HQ_EMBEDDED_LOCK "hookq.lock"
#define HQ_EMBEDDED_LOG "redis.log"

/*
 * The absolute path of `data_dir` (relative to the working directory) in
 * `buf`. Returns 0, or -1 when it does not fit.
 */
int hk_embedded_redis_dir(const char *data_dir, char *buf, size_t size);

/*
 * The store URL of the embedded Redis of `data_dir`, "unix:///abs/redis.sock",
 * in `buf`. Returns 0, or -1 when it does not fit in a unix socket path.
 */
int hk_embedded_redis_url_of(const char *data_dir, char *buf, size_t size);

/*
 * Create data_dir (mode 0700), take its lock, start redis-server (the
 * REDIS_SERVER variable, else found in PATH, /usr/bin, /usr/sbin), and wait
 * up to `timeout_ms` until it answers PING. Returns 0 and the handle in
 * `*out`, or -1 with the reason in `err` (data_dir in use by another hookq,
 * no redis-server, it exited: with the end of its log).
 */
int hk_embedded_redis_start(const char *data_dir, int timeout_ms,
                            struct hk_embedded_redis **out, char *err,
                            size_t errsize);

/* "unix:///abs/data_dir/redis.sock"; owned by `r`. */
const char *hk_embedded_redis_url(const struct hk_embedded_redis *r);
pid_t hk_embedded_redis_pid(const struct hk_embedded_redis *r);

/*
 * 1 while redis-server runs; 0 once it exited (it is reaped then, and
 * hk_embedded_redis_stop() only releases the lock).
 */
int hk_embedded_redis_alive(struct hk_embedded_redis *r);

/*
 * Stop redis-server (SIGTERM, so it flushes the AOF; SIGKILL after
 * `timeout_ms`), release the lock and free `r`. Returns 0 when it exited by
 * itself, -1 when it had to be killed. NULL is accepted.
 */
int hk_embedded_redis_stop(struct hk_embedded_redis *r, int timeout_ms);

/*
 * Send PING over the unix socket `path`: 1 when Redis answered PONG, 0 when
 * it is loading its data (-LOADING), -1 when nothing answered.
 */
int hk_embedded_redis_ping(const char *path, int timeout_ms);

#endif /* HQ_EMBEDDED_REDIS_H */
