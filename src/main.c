/*
 * main.c - kilnd's command line: the daemon, and `kilnd token`.
 *
 * Configuration is layered: built-in defaults, then the JSON file
 * (--config), then flags, then KILN_JWT_SECRET from the environment.  A
 * bad flag, key or value exits with status 2 and names the culprit.
 *
 * Signals: SIGINT and SIGTERM are blocked in every thread and taken by the
 * main thread with sigwait(), so no code runs in a signal handler.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "kiln/auth.h"
#include "kiln/batch_sched.h"
#include "kiln/block_cache.h"
#include "kiln/config.h"
#include "kiln/engine.h"
#include "kiln/http.h"
#include "kiln/log.h"
#include "kiln/store.h"
#include "kiln/webhook_sign.h"
#include "kiln/webhooks.h"

#define EXIT_USAGE 2

struct cli {
	const char *config;
	const char *listen;
	const char *data_dir;
	const char *workers;
	const char *log_level;
	const char *tenant;
	const char *sub;
	const char *ttl;
};

static void usage(FILE *to)
{
	fputs("Usage: kilnd [OPTIONS]\n"
	      "       kilnd token [--config FILE] [--data-dir DIR]"
	      " [--tenant T] [--sub S] [--ttl SECONDS]\n"
	      "\n"
	      "Kiln: a workflow-orchestration daemon for AI image and video"
	      " generation.\n"
	      "\n"
	      "Options:\n"
	      "  --config FILE        JSON configuration file\n"
	      "  --listen HOST:PORT   address to listen on (default "
	      KILN_DEFAULT_LISTEN ")\n"
	      "  --data-dir DIR       database, secret and artifacts"
	      " (default " KILN_DEFAULT_DATA_DIR ")\n"
	      "  --workers N          worker threads (default 4)\n"
	      "  --log-level LEVEL    debug, info, warn or error"
	      " (default info)\n"
	      "  --version            print the version and exit\n"
	      "  --help               print this help and exit\n"
	      "\n"
	      "token options:\n"
	      "  --tenant T           restrict the token to tenant T\n"
	      "  --sub S              subject claim (default kiln-cli)\n"
	      "  --ttl SECONDS        lifetime (default 3600)\n"
	      "\n"
	      "Environment: KILN_JWT_SECRET overrides the signing secret.\n",
	      to);
}

/* Parses argv from optind; returns 0, 1 (--help/--version done) or -1. */
static int parse_cli(int argc, char **argv, int is_token, struct cli *cli)
{
	enum { O_CONFIG = 1, O_LISTEN, O_DATA, O_WORKERS, O_LOG, O_TENANT,
	       O_SUB, O_TTL, O_VERSION, O_HELP };
	static const struct option daemon_opts[] = {
		{"config", required_argument, NULL, O_CONFIG},
		{"listen", required_argument, NULL, O_LISTEN},
		{"data-dir", required_argument, NULL, O_DATA},
		{"workers", required_argument, NULL, O_WORKERS},
		{"log-level", required_argument, NULL, O_LOG},
		{"version", no_argument, NULL, O_VERSION},
		{"help", no_argument, NULL, O_HELP},
		{NULL, 0, NULL, 0},
	};
	static const struct option token_opts[] = {
		{"config", required_argument, NULL, O_CONFIG},
		{"data-dir", required_argument, NULL, O_DATA},
		{"tenant", required_argument, NULL, O_TENANT},
		{"sub", required_argument, NULL, O_SUB},
		{"ttl", required_argument, NULL, O_TTL},
		{"help", no_argument, NULL, O_HELP},
		{NULL, 0, NULL, 0},
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":",
				is_token ? token_opts : daemon_opts,
				NULL)) != -1) {
		switch (c) {
		case O_CONFIG: cli->config = optarg; break;
		case O_LISTEN: cli->listen = optarg; break;
		case O_DATA: cli->data_dir = optarg; break;
		case O_WORKERS: cli->workers = optarg; break;
		case O_LOG: cli->log_level = optarg; break;
		case O_TENANT: cli->tenant = optarg; break;
		case O_SUB: cli->sub = optarg; break;
		case O_TTL: cli->ttl = optarg; break;
		case O_VERSION:
			printf("kilnd %s\n", KILN_VERSION);
			return 1;
		case O_HELP:
			usage(stdout);
			return 1;
		case ':':
			fprintf(stderr, "kilnd: option %s needs a value\n",
				argv[optind - 1]);
			return -1;
		default:
			fprintf(stderr, "kilnd: unknown option '%s'\n",
				argv[optind - 1]);
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "kilnd: unexpected argument '%s'\n",
			argv[optind]);
		return -1;
	}
	return 0;
}

