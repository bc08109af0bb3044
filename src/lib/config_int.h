/*
 * Configuration: the INI file of DESIGN §3.2 (parsed with inih), then
 * HOOKQ_<SECTION>_<KEY> environment overrides, then validation. Every error
 * names the file, the line and the key ("hookq.ini:12: [worker] lease: ...").
 * Defaults are DESIGN's.
 *
 * Every value is parsed once, when it is loaded, into the typed field below
 * that its consumers read: durations and sizes in the units the code uses
 * (ms, bytes), addresses split into host and port, secrets decoded, the
 * customer's JSON pointer split, fetch lines parsed into templates, the
 * redis url and sentinels into a store address. Nothing that reads a
 * struct hq__config parses its text again.
 */
#ifndef HQ_CONFIG_INT_H
#define HQ_CONFIG_INT_H

#include <stddef.h>
#include <stdint.h>

#include "envelope_int.h"
#include "store_int.h"

struct hq__deliver;
struct hq__sig_key;
struct hq__template;

enum hq__endpoint_mode {
    HQ_ENDPOINT_ROUTE = 0, /* method + path template, each {...} read as {} */
    HQ_ENDPOINT_URL = 1,   /* method + the concrete URL */
};

enum hq__log_format { HQ_LOG_TEXT = 0, HQ_LOG_JSON = 1 };

/* A listen address, as written and as parsed ("[::1]:80": "::1", 80). */
struct hq__listen_addr {
    char *text;          /* for messages; NULL = off ([admin] listen = off) */
    char host[256];      /* without the brackets of [V6] */
    int port;            /* 0 to 65535; 0 = any free port */
};

/* An http(s) URL under which paths are added ([api] base_url), parsed. */
struct hq__http_url {
    char *url;           /* as written, without trailing '/' */
    char *origin;        /* scheme://host:port, the circuit breaker's name of
                            it (hq__url_origin()); "" when it has none */
};

/* A list "host:port[,host:port...]" ([redis] sentinels), parsed. */
struct hq__hostport_list {
    char *text;          /* for messages; NULL = none */
    unsigned n;
    struct hq__store_seed v[HQ_SEEDS_MAX];
};

struct hq__event_cfg {
    char *code;          /* the section's name, "post-create" */
    struct hq__template **fetch; /* the fetch lines, parsed, in order */
    size_t nfetch;
    char *deliver;       /* http://..., exec:/path, log or log:FILE */
    struct hq__deliver *deliver_to; /* `deliver`, parsed (no file opened) */
    int on_failure;      /* enum hq_failure_policy; worker.on_failure if unset */
    struct hq__sig_key *secret; /* signs http deliveries; NULL = [deliver]'s */
    int64_t timeout_ms;  /* one delivery; [deliver] timeout when unset (-1) */
    int line;            /* where the section starts, for messages */
};

struct hq__config {
    char *path;          /* the file loaded; NULL = built-in defaults only */
    int log_format;      /* enum hq__log_format; top-level key log_format */
    int log_level;       /* 0 error, 1 warn, 2 info, 3 debug (enum hq_log_level
                            of hookq.h); top-level key log_level, info */

    struct {
        char *url;       /* NULL = embedded (hookq run), unless sentinels */
        struct hq__hostport_list sentinels; /* text NULL = none */
        char *sentinel_master; /* "hookq": the master's name at the Sentinels */
        char *sentinel_user;     /* NULL = AUTH the Sentinels as the default
                                    user; needs sentinel_password */
        char *sentinel_password; /* NULL = the Sentinels get no AUTH; wiped
                                    when freed; never in a message */
        /* url (or redis://127.0.0.1:6379/0) with the sentinels, their
           master and their user and password, parsed; meaningful when
           url or sentinels is set */
        struct hq__store_addr addr;
        char *ns;        /* "hookq" */
        unsigned shards; /* 1 */
        char *data_dir;  /* "./hookq-data" */
        unsigned wait_replicas;  /* 0: the intake does not WAIT */
        int64_t wait_timeout_ms; /* 500 */
    } redis;

    struct {
        struct hq__listen_addr listen; /* "127.0.0.1:8080" */
        char *path;              /* "/webhook" */
        struct hq__customer_spec customer; /* "/data/customer_id" or
                                              "header:NAME", parsed */
        size_t max_body;         /* bytes, 1 MiB */
        size_t max_header;       /* bytes, 16 KiB */
        int64_t header_timeout_ms; /* 10 s */
        int64_t idle_timeout_ms;   /* 60 s */
        int64_t max_key_depth;     /* 100000 */
        struct hq__sig_key *secret; /* NULL = no signature check */
        int64_t dedup_ttl_ms;    /* 24 h */
        unsigned threads;        /* event loops, 2 */
        unsigned max_connections; /* 1024 */
    } intake;

