/*
 * config.c - kilnd's configuration: defaults, the JSON file, the
 * environment (see config.h).
 *
 * Applying a JSON object is all-or-nothing: it works on a deep copy of the
 * configuration and swaps it in only when every key was accepted, so a
 * failed load leaves the caller's config exactly as it was (and freeable).
 * Scalar keys are described by a table; "providers" is applied before
 * "task_types" whatever their order in the file, because a task type must
 * name a provider that exists once the whole file is read.
 *
 * Every error names the key at fault as a dotted path
 * ("providers.fal.timeout_s", "task_types.GENERATION") in err->field.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <curl/curl.h>

#include "kiln/config.h"
#include "kiln/io_loop.h"
#include "kiln/model.h"
#include "kiln/provider.h"

#define NAME_MAX_LEN 64
#define HOST_MAX_LEN 253
#define JWT_SECRET_MIN_LEN 16
/* A config file is a few kilobytes; anything this big is a mistake. */
#define CONFIG_FILE_MAX (4 * 1024 * 1024)
#define DRYRUN "dryrun"

/* ------------------------------------------------------------------ */
/* Freeing and copying                                                 */
/* ------------------------------------------------------------------ */

static void provider_free(struct kiln_provider_cfg *p)
{
	size_t i;

	free(p->name);
	free(p->type);
	free(p->url);
	for (i = 0; i < p->n_headers; i++)
		free(p->header_lines[i]);
	free(p->header_lines);
	kiln_provider_ext_unref(p->ext);
	curl_slist_free_all(p->request_headers[0]);
	curl_slist_free_all(p->request_headers[1]);
	memset(p, 0, sizeof(*p));
}

void kiln_config_free(struct kiln_config *cfg)
{
	size_t i;

	if (cfg == NULL)
		return;
	free(cfg->listen_host);
	free(cfg->data_dir);
	free(cfg->jwt_secret);
	for (i = 0; i < cfg->n_providers; i++)
		provider_free(&cfg->providers[i]);
	free(cfg->providers);
	for (i = 0; i < cfg->n_task_types; i++) {
		free(cfg->task_types[i].name);
		free(cfg->task_types[i].provider);
	}
	free(cfg->task_types);
	kiln_webhook_cfg_unref(cfg->webhooks);
	memset(cfg, 0, sizeof(*cfg));
}

/* strdup that treats NULL as NULL; *ok is cleared when memory runs out. */
static char *dup_or_null(const char *s, int *ok)
{
	char *d;

	if (s == NULL)
		return NULL;
	d = strdup(s);
	if (d == NULL)
		*ok = 0;
	return d;
}

/* Deep copy of src into *dst (which must be zeroed).  Returns 0, or -1
 * when out of memory, in which case *dst holds a freeable partial copy. */
static int provider_copy(struct kiln_provider_cfg *dst,
			 const struct kiln_provider_cfg *src)
{
	int ok = 1;
	size_t i;

	dst->name = dup_or_null(src->name, &ok);
	dst->type = dup_or_null(src->type, &ok);
	dst->url = dup_or_null(src->url, &ok);
	dst->timeout_s = src->timeout_s;
	dst->connect_timeout_s = src->connect_timeout_s;
	dst->max_retries = src->max_retries;
	dst->ext = kiln_provider_ext_ref(src->ext);
	if (src->n_headers > 0) {
		dst->header_lines =
			calloc(src->n_headers, sizeof(*dst->header_lines));
		if (dst->header_lines == NULL)
			return -1;
		for (i = 0; i < src->n_headers; i++) {
			dst->header_lines[i] =
				dup_or_null(src->header_lines[i], &ok);
			dst->n_headers++;
		}
	}
	if (ok && kiln_provider_share_headers(dst) != 0)
		ok = 0;
	return ok ? 0 : -1;
}

