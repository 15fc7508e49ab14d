/*
 * webhook_cfg.c - parsing the "webhooks" section of the configuration.
 *
 * Strict like the rest of the config: an unknown key or a bad value names
 * the key ("webhooks.schedule_s[2]") and kilnd refuses to start, because a
 * typo in a secret or schedule would otherwise surface days later as
 * callbacks nobody can verify.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/webhook_cfg.h"

static const long default_schedule_ms[] = {
	0, 5000, 300000, 1800000, 7200000, 18000000, 36000000, 36000000,
};

#define DAY_MS (24L * 3600 * 1000)

static const char *const keys[] = {
	"secret", "tenant_secrets", "schedule_s", "jitter",
	"timeout_s", "connect_timeout_s", "max_retry_after_s",
	"max_per_endpoint", "max_inflight", "max_response_bytes",
	"allow_private_networks",
};

int kiln_webhook_cfg_key(const char *key)
{
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(key, keys[i]) == 0)
			return 1;
	return 0;
}

static struct kiln_webhook_cfg *cfg_new(void)
{
	struct kiln_webhook_cfg *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->refs = 1;
	c->connect_timeout_ms = 5000;
	c->timeout_ms = 15000;
	memcpy(c->schedule_ms, default_schedule_ms,
	       sizeof(default_schedule_ms));
	c->n_schedule = sizeof(default_schedule_ms) /
			sizeof(default_schedule_ms[0]);
	c->jitter = 0.1;
	c->max_retry_after_ms = DAY_MS;
	c->max_per_endpoint = 8;
	c->max_inflight = 1000;
	c->max_response_bytes = 64 * 1024;
	return c;
}

enum kiln_rc kiln_webhook_cfg_default(struct kiln_webhook_cfg **out,
				      struct kiln_err *err)
{
	*out = cfg_new();
	return *out ? KILN_OK
		    : kiln_err_set(err, KILN_ENOMEM, "webhooks",
				   "out of memory");
}

/* A number of seconds in [min, max] as ms. */
static enum kiln_rc get_seconds(const json_t *v, double min, double max,
				long *ms, const char *field,
				struct kiln_err *err)
{
	double d;

	if (!json_is_number(v) || (d = json_number_value(v)) < min ||
	    d > max || isnan(d))
		return kiln_err_set(err, KILN_EINVAL, field,
				    "must be a number of seconds from %g to"
				    " %g",
				    min, max);
	*ms = (long)llround(d * 1000.0);
	return KILN_OK;
}

static enum kiln_rc get_int(const json_t *v, long long min, long long max,
			    long long *n, const char *field,
			    struct kiln_err *err)
{
	if (!json_is_integer(v) || json_integer_value(v) < min ||
	    json_integer_value(v) > max)
		return kiln_err_set(err, KILN_EINVAL, field,
				    "must be an integer from %lld to %lld",
				    min, max);
	*n = json_integer_value(v);
	return KILN_OK;
}

/* A secret, or an array of them (the first is the newest; all sign). */
static enum kiln_rc parse_keyset(const json_t *v, const char *field,
				 struct kiln_webhook_keyset *set,
				 struct kiln_err *err)
{
	char sub[KILN_ERR_FIELD_MAX];
	size_t i, n = json_is_array(v) ? json_array_size(v) : 1;
	enum kiln_rc rc;

