/*
 * test_webhook_cfg.c - the "webhooks" section of the configuration
 * (src/webhook_cfg.c, applied through src/config.c).
 *
 * As in test_config.c, the heart is a table of bad sections, each with
 * the dotted key its error must name; every bad case is applied over a
 * configuration and must leave it exactly as it was.  The other tests
 * cover the defaults, every key parsed, secrets and their rotation, the
 * per-tenant lookup, and the reference counting that lets copies of the
 * configuration share the section.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/config.h"
#include "kiln/webhook_cfg.h"
#include "kiln/webhook_sign.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* The Standard Webhooks test secret (24 bytes). */
#define VEC "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

static const long default_schedule[] = {
	0, 5000, 300000, 1800000, 7200000, 18000000, 36000000, 36000000,
};

static json_t *parse(const char *text)
{
	json_error_t jerr;
	json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);

	if (root == NULL)
		fail_msg("test JSON does not parse: %s: %s", text, jerr.text);
	return root;
}

static struct kiln_webhook_key key_of(const char *secret)
{
	struct kiln_webhook_key k;
	struct kiln_err err = {0};

	assert_int_equal(kiln_webhook_key_parse(secret, &k, &err), KILN_OK);
	return k;
}

static void assert_key_equal(const struct kiln_webhook_key *got,
			     const char *secret)
{
	struct kiln_webhook_key want = key_of(secret);

	assert_int_equal(got->len, want.len);
	assert_memory_equal(got->bytes, want.bytes, want.len);
}

static void assert_default_values(const struct kiln_webhook_cfg *c)
{
	size_t i;

	assert_non_null(c);
	assert_int_equal(c->n_schedule, N(default_schedule));
	for (i = 0; i < N(default_schedule); i++)
		assert_int_equal(c->schedule_ms[i], default_schedule[i]);
	assert_int_equal(c->timeout_ms, 15000);
	assert_int_equal(c->connect_timeout_ms, 5000);
	assert_true(c->jitter == 0.1);
	assert_int_equal(c->max_per_endpoint, 8);
	assert_int_equal(c->max_inflight, 1000);
	assert_int_equal(c->max_response_bytes, 64 * 1024);
	assert_int_equal(c->max_retry_after_ms, 24L * 3600 * 1000);
	assert_int_equal(c->allow_private_networks, 0);
	assert_int_equal(c->has_secret, 0);
	assert_int_equal(c->secret.n, 0);
	assert_int_equal(c->n_tenants, 0);
}

/* ---- defaults ---------------------------------------------------------- */

static void test_defaults(void **state)
{
	struct kiln_config cfg;
	struct kiln_webhook_cfg *c = NULL;
	struct kiln_err err = {0};

	(void)state;
	assert_int_equal(kiln_config_init_defaults(&cfg, &err), KILN_OK);
	assert_default_values(cfg.webhooks);
	kiln_config_free(&cfg);

	assert_int_equal(kiln_webhook_cfg_default(&c, &err), KILN_OK);
	assert_default_values(c);
	/* Without a secret the lookup gives the (empty) default set. */
	assert_ptr_equal(kiln_webhook_cfg_keys(c, "acme"), &c->secret);
	assert_int_equal(kiln_webhook_cfg_keys(c, NULL)->n, 0);
	kiln_webhook_cfg_unref(c);

	/* An empty section is the defaults too. */
	{
		json_t *empty = json_object();

		assert_int_equal(kiln_webhook_cfg_parse(empty, &c, &err),
				 KILN_OK);
		assert_default_values(c);
		kiln_webhook_cfg_unref(c);
		json_decref(empty);
	}
}

static void test_known_keys(void **state)
{
	static const char *const known[] = {
		"secret", "tenant_secrets", "schedule_s", "jitter",
		"timeout_s", "connect_timeout_s", "max_retry_after_s",
		"max_per_endpoint", "max_inflight", "max_response_bytes",
		"allow_private_networks",
	};
	static const char *const unknown[] = {
		"", "bogus", "Secret", "schedule", "timeout_ms", "secrets",
	};
	size_t i;

	(void)state;
	for (i = 0; i < N(known); i++)
		if (!kiln_webhook_cfg_key(known[i]))
			fail_msg("\"%s\" is not a known key", known[i]);
	for (i = 0; i < N(unknown); i++)
		if (kiln_webhook_cfg_key(unknown[i]))
			fail_msg("\"%s\" is a known key", unknown[i]);
}

