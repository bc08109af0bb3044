/*
 * The operator's commands: stats, keys, peek, hold, release, dlq, token
 * (DESIGN §3.1, docs/operations.md). Each is a thin layer over the
 * administration calls of include/hookq/hookq.h: parse the arguments, open
 * a client on the configured Redis, call, print for humans (aligned
 * columns) or, with --json, the JSON documents of the admin API.
 *
 * Exit status: 0 ok; 1 runtime failure (Redis down, an unknown key or dead
 * letter, a key that is not held); 2 usage (missing or bad arguments) or
 * configuration (a [redis] shards that differs from the namespace's).
 * Errors go through hk_cli_error(): one line on stderr, JSON with --json.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "common_int.h"

#define EXIT_USAGE 2

/* The command running (one per process): where its errors go. */
static struct hk_cli *cli_;
/* With --json, the first usage problem, reported by usage() as one object. */
static char usage_detail[1024];

static void
begin(struct hk_cli *cli, char **argv)
{
    cli_ = cli;
    cli->cmd = argv[0];
    usage_detail[0] = '\0';
}

/* A usage problem: said at once in text, kept for usage() in JSON. */
static void uerr(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
uerr(const char *fmt, ...)
{
    char msg[sizeof(usage_detail)];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (cli_ != NULL && cli_->json) {
        if (usage_detail[0] == '\0')
            snprintf(usage_detail, sizeof(usage_detail), "%s", msg);
        return;
    }
    hk_cli_error_text(cli_, "usage", msg);
}

static int
usage(const char *text)
{
    if (cli_ != NULL && cli_->json)
        hk_cli_error(cli_, "usage", "%s%susage: %s%s", usage_detail,
                     usage_detail[0] ? " (" : "", text, usage_detail[0] ? ")" : "");
    else
        fprintf(stderr, "usage: %s\n", text);
    return EXIT_USAGE;
}

/*
 * main.c handles -c FILE; should it be left among our arguments, skip it.
 * Returns how many arguments to skip at argv[i] (0: not a config option).
 */
static int
config_opt(int argc, char **argv, int i)
{
    if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) &&
        i + 1 < argc)
        return 2;
    if (strncmp(argv[i], "--config=", 9) == 0)
        return 1;
    return 0;
}

/*
 * Collect the positional arguments of argv[1..] into pos (up to max),
 * handing options to `opt` (which returns how many arguments it took, 0 for
 * an unknown option, -1 for a bad value). Returns the count, or -1 after
 * printing what is wrong.
 */
typedef int opt_fn(int argc, char **argv, int i, void *arg);

static int
parse_args(int argc, char **argv, char **pos, int max, opt_fn *opt, void *arg)
{
    int n = 0;

    for (int i = 1; i < argc;) {
        int k = config_opt(argc, argv, i);

        if (k > 0) {
            i += k;
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1] != '\0' && strcmp(argv[i], "--") != 0) {
            k = opt ? opt(argc, argv, i, arg) : 0;
            if (k == 0) {
                uerr("unknown option '%s'", argv[i]);
                return -1;
            }
            if (k < 0)
                return -1;
            i += k;
            continue;
        }
        if (strcmp(argv[i], "--") == 0) {
            i++;
            while (i < argc) {
                if (n == max) {
                    uerr("too many arguments");
                    return -1;
                }
                pos[n++] = argv[i++];
            }
            break;
        }
        if (n == max) {
            uerr("unexpected argument '%s'", argv[i]);
            return -1;
        }
        pos[n++] = argv[i++];
    }
    return n;
}

/* A count given on the command line: 1..10^9. */
static int
parse_count(const char *s, size_t *out)
{
    char *end;
    long long v;

    if (s[0] < '0' || s[0] > '9')
        return -1;
    v = strtoll(s, &end, 10);
    if (*end != '\0' || v <= 0 || v > 1000000000LL)
        return -1;
    *out = (size_t)v;
    return 0;
}

/*
 * Progress of a long call, on stderr (stdout holds only the result): one
 * line per batch, at most one a second, the last one always.
 */
static void
progress(const char *what, size_t done, size_t total, void *arg)
{
    static struct timespec last;
    struct timespec now;

    (void)arg;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (done < total && last.tv_sec != 0 && now.tv_sec - last.tv_sec < 1)
        return;
    if (done == total && last.tv_sec == 0)
        return; /* done in one batch: the result says it all */
    last = now;
    fprintf(stderr, "hookq %s: %s %zu of %zu (%d%%)\n", cli_ ? cli_->cmd : "",
            what, done, total, total ? (int)(done * 100 / total) : 100);
}