/* Reads a decimal in [min, max]; -1 when it is not one. */
static int parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Defaults, file, flags, environment.  Returns 0 or prints and -1. */
static int build_config(const struct cli *cli, struct kiln_config *cfg)
{
	struct kiln_err err = {0};
	long workers;

	if (kiln_config_init_defaults(cfg, &err) != KILN_OK)
		goto bad;
	if (cli->config &&
	    kiln_config_load_file(cfg, cli->config, &err) != KILN_OK)
		goto bad;
	if (cli->listen &&
	    kiln_config_set_listen(cfg, cli->listen, &err) != KILN_OK) {
		kiln_strlcpy(err.field, "--listen", sizeof(err.field));
		goto bad;
	}
	if (cli->data_dir) {
		if (cli->data_dir[0] == '\0') {
			kiln_err_set(&err, KILN_EINVAL, "--data-dir",
				     "must not be empty");
			goto bad;
		}
		free(cfg->data_dir);
		cfg->data_dir = strdup(cli->data_dir);
		if (cfg->data_dir == NULL) {
			kiln_err_set(&err, KILN_ENOMEM, "--data-dir",
				     "out of memory");
			goto bad;
		}
	}
	if (cli->workers) {
		if (parse_long(cli->workers, 1, 1024, &workers) != 0) {
			kiln_err_set(&err, KILN_EINVAL, "--workers",
				     "must be an integer from 1 to 1024");
			goto bad;
		}
		cfg->workers = (int)workers;
	}
	if (cli->log_level &&
	    kiln_log_parse_level(cli->log_level, &cfg->log_level) != 0) {
		kiln_err_set(&err, KILN_EINVAL, "--log-level",
			     "must be debug, info, warn or error");
		goto bad;
	}
	kiln_config_apply_env(cfg);
	kiln_log_set_level(cfg->log_level);
	return 0;
bad:
	fprintf(stderr, "kilnd: configuration error: %s%s%s\n",
		err.field[0] ? err.field : "", err.field[0] ? ": " : "",
		err.msg);
	return -1;
}

/* The signing secret: configured, or <data-dir>/jwt.secret. */
static char *load_secret(const struct kiln_config *cfg)
{
	struct kiln_err err = {0};
	char *secret = NULL;

	if (cfg->jwt_secret)
		return strdup(cfg->jwt_secret);
	if (kiln_auth_load_or_create_secret(cfg->data_dir, &secret, &err) !=
	    KILN_OK) {
		fprintf(stderr, "kilnd: %s\n", err.msg);
		return NULL;
	}
	return secret;
}

/* Webhooks are signed with the configured secret, else with
 * <data-dir>/webhook.secret (created on first start). */
static int webhook_secret(struct kiln_config *cfg)
{
	struct kiln_err err = {0};
	char *secret = NULL;
	enum kiln_rc rc;

	if (cfg->webhooks->has_secret)
		return 0;
	rc = kiln_webhook_load_or_create_secret(cfg->data_dir, &secret, &err);
	if (rc == KILN_OK)
		rc = kiln_webhook_cfg_set_secret(cfg->webhooks, secret, &err);
	free(secret);
	if (rc != KILN_OK) {
		kiln_log(KILN_LOG_ERROR, "webhooks: %s%s%s", err.field,
			 err.field[0] ? ": " : "", err.msg);
		return -1;
	}
	return 0;
}

static int run_token(const struct cli *cli)
{
	struct kiln_config cfg = {0};
	char *secret = NULL, *token = NULL;
	long ttl = 3600;
	int rc = EXIT_USAGE;

	if (cli->ttl && parse_long(cli->ttl, 1, 10L * 365 * 86400, &ttl)) {
		fprintf(stderr, "kilnd: --ttl must be a positive number of"
				" seconds\n");
		goto out;
	}
	if (cli->tenant && (cli->tenant[0] == '\0' ||
			    strlen(cli->tenant) >= KILN_TENANT_MAX)) {
		fprintf(stderr, "kilnd: --tenant must be 1 to 100 characters\n");
		goto out;
	}
	if (build_config(cli, &cfg) != 0)
		goto out;
	rc = EXIT_FAILURE;
	secret = load_secret(&cfg);
	if (secret == NULL)
		goto out;
	token = kiln_auth_make_token(secret, cli->sub ? cli->sub : "kiln-cli",
				     cli->tenant, kiln_now_ms() / 1000, ttl);
	if (token == NULL) {
		fprintf(stderr, "kilnd: cannot sign the token\n");
		goto out;
	}
	printf("%s\n", token);
	rc = EXIT_SUCCESS;
out:
	free(token);
	free(secret);
	kiln_config_free(&cfg);
	return rc;
}

/*
 * Holds an exclusive lock on <data-dir>/kilnd.lock for the life of the
 * process (the kernel drops it when the process dies, even by SIGKILL).
 * Two daemons on one store would run each step twice; and with the lock
 * held, every step still RUNNING at start-up is known to be abandoned.
 * Returns the lock's fd, or -1 after logging why.
 */
