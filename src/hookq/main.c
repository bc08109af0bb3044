/*
 * hookq: the command-line entry point. Parses the global options (-c FILE,
 * --help, --version), loads the configuration, sets up the log, and
 * dispatches to the subcommands of DESIGN §3.1 (commands.h).
 *
 * `-c FILE` may come before or after the command name; main.c removes it
 * from the arguments, so commands only see their own. `COMMAND --help`
 * prints that command's usage. Exit status: 0 ok, 1 runtime failure,
 * 2 usage or configuration error.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "log.h"

#include "banned_int.h"

struct command {
    const char *name;
    int (*fn)(struct hk_cli *cli, int argc, char **argv);
    const char *args;
    const char *help;
};

static const struct command commands[] = {
    {"run", hk_cmd_run, "[-c FILE]",
     "intake + workers in one process; with no [redis] url it starts a\n"
     "private redis-server (AOF on) in data_dir and stops it on exit.\n"
     "While that Redis loads a big AOF, its progress is logged on stderr.\n"
     "SIGTERM or SIGINT drains: stop accepting, finish the jobs in flight\n"
     "for up to [worker] shutdown_timeout, hand back the rest, exit 0."},
    {"serve", hk_cmd_serve, "[-c FILE]",
     "intake only: the webhook endpoint ([intake] listen) and the admin\n"
     "listener ([admin] listen)."},
    {"work", hk_cmd_work, "[-c FILE]",
     "workers only: lease keys, fetch and deliver. Each worker process\n"
     "announces itself in Redis every second (hookq workers)."},
    {"stats", hk_cmd_stats, "[--json] [--top N] [--interval DURATION]",
     "depth, in flight, parked, held, dead letters, rates, top keys\n"
     "\n"
     "  --json               the document of GET /api/stats\n"
     "  --top N              the N deepest keys (default 10)\n"
     "  --interval DURATION  rates over this long (default 1s; 0: none;\n"
     "                       at most 1m)"},
    {"keys", hk_cmd_keys, "[--state ready|active|parked|held] [--top N] [--json]",
     "list keys, deepest first\n"
     "\n"
     "  --state STATE  only keys in that state\n"
     "  --top N        at most N keys (default 100)\n"
     "  --json         the document of GET /api/keys"},
    {"peek", hk_cmd_peek, "KEY [N] [--json]",
     "the first N payloads of a key (default 10), with its state,\n"
     "attempts and last error\n"
     "\n"
     "  KEY     CUSTOMER:CODE\n"
     "  --json  {\"key\", \"state\", ..., \"jobs\": [...]}"},
    {"hold", hk_cmd_hold, "KEY [--reason TEXT]",
     "hold a key until released; a running key is held once its\n"
     "current job settles\n"
     "\n"
     "  --reason TEXT  why (default \"operator\"), shown by keys and peek"},
    {"release", hk_cmd_release, "KEY | release --customer CUSTOMER",
     "release a held key (its head job gets a fresh count of attempts)\n"
     "\n"
     "  --customer CUSTOMER  release every key of a customer held for it\n"
     "                       (its token, say)"},
    {"dlq", hk_cmd_dlq,
     "list [--json] | show ID [--json] | retry ID|--all | drop ID|--all",
     "the dead-letter list\n"
     "\n"
     "  list [--json]    every dead letter, oldest first\n"
     "  show ID [--json] one dead letter with its payload\n"
     "  retry ID|--all   put it (or all) back at the tail of its key;\n"
     "                   --all shows its progress on stderr\n"
     "  drop ID|--all    forget it (or all)"},
    {"token", hk_cmd_token, "set CUSTOMER [TOKEN] | del CUSTOMER",
     "the API token of a customer; setting it resumes the keys held for\n"
     "its token. set without TOKEN reads it from one line of stdin, so\n"
     "that it is not on the command line"},
    {"workers", hk_cmd_workers, "[--json]",
     "live worker processes: host, pid, version, started, loops, in\n"
     "flight, last seen (one not seen for 5 s is gone)\n"
     "\n"
     "  --json  the document of GET /api/workers"},
    {"check", hk_cmd_check, "[-c FILE]",
     "validate a config and say what is wrong, with line numbers"},
};

static void
usage(FILE *out)
{
    fprintf(out, "usage: hookq COMMAND [-c FILE] [ARGS]\n"
                 "       hookq --help | --version\n"
                 "\n"
                 "commands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        const char *h = commands[i].help;
        size_t hl = strcspn(h, "\n;");
        fprintf(out, "  %-8s %s\n           %.*s\n", commands[i].name,
                commands[i].args, (int)hl, h);
    }
    fprintf(out,
            "\n"
            "options:\n"
            "  -c FILE     the configuration; without it $HOOKQ_CONFIG, else\n"
            "              ./hookq.ini, else /etc/hookq/hookq.ini, the first\n"
            "              that exists, else the built-in defaults\n"
            "  --help      this text; COMMAND --help for one command\n"
            "  --version   print the version\n"
            "\n"
            "Every key of the file can be set in the environment as\n"
            "HOOKQ_<SECTION>_<KEY> (HOOKQ_WORKER_LEASE=10s). See\n"
            "docs/configuration.md.\n"
            "\n"
            "exit status: 0 ok, 1 runtime failure, 2 usage or configuration "
            "error\n");
}

static void
command_usage(FILE *out, const struct command *c)
{
    fprintf(out, "usage: hookq %s %s\n\n%s\n", c->name, c->args, c->help);
    if (c->fn != hk_cmd_check && strstr(c->args, "-c FILE") == NULL)
        fprintf(out, "\n  -c FILE  the configuration (see hookq --help)\n");
    fprintf(out, "\nexit status: 0 ok, 1 runtime failure, 2 usage or "
                 "configuration error\n");
    if (strstr(c->args, "--json") != NULL)
        fprintf(out, "with --json, an error is one line of JSON on stderr: "
                     "{\"error\": CODE, \"detail\": TEXT}\n");
}

static const struct command *
find_command(const char *name)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

/* The command line's usage errors: text, or JSON when --json was given. */
static const struct hk_cli *usage_cli;

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
usage_error(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    hk_cli_error_text(usage_cli, "usage", msg);
}