/* Deep copy, so that apply can work on a scratch config. */
static int config_copy(struct kiln_config *dst, const struct kiln_config *src)
{
	int ok = 1;
	size_t i;

	*dst = *src;
	dst->listen_host = NULL;
	dst->data_dir = NULL;
	dst->jwt_secret = NULL;
	dst->providers = NULL;
	dst->n_providers = 0;
	dst->task_types = NULL;
	dst->n_task_types = 0;
	dst->webhooks = kiln_webhook_cfg_ref(src->webhooks);
	dst->listen_host = dup_or_null(src->listen_host, &ok);
	dst->data_dir = dup_or_null(src->data_dir, &ok);
	dst->jwt_secret = dup_or_null(src->jwt_secret, &ok);
	if (src->n_providers > 0) {
		dst->providers =
			calloc(src->n_providers, sizeof(*dst->providers));
		if (dst->providers == NULL)
			return -1;
		for (i = 0; i < src->n_providers; i++) {
			dst->n_providers++;
			if (provider_copy(&dst->providers[i],
					  &src->providers[i]) != 0)
				return -1;
		}
	}
	if (src->n_task_types > 0) {
		dst->task_types =
			calloc(src->n_task_types, sizeof(*dst->task_types));
		if (dst->task_types == NULL)
			return -1;
		for (i = 0; i < src->n_task_types; i++) {
			dst->task_types[i].name =
				dup_or_null(src->task_types[i].name, &ok);
			dst->task_types[i].provider =
				dup_or_null(src->task_types[i].provider, &ok);
			dst->n_task_types++;
		}
	}
	return ok ? 0 : -1;
}

/* Replaces *slot with a copy of value (NULL allowed).  Returns 0 or -1. */
static int replace_str(char **slot, const char *value)
{
	char *copy = NULL;

	if (value != NULL) {
		copy = strdup(value);
		if (copy == NULL)
			return -1;
	}
	free(*slot);
	*slot = copy;
	return 0;
}

static enum kiln_rc no_memory(struct kiln_err *err, const char *field)
{
	return kiln_err_set(err, KILN_ENOMEM, field, "out of memory");
}

/* field = base + "." + key, cut to fit: error fields are for people. */
static void field_path(char field[KILN_ERR_FIELD_MAX], const char *base,
		       const char *key)
{
	size_t n = kiln_strlcpy(field, base, KILN_ERR_FIELD_MAX);

	if (n + 1 < KILN_ERR_FIELD_MAX) {
		field[n] = '.';
		kiln_strlcpy(field + n + 1, key, KILN_ERR_FIELD_MAX - n - 1);
	}
}

/* ------------------------------------------------------------------ */
/* Lookups and the task-type table                                     */
/* ------------------------------------------------------------------ */

static struct kiln_provider_cfg *find_provider(const struct kiln_config *cfg,
					       const char *name)
{
	size_t i;

	for (i = 0; name != NULL && i < cfg->n_providers; i++)
		if (strcmp(cfg->providers[i].name, name) == 0)
			return &cfg->providers[i];
	return NULL;
}

static struct kiln_task_type_cfg *
find_task_type(const struct kiln_config *cfg, const char *name)
{
	size_t i;

	for (i = 0; name != NULL && i < cfg->n_task_types; i++)
		if (strcmp(cfg->task_types[i].name, name) == 0)
			return &cfg->task_types[i];
	return NULL;
}

const struct kiln_provider_cfg *
kiln_config_provider(const struct kiln_config *cfg, const char *name)
{
	return find_provider(cfg, name);
}

const char *kiln_config_task_provider(const struct kiln_config *cfg,
				      const char *task_type)
{
	const struct kiln_task_type_cfg *t = find_task_type(cfg, task_type);

	return t ? t->provider : NULL;
}

/* Points task type name at provider, adding the task type if new.
 * Returns 0 or -1 (out of memory, cfg unchanged). */
static int set_task_type(struct kiln_config *cfg, const char *name,
			 const char *provider)
{
	struct kiln_task_type_cfg *t = find_task_type(cfg, name);
	struct kiln_task_type_cfg *grown;
	char *name_copy, *provider_copy;

	if (t != NULL)
		return replace_str(&t->provider, provider);
	name_copy = strdup(name);
	provider_copy = strdup(provider);
	grown = name_copy && provider_copy
			? realloc(cfg->task_types, (cfg->n_task_types + 1) *
							   sizeof(*grown))
			: NULL;
	if (grown == NULL) {
		free(name_copy);
		free(provider_copy);
		return -1;
	}
	cfg->task_types = grown;
	grown[cfg->n_task_types].name = name_copy;
	grown[cfg->n_task_types].provider = provider_copy;
	cfg->n_task_types++;
	return 0;
}