    struct {
        struct hq__listen_addr listen; /* "127.0.0.1:8081"; text NULL = off */
        char *token;    /* NULL = no auth */
    } admin;

    struct {
        unsigned concurrency;      /* 64 */
        unsigned threads;          /* 2 */
        int64_t lease_ms;          /* 30 s */
        int max_attempts;          /* 12 */
        int64_t backoff_min_ms;    /* 5 s */
        int64_t backoff_max_ms;    /* 1 h */
        int on_failure;            /* enum hq_failure_policy */
        int64_t shutdown_timeout_ms; /* 30 s */
    } worker;

    struct {
        struct hq__http_url base_url; /* "http://127.0.0.1:9000" */
        int rate_calls;        /* R of R/W: 2 */
        int64_t rate_window_ms; /* W of R/W: 1000 */
        int64_t margin_ms;     /* 25 */
        int endpoint;          /* enum hq__endpoint_mode */
        int64_t timeout_ms;    /* 10 s */
        char *token_command;   /* NULL = none; else an absolute path */
    } api;

    struct {
        struct hq__sig_key *secret; /* NULL = http deliveries are not signed */
        int64_t timeout_ms;    /* one http delivery or exec run: 30 s */
        int breaker;           /* consecutive failures that trip: 5; 0 = off */
        int64_t probe_min_ms;  /* while down, probe backoff: 5 s */
        int64_t probe_max_ms;  /* ... up to 1 min */
    } deliver;

    struct hq__event_cfg *events; /* one per [event CODE] section */
    size_t nevents;
};

/* The system-wide configuration, the last place a command looks. */
#define HQ_SYSTEM_CONFIG "/etc/hookq/hookq.ini"

/*
 * The file a command loads without -c (DESIGN §3.1): $HOOKQ_CONFIG of `envp`
 * (NULL: the process environment) when set and not empty, whether or not it
 * exists (a file named on purpose is never skipped); else ./hookq.ini when it
 * exists; else `system_path` when it exists; else NULL (built-in defaults).
 * Sets `*from_env` to 1 when the answer is $HOOKQ_CONFIG. The result points
 * into `envp`, to `system_path` or to static storage.
 */
const char *hq__config_find(char **envp, const char *system_path,
                            int *from_env);

/*
 * Load `path` (NULL: the file hq__config_find() names with HQ_SYSTEM_CONFIG,
 * or defaults when it names none), apply the
 * HOOKQ_* variables of `envp` (NULL: the process environment), validate.
 * On success returns 0 and stores the config in `*out`. On failure returns
 * HQ_ECONFIG (or HQ_ENOMEM/HQ_EIO) and writes every error, one per line, as
 * "FILE:LINE: [section] key: what is wrong" into `err` (NUL-terminated).
 */
int hq__config_load(const char *path, char **envp, struct hq__config **out,
                    char *err, size_t errsize);

/* Defaults only, as if no file existed. */
int hq__config_defaults(struct hq__config **out);

void hq__config_free(struct hq__config *cfg);

/*
 * The [event CODE] section for `code`, else the catch-all [event *], or
 * NULL when neither exists.
 */
const struct hq__event_cfg *hq__config_event(const struct hq__config *cfg,
                                            const char *code, size_t len);

struct hq_worker_options;

/*
 * Copy the [worker] section into `o`: concurrency, threads, lease,
 * max_attempts, backoff, on_failure and shutdown_timeout. Other fields of
 * `o` are left as they are.
 */
void hq__config_worker_options(const struct hq__config *cfg,
                               struct hq_worker_options *o);

/*
 * The unit parsers behind the key table's kinds (0 or HQ_EINVAL), for
 * inputs that are not the config, such as a command's arguments (config
 * values are parsed by hq__config_load() and read from their fields).
 */
int hq__parse_duration_ms(const char *s, int64_t *out);   /* "250ms" "30s" "1m" */
int hq__parse_size(const char *s, size_t *out);           /* "1MiB" "512B" */
int hq__parse_range_ms(const char *s, int64_t *lo, int64_t *hi); /* "1s..10m" */
int hq__parse_rate(const char *s, int *calls, int64_t *window_ms); /* "2/1s" */

/*
 * The one "host:port" parser (listen addresses: [intake] and [admin]
 * listen): "HOST:PORT" or "[V6]:PORT", a non-empty host with no blank or
 * '/' (and, unbracketed, no ':'), a decimal port up to 65535. Writes the
 * host (without brackets) into `host` and the port into `*port`: 0, or -1.
 */
int hq__addr_split(const char *v, char *host, size_t hostsize, int *port);

#endif /* HQ_CONFIG_INT_H */
