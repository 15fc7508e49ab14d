/*
 * test_config.c - kilnd's configuration (src/config.c).
 *
 * The heart is a table of bad config objects, each with the dotted key
 * path the error must name: that path is what an operator reads when
 * kilnd refuses to start.  Every bad case is applied over the defaults and
 * must leave them untouched (apply is all-or-nothing).  The remaining
 * tests cover the defaults, a complete valid file read from disk, the
 * ${env:VAR} header expansion, key order, "HOST:PORT" parsing and
 * KILN_JWT_SECRET.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kiln/config.h"
#include "kiln/model.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static size_t count_builtin_task_types(void)
{
	size_t n = 0;

	while (kiln_builtin_task_types[n] != NULL)
		n++;
	return n;
}

static json_t *parse(const char *text)
{
	json_error_t jerr;
	json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);

	if (root == NULL)
		fail_msg("test JSON does not parse: %s: %s", text, jerr.text);
	return root;
}

/* Applies text over fresh defaults into *cfg; returns the result. */
static enum kiln_rc apply_text(struct kiln_config *cfg, const char *text,
			       struct kiln_err *err)
{
	json_t *root = parse(text);
	enum kiln_rc rc;

	assert_int_equal(kiln_config_init_defaults(cfg, err), KILN_OK);
	rc = kiln_config_apply_json(cfg, root, err);
	json_decref(root);
	return rc;
}

/* Writes text to a fresh temporary file; returns its malloc'd path. */
static char *temp_file(const char *text)
{
	char tmpl[] = "/tmp/kiln-test-config-XXXXXX";
	int fd = mkstemp(tmpl);
	size_t len = strlen(text);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
	return strdup(tmpl);
}

static void assert_is_default(const struct kiln_config *cfg)
{
	size_t i;

	assert_string_equal(cfg->listen_host, "127.0.0.1");
	assert_int_equal(cfg->listen_port, 8080);
	assert_string_equal(cfg->data_dir, "./var");
	assert_int_equal(cfg->workers, 4);
	assert_int_equal(cfg->log_level, KILN_LOG_INFO);
	assert_null(cfg->jwt_secret);
	assert_int_equal(cfg->max_body_bytes, 1048576);
	assert_int_equal(cfg->http_threads, 4);
	assert_int_equal(cfg->connection_timeout_s, 30);
	assert_int_equal(cfg->max_connections, 1024);
	assert_int_equal(cfg->max_connections_per_ip, 256);
	assert_int_equal(cfg->commit_delay_us, 500);
	assert_int_equal(cfg->wal_limit_mb, 64);
	assert_int_equal(cfg->idle_connections, 256);
	assert_int_equal(cfg->n_providers, 1);
	assert_string_equal(cfg->providers[0].name, "dryrun");
	assert_string_equal(cfg->providers[0].type, "dryrun");
	assert_int_equal(cfg->n_task_types, count_builtin_task_types());
	for (i = 0; kiln_builtin_task_types[i] != NULL; i++)
		assert_string_equal(
			kiln_config_task_provider(cfg,
						  kiln_builtin_task_types[i]),
			"dryrun");
}

/* ------------------------------------------------------------------ */
/* Defaults and freeing                                                */
/* ------------------------------------------------------------------ */

static void test_defaults(void **state)
{
	struct kiln_config cfg, zero;
	struct kiln_err err = {0};

	memset(&zero, 0, sizeof(zero));
	assert_int_equal(kiln_config_init_defaults(&cfg, &err), KILN_OK);
	assert_is_default(&cfg);
	assert_non_null(kiln_config_provider(&cfg, "dryrun"));
	assert_null(kiln_config_provider(&cfg, "fal"));
	assert_null(kiln_config_provider(&cfg, NULL));
	assert_null(kiln_config_task_provider(&cfg, "NO_SUCH_TYPE"));
	assert_null(kiln_config_task_provider(&cfg, "generation"));

	kiln_config_free(&cfg);
	assert_memory_equal(&cfg, &zero, sizeof(cfg));
	kiln_config_free(&cfg); /* twice, and on a zeroed struct: no-op */
	kiln_config_free(NULL);
}