/* Connect to the configured Redis; 0, or the exit status after saying why. */
static int
open_client(struct hk_cli *cli, hq_client **out)
{
    struct hq_store_options so;
    hq_client *c = NULL;
    int rc;

    memset(&so, 0, sizeof(so));
    if (hk_cli_store_options(cli, &so) != 0)
        return EXIT_USAGE; /* it said why */
    rc = hq_client_new(&so, &c);
    /* The namespace's shard count must be ours (DESIGN §3.2 shards). */
    if (rc == HQ_OK)
        rc = hq_client_check_shards(c, NULL);
    if (rc != HQ_OK) {
        /* A malformed [redis] url is a configuration error. */
        hk_cli_error(cli, rc == HQ_EINVAL ? "config" : hk_cli_error_code(rc),
                     "%s", c ? hq_client_errmsg(c) : hq_strerror(rc));
        hq_client_free(c);
        return rc == HQ_EINVAL || rc == HQ_ECONFIG ? EXIT_USAGE : 1;
    }
    if (!cli->json)
        hq_client_set_progress(c, progress, NULL);
    *out = c;
    return 0;
}

/*
 * Print the client's last failure and return 1. Malformed arguments are
 * caught before (exit 2), so what is left is the queue's answer: an
 * unknown key or dead letter, a key that is not held, Redis down.
 */
static int
fail(hq_client *c, int rc)
{
    hk_cli_error(cli_, hk_cli_error_code(rc), "%s", hq_client_errmsg(c));
    return 1;
}

/* A key given on the command line must be CUSTOMER:CODE. */
static int
bad_key(const char *cmd, const char *key)
{
    const char *colon = strrchr(key, ':');

    if (colon && colon != key && colon[1] != '\0' && !strchr(key, '\n'))
        return 0;
    (void)cmd;
    uerr("key '%s' is not CUSTOMER:CODE", key);
    return 1;
}

/* A customer or id given on the command line: not empty, one line. */
static int
bad_word(const char *cmd, const char *what, const char *s)
{
    if (s[0] != '\0' && !strpbrk(s, "\r\n"))
        return 0;
    (void)cmd;
    uerr("%s must be a non-empty single line", what);
    return 1;
}

/* RFC 3339 UTC with milliseconds. */
static const char *
fmt_time(int64_t ms, char *buf, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (ms <= 0 || gmtime_r(&t, &tm) == NULL) {
        snprintf(buf, size, "-");
        return buf;
    }
    snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(ms % 1000));
    return buf;
}

/* "in 1.5s" / "1.5s ago", relative to `now_ms`. */
static const char *
fmt_rel(int64_t when_ms, int64_t now_ms, char *buf, size_t size)
{
    int64_t d = when_ms - now_ms;

    if (d >= 0)
        snprintf(buf, size, "in %.1fs", (double)d / 1000.0);
    else
        snprintf(buf, size, "%.1fs ago", (double)-d / 1000.0);
    return buf;
}

/* Write `s` on one line: control bytes and backslashes escaped, C-style. */
static void
put_escaped(FILE *f, const char *s, size_t len, size_t max)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (max && i == max) {
            fputs("...", f);
            return;
        }
        if (ch == '\n')
            fputs("\\n", f);
        else if (ch == '\r')
            fputs("\\r", f);
        else if (ch == '\t')
            fputs("\\t", f);
        else if (ch == '\\')
            fputs("\\\\", f);
        else if (ch < 0x20 || ch == 0x7f)
            fprintf(f, "\\x%02x", ch);
        else
            fputc(ch, f);
    }
}

/* ------------------------------------------------------------------------ */
/* stats                                                                    */

struct stats_opts {
    int json;
    int64_t interval_ms;
    size_t top;
};

static int
stats_opt(int argc, char **argv, int i, void *arg)
{
    struct stats_opts *o = arg;

    if (strcmp(argv[i], "--json") == 0) {
        o->json = 1;
        return 1;
    }
    if (strcmp(argv[i], "--top") == 0 && i + 1 < argc) {
        if (parse_count(argv[i + 1], &o->top) != 0) {
            uerr("--top wants a count, not '%s'", argv[i + 1]);
            return -1;
        }
        return 2;
    }
    if (strcmp(argv[i], "--interval") == 0 && i + 1 < argc) {
        if (strcmp(argv[i + 1], "0") == 0) {
            o->interval_ms = 0;
        } else if (hq__parse_duration_ms(argv[i + 1], &o->interval_ms) != 0 ||
                   o->interval_ms > 60000) {
            uerr("--interval wants a duration up to 1m (250ms, 1s), not '%s'",
                 argv[i + 1]);
            return -1;
        }
        return 2;
    }
    return 0;
}

