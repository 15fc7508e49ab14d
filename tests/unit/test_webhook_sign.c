/*
 * test_webhook_sign.c - Standard Webhooks signatures and secrets
 * (src/webhook_sign.c, and src/secret_file.c through it).
 *
 * The signature test vector is the one the Standard Webhooks libraries
 * test against.  Secret-file tests run in a mkdtemp directory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "kiln/webhook_sign.h"

#define VEC_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define VEC_MSG_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define VEC_TIMESTAMP 1614265330
#define VEC_BODY "{\"test\": 2432232314}"
#define VEC_SIGNATURE "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

/* "whsec_" + base64 of n bytes 1, 2, 3, ... (n <= 100). */
static void secret_of_len(size_t n, char *out)
{
	unsigned char raw[100];
	size_t i;

	assert_true(n <= sizeof(raw));
	for (i = 0; i < n; i++)
		raw[i] = (unsigned char)(i + 1);
	memcpy(out, "whsec_", 6);
	EVP_EncodeBlock((unsigned char *)out + 6, raw, (int)n);
}

static void parse_ok(const char *secret, struct kiln_webhook_key *key)
{
	struct kiln_err err = {0};

	assert_int_equal(kiln_webhook_key_parse(secret, key, &err), KILN_OK);
}

/* ------------------------------------------------------------------ */
/* Signing                                                             */
/* ------------------------------------------------------------------ */

static void test_sign_vector(void **state)
{
	struct kiln_webhook_key key;
	char sig[KILN_WEBHOOK_SIG_LEN];

	(void)state;
	parse_ok(VEC_SECRET, &key);
	assert_int_equal(key.len, 24);
	assert_int_equal(kiln_webhook_sign(&key, VEC_MSG_ID, VEC_TIMESTAMP,
					   VEC_BODY, strlen(VEC_BODY), sig),
			 0);
	assert_string_equal(sig, VEC_SIGNATURE);
	assert_int_equal(strlen(sig), KILN_WEBHOOK_SIG_LEN - 1);
}

/* The body is body_len bytes: what follows is not signed. */
static void test_sign_uses_body_len(void **state)
{
	static const char longer[] = VEC_BODY "trailing bytes";
	struct kiln_webhook_key key;
	char sig[KILN_WEBHOOK_SIG_LEN];

	(void)state;
	parse_ok(VEC_SECRET, &key);
	assert_int_equal(kiln_webhook_sign(&key, VEC_MSG_ID, VEC_TIMESTAMP,
					   longer, strlen(VEC_BODY), sig),
			 0);
	assert_string_equal(sig, VEC_SIGNATURE);
	assert_int_equal(kiln_webhook_sign(&key, VEC_MSG_ID, VEC_TIMESTAMP + 1,
					   VEC_BODY, strlen(VEC_BODY), sig),
			 0);
	assert_string_not_equal(sig, VEC_SIGNATURE);
}

/* A receiver holding either key finds its signature in the header. */
static void test_header_two_keys(void **state)
{
	struct kiln_webhook_key keys[2];
	char second[100], sig[KILN_WEBHOOK_SIG_LEN];
	char *header, *space;

	(void)state;
	secret_of_len(32, second);
	parse_ok(VEC_SECRET, &keys[0]);
	parse_ok(second, &keys[1]);
	header = kiln_webhook_signature_header(keys, 2, VEC_MSG_ID,
					       VEC_TIMESTAMP, VEC_BODY,
					       strlen(VEC_BODY));
	assert_non_null(header);
	space = strchr(header, ' ');
	assert_non_null(space);
	assert_null(strchr(space + 1, ' '));
	*space = '\0';
	assert_string_equal(header, VEC_SIGNATURE);
	assert_int_equal(kiln_webhook_sign(&keys[1], VEC_MSG_ID, VEC_TIMESTAMP,
					   VEC_BODY, strlen(VEC_BODY), sig),
			 0);
	assert_string_equal(space + 1, sig);
	assert_string_not_equal(space + 1, VEC_SIGNATURE);
	free(header);

	header = kiln_webhook_signature_header(keys, 1, VEC_MSG_ID,
					       VEC_TIMESTAMP, VEC_BODY,
					       strlen(VEC_BODY));
	assert_non_null(header);
	assert_string_equal(header, VEC_SIGNATURE);
	free(header);

	assert_null(kiln_webhook_signature_header(keys, 0, VEC_MSG_ID,
						  VEC_TIMESTAMP, VEC_BODY,
						  strlen(VEC_BODY)));
}