/* ------------------------------------------------------------------ */
/* A complete valid file                                               */
/* ------------------------------------------------------------------ */

static const char FULL_CONFIG[] =
	"{\"listen\":\"0.0.0.0:9090\",\"data_dir\":\"/srv/kiln\","
	" \"workers\":8,\"log_level\":\"debug\","
	" \"jwt_secret\":\"a-long-enough-secret\",\"max_body_bytes\":2048,"
	" \"http_threads\":2,\"connection_timeout_s\":5,"
	" \"max_connections\":10,\"max_connections_per_ip\":3,"
	" \"commit_delay_us\":0,\"idle_connections\":0,\"wal_limit_mb\":0,"
	" \"providers\":{"
	"   \"fal\":{\"type\":\"http\",\"url\":\"https://fal.example/run\","
	"     \"headers\":{\"Authorization\":\"Key ${env:KILN_TEST_FAL_KEY}\","
	"                  \"X-Trace\":\"on\"},"
	"     \"timeout_s\":120,\"connect_timeout_s\":5,\"max_retries\":3},"
	"   \"local\":{\"url\":\"http://127.0.0.1:5000/gen\"},"
	"   \"dryrun\":{\"type\":\"dryrun\",\"timeout_s\":7}},"
	" \"task_types\":{\"GENERATION\":\"fal\",\"UPSCALE\":\"local\","
	"   \"MY_CUSTOM_TYPE\":\"fal\"}}\n";

static void test_full_file(void **state)
{
	struct kiln_config cfg;
	struct kiln_err err = {0};
	const struct kiln_provider_cfg *fal, *local, *dryrun;
	char *path = temp_file(FULL_CONFIG);

	assert_int_equal(setenv("KILN_TEST_FAL_KEY", "s3cr3t", 1), 0);
	assert_int_equal(kiln_config_init_defaults(&cfg, &err), KILN_OK);
	if (kiln_config_load_file(&cfg, path, &err) != KILN_OK)
		fail_msg("%s: %s", err.field, err.msg);

	assert_string_equal(cfg.listen_host, "0.0.0.0");
	assert_int_equal(cfg.listen_port, 9090);
	assert_string_equal(cfg.data_dir, "/srv/kiln");
	assert_int_equal(cfg.workers, 8);
	assert_int_equal(cfg.log_level, KILN_LOG_DEBUG);
	assert_string_equal(cfg.jwt_secret, "a-long-enough-secret");
	assert_int_equal(cfg.max_body_bytes, 2048);
	assert_int_equal(cfg.http_threads, 2);
	assert_int_equal(cfg.connection_timeout_s, 5);
	assert_int_equal(cfg.max_connections, 10);
	assert_int_equal(cfg.max_connections_per_ip, 3);
	assert_int_equal(cfg.commit_delay_us, 0);
	assert_int_equal(cfg.idle_connections, 0);
	assert_int_equal(cfg.wal_limit_mb, 0);

	assert_int_equal(cfg.n_providers, 3);
	fal = kiln_config_provider(&cfg, "fal");
	assert_non_null(fal);
	assert_string_equal(fal->type, "http");
	assert_string_equal(fal->url, "https://fal.example/run");
	assert_int_equal(fal->n_headers, 2);
	assert_string_equal(fal->header_lines[0], "Authorization: Key s3cr3t");
	assert_string_equal(fal->header_lines[1], "X-Trace: on");
	assert_int_equal(fal->timeout_s, 120);
	assert_int_equal(fal->connect_timeout_s, 5);
	assert_int_equal(fal->max_retries, 3);

	local = kiln_config_provider(&cfg, "local");
	assert_non_null(local);
	assert_string_equal(local->type, "http"); /* the default type */
	assert_int_equal(local->n_headers, 0);
	assert_int_equal(local->timeout_s, 60);
	assert_int_equal(local->connect_timeout_s, 10);
	assert_int_equal(local->max_retries, 0);

	dryrun = kiln_config_provider(&cfg, "dryrun");
	assert_string_equal(dryrun->type, "dryrun");
	assert_int_equal(dryrun->timeout_s, 7);

	assert_string_equal(kiln_config_task_provider(&cfg, "GENERATION"),
			    "fal");
	assert_string_equal(kiln_config_task_provider(&cfg, "UPSCALE"),
			    "local");
	assert_string_equal(kiln_config_task_provider(&cfg, "MY_CUSTOM_TYPE"),
			    "fal");
	assert_string_equal(kiln_config_task_provider(&cfg, "REFINE"),
			    "dryrun");
	assert_int_equal(cfg.n_task_types, count_builtin_task_types() + 1);

	kiln_config_free(&cfg);
	unsetenv("KILN_TEST_FAL_KEY");
	unlink(path);
	free(path);
}