/* ---- every key --------------------------------------------------------- */

static void test_every_key(void **state)
{
	struct kiln_config cfg;
	struct kiln_err err = {0};
	char *s1 = kiln_webhook_secret_generate();
	char *s2 = kiln_webhook_secret_generate();
	char *s3 = kiln_webhook_secret_generate();
	json_t *root;
	const struct kiln_webhook_cfg *c;
	const struct kiln_webhook_keyset *set;

	(void)state;
	assert_non_null(s1);
	assert_non_null(s2);
	assert_non_null(s3);
	assert_string_not_equal(s1, s2);
	root = json_pack(
		"{s:{s:[s,s], s:{s:s, s:[s,s]}, s:[f,f,f,f], s:f, s:f, s:f,"
		" s:i, s:i, s:i, s:i, s:b}}",
		"webhooks", "secret", s1, s2, "tenant_secrets", "acme", s3,
		"beta", VEC, s1, "schedule_s", 0.0, 0.5, 60.0, 3600.25,
		"jitter", 0.25, "timeout_s", 30.0, "connect_timeout_s", 2.5,
		"max_retry_after_s", 120, "max_per_endpoint", 3,
		"max_inflight", 50, "max_response_bytes", 2048,
		"allow_private_networks", 1);
	assert_non_null(root);
	assert_int_equal(kiln_config_init_defaults(&cfg, &err), KILN_OK);
	if (kiln_config_apply_json(&cfg, root, &err) != KILN_OK)
		fail_msg("apply: %s: %s", err.field, err.msg);
	c = cfg.webhooks;

	assert_int_equal(c->has_secret, 1);
	/* Rotation: both keys are parsed, newest first. */
	assert_int_equal(c->secret.n, 2);
	assert_key_equal(&c->secret.keys[0], s1);
	assert_key_equal(&c->secret.keys[1], s2);
	assert_int_equal(c->secret.keys[0].len, 32);

	assert_int_equal(c->n_tenants, 2);
	set = kiln_webhook_cfg_keys(c, "acme");
	assert_int_equal(set->n, 1);
	assert_key_equal(&set->keys[0], s3);
	set = kiln_webhook_cfg_keys(c, "beta");
	assert_int_equal(set->n, 2);
	assert_key_equal(&set->keys[0], VEC);
	assert_int_equal(set->keys[0].len, 24);
	assert_key_equal(&set->keys[1], s1);
	/* An unknown tenant, or none: the default keys. */
	assert_ptr_equal(kiln_webhook_cfg_keys(c, "gamma"), &c->secret);
	assert_ptr_equal(kiln_webhook_cfg_keys(c, "acm"), &c->secret);
	assert_ptr_equal(kiln_webhook_cfg_keys(c, NULL), &c->secret);

	assert_int_equal(c->n_schedule, 4);
	assert_int_equal(c->schedule_ms[0], 0);
	assert_int_equal(c->schedule_ms[1], 500);
	assert_int_equal(c->schedule_ms[2], 60000);
	assert_int_equal(c->schedule_ms[3], 3600250);
	assert_true(c->jitter == 0.25);
	assert_int_equal(c->timeout_ms, 30000);
	assert_int_equal(c->connect_timeout_ms, 2500);
	assert_int_equal(c->max_retry_after_ms, 120000);
	assert_int_equal(c->max_per_endpoint, 3);
	assert_int_equal(c->max_inflight, 50);
	assert_int_equal(c->max_response_bytes, 2048);
	assert_int_equal(c->allow_private_networks, 1);

	kiln_config_free(&cfg);
	json_decref(root);
	free(s1);
	free(s2);
	free(s3);
}