/* ------------------------------------------------------------------ */
/* Parsing secrets                                                     */
/* ------------------------------------------------------------------ */

static void test_parse_lengths(void **state)
{
	static const struct {
		size_t len;
		int is_ok;
	} cases[] = {
		{0, 0}, {1, 0}, {23, 0}, {24, 1}, {25, 1}, {26, 1},
		{32, 1}, {63, 1}, {64, 1}, {65, 0}, {66, 0}, {99, 0},
	};
	struct kiln_webhook_key key;
	struct kiln_err err = {0};
	char secret[200];
	size_t i, j;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		secret_of_len(cases[i].len, secret);
		memset(&key, 0, sizeof(key));
		kiln_err_clear(&err);
		if (!cases[i].is_ok) {
			assert_int_equal(
				kiln_webhook_key_parse(secret, &key, &err),
				KILN_EINVAL);
			assert_string_equal(err.field, "");
			assert_true(err.msg[0] != '\0');
			continue;
		}
		/* 24, 25, 26 bytes: no, two, one '=' of padding. */
		parse_ok(secret, &key);
		assert_int_equal(key.len, cases[i].len);
		for (j = 0; j < key.len; j++)
			assert_int_equal(key.bytes[j], j + 1);
	}
}

static void test_parse_errors(void **state)
{
	static const struct {
		const char *secret;
		const char *reason;
	} cases[] = {
		{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_"},
		{"WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_"},
		{"", "whsec_"},
		{"whsec_", "base64"},
		{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS", "base64"},
		{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw=", "base64"},
		{"whsec_MfKQ9r8GKYqrTwjUPD8I!PZIo2LaLaSw", "base64"},
		{"whsec_MfKQ9r8GKYqrTwjUPD8I LPZIo2LaLaS", "base64"},
		{"whsec_MfKQ9r8GKYqr=wjUPD8ILPZIo2LaLaSw", "base64"},
		{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaL===", "base64"},
		{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2La-_Sw", "base64"},
		{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n", "base64"},
		{"whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "24 to 64 bytes"},
	};
	struct kiln_webhook_key key;
	struct kiln_err err = {0};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		kiln_err_clear(&err);
		assert_int_equal(
			kiln_webhook_key_parse(cases[i].secret, &key, &err),
			KILN_EINVAL);
		if (strstr(err.msg, cases[i].reason) == NULL)
			fail_msg("%s: \"%s\" lacks \"%s\"", cases[i].secret,
				 err.msg, cases[i].reason);
	}
}

static void test_generated_secrets(void **state)
{
	struct kiln_webhook_key a, b;
	char *one, *two;

	(void)state;
	one = kiln_webhook_secret_generate();
	two = kiln_webhook_secret_generate();
	assert_non_null(one);
	assert_non_null(two);
	assert_int_equal(strlen(one), 6 + 44);
	assert_string_not_equal(one, two);
	parse_ok(one, &a);
	parse_ok(two, &b);
	assert_int_equal(a.len, 32);
	assert_int_equal(b.len, 32);
	assert_memory_not_equal(a.bytes, b.bytes, 32);
	free(one);
	free(two);
}

/* ------------------------------------------------------------------ */
/* The secret file                                                     */
/* ------------------------------------------------------------------ */

struct tmp {
	char dir[64];
	char file[128];
};

static int make_tmpdir(void **state)
{
	struct tmp *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	snprintf(t->dir, sizeof(t->dir), "/tmp/kiln-test-whsig-XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->file, sizeof(t->file), "%s/webhook.secret", t->dir);
	*state = t;
	return 0;
}

static int remove_tmpdir(void **state)
{
	struct tmp *t = *state;

	unlink(t->file);
	assert_int_equal(rmdir(t->dir), 0); /* no temporary files left */
	free(t);
	return 0;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void test_secret_created_then_reused(void **state)
{
	struct tmp *t = *state;
	struct kiln_err err = {0};
	struct kiln_webhook_key key;
	char *first = NULL, *again = NULL;
	char text[128] = {0};
	struct stat st;
	ssize_t n;
	int fd;

	assert_int_equal(
		kiln_webhook_load_or_create_secret(t->dir, &first, &err),
		KILN_OK);
	parse_ok(first, &key);
	assert_int_equal(key.len, 32);

	assert_int_equal(stat(t->file, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	fd = open(t->file, O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	assert_int_equal(n, (ssize_t)strlen(first) + 1);
	assert_memory_equal(text, first, strlen(first));
	assert_int_equal(text[n - 1], '\n');

	assert_int_equal(
		kiln_webhook_load_or_create_secret(t->dir, &again, &err),
		KILN_OK);
	assert_string_equal(first, again);
	free(first);
	free(again);
}

static void test_secret_file_rules(void **state)
{
	struct tmp *t = *state;
	struct kiln_err err = {0};
	char *secret = NULL;

	/* Hand-written, with blanks around it. */
	write_file(t->file, "  " VEC_SECRET " \r\n\n");
	assert_int_equal(
		kiln_webhook_load_or_create_secret(t->dir, &secret, &err),
		KILN_OK);
	assert_string_equal(secret, VEC_SECRET);
	free(secret);
	secret = NULL;

	/* Not a whsec_ secret: refused naming the file, never replaced. */
	write_file(t->file, "0123456789abcdef0123456789abcdef\n");
	assert_int_equal(
		kiln_webhook_load_or_create_secret(t->dir, &secret, &err),
		KILN_EINVAL);
	assert_null(secret);
	assert_non_null(strstr(err.msg, t->file));
	assert_non_null(strstr(err.msg, "whsec_"));

	write_file(t->file, "whsec_c2hvcnQ=\n"); /* "short" */
	assert_int_equal(
		kiln_webhook_load_or_create_secret(t->dir, &secret, &err),
		KILN_EINVAL);
	assert_null(secret);
	assert_non_null(strstr(err.msg, t->file));
	assert_non_null(strstr(err.msg, "24 to 64 bytes"));

	write_file(t->file, "\n");
	assert_int_equal(
		kiln_webhook_load_or_create_secret(t->dir, &secret, &err),
		KILN_EIO);
	assert_null(secret);
}

/* Processes starting together all end up with the one secret that won. */
static void test_secret_race(void **state)
{
	enum { CHILDREN = 8 };
	struct tmp *t = *state;
	char got[CHILDREN][128];
	int readers[CHILDREN], fds[2], i, status;
	ssize_t n;

	for (i = 0; i < CHILDREN; i++) {
		pid_t pid;

		assert_int_equal(pipe(fds), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct kiln_err err = {0};
			char *s = NULL;

			close(fds[0]);
			if (kiln_webhook_load_or_create_secret(t->dir, &s,
							       &err) !=
			    KILN_OK)
				_exit(1);
			n = write(fds[1], s, strlen(s));
			status = n == (ssize_t)strlen(s) ? 0 : 1;
			free(s);
			_exit(status);
		}
		close(fds[1]);
		/* Read later, so that the children overlap. */
		readers[i] = fds[0];
	}
	for (i = 0; i < CHILDREN; i++) {
		n = read(readers[i], got[i], sizeof(got[i]) - 1);
		close(readers[i]);
		assert_true(n > 0);
		got[i][n] = '\0';
	}
	while (wait(&status) > 0)
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	for (i = 1; i < CHILDREN; i++)
		assert_string_equal(got[i], got[0]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sign_vector),
		cmocka_unit_test(test_sign_uses_body_len),
		cmocka_unit_test(test_header_two_keys),
		cmocka_unit_test(test_parse_lengths),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_generated_secrets),
		cmocka_unit_test_setup_teardown(test_secret_created_then_reused,
						make_tmpdir, remove_tmpdir),
		cmocka_unit_test_setup_teardown(test_secret_file_rules,
						make_tmpdir, remove_tmpdir),
		cmocka_unit_test_setup_teardown(test_secret_race, make_tmpdir,
						remove_tmpdir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