/* Adds p (taking its members) or replaces the provider of the same name.
 * Returns 0, or -1 when out of memory (then p still owns its members). */
static int put_provider(struct kiln_config *cfg, struct kiln_provider_cfg *p)
{
	struct kiln_provider_cfg *old = find_provider(cfg, p->name);
	struct kiln_provider_cfg *grown;

	if (kiln_provider_share_headers(p) != 0)
		return -1;
	if (old != NULL) {
		provider_free(old);
		*old = *p;
		memset(p, 0, sizeof(*p));
		return 0;
	}
	grown = realloc(cfg->providers,
			(cfg->n_providers + 1) * sizeof(*grown));
	if (grown == NULL)
		return -1;
	cfg->providers = grown;
	grown[cfg->n_providers++] = *p;
	memset(p, 0, sizeof(*p));
	return 0;
}

/* ------------------------------------------------------------------ */
/* Defaults                                                            */
/* ------------------------------------------------------------------ */

enum kiln_rc kiln_config_init_defaults(struct kiln_config *cfg,
				       struct kiln_err *err)
{
	struct kiln_provider_cfg dryrun = {0};
	enum kiln_rc rc = KILN_ENOMEM;
	size_t i;

	memset(cfg, 0, sizeof(*cfg));
	cfg->listen_port = 8080;
	cfg->workers = 4;
	cfg->log_level = KILN_LOG_INFO;
	cfg->max_body_bytes = KILN_DEFAULT_MAX_BODY_BYTES;
	cfg->http_threads = 4;
	cfg->connection_timeout_s = 30;
	cfg->max_connections = 1024;
	cfg->max_connections_per_ip = 256;
	cfg->max_inflight = 10000;
	cfg->idle_connections = KILN_IO_IDLE_CONNECTIONS;
	cfg->commit_delay_us = 500;
	cfg->wal_limit_mb = 64;
	cfg->batch_max_body_bytes = KILN_DEFAULT_BATCH_MAX_BODY_BYTES;
	cfg->batch_max_running = 1000;
	cfg->listen_host = strdup("127.0.0.1");
	cfg->data_dir = strdup(KILN_DEFAULT_DATA_DIR);
	if (cfg->listen_host == NULL || cfg->data_dir == NULL)
		goto out;
	if (kiln_webhook_cfg_default(&cfg->webhooks, err) != KILN_OK)
		goto out;

	dryrun.name = strdup(DRYRUN);
	dryrun.type = strdup(DRYRUN);
	dryrun.timeout_s = 60;
	dryrun.connect_timeout_s = 10;
	if (kiln_provider_ext_default(&dryrun.ext, err) != KILN_OK)
		goto out;
	if (dryrun.name == NULL || dryrun.type == NULL ||
	    put_provider(cfg, &dryrun) != 0)
		goto out;
	for (i = 0; kiln_builtin_task_types[i] != NULL; i++)
		if (set_task_type(cfg, kiln_builtin_task_types[i], DRYRUN) != 0)
			goto out;
	rc = KILN_OK;
out:
	provider_free(&dryrun);
	if (rc != KILN_OK) {
		kiln_config_free(cfg);
		return no_memory(err, "");
	}
	return rc;
}

/* ------------------------------------------------------------------ */
/* listen                                                              */
/* ------------------------------------------------------------------ */

static int is_host_char(char c, int is_bracketed)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_')
		return 1;
	/* Inside brackets: IPv6 colons and a zone id ("fe80::1%eth0"). */
	return is_bracketed && (c == ':' || c == '%');
}

/*
 * "HOST:PORT" or "[IPV6]:PORT".  The host is stored without brackets,
 * ready for getaddrinfo.  A bare IPv6 address is refused: with its colons
 * the port would be a guess.
 */
enum kiln_rc kiln_config_set_listen(struct kiln_config *cfg, const char *hp,
				    struct kiln_err *err)
{
	const char *host, *host_end, *port;
	char *host_copy;
	long port_num = 0;
	size_t i, host_len;
	int is_bracketed;