static int lock_data_dir(const char *data_dir)
{
	char path[4096];
	int fd;

	if (mkdir(data_dir, 0700) != 0 && errno != EEXIST) {
		kiln_log(KILN_LOG_ERROR, "cannot create data dir %s: %s",
			 data_dir, strerror(errno));
		return -1;
	}
	snprintf(path, sizeof(path), "%s/kilnd.lock", data_dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		kiln_log(KILN_LOG_ERROR, "cannot open %s: %s", path,
			 strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		kiln_log(KILN_LOG_ERROR,
			 "data dir %s is in use by another kilnd (%s is"
			 " locked)",
			 data_dir, path);
		close(fd);
		return -1;
	}
	return fd;
}

static int run_daemon(const struct cli *cli)
{
	struct kiln_config cfg = {0};
	struct kiln_err err = {0};
	struct kiln_engine *engine = NULL;
	struct kiln_batch_sched *batches = NULL;
	struct kiln_webhooks *hooks = NULL;
	struct kiln_http *http = NULL;
	struct kiln_app app = {0};
	char *secret = NULL;
	int rc = EXIT_FAILURE, port = 0, sig = 0, lock_fd = -1;
	sigset_t sigs;

	if (build_config(cli, &cfg) != 0) {
		kiln_config_free(&cfg);
		return EXIT_USAGE;
	}
	/* One malloc arena, not 8 per core: thousands of small allocations
	 * hop between the I/O thread and the workers, and every extra arena
	 * keeps its own free memory.  With two, the peak of 10,000 calls in
	 * flight moved between 146 and 151 MB from run to run (the creates'
	 * freed memory stuck in one arena while libcurl's grew the other);
	 * with one it is 144 MB every time.  The threads contended for its
	 * lock (82 % of kilnd's futex calls in W1) until SQLite and jansson
	 * allocated from the block cache below (bench/README.md). */
	mallopt(M_ARENA_MAX, 1);
	/* Before any SQLite call: SQLite takes its allocator only while it
	 * is not yet initialised. */
	if (kiln_block_cache_install() != 0)
		kiln_log(KILN_LOG_WARN, "SQLite's allocator could not be set");
	/* Block the stop signals before any thread exists; all threads
	 * inherit the mask and the main thread waits for them below. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	secret = load_secret(&cfg);
	if (secret == NULL)
		goto out;
	lock_fd = lock_data_dir(cfg.data_dir);
	if (lock_fd < 0 || webhook_secret(&cfg) != 0)
		goto out;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		kiln_log(KILN_LOG_ERROR, "curl_global_init failed");
		goto out;
	}
	if (kiln_store_init(cfg.data_dir, &err) != KILN_OK) {
		kiln_log(KILN_LOG_ERROR, "store: %s", err.msg);
		goto out_curl;
	}
	kiln_store_set_wal_limit((int64_t)cfg.wal_limit_mb << 20);
	if (kiln_store_checkpointer_start(500, &err) != KILN_OK) {
		kiln_log(KILN_LOG_ERROR, "store: %s", err.msg);
		goto out_store;
	}
	/* Before the engine: what its recovery commits is sent. */
	if (kiln_webhooks_start(&cfg, &hooks, &err) != KILN_OK) {
		kiln_log(KILN_LOG_ERROR, "webhooks: %s", err.msg);
		goto out_store;
	}
	if (kiln_engine_start(&cfg, &engine, &err) != KILN_OK) {
		kiln_log(KILN_LOG_ERROR, "engine: %s", err.msg);
		goto out_hooks;
	}
	if (kiln_batch_sched_start(&cfg, engine, &batches, &err) != KILN_OK) {
		kiln_log(KILN_LOG_ERROR, "batches: %s", err.msg);
		goto out_engine;
	}
	app.cfg = &cfg;
	app.jwt_secret = secret;
	app.engine = engine;
	if (kiln_http_start(&app, &http, &port, &err) != KILN_OK) {
		kiln_log(KILN_LOG_ERROR, "%s", err.msg);
		goto out_batches;
	}
	kiln_log(KILN_LOG_INFO,
		 "kilnd %s listening on %s%s%s:%d (data dir %s, %d workers)",
		 KILN_VERSION, strchr(cfg.listen_host, ':') ? "[" : "",
		 cfg.listen_host, strchr(cfg.listen_host, ':') ? "]" : "",
		 port, cfg.data_dir,
		 cfg.workers);
	while (sigwait(&sigs, &sig) != 0)
		;
	kiln_log(KILN_LOG_INFO, "received signal %d, shutting down", sig);
	kiln_http_stop(http);
	rc = EXIT_SUCCESS;
out_batches:
	kiln_batch_sched_stop(batches);
out_engine:
	kiln_engine_stop(engine);
out_hooks:
	/* Last writer gone: nothing calls the dispatcher's hook any more. */
	kiln_webhooks_stop(hooks);
out_store:
	kiln_store_checkpointer_stop();
	kiln_store_shutdown();
out_curl:
	curl_global_cleanup();
out:
	if (lock_fd >= 0)
		close(lock_fd);
	free(secret);
	kiln_config_free(&cfg);
	kiln_block_cache_drain();
	kiln_block_cache_drain_shared();
	return rc;
}

int main(int argc, char **argv)
{
	struct cli cli = {0};
	int is_token = argc > 1 && strcmp(argv[1], "token") == 0;
	int rc;

	if (is_token)
		optind = 2;
	rc = parse_cli(argc, argv, is_token, &cli);
	if (rc != 0)
		return rc > 0 ? EXIT_SUCCESS : EXIT_USAGE;
	return is_token ? run_token(&cli) : run_daemon(&cli);
}
