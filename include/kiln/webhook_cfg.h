/*
 * webhook_cfg.h - the "webhooks" section of the configuration: signing
 * secrets (default and per tenant, two at once while rotating), the retry
 * schedule, timeouts, concurrency, and whether private networks may be
 * targets.  docs/webhooks.md describes every key.
 *
 * Parsed once at start-up and immutable afterwards, so copies of the
 * configuration share it by reference count.
 */
#ifndef KILN_WEBHOOK_CFG_H
#define KILN_WEBHOOK_CFG_H

#include <jansson.h>
#include <stddef.h>

#include "kiln/common.h"
#include "kiln/webhook_sign.h"

#define KILN_WEBHOOK_SECRETS_MAX 4
#define KILN_WEBHOOK_SCHEDULE_MAX 32

/* The secrets that sign one delivery: all of them, so a receiver that
 * knows either key of a rotation verifies it. */
struct kiln_webhook_keyset {
	struct kiln_webhook_key keys[KILN_WEBHOOK_SECRETS_MAX];
	size_t n;
};

struct kiln_webhook_tenant_keys {
	char *tenant;
	struct kiln_webhook_keyset set;
};

struct kiln_webhook_cfg {
	int refs;
	int allow_private_networks; /* 0: refuse private/loopback targets */
	long connect_timeout_ms;    /* 5000 */
	long timeout_ms;            /* 15000, total per attempt */
	/* Delay before each attempt, from the failure of the one before (the
	 * first from the event): Standard Webhooks' 0, 5 s, 5 min, 30 min,
	 * 2 h, 5 h, 10 h, 10 h. */
	long schedule_ms[KILN_WEBHOOK_SCHEDULE_MAX];
	size_t n_schedule;
	double jitter;              /* up to this fraction added; 0.1 */
	long max_retry_after_ms;    /* Retry-After is honoured up to this */
	int max_per_endpoint;       /* attempts in flight per receiver; 8 */
	int max_inflight;           /* attempts in flight in all; 1000 */
	size_t max_response_bytes;  /* read from a receiver; 64 KiB */
	int has_secret;             /* 0: <data_dir>/webhook.secret */
	struct kiln_webhook_keyset secret;
	struct kiln_webhook_tenant_keys *tenants;
	size_t n_tenants;
};

/* 1 if key is one of the section's keys. */
int kiln_webhook_cfg_key(const char *key);

/* Parses the "webhooks" object (error fields are "webhooks.<key>").  *out
 * is owned (kiln_webhook_cfg_unref). */
enum kiln_rc kiln_webhook_cfg_parse(const json_t *obj,
				    struct kiln_webhook_cfg **out,
				    struct kiln_err *err) KILN_WARN_UNUSED;
/* The defaults (no "webhooks" section). */
enum kiln_rc kiln_webhook_cfg_default(struct kiln_webhook_cfg **out,
				      struct kiln_err *err) KILN_WARN_UNUSED;

/* Sets the default secret when the config has none (from the data dir's
 * webhook.secret).  Only before the configuration is shared. */
enum kiln_rc kiln_webhook_cfg_set_secret(struct kiln_webhook_cfg *c,
					 const char *secret,
					 struct kiln_err *err)
	KILN_WARN_UNUSED;

/* The keys that sign a delivery of tenant (NULL = none): the tenant's own
 * if configured, else the default. */
const struct kiln_webhook_keyset *
kiln_webhook_cfg_keys(const struct kiln_webhook_cfg *c, const char *tenant);

struct kiln_webhook_cfg *kiln_webhook_cfg_ref(struct kiln_webhook_cfg *c);
void kiln_webhook_cfg_unref(struct kiln_webhook_cfg *c);

#endif