static void
print_stats(const struct hq_stats *s, const struct hq_stats *prev)
{
    const struct hq_shard_stats *t = &s->total;
    double secs = prev ? (double)(s->time_ms - prev->time_ms) / 1000.0 : 0;
    char tb[64];

    printf("%-20s %s\n", "time", fmt_time(s->time_ms, tb, sizeof(tb)));
    printf("%-20s %12" PRId64 "\n", "jobs queued", t->jobs);
    printf("%-20s %12" PRId64 "   (%" PRId64 " customers)\n", "ready keys",
           t->ready_keys, t->ready_customers);
    printf("%-20s %12" PRId64 "\n", "active (in flight)", t->active);
    printf("%-20s %12" PRId64 "\n", "parked", t->parked);
    printf("%-20s %12" PRId64 "   (%" PRId64 " customers held)\n", "held",
           t->held, t->held_customers);
    printf("%-20s %12" PRId64 "\n", "dead letters", t->dead_letters);
    if (t->oldest_age_ms > 0)
        printf("%-20s %12.1f s\n", "oldest waiting", (double)t->oldest_age_ms / 1000.0);
    else
        printf("%-20s %12s\n", "oldest waiting", "none");

    if (s->nshards > 1) {
        printf("\n%-8s %10s %10s %8s %8s %8s %10s\n", "SHARD", "JOBS", "READY",
               "ACTIVE", "PARKED", "HELD", "DEAD");
        for (unsigned i = 0; i < s->nshards; i++) {
            const struct hq_shard_stats *h = &s->shards[i];

            printf("%-8u %10" PRId64 " %10" PRId64 " %8" PRId64 " %8" PRId64
                   " %8" PRId64 " %10" PRId64 "\n", i, h->jobs, h->ready_keys,
                   h->active, h->parked, h->held, h->dead_letters);
        }
    }

    if (s->ncounters > 0) {
        printf("\n%-20s %12s", "COUNTER", "TOTAL");
        if (secs > 0)
            printf(" %10s", "PER SEC");
        printf("\n");
        for (size_t i = 0; i < s->ncounters; i++) {
            printf("%-20s %12" PRId64, s->counters[i].name, s->counters[i].value);
            if (secs > 0) {
                int64_t d = s->counters[i].value -
                            hq_stats_counter(prev, s->counters[i].name);

                printf(" %10.1f", (double)(d > 0 ? d : 0) / secs);
            }
            printf("\n");
        }
    }

    if (s->ntop > 0) {
        size_t w = 3;

        for (size_t i = 0; i < s->ntop; i++)
            if (strlen(s->top[i].key) > w)
                w = strlen(s->top[i].key);
        printf("\n%-*s  %-7s %10s\n", (int)w, "TOP KEYS", "STATE", "DEPTH");
        for (size_t i = 0; i < s->ntop; i++)
            printf("%-*s  %-7s %10" PRId64 "\n", (int)w, s->top[i].key,
                   hq_key_state_name(s->top[i].state), s->top[i].depth);
    }

    if (s->ntargets > 0) {
        size_t w = 6;

        for (size_t i = 0; i < s->ntargets; i++)
            if (strlen(s->targets[i].target) > w)
                w = strlen(s->targets[i].target);
        printf("\n%-*s  %-5s %8s  %s\n", (int)w, "TARGET", "STATE", "FAILURES",
               "SINCE / NEXT PROBE");
        for (size_t i = 0; i < s->ntargets; i++) {
            const struct hq_target_info *tg = &s->targets[i];
            char since[64], next[64];

            if (tg->up) {
                printf("%-*s  %-5s %8" PRId64 "\n", (int)w, tg->target, "up",
                       tg->failures);
                continue;
            }
            printf("%-*s  %-5s %8" PRId64 "  %s / %s (%" PRId64
                   " failed probes)%s%s\n", (int)w, tg->target, "down",
                   tg->failures, fmt_time(tg->down_since_ms, since, sizeof(since)),
                   fmt_time(tg->next_probe_ms, next, sizeof(next)), tg->probes,
                   tg->last_error[0] ? ": " : "", tg->last_error);
        }
    }
}