static void test_single_secret_and_bounds(void **state)
{
	static const char *const good[] = {
		/* A single string is a set of one. */
		"{\"secret\":\"" VEC "\"}",
		/* The bounds themselves are accepted. */
		"{\"schedule_s\":[604800],\"jitter\":1,\"timeout_s\":600,"
		"\"connect_timeout_s\":600,\"max_per_endpoint\":1000,"
		"\"max_inflight\":100000,\"max_response_bytes\":16777216,"
		"\"max_retry_after_s\":0}",
		"{\"schedule_s\":[0],\"jitter\":0,\"timeout_s\":0.1,"
		"\"connect_timeout_s\":0.1,\"max_per_endpoint\":1,"
		"\"max_inflight\":1,\"max_response_bytes\":1024,"
		"\"allow_private_networks\":false}",
		/* connect_timeout_s equal to timeout_s is fine. */
		"{\"timeout_s\":5,\"connect_timeout_s\":5}",
	};
	struct kiln_webhook_cfg *c = NULL;
	struct kiln_err err = {0};
	json_t *obj;
	size_t i;

	(void)state;
	for (i = 0; i < N(good); i++) {
		obj = parse(good[i]);
		if (kiln_webhook_cfg_parse(obj, &c, &err) != KILN_OK)
			fail_msg("%s: %s: %s", good[i], err.field, err.msg);
		if (i == 0) {
			assert_int_equal(c->has_secret, 1);
			assert_int_equal(c->secret.n, 1);
			assert_key_equal(&c->secret.keys[0], VEC);
		} else if (i == 1) {
			assert_int_equal(c->n_schedule, 1);
			assert_int_equal(c->schedule_ms[0], 604800000L);
			assert_int_equal(c->timeout_ms, 600000);
			assert_int_equal(c->max_retry_after_ms, 0);
		} else if (i == 2) {
			assert_int_equal(c->timeout_ms, 100);
			assert_int_equal(c->connect_timeout_ms, 100);
			assert_int_equal(c->allow_private_networks, 0);
		}
		kiln_webhook_cfg_unref(c);
		c = NULL;
		json_decref(obj);
	}
}

/* A full schedule of 32 entries is accepted, 33 refused. */
static void test_schedule_length(void **state)
{
	struct kiln_webhook_cfg *c = (void *)1;
	struct kiln_err err = {0};
	json_t *obj = json_object(), *sched = json_array();
	size_t i;

	(void)state;
	for (i = 0; i < KILN_WEBHOOK_SCHEDULE_MAX; i++)
		json_array_append_new(sched, json_integer((json_int_t)i));
	json_object_set_new(obj, "schedule_s", sched);
	assert_int_equal(kiln_webhook_cfg_parse(obj, &c, &err), KILN_OK);
	assert_int_equal(c->n_schedule, KILN_WEBHOOK_SCHEDULE_MAX);
	assert_int_equal(c->schedule_ms[31], 31000);
	kiln_webhook_cfg_unref(c);

	json_array_append_new(sched, json_integer(1));
	c = (void *)1;
	assert_int_equal(kiln_webhook_cfg_parse(obj, &c, &err), KILN_EINVAL);
	assert_string_equal(err.field, "webhooks.schedule_s");
	/* Nothing is returned on failure. */
	assert_null(c);
	json_decref(obj);
}

/* ---- errors ------------------------------------------------------------ */

struct bad_case {
	const char *json; /* the whole config */
	const char *field;
	const char *msg_part;
};