/* ------------------------------------------------------------------ */
/* Bad values name their key                                           */
/* ------------------------------------------------------------------ */

struct bad_case {
	const char *json;
	const char *field;
	const char *msg_part; /* must appear in err.msg */
};

#define FAL(body) "{\"providers\":{\"fal\":{\"url\":\"http://x\"," body "}}}"

static const struct bad_case bad_cases[] = {
	{"[]", "", "object"},
	{"{\"bogus\":1}", "bogus", "unknown key"},
	{"{\"workers\":4,\"Workers\":4}", "Workers", "unknown key"},
	{"{\"listen\":8080}", "listen", "HOST:PORT"},
	{"{\"listen\":\"localhost\"}", "listen", "HOST:PORT"},
	{"{\"listen\":\"127.0.0.1:65536\"}", "listen", "65535"},
	{"{\"data_dir\":\"\"}", "data_dir", "non-empty"},
	{"{\"data_dir\":null}", "data_dir", "string"},
	{"{\"workers\":0}", "workers", "from 1 to 1024"},
	{"{\"workers\":1025}", "workers", "from 1 to 1024"},
	{"{\"workers\":\"4\"}", "workers", "integer"},
	{"{\"workers\":4.0}", "workers", "integer"},
	{"{\"workers\":true}", "workers", "integer"},
	{"{\"log_level\":\"verbose\"}", "log_level", "debug"},
	{"{\"log_level\":\"INFO\"}", "log_level", "debug"},
	{"{\"jwt_secret\":\"short\"}", "jwt_secret", "at least 16"},
	{"{\"jwt_secret\":12345678901234567}", "jwt_secret", "at least 16"},
	{"{\"max_body_bytes\":1023}", "max_body_bytes", "1024"},
	{"{\"max_body_bytes\":1073741825}", "max_body_bytes", "1073741824"},
	{"{\"http_threads\":0}", "http_threads", "from 1 to 64"},
	{"{\"http_threads\":65}", "http_threads", "from 1 to 64"},
	{"{\"commit_delay_us\":-1}", "commit_delay_us", "from 0 to 100000"},
	{"{\"idle_connections\":-1}", "idle_connections",
	 "from 0 to 1000000"},
	{"{\"idle_connections\":\"many\"}", "idle_connections", "integer"},
	{"{\"commit_delay_us\":100001}", "commit_delay_us",
	 "from 0 to 100000"},
	{"{\"wal_limit_mb\":-1}", "wal_limit_mb", "from 0 to 1048576"},
	{"{\"wal_limit_mb\":1048577}", "wal_limit_mb", "from 0 to 1048576"},
	{"{\"wal_limit_mb\":1.5}", "wal_limit_mb", "integer"},
	{"{\"connection_timeout_s\":3601}", "connection_timeout_s", "3600"},
	{"{\"max_connections\":0}", "max_connections", "1000000"},
	{"{\"max_connections_per_ip\":1000001}", "max_connections_per_ip",
	 "1000000"},
	/* A good key before a bad one changes nothing either. */
	{"{\"workers\":9,\"listen\":\"[::1]\"}", "listen", "HOST:PORT"},

	{"{\"providers\":[]}", "providers", "object"},
	{"{\"providers\":{\"fal\":\"http://x\"}}", "providers.fal", "object"},
	{"{\"providers\":{\"bad name\":{\"url\":\"http://x\"}}}",
	 "providers.bad name", "provider names"},
	{"{\"providers\":{\"\":{\"url\":\"http://x\"}}}", "providers.",
	 "provider names"},
	{"{\"providers\":{\"a12345678901234567890123456789012345678901234567"
	 "89012345678901234\":{\"url\":\"http://x\"}}}",
	 "providers.a1234567890123456789012345678901234567890123456789012345"
	 "678901234",
	 "1 to 64"},
	{"{\"providers\":{\"fal\":{}}}", "providers.fal.url", "required"},
	{"{\"providers\":{\"fal\":{\"type\":\"http\"}}}", "providers.fal.url",
	 "required"},
	{"{\"providers\":{\"fal\":{\"url\":\"ftp://x\"}}}", "providers.fal.url",
	 "http://"},
	{"{\"providers\":{\"fal\":{\"url\":42}}}", "providers.fal.url",
	 "http://"},
	{"{\"providers\":{\"fal\":{\"url\":\"https://\"}}}",
	 "providers.fal.url", "http://"},
	{FAL("\"bogus\":1"), "providers.fal.bogus", "unknown key"},
	{FAL("\"type\":\"grpc\""), "providers.fal.type", "\"http\""},
	{FAL("\"timeout_s\":0"), "providers.fal.timeout_s", "86400"},
	{FAL("\"timeout_s\":86401"), "providers.fal.timeout_s", "86400"},
	{FAL("\"connect_timeout_s\":601"), "providers.fal.connect_timeout_s",
	 "from 1 to 600"},
	{FAL("\"max_retries\":-1"), "providers.fal.max_retries",
	 "from 0 to 100"},
	{FAL("\"max_retries\":101"), "providers.fal.max_retries",
	 "from 0 to 100"},
	{FAL("\"headers\":[]"), "providers.fal.headers", "object"},
	{FAL("\"headers\":{\"X-A\":5}"), "providers.fal.headers.X-A",
	 "string"},
	{FAL("\"headers\":{\"Bad Name\":\"v\"}"),
	 "providers.fal.headers.Bad Name", "header names"},
	{FAL("\"headers\":{\"X-A\":\"${env:}\"}"), "providers.fal.headers.X-A",
	 "malformed"},
	{FAL("\"headers\":{\"X-A\":\"${env:OPEN\"}"),
	 "providers.fal.headers.X-A", "malformed"},
	{FAL("\"headers\":{\"X-A\":\"a ${env:KILN_TEST_UNSET_VAR} b\"}"),
	 "providers.fal.headers.X-A", "KILN_TEST_UNSET_VAR"},
	{"{\"providers\":{\"dryrun\":"
	 "{\"type\":\"http\",\"url\":\"http://x\"}}}",
	 "providers.dryrun", "dryrun"},
	{"{\"providers\":{\"dryrun\":{\"url\":\"http://x\"}}}",
	 "providers.dryrun", "dryrun"},

	{"{\"task_types\":[]}", "task_types", "object"},
	{"{\"task_types\":{\"GENERATION\":\"nope\"}}", "task_types.GENERATION",
	 "unknown provider \"nope\""},
	{"{\"task_types\":{\"GENERATION\":5}}", "task_types.GENERATION",
	 "string"},
	{"{\"task_types\":{\"GENERATION\":null}}", "task_types.GENERATION",
	 "string"},
	{"{\"task_types\":{\"generation\":\"dryrun\"}}",
	 "task_types.generation", "A-Z 0-9 _"},
	{"{\"task_types\":{\"MY-TYPE\":\"dryrun\"}}", "task_types.MY-TYPE",
	 "A-Z 0-9 _"},
	/* Providers are checked first, whatever the order in the file. */
	{"{\"task_types\":{\"X\":\"fal\"},"
	 " \"providers\":{\"fal\":{\"url\":\"gopher://x\"}}}",
	 "providers.fal.url", "http://"},
	/* A provider that failed to load is not there for task types. */
	{"{\"task_types\":{\"X\":\"other\"},"
	 " \"providers\":{\"fal\":{\"url\":\"http://x\"}}}",
	 "task_types.X", "unknown provider"},
};

