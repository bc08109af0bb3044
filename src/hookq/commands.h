/*
 * The subcommands of the hookq binary. main.c parses the global options
 * (-c FILE, --help, --version), loads the configuration, and calls one of
 * these with the arguments after the subcommand name (argv[0] is the name).
 * Each returns the process exit status: 0 ok, 1 runtime failure, 2 usage or
 * configuration error. Each prints its own errors to stderr.
 */
#ifndef HQ_COMMANDS_H
#define HQ_COMMANDS_H

#include "hookq/hookq.h"
#include "config_int.h"

struct hk_cli {
    struct hq__config *cfg; /* loaded config (defaults when no file) */
    const char *config_path; /* -c FILE, or NULL */
    const char *cmd;       /* the command's name, for its messages */
    int json;              /* --json given: errors as JSON too (cli_out.c) */
};

int hk_cmd_run(struct hk_cli *cli, int argc, char **argv);   /* intake + worker */
int hk_cmd_serve(struct hk_cli *cli, int argc, char **argv); /* intake only */
int hk_cmd_work(struct hk_cli *cli, int argc, char **argv);  /* worker only */
int hk_cmd_check(struct hk_cli *cli, int argc, char **argv);
int hk_cmd_stats(struct hk_cli *cli, int argc, char **argv);
int hk_cmd_keys(struct hk_cli *cli, int argc, char **argv);
int hk_cmd_peek(struct hk_cli *cli, int argc, char **argv);
int hk_cmd_hold(struct hk_cli *cli, int argc, char **argv);
int hk_cmd_release(struct hk_cli *cli, int argc, char **argv);
int hk_cmd_dlq(struct hk_cli *cli, int argc, char **argv);
int hk_cmd_token(struct hk_cli *cli, int argc, char **argv);
int hk_cmd_workers(struct hk_cli *cli, int argc, char **argv);

/*
 * Report a failure: "hookq CMD: DETAIL" on stderr, or with --json
 * {"error": CODE, "detail": DETAIL} on one line of stderr (stdout then
 * holds nothing). CODE is one of "usage", "config", "redis", "not_found",
 * "invalid", "out_of_memory", "protocol", "failed" (docs/operations.md).
 */
void hk_cli_error(const struct hk_cli *cli, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void hk_cli_error_text(const struct hk_cli *cli, const char *code,
                       const char *detail);
/* The CODE of an HQ_E* failure ("redis" for HQ_ESTORE, ...). */
const char *hk_cli_error_code(int rc);
/* 1 when argv[1..] holds --json before any "--". */
int hk_cli_wants_json(int argc, char **argv);

/*
 * The store options the admin commands use: [redis] url, or with none, the
 * unix socket of the embedded Redis in data_dir. Strings point into `cli`
 * or static storage. Defined in embedded_redis.c.
 */
int hk_cli_store_options(struct hk_cli *cli, struct hq_store_options *opts);

#endif /* HQ_COMMANDS_H */
