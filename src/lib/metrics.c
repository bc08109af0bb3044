/*
 * Histograms and the Prometheus text writer (see metrics.h).
 *
 * Observing is a binary search over 20 bounds and two relaxed atomic adds:
 * cheap enough for the intake's hot path, and each loop thread keeps its own
 * histogram anyway, so the cache lines are not shared until a scrape.
 */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "metrics_int.h"

#include "banned_int.h"

const int64_t hq__hist_bounds_us[HQ_HIST_NBOUNDS] = {
    500,      1000,      2500,      5000,      10000,     25000,     50000,
    100000,   250000,    500000,    1000000,   2500000,   5000000,   10000000,
    30000000, 60000000,  300000000, 600000000, 1800000000, 3600000000,
};

void
hq__hist_observe(struct hq__hist *h, int64_t us)
{
    size_t lo = 0, hi = HQ_HIST_NBOUNDS;

    if (us < 0)
        us = 0;
    /* The first bound >= us, or HQ_HIST_NBOUNDS (+Inf). */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (hq__hist_bounds_us[mid] < us)
            lo = mid + 1;
        else
            hi = mid;
    }
    atomic_fetch_add_explicit(&h->bucket[lo], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, (uint64_t)us, memory_order_relaxed);
}

void
hq__hist_add(struct hq__hist_snap *snap, const struct hq__hist *h)
{
    for (size_t i = 0; i <= HQ_HIST_NBOUNDS; i++)
        snap->bucket[i] +=
            atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
    snap->sum_us += atomic_load_explicit(&h->sum_us, memory_order_relaxed);
}