	if (!json_is_string(v) &&
	    !(json_is_array(v) && n >= 1 && n <= KILN_WEBHOOK_SECRETS_MAX))
		return kiln_err_set(err, KILN_EINVAL, field,
				    "must be a \"whsec_...\" secret or an"
				    " array of 1 to %d of them",
				    KILN_WEBHOOK_SECRETS_MAX);
	set->n = 0;
	for (i = 0; i < n; i++) {
		const json_t *s = json_is_array(v) ? json_array_get(v, i) : v;

		if (json_is_array(v))
			snprintf(sub, sizeof(sub), "%s[%zu]", field, i);
		else
			kiln_strlcpy(sub, field, sizeof(sub));
		if (!json_is_string(s))
			return kiln_err_set(err, KILN_EINVAL, sub,
					    "must be a \"whsec_...\" string");
		rc = kiln_webhook_key_parse(json_string_value(s),
					    &set->keys[i], err);
		if (rc != KILN_OK) {
			kiln_strlcpy(err->field, sub, sizeof(err->field));
			return rc;
		}
		set->n++;
	}
	return KILN_OK;
}

static enum kiln_rc parse_tenants(struct kiln_webhook_cfg *c, const json_t *v,
				  struct kiln_err *err)
{
	char field[KILN_ERR_FIELD_MAX];
	const char *tenant;
	enum kiln_rc rc;
	json_t *secret;

	if (!json_is_object(v))
		return kiln_err_set(err, KILN_EINVAL, "webhooks.tenant_secrets",
				    "must be an object of tenant id to"
				    " secret(s)");
	c->tenants = calloc(json_object_size(v) + 1, sizeof(*c->tenants));
	if (c->tenants == NULL)
		return kiln_err_set(err, KILN_ENOMEM, "webhooks",
				    "out of memory");
	json_object_foreach((json_t *)v, tenant, secret) {
		struct kiln_webhook_tenant_keys *t = &c->tenants[c->n_tenants];

		snprintf(field, sizeof(field), "webhooks.tenant_secrets.%s",
			 tenant);
		rc = parse_keyset(secret, field, &t->set, err);
		if (rc != KILN_OK)
			return rc;
		t->tenant = strdup(tenant);
		if (t->tenant == NULL)
			return kiln_err_set(err, KILN_ENOMEM, "webhooks",
					    "out of memory");
		c->n_tenants++;
	}
	return KILN_OK;
}

static enum kiln_rc parse_schedule(struct kiln_webhook_cfg *c,
				   const json_t *v, struct kiln_err *err)
{
	char field[KILN_ERR_FIELD_MAX];
	size_t i;
	enum kiln_rc rc;

	if (!json_is_array(v) || json_array_size(v) == 0 ||
	    json_array_size(v) > KILN_WEBHOOK_SCHEDULE_MAX)
		return kiln_err_set(err, KILN_EINVAL, "webhooks.schedule_s",
				    "must be an array of 1 to %d delays in"
				    " seconds",
				    KILN_WEBHOOK_SCHEDULE_MAX);
	for (i = 0; i < json_array_size(v); i++) {
		snprintf(field, sizeof(field), "webhooks.schedule_s[%zu]", i);
		rc = get_seconds(json_array_get(v, i), 0, 7 * 86400.0,
				 &c->schedule_ms[i], field, err);
		if (rc != KILN_OK)
			return rc;
	}
	c->n_schedule = json_array_size(v);
	return KILN_OK;
}