	if (hp == NULL)
		goto bad;
	is_bracketed = hp[0] == '[';
	if (is_bracketed) {
		host = hp + 1;
		host_end = strchr(host, ']');
		if (host_end == NULL || host_end[1] != ':')
			goto bad;
		port = host_end + 2;
	} else {
		host = hp;
		host_end = strchr(hp, ':');
		if (host_end == NULL || strchr(host_end + 1, ':') != NULL)
			goto bad;
		port = host_end + 1;
	}
	host_len = (size_t)(host_end - host);
	if (host_len == 0 || host_len > HOST_MAX_LEN)
		goto bad;
	for (i = 0; i < host_len; i++)
		if (!is_host_char(host[i], is_bracketed))
			goto bad;
	/* Digits only: strtol would also take "+80", " 80" or "0x50". */
	if (port[0] == '\0' || strlen(port) > 5)
		goto bad;
	for (i = 0; port[i] != '\0'; i++) {
		if (port[i] < '0' || port[i] > '9')
			goto bad;
		port_num = port_num * 10 + (port[i] - '0');
	}
	if (port_num > 65535)
		goto bad;

	host_copy = strndup(host, host_len);
	if (host_copy == NULL)
		return no_memory(err, "listen");
	free(cfg->listen_host);
	cfg->listen_host = host_copy;
	cfg->listen_port = (int)port_num;
	return KILN_OK;
bad:
	return kiln_err_set(err, KILN_EINVAL, "listen",
			    "must be HOST:PORT or [IPV6]:PORT with a port"
			    " from 0 to 65535");
}

/* ------------------------------------------------------------------ */
/* Small validators                                                    */
/* ------------------------------------------------------------------ */

/* Reads an integer in [min, max].  Returns 0, or -1 with err set. */
static int get_int(const json_t *v, long long min, long long max,
		   long long *out, const char *field, struct kiln_err *err)
{
	if (!json_is_integer(v) || json_integer_value(v) < min ||
	    json_integer_value(v) > max) {
		kiln_err_set(err, KILN_EINVAL, field,
			     "must be an integer from %lld to %lld", min, max);
		return -1;
	}
	*out = json_integer_value(v);
	return 0;
}

/* 1 if s is 1..NAME_MAX_LEN characters, each accepted by ok_char. */
static int is_name(const char *s, int (*ok_char)(char))
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (i >= NAME_MAX_LEN || !ok_char(s[i]))
			return 0;
	return i > 0;
}

static int is_provider_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

static int is_task_type_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* RFC 9110 token characters, the only ones allowed in a header name. */
static int is_header_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int is_env_name_char(char c, int is_first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
	       (!is_first && c >= '0' && c <= '9');
}

/* 1 for "http://..." or "https://..." with something after the scheme;
 * curl judges the rest. */
static int is_http_url(const char *s)
{
	if (s == NULL)
		return 0;
	if (strncasecmp(s, "http://", 7) == 0)
		return s[7] != '\0';
	if (strncasecmp(s, "https://", 8) == 0)
		return s[8] != '\0';
	return 0;
}

/* ------------------------------------------------------------------ */
/* Top-level scalar keys                                               */
/* ------------------------------------------------------------------ */

enum int_kind { INT_FIELD, SIZE_FIELD };

/* The integer keys: name, range, where the value goes. */
static const struct int_key {
	const char *key;
	long long min, max;
	enum int_kind kind;
	size_t offset;
} int_keys[] = {
	{"workers", 1, 1024, INT_FIELD, offsetof(struct kiln_config, workers)},
	{"max_body_bytes", 1024, 1073741824, SIZE_FIELD,
	 offsetof(struct kiln_config, max_body_bytes)},
	{"http_threads", 1, 64, INT_FIELD,
	 offsetof(struct kiln_config, http_threads)},
	{"connection_timeout_s", 1, 3600, INT_FIELD,
	 offsetof(struct kiln_config, connection_timeout_s)},
	{"max_connections", 1, 1000000, INT_FIELD,
	 offsetof(struct kiln_config, max_connections)},
	{"max_connections_per_ip", 1, 1000000, INT_FIELD,
	 offsetof(struct kiln_config, max_connections_per_ip)},
	{"max_inflight", 1, 1000000, INT_FIELD,
	 offsetof(struct kiln_config, max_inflight)},
	{"idle_connections", 0, 1000000, INT_FIELD,
	 offsetof(struct kiln_config, idle_connections)},
	{"commit_delay_us", 0, 100000, INT_FIELD,
	 offsetof(struct kiln_config, commit_delay_us)},
	{"wal_limit_mb", 0, 1048576, INT_FIELD,
	 offsetof(struct kiln_config, wal_limit_mb)},
	{"batch_max_body_bytes", 1024, 1073741824, SIZE_FIELD,
	 offsetof(struct kiln_config, batch_max_body_bytes)},
	{"batch_max_running", 1, 1000000, INT_FIELD,
	 offsetof(struct kiln_config, batch_max_running)},
};

