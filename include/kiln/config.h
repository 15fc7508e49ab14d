/*
 * config.h - kilnd's configuration: a JSON file, overridden by command-line
 * flags, with KILN_JWT_SECRET from the environment overriding the secret.
 *
 * Loading is strict: an unknown key or a bad value is an error that names
 * the key (e.g. "providers.fal.timeout_s"), and kilnd exits with status 2.
 */
#ifndef KILN_CONFIG_H
#define KILN_CONFIG_H

#include <jansson.h>

#include "kiln/common.h"
#include "kiln/log.h"
#include "kiln/provider_cfg.h"
#include "kiln/webhook_cfg.h"

#define KILN_DEFAULT_LISTEN "127.0.0.1:8080"
#define KILN_DEFAULT_DATA_DIR "./var"
#define KILN_DEFAULT_MAX_BODY_BYTES (1024 * 1024)
/* POST /api/v1/batches: 100,000 assets with their URLs fit. */
#define KILN_DEFAULT_BATCH_MAX_BODY_BYTES (64 * 1024 * 1024)

struct curl_slist;

/* One named provider.  type is "http" (plain JSON request/response) or
 * "dryrun" (built in; generates nothing). */
struct kiln_provider_cfg {
	char *name;
	char *type;        /* "http" | "dryrun" */
	char *url;         /* http only */
	char **header_lines; /* "Name: value", ${env:X} already expanded */
	size_t n_headers;
	int timeout_s;     /* total transfer timeout, default 60 */
	int connect_timeout_s; /* default 10 */
	int max_retries;   /* default for steps that do not set one; 0 */
	struct kiln_provider_ext *ext; /* mode, retries, async, artifacts */
	/* The headers of its requests without [0] and with [1] a body,
	 * shared by all of them (NULL: each request builds its own). */
	struct curl_slist *request_headers[2];
};

/* task type -> provider name.  The built-in task types map to "dryrun"
 * unless the config says otherwise; the config may add task types. */
struct kiln_task_type_cfg {
	char *name;
	char *provider;
};

struct kiln_config {
	char *listen_host;       /* "127.0.0.1" */
	int listen_port;         /* 8080; 0 = any free port */
	char *data_dir;          /* "./var" */
	int workers;             /* worker threads, default 4 */
	enum kiln_log_level log_level;
	char *jwt_secret;        /* NULL: use/create <data_dir>/jwt.secret */
	size_t max_body_bytes;   /* request body cap, default 1 MiB */
	int http_threads;        /* MHD thread pool size, default 4 */
	int connection_timeout_s;/* idle HTTP connection timeout, default 30 */
	int max_connections;     /* default 1024 */
	int max_connections_per_ip; /* default 256 */
	int max_inflight;        /* provider HTTP requests at once, 10000 */
	int idle_connections;    /* provider connections kept idle, 256 */
	int commit_delay_us;     /* commit pacing under load, 500; 0: none */
	int wal_limit_mb;        /* WAL restarted at this size, 64; 0: never */
	size_t batch_max_body_bytes; /* POST /api/v1/batches cap, 64 MiB */
	int batch_max_running;   /* executions running in all batches, 1000 */
	struct kiln_provider_cfg *providers;
	size_t n_providers;
	struct kiln_task_type_cfg *task_types;
	size_t n_task_types;
	struct kiln_webhook_cfg *webhooks; /* never NULL once initialised */
};

/* Fills cfg with the defaults (dryrun provider, built-in task types).
 * Free with kiln_config_free. */
enum kiln_rc kiln_config_init_defaults(struct kiln_config *cfg,
				       struct kiln_err *err)
	KILN_WARN_UNUSED;

/* Reads the JSON file at path and applies it over cfg.  On error, err->field
 * names the key ("workers", "providers.fal.url") and err->msg says why. */
enum kiln_rc kiln_config_load_file(struct kiln_config *cfg, const char *path,
				   struct kiln_err *err) KILN_WARN_UNUSED;

/* Applies a JSON object (already parsed) over cfg; used by load_file and by
 * the unit tests. */
enum kiln_rc kiln_config_apply_json(struct kiln_config *cfg, json_t *root,
				    struct kiln_err *err) KILN_WARN_UNUSED;

/* Parses "HOST:PORT" into cfg->listen_host/port. */
enum kiln_rc kiln_config_set_listen(struct kiln_config *cfg, const char *hp,
				    struct kiln_err *err) KILN_WARN_UNUSED;

/* Applies KILN_JWT_SECRET if set in the environment. */
void kiln_config_apply_env(struct kiln_config *cfg);

/* Borrowed lookups; NULL when absent. */
const struct kiln_provider_cfg *
kiln_config_provider(const struct kiln_config *cfg, const char *name);
/* The provider name for a task type, or NULL if the task type is unknown. */
const char *kiln_config_task_provider(const struct kiln_config *cfg,
				      const char *task_type);

void kiln_config_free(struct kiln_config *cfg);

#endif