static const struct bad_case bad_cases[] = {
	{"{\"webhooks\":5}", "webhooks", "object"},
	{"{\"webhooks\":[]}", "webhooks", "object"},
	{"{\"webhooks\":{\"secret\":\"not-a-secret\"}}", "webhooks.secret",
	 "whsec_"},
	{"{\"webhooks\":{\"secret\":\"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"}}",
	 "webhooks.secret", "whsec_"},
	{"{\"webhooks\":{\"secret\":\"whsec_AAAA\"}}", "webhooks.secret",
	 "bytes"},
	{"{\"webhooks\":{\"secret\":\"whsec_!!!!\"}}", "webhooks.secret",
	 "base64"},
	{"{\"webhooks\":{\"secret\":42}}", "webhooks.secret", "whsec_"},
	{"{\"webhooks\":{\"secret\":[]}}", "webhooks.secret", "1 to 4"},
	{"{\"webhooks\":{\"secret\":[\"" VEC "\",\"" VEC "\",\"" VEC
	 "\",\"" VEC "\",\"" VEC "\"]}}",
	 "webhooks.secret", "1 to 4"},
	{"{\"webhooks\":{\"secret\":[\"" VEC "\",\"nope\"]}}",
	 "webhooks.secret[1]", "whsec_"},
	{"{\"webhooks\":{\"secret\":[\"" VEC "\",7]}}", "webhooks.secret[1]",
	 "whsec_"},
	{"{\"webhooks\":{\"secret\":[\"bad\",\"" VEC "\"]}}",
	 "webhooks.secret[0]", "whsec_"},
	{"{\"webhooks\":{\"tenant_secrets\":{\"acme\":\"nope\"}}}",
	 "webhooks.tenant_secrets.acme", "whsec_"},
	{"{\"webhooks\":{\"tenant_secrets\":{\"ok\":\"" VEC "\","
	 "\"acme\":[\"" VEC "\",\"whsec_AAAA\"]}}}",
	 "webhooks.tenant_secrets.acme[1]", "bytes"},
	{"{\"webhooks\":{\"tenant_secrets\":{\"acme\":null}}}",
	 "webhooks.tenant_secrets.acme", "whsec_"},
	{"{\"webhooks\":{\"tenant_secrets\":[]}}", "webhooks.tenant_secrets",
	 "object"},
	{"{\"webhooks\":{\"schedule_s\":[]}}", "webhooks.schedule_s", "array"},
	{"{\"webhooks\":{\"schedule_s\":5}}", "webhooks.schedule_s", "array"},
	{"{\"webhooks\":{\"schedule_s\":[0,-1]}}", "webhooks.schedule_s[1]",
	 "seconds"},
	{"{\"webhooks\":{\"schedule_s\":[0,\"5\"]}}", "webhooks.schedule_s[1]",
	 "seconds"},
	{"{\"webhooks\":{\"schedule_s\":[0,5,604801]}}",
	 "webhooks.schedule_s[2]", "seconds"},
	{"{\"webhooks\":{\"timeout_s\":0}}", "webhooks.timeout_s", "seconds"},
	{"{\"webhooks\":{\"timeout_s\":\"15\"}}", "webhooks.timeout_s",
	 "seconds"},
	{"{\"webhooks\":{\"timeout_s\":601}}", "webhooks.timeout_s", "seconds"},
	{"{\"webhooks\":{\"connect_timeout_s\":0.05}}",
	 "webhooks.connect_timeout_s", "seconds"},
	{"{\"webhooks\":{\"max_retry_after_s\":-1}}",
	 "webhooks.max_retry_after_s", "seconds"},
	{"{\"webhooks\":{\"jitter\":1.5}}", "webhooks.jitter", "0 to 1"},
	{"{\"webhooks\":{\"jitter\":-0.1}}", "webhooks.jitter", "0 to 1"},
	{"{\"webhooks\":{\"jitter\":\"0.1\"}}", "webhooks.jitter", "0 to 1"},
	{"{\"webhooks\":{\"allow_private_networks\":\"yes\"}}",
	 "webhooks.allow_private_networks", "true or false"},
	{"{\"webhooks\":{\"allow_private_networks\":1}}",
	 "webhooks.allow_private_networks", "true or false"},
	{"{\"webhooks\":{\"max_per_endpoint\":0}}", "webhooks.max_per_endpoint",
	 "integer"},
	{"{\"webhooks\":{\"max_per_endpoint\":1.5}}",
	 "webhooks.max_per_endpoint", "integer"},
	{"{\"webhooks\":{\"max_per_endpoint\":1001}}",
	 "webhooks.max_per_endpoint", "integer"},
	{"{\"webhooks\":{\"max_inflight\":0}}", "webhooks.max_inflight",
	 "integer"},
	{"{\"webhooks\":{\"max_response_bytes\":100}}",
	 "webhooks.max_response_bytes", "integer"},
	{"{\"webhooks\":{\"bogus\":1}}", "webhooks.bogus", "unknown key"},
	{"{\"webhooks\":{\"timeout_s\":10,\"connect_timeout_s\":20}}",
	 "webhooks.connect_timeout_s", "timeout_s"},
	/* Longer than the default timeout_s (15 s). */
	{"{\"webhooks\":{\"connect_timeout_s\":20}}",
	 "webhooks.connect_timeout_s", "timeout_s"},
	/* A good section does not survive a bad key elsewhere. */
	{"{\"webhooks\":{\"timeout_s\":30},"
	 " \"providers\":{\"fal\":{\"url\":\"gopher://x\"}}}",
	 "providers.fal.url", "http://"},
};