static enum kiln_rc apply_int_key(struct kiln_config *cfg,
				  const struct int_key *k, const json_t *v,
				  struct kiln_err *err)
{
	char *base = (char *)cfg;
	long long n;

	if (get_int(v, k->min, k->max, &n, k->key, err) != 0)
		return KILN_EINVAL;
	if (k->kind == SIZE_FIELD)
		*(size_t *)(void *)(base + k->offset) = (size_t)n;
	else
		*(int *)(void *)(base + k->offset) = (int)n;
	return KILN_OK;
}

/* Applies one top-level key other than providers/task_types.  Returns
 * KILN_ENOTFOUND (err untouched) when key is not one of them. */
static enum kiln_rc apply_scalar_key(struct kiln_config *cfg, const char *key,
				     const json_t *v, struct kiln_err *err)
{
	const char *s = json_string_value(v);
	size_t i;

	for (i = 0; i < sizeof(int_keys) / sizeof(int_keys[0]); i++)
		if (strcmp(key, int_keys[i].key) == 0)
			return apply_int_key(cfg, &int_keys[i], v, err);
	if (strcmp(key, "listen") == 0) {
		if (s == NULL)
			return kiln_err_set(err, KILN_EINVAL, key,
					    "must be a string HOST:PORT");
		return kiln_config_set_listen(cfg, s, err);
	}
	if (strcmp(key, "data_dir") == 0) {
		if (s == NULL || s[0] == '\0')
			return kiln_err_set(err, KILN_EINVAL, key,
					    "must be a non-empty string");
		return replace_str(&cfg->data_dir, s) ? no_memory(err, key)
						      : KILN_OK;
	}
	if (strcmp(key, "log_level") == 0) {
		if (s == NULL || kiln_log_parse_level(s, &cfg->log_level) != 0)
			return kiln_err_set(err, KILN_EINVAL, key,
					    "must be \"debug\", \"info\","
					    " \"warn\" or \"error\"");
		return KILN_OK;
	}
	if (strcmp(key, "jwt_secret") == 0) {
		if (!json_is_null(v) &&
		    (s == NULL || strlen(s) < JWT_SECRET_MIN_LEN))
			return kiln_err_set(err, KILN_EINVAL, key,
					    "must be a string of at least %d"
					    " characters, or null",
					    JWT_SECRET_MIN_LEN);
		return replace_str(&cfg->jwt_secret, s) ? no_memory(err, key)
							: KILN_OK;
	}
	return KILN_ENOTFOUND;
}

/* ------------------------------------------------------------------ */
/* Providers                                                           */
/* ------------------------------------------------------------------ */

/*
 * Expands every ${env:VAR} in value into *out (malloc'd, the caller
 * frees).  Fails, with err->field naming the header, on a malformed
 * reference, an unset variable, a line break (it would split the header)
 * or no memory.  Other "${...}" text is left as it is.
 */