static void test_bad_values_name_the_key(void **state)
{
	size_t i;

	assert_int_equal(unsetenv("KILN_TEST_UNSET_VAR"), 0);
	for (i = 0; i < N(bad_cases); i++) {
		const struct bad_case *c = &bad_cases[i];
		struct kiln_config cfg;
		struct kiln_err err = {0};
		enum kiln_rc rc = apply_text(&cfg, c->json, &err);

		if (rc != KILN_EINVAL || strcmp(err.field, c->field) != 0 ||
		    strstr(err.msg, c->msg_part) == NULL)
			fail_msg("%s: rc %d field \"%s\" msg \"%s\";"
				 " want field \"%s\" msg with \"%s\"",
				 c->json, rc, err.field, err.msg, c->field,
				 c->msg_part);
		assert_int_equal(err.code, KILN_EINVAL);
		assert_is_default(&cfg);
		kiln_config_free(&cfg);
	}
}

/* ------------------------------------------------------------------ */
/* ${env:VAR}                                                          */
/* ------------------------------------------------------------------ */

static void test_env_expansion(void **state)
{
	struct kiln_config cfg;
	struct kiln_err err = {0};
	const struct kiln_provider_cfg *p;

	assert_int_equal(setenv("KILN_TEST_TOKEN", "abc", 1), 0);
	assert_int_equal(setenv("KILN_TEST_ORG", "acme", 1), 0);
	assert_int_equal(setenv("KILN_TEST_EMPTY", "", 1), 0);
	if (apply_text(&cfg,
		       FAL("\"headers\":{"
			   "\"Authorization\":"
			   "\"Bearer ${env:KILN_TEST_TOKEN}\","
			   "\"X-Org\":"
			   "\"${env:KILN_TEST_ORG}/${env:KILN_TEST_ORG}\","
			   "\"X-Whole\":\"${env:KILN_TEST_TOKEN}\","
			   "\"X-Empty\":\"${env:KILN_TEST_EMPTY}\","
			   "\"X-Literal\":\"${other} $HOME ${env\"}"),
		       &err) != KILN_OK)
		fail_msg("%s: %s", err.field, err.msg);
	p = kiln_config_provider(&cfg, "fal");
	assert_non_null(p);
	assert_int_equal(p->n_headers, 5);
	assert_string_equal(p->header_lines[0], "Authorization: Bearer abc");
	assert_string_equal(p->header_lines[1], "X-Org: acme/acme");
	assert_string_equal(p->header_lines[2], "X-Whole: abc");
	assert_string_equal(p->header_lines[3], "X-Empty: ");
	assert_string_equal(p->header_lines[4],
			    "X-Literal: ${other} $HOME ${env");
	kiln_config_free(&cfg);

	/* A variable holding a line break would smuggle in a header. */
	assert_int_equal(setenv("KILN_TEST_TOKEN", "abc\r\nX-Evil: 1", 1), 0);
	assert_int_equal(
		apply_text(&cfg,
			   FAL("\"headers\":{\"Authorization\":"
			       "\"Bearer ${env:KILN_TEST_TOKEN}\"}"),
			   &err),
		KILN_EINVAL);
	assert_string_equal(err.field, "providers.fal.headers.Authorization");
	kiln_config_free(&cfg);

	/* Unset: the error names both the header and the variable. */
	assert_int_equal(unsetenv("KILN_TEST_TOKEN"), 0);
	assert_int_equal(
		apply_text(&cfg,
			   FAL("\"headers\":{\"Authorization\":"
			       "\"Bearer ${env:KILN_TEST_TOKEN}\"}"),
			   &err),
		KILN_EINVAL);
	assert_string_equal(err.field, "providers.fal.headers.Authorization");
	assert_non_null(strstr(err.msg, "KILN_TEST_TOKEN"));
	assert_is_default(&cfg);
	kiln_config_free(&cfg);

	unsetenv("KILN_TEST_ORG");
	unsetenv("KILN_TEST_EMPTY");
}