/* Every bad case fails naming its key and leaves the configuration it
 * was applied over untouched: same section, same values. */
static void test_bad_values_name_the_key(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < N(bad_cases); i++) {
		const struct bad_case *bc = &bad_cases[i];
		struct kiln_config cfg;
		struct kiln_err err = {0};
		struct kiln_webhook_cfg *before;
		json_t *root = parse(bc->json);
		enum kiln_rc rc;

		assert_int_equal(kiln_config_init_defaults(&cfg, &err),
				 KILN_OK);
		before = cfg.webhooks;
		rc = kiln_config_apply_json(&cfg, root, &err);
		if (rc != KILN_EINVAL || strcmp(err.field, bc->field) != 0 ||
		    strstr(err.msg, bc->msg_part) == NULL)
			fail_msg("%s: rc %d field \"%s\" msg \"%s\";"
				 " want field \"%s\" msg with \"%s\"",
				 bc->json, rc, err.field, err.msg, bc->field,
				 bc->msg_part);
		assert_int_equal(err.code, KILN_EINVAL);
		assert_ptr_equal(cfg.webhooks, before);
		assert_int_equal(cfg.webhooks->refs, 1);
		assert_default_values(cfg.webhooks);
		kiln_config_free(&cfg);
		json_decref(root);
	}
}

/* The parser alone: errors name the key and return nothing. */
static void test_parse_direct_errors(void **state)
{
	struct kiln_webhook_cfg *c = (void *)1;
	struct kiln_err err = {0};

	(void)state;
	assert_int_equal(kiln_webhook_cfg_parse(NULL, &c, &err), KILN_EINVAL);
	assert_string_equal(err.field, "webhooks");
	assert_null(c);
	{
		json_t *obj = parse("{\"jitter\":0.5,\"nope\":true}");

		c = (void *)1;
		assert_int_equal(kiln_webhook_cfg_parse(obj, &c, &err),
				 KILN_EINVAL);
		assert_string_equal(err.field, "webhooks.nope");
		assert_null(c);
		json_decref(obj);
	}
}

/* ---- a failed apply keeps the previous configuration ------------------- */