int
hk_cmd_stats(struct hk_cli *cli, int argc, char **argv)
{
    static const char use[] =
        "hookq stats [--json] [--top N] [--interval DURATION]";
    struct stats_opts o = {0, 1000, 10};
    struct hq_stats prev, cur;
    hq_client *c = NULL;
    int rc, have_prev = 0, ret = 1;

    begin(cli, argv);
    if (parse_args(argc, argv, NULL, 0, stats_opt, &o) < 0)
        return usage(use);
    if ((rc = open_client(cli, &c)) != 0)
        return rc;
    memset(&prev, 0, sizeof(prev));
    memset(&cur, 0, sizeof(cur));
    if (o.interval_ms > 0) {
        struct timespec ts = {(time_t)(o.interval_ms / 1000),
                              (long)(o.interval_ms % 1000) * 1000000L};

        rc = hq_client_stats(c, 0, &prev);
        if (rc != HQ_OK) {
            ret = fail(c, rc);
            goto out;
        }
        have_prev = 1;
        nanosleep(&ts, NULL);
    }
    rc = hq_client_stats(c, o.top, &cur);
    if (rc != HQ_OK) {
        ret = fail(c, rc);
        goto out;
    }
    if (o.json) {
        char *js = hq_stats_json(&cur, have_prev ? &prev : NULL);

        if (js == NULL) {
            hk_cli_error(cli_, "out_of_memory", "out of memory");
            goto out;
        }
        printf("%s\n", js);
        free(js);
    } else {
        print_stats(&cur, have_prev ? &prev : NULL);
    }
    ret = 0;
out:
    hq_stats_release(&prev);
    hq_stats_release(&cur);
    hq_client_free(c);
    return ret;
}

/* ------------------------------------------------------------------------ */
/* keys                                                                      */

struct keys_opts {
    int state;
    size_t top;
    int json;
};

static int
keys_opt(int argc, char **argv, int i, void *arg)
{
    struct keys_opts *o = arg;

    if (strcmp(argv[i], "--json") == 0) {
        o->json = 1;
        return 1;
    }
    if (strcmp(argv[i], "--state") == 0 && i + 1 < argc) {
        o->state = hq_key_state_parse(argv[i + 1]);
        if (o->state <= HQ_KEY_IDLE) {
            uerr("--state is ready, active, parked or held, not '%s'", argv[i + 1]);
            return -1;
        }
        return 2;
    }
    if (strcmp(argv[i], "--top") == 0 && i + 1 < argc) {
        if (parse_count(argv[i + 1], &o->top) != 0) {
            uerr("--top wants a count, not '%s'", argv[i + 1]);
            return -1;
        }
        return 2;
    }
    return 0;
}