static enum kiln_rc parse_key(struct kiln_webhook_cfg *c, const char *key,
			      const json_t *v, struct kiln_err *err)
{
	char field[KILN_ERR_FIELD_MAX];
	long long n = 0;
	enum kiln_rc rc;

	snprintf(field, sizeof(field), "webhooks.%s", key);
	if (strcmp(key, "secret") == 0) {
		c->has_secret = 1;
		return parse_keyset(v, field, &c->secret, err);
	}
	if (strcmp(key, "tenant_secrets") == 0)
		return parse_tenants(c, v, err);
	if (strcmp(key, "schedule_s") == 0)
		return parse_schedule(c, v, err);
	if (strcmp(key, "timeout_s") == 0)
		return get_seconds(v, 0.1, 600, &c->timeout_ms, field, err);
	if (strcmp(key, "connect_timeout_s") == 0)
		return get_seconds(v, 0.1, 600, &c->connect_timeout_ms, field,
				   err);
	if (strcmp(key, "max_retry_after_s") == 0)
		return get_seconds(v, 0, 7 * 86400.0, &c->max_retry_after_ms,
				   field, err);
	if (strcmp(key, "jitter") == 0) {
		if (!json_is_number(v) || json_number_value(v) < 0 ||
		    json_number_value(v) > 1)
			return kiln_err_set(err, KILN_EINVAL, field,
					    "must be a number from 0 to 1");
		c->jitter = json_number_value(v);
		return KILN_OK;
	}
	if (strcmp(key, "allow_private_networks") == 0) {
		if (!json_is_boolean(v))
			return kiln_err_set(err, KILN_EINVAL, field,
					    "must be true or false");
		c->allow_private_networks = json_is_true(v);
		return KILN_OK;
	}
	if (strcmp(key, "max_per_endpoint") == 0) {
		rc = get_int(v, 1, 1000, &n, field, err);
		c->max_per_endpoint = (int)n;
		return rc;
	}
	if (strcmp(key, "max_inflight") == 0) {
		rc = get_int(v, 1, 100000, &n, field, err);
		c->max_inflight = (int)n;
		return rc;
	}
	if (strcmp(key, "max_response_bytes") == 0) {
		rc = get_int(v, 1024, 16 * 1024 * 1024, &n, field, err);
		c->max_response_bytes = (size_t)n;
		return rc;
	}
	return kiln_err_set(err, KILN_EINVAL, field, "unknown key");
}

enum kiln_rc kiln_webhook_cfg_parse(const json_t *obj,
				    struct kiln_webhook_cfg **out,
				    struct kiln_err *err)
{
	struct kiln_webhook_cfg *c;
	const char *key;
	enum kiln_rc rc = KILN_OK;
	json_t *v;

	*out = NULL;
	if (!json_is_object(obj))
		return kiln_err_set(err, KILN_EINVAL, "webhooks",
				    "must be an object");
	c = cfg_new();
	if (c == NULL)
		return kiln_err_set(err, KILN_ENOMEM, "webhooks",
				    "out of memory");
	json_object_foreach((json_t *)obj, key, v) {
		rc = parse_key(c, key, v, err);
		if (rc != KILN_OK)
			break;
	}
	if (rc == KILN_OK && c->connect_timeout_ms > c->timeout_ms)
		rc = kiln_err_set(err, KILN_EINVAL,
				  "webhooks.connect_timeout_s",
				  "must not be longer than timeout_s");
	if (rc != KILN_OK) {
		kiln_webhook_cfg_unref(c);
		return rc;
	}
	*out = c;
	return KILN_OK;
}

enum kiln_rc kiln_webhook_cfg_set_secret(struct kiln_webhook_cfg *c,
					 const char *secret,
					 struct kiln_err *err)
{
	enum kiln_rc rc = kiln_webhook_key_parse(secret, &c->secret.keys[0],
						 err);

	if (rc != KILN_OK)
		return rc;
	c->secret.n = 1;
	c->has_secret = 1;
	return KILN_OK;
}

const struct kiln_webhook_keyset *
kiln_webhook_cfg_keys(const struct kiln_webhook_cfg *c, const char *tenant)
{
	for (size_t i = 0; tenant != NULL && i < c->n_tenants; i++)
		if (strcmp(c->tenants[i].tenant, tenant) == 0)
			return &c->tenants[i].set;
	return &c->secret;
}

struct kiln_webhook_cfg *kiln_webhook_cfg_ref(struct kiln_webhook_cfg *c)
{
	if (c != NULL)
		__atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
	return c;
}

void kiln_webhook_cfg_unref(struct kiln_webhook_cfg *c)
{
	size_t i;

	if (c == NULL || __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	for (i = 0; i < c->n_tenants; i++)
		free(c->tenants[i].tenant);
	free(c->tenants);
	explicit_bzero(c, sizeof(*c));
	free(c);
}