static enum kiln_rc expand_env(const char *value, const char *field,
			       char **out, struct kiln_err *err)
{
	static const char open_ref[] = "${env:";
	const char *p = value, *ref, *name, *env;
	char *text = NULL, *grown, var[256];
	size_t text_len = 0, chunk, name_len, i;
	enum kiln_rc rc = KILN_EINVAL;

	for (;;) {
		ref = strstr(p, open_ref);
		chunk = ref ? (size_t)(ref - p) : strlen(p);
		env = NULL;
		if (ref != NULL) {
			name = ref + sizeof(open_ref) - 1;
			for (name_len = 0; is_env_name_char(name[name_len],
							    name_len == 0);
			     name_len++)
				;
			if (name_len == 0 || name[name_len] != '}' ||
			    name_len >= sizeof(var)) {
				kiln_err_set(err, KILN_EINVAL, field,
					     "malformed ${env:NAME} reference"
					     " (NAME: letters, digits, _)");
				goto out;
			}
			memcpy(var, name, name_len);
			var[name_len] = '\0';
			env = getenv(var);
			if (env == NULL) {
				kiln_err_set(err, KILN_EINVAL, field,
					     "environment variable %s is not"
					     " set",
					     var);
				goto out;
			}
		}
		grown = realloc(text, text_len + chunk +
					      (env ? strlen(env) : 0) + 1);
		if (grown == NULL) {
			rc = no_memory(err, field);
			goto out;
		}
		text = grown;
		memcpy(text + text_len, p, chunk);
		text_len += chunk;
		if (env != NULL) {
			memcpy(text + text_len, env, strlen(env));
			text_len += strlen(env);
		}
		text[text_len] = '\0';
		if (ref == NULL)
			break;
		p = ref + sizeof(open_ref) - 1 + name_len + 1;
	}
	for (i = 0; i < text_len; i++) {
		if (text[i] == '\r' || text[i] == '\n') {
			kiln_err_set(err, KILN_EINVAL, field,
				     "must not contain a line break (after"
				     " ${env:...} expansion)");
			goto out;
		}
	}
	*out = text;
	text = NULL;
	rc = KILN_OK;
out:
	free(text);
	return rc;
}

static enum kiln_rc parse_headers(struct kiln_provider_cfg *p,
				  const json_t *headers, const char *base,
				  struct kiln_err *err)
{
	char field[KILN_ERR_FIELD_MAX];
	const char *name;
	json_t *v;
	char *value = NULL, *line;
	size_t line_len;
	enum kiln_rc rc;

	if (!json_is_object(headers))
		return kiln_err_set(err, KILN_EINVAL, base,
				    "must be an object of header name to"
				    " string value");
	p->header_lines = calloc(json_object_size(headers) + 1,
				 sizeof(*p->header_lines));
	if (p->header_lines == NULL)
		return no_memory(err, base);
	json_object_foreach((json_t *)headers, name, v) {
		field_path(field, base, name);
		if (!is_name(name, is_header_name_char))
			return kiln_err_set(err, KILN_EINVAL, field,
					    "header names are 1 to %d HTTP"
					    " token characters",
					    NAME_MAX_LEN);
		if (!json_is_string(v))
			return kiln_err_set(err, KILN_EINVAL, field,
					    "must be a string");
		rc = expand_env(json_string_value(v), field, &value, err);
		if (rc != KILN_OK)
			return rc;
		line_len = strlen(name) + 2 + strlen(value) + 1;
		line = malloc(line_len);
		if (line != NULL)
			snprintf(line, line_len, "%s: %s", name, value);
		free(value);
		if (line == NULL)
			return no_memory(err, field);
		p->header_lines[p->n_headers++] = line;
	}
	return KILN_OK;
}

/* Parses one provider object into *p (zeroed by the caller; freed by the
 * caller whatever happens). */
static enum kiln_rc parse_provider(struct kiln_provider_cfg *p,
				   const char *name, const json_t *obj,
				   struct kiln_err *err)
{
	static const struct {
		const char *key;
		long long min, max;
		size_t offset;
	} limits[] = {
		{"timeout_s", 1, 86400,
		 offsetof(struct kiln_provider_cfg, timeout_s)},
		{"connect_timeout_s", 1, 600,
		 offsetof(struct kiln_provider_cfg, connect_timeout_s)},
		{"max_retries", 0, 100,
		 offsetof(struct kiln_provider_cfg, max_retries)},
	};
	char base[KILN_ERR_FIELD_MAX], field[KILN_ERR_FIELD_MAX];
	const char *key, *s;
	enum kiln_rc rc;
	long long n;
	size_t i;
	json_t *v;

	field_path(base, "providers", name);
	if (!json_is_object(obj))
		return kiln_err_set(err, KILN_EINVAL, base,
				    "must be an object");
	p->name = strdup(name);
	p->type = strdup("http");
	if (p->name == NULL || p->type == NULL)
		return no_memory(err, base);
	p->timeout_s = 60;
	p->connect_timeout_s = 10;
	p->max_retries = 0;