/* ------------------------------------------------------------------ */
/* Order, redefinition, repeated application                           */
/* ------------------------------------------------------------------ */

static void test_providers_before_task_types(void **state)
{
	struct kiln_config cfg;
	struct kiln_err err = {0};

	if (apply_text(&cfg,
		       "{\"task_types\":{\"GENERATION\":\"fal\","
		       "  \"MY_TYPE\":\"fal\"},"
		       " \"workers\":2,"
		       " \"providers\":{\"fal\":{\"url\":\"https://fal\"}}}",
		       &err) != KILN_OK)
		fail_msg("%s: %s", err.field, err.msg);
	assert_string_equal(kiln_config_task_provider(&cfg, "GENERATION"),
			    "fal");
	assert_string_equal(kiln_config_task_provider(&cfg, "MY_TYPE"), "fal");
	assert_string_equal(kiln_config_task_provider(&cfg, "REFINE"),
			    "dryrun");
	assert_int_equal(cfg.workers, 2);
	kiln_config_free(&cfg);
}

static void test_apply_twice_replaces(void **state)
{
	struct kiln_config cfg;
	struct kiln_err err = {0};
	json_t *second =
		parse("{\"providers\":{\"fal\":{\"url\":\"http://two\","
		      "  \"headers\":{\"A\":\"b\"}}},"
		      " \"task_types\":{\"NEW_TYPE\":\"dryrun\"},"
		      " \"jwt_secret\":null}");

	assert_int_equal(
		apply_text(&cfg,
			   "{\"jwt_secret\":\"0123456789abcdef\","
			   " \"providers\":{\"fal\":{\"url\":\"http://one\"}},"
			   " \"task_types\":{\"NEW_TYPE\":\"fal\"}}",
			   &err),
		KILN_OK);
	assert_int_equal(kiln_config_apply_json(&cfg, second, &err), KILN_OK);
	assert_int_equal(cfg.n_providers, 2);
	assert_string_equal(kiln_config_provider(&cfg, "fal")->url,
			    "http://two");
	assert_int_equal(kiln_config_provider(&cfg, "fal")->n_headers, 1);
	assert_string_equal(kiln_config_task_provider(&cfg, "NEW_TYPE"),
			    "dryrun");
	assert_int_equal(cfg.n_task_types, count_builtin_task_types() + 1);
	assert_null(cfg.jwt_secret);
	kiln_config_free(&cfg);
	json_decref(second);
}

