/*
 * The daemon's log: one line per event on stderr, as text or as JSON
 * (log_format), each with a time stamp and a level. Safe from any thread:
 * each line is formatted in a local buffer and written with one write(2),
 * so lines of different threads never interleave.
 *
 * Secrets never reach the log: pass tokens through hk_log_mask() and URLs
 * (which may carry a Redis password) through hk_log_mask_url().
 *
 * Levels are the values of enum hq_log_level (hookq.h): 0 error, 1 warn,
 * 2 info, 3 debug. Lines above the level given to hk_log_init() are dropped.
 */
#ifndef HQ_LOG_H
#define HQ_LOG_H

#include <stddef.h>

#define HQ_LOGLINE_MAX 4096 /* longer lines are cut, never split */

/* Set the format (enum hq__log_format) and the highest level that is shown. */
void hk_log_init(int format, int max_level);

/* The current settings. */
int hq__log_format(void);
int hk_log_enabled(int level);

/* One line: a printf-style message. */
void hk_log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * One line with fields: `msg`, then NULL-terminated pairs of key and value
 * strings (a NULL value is skipped). Text: `msg key=value key="a b"`;
 * JSON: {"ts":..,"level":..,"msg":..,"key":"value"}.
 *     hk_log_kv(HQ_LOG_INFO, "intake listening", "addr", addr, NULL);
 */
void hk_log_kv(int level, const char *msg, ...);

/*
 * The same with the fields as a NULL-terminated array of name, value pairs
 * (a NULL value is skipped).
 *
 * Values may be any bytes (a webhook's key or customer): JSON lines stay
 * valid UTF-8 (other bytes become U+FFFD), text lines show them as \xNN.
 * In JSON, the fields pid, attempt, ms, wait_ms, seq, status, port,
 * percent, loaded_bytes, total_bytes, eta_s, jobs, leases and loop are
 * numbers when their value is a number.
 */
void hk_log_fields(int level, const char *msg, const char *const *fields);

/*
 * An hq_log_fn (hookq.h) for the library's parts: the worker, processing,
 * the intake. `arg` is the part's name (a const char *), logged as "from".
 */
void hk_log_sink(int level, const char *msg, void *arg);
/* The same as an hq_log_kv_fn (hookq.h): the fields, then "from". */
void hk_log_kv_sink(int level, const char *msg, const char *const *fields,
                    void *arg);

/*
 * "(none)" for NULL or "", else "<redacted N chars>": what a log may say
 * about a token or a secret. Writes into `buf` and returns it.
 */
const char *hk_log_mask(const char *secret, char *buf, size_t size);

/* `url` with the password replaced by "***" (redis://:***@host:6379/0). */
const char *hk_log_mask_url(const char *url, char *buf, size_t size);

/* The name of a level: "error", "warn", "info", "debug". */
const char *hk_log_level_name(int level);

#endif /* HQ_LOG_H */