/* Append to a NUL-terminated buffer, truncating. */
static void
append(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
append(char *buf, size_t size, const char *fmt, ...)
{
    size_t n = strlen(buf);
    va_list ap;

    if (n + 1 >= size)
        return;
    va_start(ap, fmt);
    vsnprintf(buf + n, size - n, fmt, ap);
    va_end(ap);
}

/*
 * What to say about a key beside its state: why it is held, when its lease
 * ends or it is due (relative to `now_ms`, or as a time when it is 0), and
 * its head job's last error.
 */
static void
key_info_text(const struct hq_key_info *k, int64_t now_ms, char *buf, size_t size)
{
    char tb[64];

    buf[0] = '\0';
    if (k->state == HQ_KEY_HELD) {
        append(buf, size, "reason %s", k->reason);
    } else if ((k->state == HQ_KEY_ACTIVE || k->state == HQ_KEY_PARKED) &&
               k->when_ms >= 0) {
        append(buf, size, "%s %s", k->state == HQ_KEY_ACTIVE ? "lease ends" : "due",
               now_ms ? fmt_rel(k->when_ms, now_ms, tb, sizeof(tb))
                      : fmt_time(k->when_ms, tb, sizeof(tb)));
    }
    if (k->state == HQ_KEY_ACTIVE && k->reason[0])
        append(buf, size, "%shold pending: %s", buf[0] ? "; " : "", k->reason);
    if (k->error[0])
        append(buf, size, "%slast error: %s", buf[0] ? "; " : "", k->error);
}

int
hk_cmd_keys(struct hk_cli *cli, int argc, char **argv)
{
    static const char use[] =
        "hookq keys [--state ready|active|parked|held] [--top N] [--json]";
    struct keys_opts o = {HQ_KEY_IDLE, 100, 0};
    struct hq_key_list l;
    hq_client *c = NULL;
    size_t w = 3;
    int rc;

    begin(cli, argv);
    if (parse_args(argc, argv, NULL, 0, keys_opt, &o) < 0)
        return usage(use);
    if ((rc = open_client(cli, &c)) != 0)
        return rc;
    rc = hq_client_keys(c, o.state, o.top, &l);
    if (rc != HQ_OK) {
        rc = fail(c, rc);
        hq_client_free(c);
        return rc;
    }
    if (o.json) {
        char *js = hq_key_list_json(&l);

        if (js)
            printf("%s\n", js);
        else
            hk_cli_error(cli_, "out_of_memory", "out of memory");
        free(js);
        hq_key_list_release(&l);
        hq_client_free(c);
        return js ? 0 : 1;
    }
    for (size_t i = 0; i < l.n; i++)
        if (strlen(l.items[i].key) > w)
            w = strlen(l.items[i].key);
    printf("%-*s  %-7s %10s %8s  %s\n", (int)w, "KEY", "STATE", "DEPTH",
           "ATTEMPTS", "INFO");
    for (size_t i = 0; i < l.n; i++) {
        const struct hq_key_info *k = &l.items[i];
        char info[400];

        key_info_text(k, l.time_ms, info, sizeof(info));
        printf("%-*s  %-7s %10" PRId64 " %8" PRId64 "  ", (int)w, k->key,
               hq_key_state_name(k->state), k->depth, k->attempts);
        put_escaped(stdout, info, strlen(info), 0);
        printf("\n");
    }
    printf("%zu of %zu %s%skeys%s\n", l.n, l.total,
           o.state ? hq_key_state_name(o.state) : "", o.state ? " " : "",
           l.truncated ? " (large shards: only the first 10000 keys of each "
                         "were looked at)" : "");
    hq_key_list_release(&l);
    hq_client_free(c);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* peek                                                                      */

/* The one option of peek and workers: --json. */
static int
json_opt(int argc, char **argv, int i, void *arg)
{
    (void)argc;
    if (strcmp(argv[i], "--json") == 0) {
        *(int *)arg = 1;
        return 1;
    }
    return 0;
}

/* Print a JSON document made by the library; 1 when it could not be made. */
static int
put_json(char *js)
{
    if (js == NULL) {
        hk_cli_error(cli_, "out_of_memory", "out of memory");
        return 1;
    }
    printf("%s\n", js);
    free(js);
    return 0;
}

int
hk_cmd_peek(struct hk_cli *cli, int argc, char **argv)
{
    static const char use[] = "hookq peek KEY [N] [--json]";
    struct hq_peek p;
    char *pos[2];
    size_t n = 10;
    hq_client *c = NULL;
    int np, rc, json = 0;
    char tb[64], info[400];

    begin(cli, argv);
    np = parse_args(argc, argv, pos, 2, json_opt, &json);
    if (np < 1)
        return usage(use);
    if (np == 2 && parse_count(pos[1], &n) != 0) {
        uerr("N is a count of jobs, not '%s'", pos[1]);
        return usage(use);
    }
    if (bad_key("peek", pos[0]))
        return usage(use);
    if ((rc = open_client(cli, &c)) != 0)
        return rc;
    rc = hq_client_peek(c, pos[0], n, &p);
    if (rc != HQ_OK) {
        rc = fail(c, rc);
        hq_client_free(c);
        return rc;
    }
    if (p.key.state == HQ_KEY_IDLE) {
        hk_cli_error(cli_, "not_found", "nothing queued for key '%s'", pos[0]);
        hq_peek_release(&p);
        hq_client_free(c);
        return 1;
    }
    if (json) {
        rc = put_json(hq_peek_json(&p));
        hq_peek_release(&p);
        hq_client_free(c);
        return rc;
    }
    key_info_text(&p.key, 0, info, sizeof(info));
    printf("key %s: %s, %" PRId64 " job%s, head attempts %" PRId64 "%s",
           p.key.key, hq_key_state_name(p.key.state), p.key.depth,
           p.key.depth == 1 ? "" : "s", p.key.attempts, info[0] ? "; " : "");
    put_escaped(stdout, info, strlen(info), 0);
    printf("\n%-8s %-14s %-24s %-16s %s\n", "SEQ", "ID", "RECEIVED", "WEBHOOK-ID",
           "BODY");
    for (size_t i = 0; i < p.n; i++) {
        const struct hq_peek_job *j = &p.jobs[i];

        printf("%-8" PRId64 " %-14s %-24s %-16s ", j->seq, j->id,
               fmt_time(j->received_at_ms, tb, sizeof(tb)),
               j->webhook_id[0] ? j->webhook_id : "-");
        put_escaped(stdout, j->body, j->body_len, 0);
        printf("\n");
    }
    hq_peek_release(&p);
    hq_client_free(c);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* hold and release                                                          */

static int
hold_opt(int argc, char **argv, int i, void *arg)
{
    const char **reason = arg;

    if (strcmp(argv[i], "--reason") == 0 && i + 1 < argc) {
        if (argv[i + 1][0] == '\0') {
            uerr("empty --reason");
            return -1;
        }
        *reason = argv[i + 1];
        return 2;
    }
    return 0;
}

int
hk_cmd_hold(struct hk_cli *cli, int argc, char **argv)
{
    static const char use[] = "hookq hold KEY [--reason TEXT]";
    const char *reason = "operator";
    char *pos[1];
    hq_client *c = NULL;
    int status = 0, rc;

    begin(cli, argv);
    if (parse_args(argc, argv, pos, 1, hold_opt, &reason) != 1 ||
        bad_key("hold", pos[0]))
        return usage(use);
    if ((rc = open_client(cli, &c)) != 0)
        return rc;
    rc = hq_client_hold(c, pos[0], reason, &status);
    if (rc != HQ_OK) {
        rc = fail(c, rc);
        hq_client_free(c);
        return rc;
    }
    if (status == HQ_HOLD_PENDING)
        printf("%s is running: held as soon as its current job settles\n", pos[0]);
    else if (status == HQ_HOLD_ALREADY)
        printf("%s was held already\n", pos[0]);
    else
        printf("held %s (%s)\n", pos[0], reason);
    hq_client_free(c);
    return 0;
}

int
hk_cmd_release(struct hk_cli *cli, int argc, char **argv)
{
    static const char use[] = "hookq release KEY | release --customer CUSTOMER";
    char *pos[2];
    hq_client *c = NULL;
    int np, rc, status = 0, customer = 0;

    begin(cli, argv);
    /* --customer is a flag here, so that "--customer C" reads naturally. */
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--customer") == 0) {
            customer = 1;
            memmove(&argv[i], &argv[i + 1], sizeof(*argv) * (size_t)(argc - i - 1));
            argc--;
            break;
        }
    np = parse_args(argc, argv, pos, 1, NULL, NULL);
    if (np != 1 || (customer ? bad_word("release", "customer", pos[0])
                             : bad_key("release", pos[0])))
        return usage(use);
    if ((rc = open_client(cli, &c)) != 0)
        return rc;
    if (customer) {
        size_t n = 0;

        rc = hq_client_release_customer(c, pos[0], &n);
        if (rc == HQ_OK)
            printf("released customer %s: %zu key%s ready again\n", pos[0], n,
                   n == 1 ? "" : "s");
    } else {
        rc = hq_client_release(c, pos[0], &status);
        if (rc == HQ_OK && status == HQ_RELEASE_CANCELLED)
            printf("%s is running: its pending hold is cancelled\n", pos[0]);
        else if (rc == HQ_OK)
            printf("released %s\n", pos[0]);
    }
    if (rc != HQ_OK)
        rc = fail(c, rc);
    hq_client_free(c);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* dlq                                                                       */

static int
dlq_list(hq_client *c, int json)
{
    struct hq_dead_letters l;
    char tb[64];
    size_t w = 3, wi = 2;
    int rc;

    rc = hq_client_dlq_list(c, 0, &l);
    if (rc != HQ_OK)
        return fail(c, rc);
    if (json) {
        rc = put_json(hq_dead_letters_json(&l));
        hq_dead_letters_release(&l);
        return rc;
    }
    if (l.n == 0) {
        printf("no dead letters\n");
        hq_dead_letters_release(&l);
        return 0;
    }
    for (size_t i = 0; i < l.n; i++) {
        if (strlen(l.items[i].key) > w)
            w = strlen(l.items[i].key);
        if (strlen(l.items[i].id) > wi)
            wi = strlen(l.items[i].id);
    }
    printf("%-*s  %-*s %8s %8s  %-24s  %s\n", (int)wi, "ID", (int)w, "KEY", "SEQ",
           "ATTEMPTS", "DEAD SINCE", "ERROR");
    for (size_t i = 0; i < l.n; i++) {
        const struct hq_dead_letter *d = &l.items[i];

        printf("%-*s  %-*s %8" PRId64 " %8" PRId64 "  %-24s  ", (int)wi, d->id,
               (int)w, d->key, d->seq, d->attempts, fmt_time(d->at_ms, tb, sizeof(tb)));
        put_escaped(stdout, d->error, strlen(d->error), 120);
        printf("\n");
    }
    printf("%zu dead letter%s\n", l.n, l.n == 1 ? "" : "s");
    hq_dead_letters_release(&l);
    return 0;
}

static int
dlq_show(hq_client *c, const char *id, int json)
{
    struct hq_dead_letter d;
    char tb[64];
    int rc;

    rc = hq_client_dlq_show(c, id, &d);
    if (rc != HQ_OK)
        return fail(c, rc);
    if (json) {
        rc = put_json(hq_dead_letter_json(&d));
        hq_dead_letter_release(&d);
        return rc;
    }
    printf("%-12s %s\n", "id", d.id);
    printf("%-12s %s\n", "key", d.key);
    printf("%-12s %s\n", "customer", d.customer);
    printf("%-12s %" PRId64 "\n", "seq", d.seq);
    printf("%-12s %s\n", "received", fmt_time(d.received_at_ms, tb, sizeof(tb)));
    printf("%-12s %s\n", "webhook-id", d.webhook_id[0] ? d.webhook_id : "-");
    printf("%-12s %" PRId64 "\n", "attempts", d.attempts);
    printf("%-12s %s\n", "dead since", fmt_time(d.at_ms, tb, sizeof(tb)));
    printf("%-12s ", "error");
    put_escaped(stdout, d.error, strlen(d.error), 0);
    printf("\n%-12s ", "body");
    put_escaped(stdout, d.body, d.body_len, 0);
    printf("\n");
    hq_dead_letter_release(&d);
    return 0;
}

static int
dlq_apply(hq_client *c, const char *verb, const char *target)
{
    int retry = strcmp(verb, "retry") == 0;
    int rc;

    if (strcmp(target, "--all") == 0) {
        size_t n = 0;

        rc = retry ? hq_client_dlq_retry_all(c, &n) : hq_client_dlq_drop_all(c, &n);
        if (rc != HQ_OK)
            return fail(c, rc);
        printf("%s %zu dead letter%s\n", retry ? "retried" : "dropped", n,
               n == 1 ? "" : "s");
        return 0;
    }
    rc = retry ? hq_client_dlq_retry(c, target) : hq_client_dlq_drop(c, target);
    if (rc != HQ_OK)
        return fail(c, rc);
    printf("%s %s\n", retry ? "retried" : "dropped", target);
    return 0;
}

struct dlq_opts {
    int all;
    int json;
};

static int
dlq_opt(int argc, char **argv, int i, void *arg)
{
    struct dlq_opts *o = arg;

    if (strcmp(argv[i], "--all") == 0) {
        o->all = 1;
        return 1;
    }
    if (strcmp(argv[i], "--json") == 0) {
        o->json = 1;
        return 1;
    }
    return 0;
}

int
hk_cmd_dlq(struct hk_cli *cli, int argc, char **argv)
{
    static const char use[] =
        "hookq dlq list [--json] | show ID [--json] | retry ID|--all | drop ID|--all";
    struct dlq_opts o = {0, 0};
    char *pos[2];
    hq_client *c = NULL;
    int np, ret, rc;

    begin(cli, argv);
    np = parse_args(argc, argv, pos, 2, dlq_opt, &o);
    if (np < 1)
        return usage(use);
    if (strcmp(pos[0], "list") == 0) {
        if (np != 1 || o.all)
            return usage(use);
    } else if (strcmp(pos[0], "show") == 0) {
        if (np != 2 || o.all || bad_word("dlq", "ID", pos[1]))
            return usage(use);
    } else if (strcmp(pos[0], "retry") == 0 || strcmp(pos[0], "drop") == 0) {
        if ((np == 2) == (o.all == 1) || o.json ||
            (np == 2 && bad_word("dlq", "ID", pos[1])))
            return usage(use);
    } else {
        uerr("unknown subcommand '%s'", pos[0]);
        return usage(use);
    }
    if ((rc = open_client(cli, &c)) != 0)
        return rc;
    if (strcmp(pos[0], "list") == 0)
        ret = dlq_list(c, o.json);
    else if (strcmp(pos[0], "show") == 0)
        ret = dlq_show(c, pos[1], o.json);
    else
        ret = dlq_apply(c, pos[0], o.all ? "--all" : pos[1]);
    hq_client_free(c);
    return ret;
}

/* ------------------------------------------------------------------------ */
/* token                                                                     */

/*
 * `hookq token set CUSTOMER` without TOKEN: one line of stdin, its line
 * end (\n or \r\n) dropped. An empty line, or none, is a usage error.
 */
static int
token_from_stdin(char **out)
{
    size_t cap = 0;
    ssize_t n;

    *out = NULL;
    n = getline(out, &cap, stdin);
    if (n > 0 && (*out)[n - 1] == '\n')
        (*out)[--n] = '\0';
    if (n > 0 && (*out)[n - 1] == '\r')
        (*out)[--n] = '\0';
    if (n <= 0) {
        uerr("no token on stdin (an empty line)");
        free(*out);
        *out = NULL;
        return EXIT_USAGE;
    }
    if (strlen(*out) != (size_t)n) {
        uerr("the token on stdin contains a NUL");
        free(*out);
        *out = NULL;
        return EXIT_USAGE;
    }
    return 0;
}

int
hk_cmd_token(struct hk_cli *cli, int argc, char **argv)
{
    static const char use[] =
        "hookq token set CUSTOMER [TOKEN] | del CUSTOMER\n"
        "  (set without TOKEN reads it from one line of stdin, so that it\n"
        "   is not on the command line)";
    char *pos[3], *line = NULL;
    hq_client *c = NULL;
    int np, rc;

    begin(cli, argv);
    np = parse_args(argc, argv, pos, 3, NULL, NULL);
    if (np < 1)
        return usage(use);
    if (strcmp(pos[0], "set") == 0) {
        if (np < 2 || np > 3 || bad_word("token", "CUSTOMER", pos[1]) ||
            (np == 3 && bad_word("token", "TOKEN", pos[2])))
            return usage(use);
        if (np == 2) {
            if (token_from_stdin(&line) != 0)
                return usage(use);
            pos[2] = line;
        }
    } else if (strcmp(pos[0], "del") == 0) {
        if (np != 2 || bad_word("token", "CUSTOMER", pos[1]))
            return usage(use);
    } else {
        uerr("unknown subcommand '%s'", pos[0]);
        return usage(use);
    }
    if ((rc = open_client(cli, &c)) != 0) {
        free(line);
        return rc;
    }
    if (strcmp(pos[0], "set") == 0) {
        size_t n = 0;

        rc = hq_client_token_set(c, pos[1], pos[2], &n);
        if (rc == HQ_OK && n > 0)
            printf("token set for %s: %zu held key%s resumed\n", pos[1], n,
                   n == 1 ? "" : "s");
        else if (rc == HQ_OK)
            printf("token set for %s\n", pos[1]);
    } else {
        rc = hq_client_token_del(c, pos[1]);
        if (rc == HQ_OK)
            printf("token deleted for %s\n", pos[1]);
    }
    if (rc != HQ_OK)
        rc = fail(c, rc);
    hq_client_free(c);
    free(line);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* workers                                                                   */

int
hk_cmd_workers(struct hk_cli *cli, int argc, char **argv)
{
    static const char use[] = "hookq workers [--json]";
    struct hq_worker_list l;
    hq_client *c = NULL;
    size_t wh = 4;
    int rc, json = 0;

    begin(cli, argv);
    if (parse_args(argc, argv, NULL, 0, json_opt, &json) < 0)
        return usage(use);
    if ((rc = open_client(cli, &c)) != 0)
        return rc;
    rc = hq_client_workers(c, &l);
    if (rc != HQ_OK) {
        rc = fail(c, rc);
        hq_client_free(c);
        return rc;
    }
    if (json) {
        rc = put_json(hq_worker_list_json(&l));
        hq_worker_list_release(&l);
        hq_client_free(c);
        return rc;
    }
    for (size_t i = 0; i < l.n; i++)
        if (strlen(l.items[i].host) > wh)
            wh = strlen(l.items[i].host);
    printf("%-*s %8s  %-10s %-24s %5s %9s  %s\n", (int)wh, "HOST", "PID",
           "VERSION", "STARTED", "LOOPS", "IN FLIGHT", "LAST SEEN");
    for (size_t i = 0; i < l.n; i++) {
        const struct hq_worker_info *w = &l.items[i];
        char tb[64], rel[64];

        put_escaped(stdout, w->host, strlen(w->host), 0);
        printf("%*s %8" PRId64 "  %-10s %-24s %5" PRId64 " %9" PRId64 "  %s\n",
               (int)(wh - strlen(w->host)), "", w->pid, w->version,
               fmt_time(w->started_ms, tb, sizeof(tb)), w->loops, w->in_flight,
               fmt_rel(w->last_seen_ms, l.time_ms, rel, sizeof(rel)));
    }
    printf("%zu worker process%s\n", l.n, l.n == 1 ? "" : "es");
    hq_worker_list_release(&l);
    hq_client_free(c);
    return 0;
}