/* ------------------------------------------------------------------ */
/* HOST:PORT                                                           */
/* ------------------------------------------------------------------ */

static const struct listen_case {
	const char *hp;
	const char *host; /* NULL: refused */
	int port;
} listen_cases[] = {
	{"127.0.0.1:8080", "127.0.0.1", 8080},
	{"0.0.0.0:0", "0.0.0.0", 0},
	{"localhost:65535", "localhost", 65535},
	{"kiln-1.internal.example:443", "kiln-1.internal.example", 443},
	{"[::1]:8080", "::1", 8080},
	{"[::]:80", "::", 80},
	{"[fe80::1%eth0]:80", "fe80::1%eth0", 80},
	{"host:00080", "host", 80},
	{"", NULL, 0},
	{"8080", NULL, 0},
	{":8080", NULL, 0},
	{"host:", NULL, 0},
	{"host:65536", NULL, 0},
	{"host:123456", NULL, 0},
	{"host:-1", NULL, 0},
	{"host:+80", NULL, 0},
	{"host: 80", NULL, 0},
	{"host:80x", NULL, 0},
	{"host:0x50", NULL, 0},
	{"::1:8080", NULL, 0},
	{"[::1]8080", NULL, 0},
	{"[::1]", NULL, 0},
	{"[::1:8080", NULL, 0},
	{"[]:80", NULL, 0},
	{"ho st:80", NULL, 0},
	{"user@host:80", NULL, 0},
	{"http://host:80", NULL, 0},
};