static void put(struct hq__prom *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
put(struct hq__prom *p, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (p->oom)
        return;
    for (;;) {
        size_t room = p->cap - p->len;

        va_start(ap, fmt);
        n = vsnprintf(p->buf ? p->buf + p->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            p->oom = 1;
            return;
        }
        if ((size_t)n < room) {
            p->len += (size_t)n;
            return;
        }
        {
            size_t cap = p->cap ? p->cap * 2 : 4096;
            char *nb;

            while (cap - p->len <= (size_t)n)
                cap *= 2;
            nb = realloc(p->buf, cap);
            if (nb == NULL) {
                free(p->buf);
                p->buf = NULL;
                p->len = p->cap = 0;
                p->oom = 1;
                return;
            }
            p->buf = nb;
            p->cap = cap;
        }
    }
}

void
hq__prom_family(struct hq__prom *p, const char *name, const char *type,
               const char *help)
{
    put(p, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void
hq__prom_sample(struct hq__prom *p, const char *name, const char *labels,
               double value)
{
    if (labels != NULL && labels[0] != '\0')
        put(p, "%s{%s} %.17g\n", name, labels, value);
    else
        put(p, "%s %.17g\n", name, value);
}

void
hq__prom_hist(struct hq__prom *p, const char *name, const char *labels,
             const struct hq__hist_snap *s)
{
    const char *sep = labels != NULL && labels[0] != '\0' ? "," : "";
    const char *l = labels != NULL ? labels : "";
    uint64_t cum = 0;

    for (size_t i = 0; i < HQ_HIST_NBOUNDS; i++) {
        cum += s->bucket[i];
        put(p, "%s_bucket{%s%sle=\"%.6g\"} %llu\n", name, l, sep,
            (double)hq__hist_bounds_us[i] / 1e6, (unsigned long long)cum);
    }
    cum += s->bucket[HQ_HIST_NBOUNDS];
    put(p, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, l, sep,
        (unsigned long long)cum);
    if (l[0] != '\0') {
        put(p, "%s_sum{%s} %.6f\n", name, l, (double)s->sum_us / 1e6);
        put(p, "%s_count{%s} %llu\n", name, l, (unsigned long long)cum);
    } else {
        put(p, "%s_sum %.6f\n", name, (double)s->sum_us / 1e6);
        put(p, "%s_count %llu\n", name, (unsigned long long)cum);
    }
}

const char *
hq__prom_label(const char *s, char *out, size_t size)
{
    size_t n = 0;

    out[n++] = '"';
    for (; *s != '\0' && n + 4 < size; s++) {
        if (*s == '\\' || *s == '"') {
            out[n++] = '\\';
            out[n++] = *s;
        } else if (*s == '\n') {
            out[n++] = '\\';
            out[n++] = 'n';
        } else {
            out[n++] = *s;
        }
    }
    out[n++] = '"';
    out[n] = '\0';
    return out;
}

/* The fields of /proc/self/stat after the command: [0] is field 3 (state). */
static int
proc_stat_fields(unsigned long long *f, size_t n)
{
    char buf[1024], *p, *end;
    size_t len, i = 0;
    FILE *fp = fopen("/proc/self/stat", "r");

    if (fp == NULL)
        return -1;
    len = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[len] = '\0';
    p = strrchr(buf, ')');
    if (p == NULL)
        return -1;
    p += 2; /* ") " */
    while (*p == ' ')
        p++;
    if (*p != '\0')
        p++; /* the state letter */
    f[i++] = 0;
    while (i < n && *p != '\0') {
        f[i++] = strtoull(p, &end, 10);
        if (end == p)
            return -1;
        p = end;
    }
    return i == n ? 0 : -1;
}

/* Seconds since the epoch at boot (/proc/stat btime), or -1. */
static long long
boot_time(void)
{
    char line[256];
    long long bt = -1;
    FILE *fp = fopen("/proc/stat", "r");

    if (fp == NULL)
        return -1;
    while (fgets(line, sizeof(line), fp) != NULL)
        if (strncmp(line, "btime ", 6) == 0)
            bt = strtoll(line + 6, NULL, 10);
    fclose(fp);
    return bt;
}

void
hq__prom_process(struct hq__prom *p)
{
    /* Fields 3..24 of /proc/self/stat: starttime is 22, vsize 23, rss 24. */
    unsigned long long f[22];
    int have_stat = proc_stat_fields(f, 22) == 0;
    long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    long long bt = boot_time();
    struct rusage ru;
    struct rlimit rl;
    DIR *d;

    hq__prom_family(p, "process_cpu_seconds_total", "counter",
                   "Total user and system CPU time spent in seconds.");
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        hq__prom_sample(p, "process_cpu_seconds_total", NULL,
                       (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
                           ((double)ru.ru_utime.tv_usec +
                            (double)ru.ru_stime.tv_usec) / 1e6);
    hq__prom_family(p, "process_resident_memory_bytes", "gauge",
                   "Resident memory size in bytes.");
    if (have_stat && page > 0)
        hq__prom_sample(p, "process_resident_memory_bytes", NULL,
                       (double)f[21] * (double)page);
    hq__prom_family(p, "process_virtual_memory_bytes", "gauge",
                   "Virtual memory size in bytes.");
    if (have_stat)
        hq__prom_sample(p, "process_virtual_memory_bytes", NULL, (double)f[20]);
    hq__prom_family(p, "process_open_fds", "gauge",
                   "Number of open file descriptors.");
    d = opendir("/proc/self/fd");
    if (d != NULL) {
        long n = 0;
        struct dirent *e;

        while ((e = readdir(d)) != NULL)
            if (e->d_name[0] != '.')
                n++;
        closedir(d);
        hq__prom_sample(p, "process_open_fds", NULL, (double)(n - 1)); /* d's own */
    }
    hq__prom_family(p, "process_max_fds", "gauge",
                   "Maximum number of open file descriptors.");
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        hq__prom_sample(p, "process_max_fds", NULL, (double)rl.rlim_cur);
    hq__prom_family(p, "process_start_time_seconds", "gauge",
                   "Start time of the process since unix epoch in seconds.");
    if (have_stat && ticks > 0 && bt > 0)
        hq__prom_sample(p, "process_start_time_seconds", NULL,
                       (double)bt + (double)f[19] / (double)ticks);
}

void
hq__prom_release(struct hq__prom *p)
{
    free(p->buf);
    memset(p, 0, sizeof(*p));
}