	json_object_foreach((json_t *)obj, key, v) {
		field_path(field, base, key);
		s = json_string_value(v);
		for (i = 0; i < sizeof(limits) / sizeof(limits[0]); i++)
			if (strcmp(key, limits[i].key) == 0)
				break;
		if (i < sizeof(limits) / sizeof(limits[0])) {
			if (get_int(v, limits[i].min, limits[i].max, &n, field,
				    err) != 0)
				return KILN_EINVAL;
			*(int *)(void *)((char *)p + limits[i].offset) = (int)n;
		} else if (strcmp(key, "type") == 0) {
			if (s == NULL ||
			    (strcmp(s, "http") != 0 && strcmp(s, DRYRUN) != 0))
				return kiln_err_set(err, KILN_EINVAL, field,
						    "must be \"http\" or"
						    " \"dryrun\"");
			if (replace_str(&p->type, s) != 0)
				return no_memory(err, field);
		} else if (strcmp(key, "url") == 0) {
			if (!is_http_url(s))
				return kiln_err_set(err, KILN_EINVAL, field,
						    "must be a string starting"
						    " with http:// or"
						    " https://");
			if (replace_str(&p->url, s) != 0)
				return no_memory(err, field);
		} else if (strcmp(key, "headers") == 0) {
			rc = parse_headers(p, v, field, err);
			if (rc != KILN_OK)
				return rc;
		} else if (kiln_provider_ext_key(key)) {
			continue; /* kiln_provider_ext_parse, below */
		} else {
			return kiln_err_set(err, KILN_EINVAL, field,
					    "unknown key");
		}
	}
	if (strcmp(p->type, "http") == 0 && p->url == NULL) {
		field_path(field, base, "url");
		return kiln_err_set(err, KILN_EINVAL, field,
				    "is required for an http provider");
	}
	return kiln_provider_ext_parse(obj, base, &p->ext, err);
}

static enum kiln_rc apply_providers(struct kiln_config *cfg,
				    const json_t *providers,
				    struct kiln_err *err)
{
	struct kiln_provider_cfg p;
	char field[KILN_ERR_FIELD_MAX];
	const char *name;
	enum kiln_rc rc = KILN_OK;
	json_t *v;

	if (!json_is_object(providers))
		return kiln_err_set(err, KILN_EINVAL, "providers",
				    "must be an object of provider name to"
				    " provider settings");
	json_object_foreach((json_t *)providers, name, v) {
		memset(&p, 0, sizeof(p));
		field_path(field, "providers", name);
		if (!is_name(name, is_provider_name_char)) {
			rc = kiln_err_set(err, KILN_EINVAL, field,
					  "provider names are 1 to %d"
					  " characters of A-Z a-z 0-9 _ . -",
					  NAME_MAX_LEN);
			break;
		}
		rc = parse_provider(&p, name, v, err);
		/* Steps already bound to the built-in dryrun provider must
		 * keep generating nothing. */
		if (rc == KILN_OK && strcmp(name, DRYRUN) == 0 &&
		    strcmp(p.type, DRYRUN) != 0)
			rc = kiln_err_set(err, KILN_EINVAL, field,
					  "the built-in \"dryrun\" provider"
					  " can only have type \"dryrun\"");
		if (rc == KILN_OK && put_provider(cfg, &p) != 0)
			rc = no_memory(err, field);
		provider_free(&p);
		if (rc != KILN_OK)
			break;
	}
	return rc;
}

static enum kiln_rc apply_task_types(struct kiln_config *cfg,
				     const json_t *task_types,
				     struct kiln_err *err)
{
	char field[KILN_ERR_FIELD_MAX];
	const char *name, *provider;
	json_t *v;

	if (!json_is_object(task_types))
		return kiln_err_set(err, KILN_EINVAL, "task_types",
				    "must be an object of task type to"
				    " provider name");
	json_object_foreach((json_t *)task_types, name, v) {
		field_path(field, "task_types", name);
		if (!is_name(name, is_task_type_char))
			return kiln_err_set(err, KILN_EINVAL, field,
					    "task type names are 1 to %d"
					    " characters of A-Z 0-9 _",
					    NAME_MAX_LEN);
		provider = json_string_value(v);
		if (provider == NULL)
			return kiln_err_set(err, KILN_EINVAL, field,
					    "must be a provider name (a"
					    " string)");
		if (find_provider(cfg, provider) == NULL)
			return kiln_err_set(err, KILN_EINVAL, field,
					    "names unknown provider \"%s\"",
					    provider);
		if (set_task_type(cfg, name, provider) != 0)
			return no_memory(err, field);
	}
	return KILN_OK;
}