/*
 * Take -c FILE / -cFILE / --config FILE / --config=FILE out of argv (up to a
 * "--"), storing FILE in *path. Returns the new argc, or -1 on a usage error.
 */
static int
take_config(int argc, char **argv, const char **path)
{
    int out = 0;

    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;

        if (strcmp(a, "--") == 0) {
            while (i < argc)
                argv[out++] = argv[i++];
            break;
        }
        if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            if (i + 1 >= argc) {
                usage_error("option %s needs a FILE", a);
                return -1;
            }
            val = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            val = a + 9;
        } else if (strncmp(a, "-c", 2) == 0 && a[2] != '\0') {
            val = a + 2;
        } else {
            argv[out++] = argv[i];
            continue;
        }
        if (val[0] == '\0') {
            usage_error("option -c needs a FILE");
            return -1;
        }
        if (*path != NULL && strcmp(*path, val) != 0) {
            usage_error("-c given twice ('%s' and '%s')", *path, val);
            return -1;
        }
        *path = val;
    }
    argv[out] = NULL;
    return out;
}

static int
has_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return 0;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    struct hk_cli cli = {NULL, NULL, NULL, 0};
    const struct command *cmd;
    char err[16384];
    int rc, i;

    /* Global options before the command. */
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
            printf("hookq %s\n", hq_version());
            return 0;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0 ||
            strcmp(a, "help") == 0) {
            if (strcmp(a, "help") == 0 && i + 1 < argc &&
                (cmd = find_command(argv[i + 1])) != NULL) {
                command_usage(stdout, cmd);
                return 0;
            }
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "hookq: option %s needs a FILE\n", a);
                return 2;
            }
            cli.config_path = argv[++i];
            continue;
        }
        if (strncmp(a, "--config=", 9) == 0) {
            cli.config_path = a + 9;
            continue;
        }
        if (strncmp(a, "-c", 2) == 0 && a[2] != '\0') {
            cli.config_path = a + 2;
            continue;
        }
        if (a[0] == '-') {
            fprintf(stderr, "hookq: unknown option '%s' (see hookq --help)\n",
                    a);
            return 2;
        }
        break;
    }
    if (i >= argc) {
        fprintf(stderr, "hookq: missing COMMAND\n\n");
        usage(stderr);
        return 2;
    }
    cmd = find_command(argv[i]);
    if (cmd == NULL) {
        fprintf(stderr, "hookq: unknown command '%s' (see hookq --help)\n",
                argv[i]);
        return 2;
    }
    argc -= i;
    argv += i;
    if (has_help(argc, argv)) {
        command_usage(stdout, cmd);
        return 0;
    }
    cli.cmd = cmd->name;
    cli.json = hk_cli_wants_json(argc, argv);
    usage_cli = &cli;
    argc = take_config(argc, argv, &cli.config_path);
    if (argc < 0)
        return 2;
    if (cli.config_path != NULL && cli.config_path[0] == '\0') {
        usage_error("option -c needs a FILE");
        return 2;
    }

    /* check loads the file itself, to report what is wrong. */
    if (cmd->fn != hk_cmd_check) {
        rc = hq__config_load(cli.config_path, NULL, &cli.cfg, err, sizeof(err));
        if (rc != HQ_OK) {
            if (cli.json) {
                size_t n = strlen(err);

                while (n > 0 && err[n - 1] == '\n')
                    err[--n] = '\0';
                hk_cli_error_text(&cli, rc == HQ_ENOMEM ? "out_of_memory" : "config",
                                  err);
                return rc == HQ_ENOMEM ? 1 : 2;
            }
            fputs(err, stderr);
            fprintf(stderr, "hookq: invalid configuration\n");
            return rc == HQ_ENOMEM ? 1 : 2;
        }
        hk_log_init(cli.cfg->log_format, cli.cfg->log_level);
    }
    rc = cmd->fn(&cli, argc, argv);
    hq__config_free(cli.cfg);
    return rc;
}