static void test_failed_apply_keeps_previous(void **state)
{
	struct kiln_config cfg;
	struct kiln_err err = {0};
	struct kiln_webhook_cfg *before;
	json_t *good = parse("{\"webhooks\":{\"timeout_s\":20,\"secret\":\"" VEC
			     "\",\"schedule_s\":[1,2]}}");
	json_t *bad_key = parse("{\"webhooks\":{\"timeout_s\":30,"
				"\"jitter\":0.5,\"bogus\":1}}");
	json_t *bad_elsewhere =
		parse("{\"webhooks\":{\"timeout_s\":40},"
		      " \"task_types\":{\"X\":\"nowhere\"}}");
	json_t *other = parse("{\"workers\":2}");

	(void)state;
	assert_int_equal(kiln_config_init_defaults(&cfg, &err), KILN_OK);
	assert_int_equal(kiln_config_apply_json(&cfg, good, &err), KILN_OK);
	before = cfg.webhooks;
	assert_int_equal(before->timeout_ms, 20000);

	assert_int_equal(kiln_config_apply_json(&cfg, bad_key, &err),
			 KILN_EINVAL);
	assert_string_equal(err.field, "webhooks.bogus");
	assert_int_equal(kiln_config_apply_json(&cfg, bad_elsewhere, &err),
			 KILN_EINVAL);
	assert_string_equal(err.field, "task_types.X");

	assert_ptr_equal(cfg.webhooks, before);
	assert_int_equal(cfg.webhooks->refs, 1);
	assert_int_equal(cfg.webhooks->timeout_ms, 20000);
	assert_true(cfg.webhooks->jitter == 0.1);
	assert_int_equal(cfg.webhooks->has_secret, 1);
	assert_key_equal(&cfg.webhooks->secret.keys[0], VEC);
	assert_int_equal(cfg.webhooks->n_schedule, 2);
	assert_int_equal(cfg.webhooks->schedule_ms[1], 2000);

	/* A file without a webhooks section keeps the section (shared by
	 * the copy apply works on, not re-parsed). */
	assert_int_equal(kiln_config_apply_json(&cfg, other, &err), KILN_OK);
	assert_int_equal(cfg.workers, 2);
	assert_ptr_equal(cfg.webhooks, before);
	assert_int_equal(cfg.webhooks->refs, 1);
	assert_int_equal(cfg.webhooks->timeout_ms, 20000);

	kiln_config_free(&cfg);
	json_decref(good);
	json_decref(bad_key);
	json_decref(bad_elsewhere);
	json_decref(other);
}

/* ---- the default secret and reference counts --------------------------- */

static void test_set_secret(void **state)
{
	struct kiln_webhook_cfg *c = NULL;
	struct kiln_err err = {0};
	char *gen = kiln_webhook_secret_generate();

	(void)state;
	assert_non_null(gen);
	assert_int_equal(strncmp(gen, "whsec_", 6), 0);
	assert_int_equal(kiln_webhook_cfg_default(&c, &err), KILN_OK);
	assert_int_equal(kiln_webhook_cfg_set_secret(c, "whsec_AAAA", &err),
			 KILN_EINVAL);
	assert_int_equal(c->has_secret, 0);
	assert_int_equal(c->secret.n, 0);
	assert_int_equal(kiln_webhook_cfg_set_secret(c, gen, &err), KILN_OK);
	assert_int_equal(c->has_secret, 1);
	assert_int_equal(c->secret.n, 1);
	assert_key_equal(&c->secret.keys[0], gen);
	assert_ptr_equal(kiln_webhook_cfg_keys(c, "anyone"), &c->secret);
	kiln_webhook_cfg_unref(c);
	free(gen);
}

static void test_refcount(void **state)
{
	struct kiln_webhook_cfg *c = NULL;
	struct kiln_err err = {0};

	(void)state;
	assert_null(kiln_webhook_cfg_ref(NULL));
	kiln_webhook_cfg_unref(NULL);
	assert_int_equal(kiln_webhook_cfg_default(&c, &err), KILN_OK);
	assert_int_equal(c->refs, 1);
	assert_ptr_equal(kiln_webhook_cfg_ref(c), c);
	assert_int_equal(c->refs, 2);
	kiln_webhook_cfg_unref(c);
	/* Still alive for the other holder (ASan would see a use after
	 * free otherwise). */
	assert_int_equal(c->refs, 1);
	assert_int_equal(c->timeout_ms, 15000);
	kiln_webhook_cfg_unref(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_known_keys),
		cmocka_unit_test(test_every_key),
		cmocka_unit_test(test_single_secret_and_bounds),
		cmocka_unit_test(test_schedule_length),
		cmocka_unit_test(test_bad_values_name_the_key),
		cmocka_unit_test(test_parse_direct_errors),
		cmocka_unit_test(test_failed_apply_keeps_previous),
		cmocka_unit_test(test_set_secret),
		cmocka_unit_test(test_refcount),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