static void test_set_listen(void **state)
{
	struct kiln_config cfg;
	struct kiln_err err = {0};
	size_t i;

	assert_int_equal(kiln_config_init_defaults(&cfg, &err), KILN_OK);
	for (i = 0; i < N(listen_cases); i++) {
		const struct listen_case *c = &listen_cases[i];
		enum kiln_rc rc = kiln_config_set_listen(&cfg, c->hp, &err);

		if (c->host != NULL) {
			if (rc != KILN_OK)
				fail_msg("\"%s\" refused: %s", c->hp, err.msg);
			assert_string_equal(cfg.listen_host, c->host);
			assert_int_equal(cfg.listen_port, c->port);
		} else {
			if (rc != KILN_EINVAL)
				fail_msg("\"%s\" accepted", c->hp);
			assert_string_equal(err.field, "listen");
			/* The previous value stays. */
			assert_string_equal(cfg.listen_host,
					    listen_cases[7].host);
			assert_int_equal(cfg.listen_port, 80);
		}
	}
	assert_int_equal(kiln_config_set_listen(&cfg, NULL, &err), KILN_EINVAL);
	kiln_config_free(&cfg);
}

/* ------------------------------------------------------------------ */
/* Files and the environment                                           */
/* ------------------------------------------------------------------ */

static void test_load_file_errors(void **state)
{
	struct kiln_config cfg;
	struct kiln_err err = {0};
	char *bad_json = temp_file("{\n  \"workers\": 4,,\n}\n");
	char *dup_key = temp_file("{\"workers\": 4, \"workers\": 5}");
	char *empty = temp_file("");
	const char *missing = "/nonexistent/kiln/config.json";

	assert_int_equal(kiln_config_init_defaults(&cfg, &err), KILN_OK);

	assert_int_equal(kiln_config_load_file(&cfg, missing, &err), KILN_EIO);
	assert_string_equal(err.field, missing);
	assert_non_null(strstr(err.msg, missing));

	assert_int_equal(kiln_config_load_file(&cfg, "/tmp", &err), KILN_EIO);
	assert_string_equal(err.field, "/tmp");

	assert_int_equal(kiln_config_load_file(&cfg, bad_json, &err),
			 KILN_EINVAL);
	assert_string_equal(err.field, "");
	assert_non_null(strstr(err.msg, "line 2"));
	assert_non_null(strstr(err.msg, "column"));

	assert_int_equal(kiln_config_load_file(&cfg, dup_key, &err),
			 KILN_EINVAL);
	assert_string_equal(err.field, "");
	assert_non_null(strstr(err.msg, "duplicate"));

	assert_int_equal(kiln_config_load_file(&cfg, empty, &err),
			 KILN_EINVAL);
	assert_string_equal(err.field, "");

	assert_is_default(&cfg);
	kiln_config_free(&cfg);
	unlink(bad_json);
	unlink(dup_key);
	unlink(empty);
	free(bad_json);
	free(dup_key);
	free(empty);
}

static void test_apply_env(void **state)
{
	struct kiln_config cfg;
	struct kiln_err err = {0};

	assert_int_equal(kiln_config_init_defaults(&cfg, &err), KILN_OK);
	assert_int_equal(unsetenv("KILN_JWT_SECRET"), 0);
	kiln_config_apply_env(&cfg);
	assert_null(cfg.jwt_secret);

	assert_int_equal(setenv("KILN_JWT_SECRET", "", 1), 0);
	kiln_config_apply_env(&cfg);
	assert_null(cfg.jwt_secret);

	assert_int_equal(setenv("KILN_JWT_SECRET", "from-the-env-0123", 1), 0);
	kiln_config_apply_env(&cfg);
	assert_string_equal(cfg.jwt_secret, "from-the-env-0123");
	/* Overrides a secret from the file, too. */
	assert_int_equal(setenv("KILN_JWT_SECRET", "second-env-secret", 1), 0);
	kiln_config_apply_env(&cfg);
	assert_string_equal(cfg.jwt_secret, "second-env-secret");

	unsetenv("KILN_JWT_SECRET");
	kiln_config_free(&cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_full_file),
		cmocka_unit_test(test_bad_values_name_the_key),
		cmocka_unit_test(test_env_expansion),
		cmocka_unit_test(test_providers_before_task_types),
		cmocka_unit_test(test_apply_twice_replaces),
		cmocka_unit_test(test_set_listen),
		cmocka_unit_test(test_load_file_errors),
		cmocka_unit_test(test_apply_env),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