/* ------------------------------------------------------------------ */
/* Applying a file                                                     */
/* ------------------------------------------------------------------ */

enum kiln_rc kiln_config_apply_json(struct kiln_config *cfg, json_t *root,
				    struct kiln_err *err)
{
	struct kiln_config work;
	const json_t *providers, *task_types;
	const char *key;
	enum kiln_rc rc = KILN_OK;
	json_t *v;

	if (!json_is_object(root))
		return kiln_err_set(err, KILN_EINVAL, "",
				    "the configuration must be a JSON object");
	if (config_copy(&work, cfg) != 0) {
		rc = no_memory(err, "");
		goto out;
	}
	json_object_foreach(root, key, v) {
		if (strcmp(key, "providers") == 0 ||
		    strcmp(key, "task_types") == 0)
			continue;
		if (strcmp(key, "webhooks") == 0) {
			struct kiln_webhook_cfg *hooks;

			rc = kiln_webhook_cfg_parse(v, &hooks, err);
			if (rc != KILN_OK)
				goto out;
			kiln_webhook_cfg_unref(work.webhooks);
			work.webhooks = hooks;
			continue;
		}
		rc = apply_scalar_key(&work, key, v, err);
		if (rc == KILN_ENOTFOUND)
			rc = kiln_err_set(err, KILN_EINVAL, key, "unknown key");
		if (rc != KILN_OK)
			goto out;
	}
	providers = json_object_get(root, "providers");
	if (providers != NULL) {
		rc = apply_providers(&work, providers, err);
		if (rc != KILN_OK)
			goto out;
	}
	task_types = json_object_get(root, "task_types");
	if (task_types != NULL) {
		rc = apply_task_types(&work, task_types, err);
		if (rc != KILN_OK)
			goto out;
	}
	/* Everything accepted: the scratch copy becomes the config. */
	kiln_config_free(cfg);
	*cfg = work;
	memset(&work, 0, sizeof(work));
out:
	kiln_config_free(&work);
	return rc;
}

enum kiln_rc kiln_config_load_file(struct kiln_config *cfg, const char *path,
				   struct kiln_err *err)
{
	json_error_t jerr;
	json_t *root = NULL;
	enum kiln_rc rc;
	char *text = NULL;
	size_t len = 0, n;
	FILE *fp;

	fp = fopen(path, "rb");
	if (fp == NULL)
		return kiln_err_set(err, KILN_EIO, path,
				    "cannot open config file %s: %s", path,
				    strerror(errno));
	text = malloc(CONFIG_FILE_MAX + 1);
	if (text == NULL) {
		rc = no_memory(err, path);
		goto out;
	}
	while ((n = fread(text + len, 1, CONFIG_FILE_MAX + 1 - len, fp)) > 0)
		len += n;
	if (ferror(fp)) {
		rc = kiln_err_set(err, KILN_EIO, path,
				  "cannot read config file %s: %s", path,
				  strerror(errno));
		goto out;
	}
	if (len > CONFIG_FILE_MAX) {
		rc = kiln_err_set(err, KILN_EIO, path,
				  "config file %s is larger than %d bytes",
				  path, CONFIG_FILE_MAX);
		goto out;
	}
	/* Duplicate keys are refused: a second "workers" silently winning
	 * is a mistake worth stopping for. */
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		rc = kiln_err_set(err, KILN_EINVAL, "",
				  "invalid JSON in %s at line %d, column %d:"
				  " %s",
				  path, jerr.line, jerr.column, jerr.text);
		goto out;
	}
	rc = kiln_config_apply_json(cfg, root, err);
out:
	json_decref(root);
	free(text);
	fclose(fp);
	return rc;
}

void kiln_config_apply_env(struct kiln_config *cfg)
{
	const char *secret = getenv("KILN_JWT_SECRET");

	if (secret == NULL || secret[0] == '\0')
		return;
	if (strlen(secret) < JWT_SECRET_MIN_LEN)
		kiln_log(KILN_LOG_WARN,
			 "KILN_JWT_SECRET is shorter than %d characters;"
			 " tokens signed with it are easy to forge",
			 JWT_SECRET_MIN_LEN);
	if (replace_str(&cfg->jwt_secret, secret) != 0)
		kiln_log(KILN_LOG_ERROR,
			 "out of memory applying KILN_JWT_SECRET");
}
