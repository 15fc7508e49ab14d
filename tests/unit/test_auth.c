/*
 * test_auth.c - bearer tokens and the secret file (src/auth.c).
 *
 * Verification is table-driven: each case says how its Authorization
 * header is built (a literal string, a token hand-assembled from header
 * and payload JSON, or a token signed by libjwt with a chosen algorithm
 * and claims), the clock, and the one reason phrase expected (NULL: the
 * token is accepted).  Hand-assembled tokens are how `alg: none` and
 * friends reach the verifier, since no honest library will sign them.
 * The secret-file tests run in a mkdtemp directory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jwt.h>

#include "kiln/auth.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define SECRET "0123456789abcdef-test-secret"

/* ------------------------------------------------------------------ */
/* Token building                                                      */
/* ------------------------------------------------------------------ */

static char *b64url(const char *s)
{
	static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "abcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t len = strlen(s), i, n = 0;
	unsigned long acc = 0;
	int bits = 0;
	char *out = malloc(len * 4 / 3 + 4);

	assert_non_null(out);
	for (i = 0; i < len; i++) {
		acc = (acc << 8) | (unsigned char)s[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			out[n++] = abc[(acc >> bits) & 63];
		}
	}
	if (bits > 0)
		out[n++] = abc[(acc << (6 - bits)) & 63];
	out[n] = '\0';
	return out;
}

static char *concat3(const char *a, const char *b, const char *c)
{
	size_t len = strlen(a) + strlen(b) + strlen(c) + 1;
	char *out = malloc(len);

	assert_non_null(out);
	snprintf(out, len, "%s%s%s", a, b, c);
	return out;
}

/* base64url(header) "." base64url(payload) "." sig */
static char *hand_token(const char *header, const char *payload,
			const char *sig)
{
	char *h = b64url(header), *p = b64url(payload);
	size_t len = strlen(h) + strlen(p) + strlen(sig) + 3;
	char *out = malloc(len);

	assert_non_null(out);
	snprintf(out, len, "%s.%s.%s", h, p, sig);
	free(h);
	free(p);
	return out;
}

/* A token signed by libjwt with alg, secret and the claims JSON. */
static char *signed_token(jwt_alg_t alg, const char *secret,
			  const char *claims)
{
	jwt_t *jwt = NULL;
	char *tok;

	assert_int_equal(jwt_new(&jwt), 0);
	assert_int_equal(jwt_set_alg(jwt, alg, (const unsigned char *)secret,
				     (int)strlen(secret)),
			 0);
	assert_int_equal(jwt_add_grants_json(jwt, claims), 0);
	tok = jwt_encode_str(jwt);
	assert_non_null(tok);
	jwt_free(jwt);
	return tok;
}

/* ------------------------------------------------------------------ */
/* Verification table                                                  */
/* ------------------------------------------------------------------ */

enum build {
	LITERAL, /* text is the whole header value (NULL: no header) */
	HAND,    /* "Bearer " + hand_token(text, payload, sig) */
	SIGNED,  /* "Bearer " + signed_token(alg, sign_secret, payload) */
	TAMPER,  /* as SIGNED, then the payload part swapped for text's */
};

struct verify_case {
	const char *label;
	enum build build;
	const char *text;
	const char *payload;
	const char *sig;
	jwt_alg_t alg;
	const char *sign_secret;
	int64_t now_s;
	const char *reason; /* NULL: accepted */
};

static const char NONE_HDR[] = "{\"alg\":\"none\",\"typ\":\"JWT\"}";
static const char HS256_HDR[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
static const char SIG43[] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

static const struct verify_case verify_cases[] = {
	/* The header itself. */
	{"no header", LITERAL, NULL, 0, 0, 0, 0, 0, "missing bearer token"},
	{"empty header", LITERAL, "", 0, 0, 0, 0, 0, "missing bearer token"},
	{"basic scheme", LITERAL, "Basic dXNlcjpwYXNz", 0, 0, 0, 0, 0,
	 "missing bearer token"},
	{"scheme only", LITERAL, "Bearer", 0, 0, 0, 0, 0,
	 "missing bearer token"},
	{"scheme and blanks", LITERAL, "Bearer    ", 0, 0, 0, 0, 0,
	 "missing bearer token"},
	{"no space", LITERAL, "Bearere30.e30.e30", 0, 0, 0, 0, 0,
	 "missing bearer token"},
	{"basic scheme looking like a token", LITERAL, "Basic e30.e30.e30", 0,
	 0, 0, 0, 0, "missing bearer token"},

	/* Shape. */
	{"garbage", LITERAL, "Bearer garbage", 0, 0, 0, 0, 0,
	 "malformed token"},
	{"two parts", LITERAL, "Bearer e30.e30", 0, 0, 0, 0, 0,
	 "malformed token"},
	{"four parts", LITERAL, "Bearer e30.e30.e30.e30", 0, 0, 0, 0, 0,
	 "malformed token"},
	{"bad base64 char", LITERAL, "Bearer e3!.e30.abc", 0, 0, 0, 0, 0,
	 "malformed token"},
	{"padded base64", LITERAL, "Bearer e30=.e30.abc", 0, 0, 0, 0, 0,
	 "malformed token"},
	{"impossible base64 length", LITERAL, "Bearer e30AA.e30.abc", 0, 0, 0,
	 0, 0, "malformed token"},
	{"space inside token", LITERAL, "Bearer e30.e 30.abc", 0, 0, 0, 0, 0,
	 "malformed token"},
	{"bad base64 in signature", HAND, HS256_HDR, "{}", "a+b/", 0, 0, 0,
	 "malformed token"},
	{"header not an object", HAND, "[1]", "{}", "abc", 0, 0, 0,
	 "malformed token"},
	{"header not JSON", HAND, "alg=HS256", "{}", "abc", 0, 0, 0,
	 "malformed token"},
	{"payload not JSON", HAND, HS256_HDR, "hello", "abc", 0, 0, 0,
	 "malformed token"},
	{"payload an array", HAND, HS256_HDR, "[]", "abc", 0, 0, 0,
	 "malformed token"},
	{"duplicate alg", HAND, "{\"alg\":\"HS256\",\"alg\":\"none\"}", "{}",
	 "abc", 0, 0, 0, "malformed token"},

	/* The algorithm is pinned. */
	{"alg none", HAND, NONE_HDR, "{\"sub\":\"root\"}", "", 0, 0, 0,
	 "unsupported token algorithm"},
	{"alg None", HAND, "{\"alg\":\"None\"}", "{}", "", 0, 0, 0,
	 "unsupported token algorithm"},
	{"alg missing", HAND, "{\"typ\":\"JWT\"}", "{}", "abc", 0, 0, 0,
	 "unsupported token algorithm"},
	{"alg not a string", HAND, "{\"alg\":1}", "{}", "abc", 0, 0, 0,
	 "unsupported token algorithm"},
	{"alg lower case", HAND, "{\"alg\":\"hs256\"}", "{}", SIG43, 0, 0, 0,
	 "unsupported token algorithm"},
	{"alg RS256", HAND, "{\"alg\":\"RS256\",\"typ\":\"JWT\"}", "{}", SIG43,
	 0, 0, 0, "unsupported token algorithm"},
	{"alg HS384 signed by libjwt", SIGNED, 0, "{\"sub\":\"a\"}", 0,
	 JWT_ALG_HS384, SECRET, 0, "unsupported token algorithm"},
	{"alg HS512 signed by libjwt", SIGNED, 0, "{\"sub\":\"a\"}", 0,
	 JWT_ALG_HS512, SECRET, 0, "unsupported token algorithm"},

	/* Signature. */
	{"wrong secret", SIGNED, 0, "{\"sub\":\"a\"}", 0, JWT_ALG_HS256,
	 "another-secret-entirely", 0, "bad token signature"},
	{"empty signature", HAND, HS256_HDR, "{}", "", 0, 0, 0,
	 "bad token signature"},
	{"made-up signature", HAND, HS256_HDR, "{}", SIG43, 0, 0, 0,
	 "bad token signature"},
	{"tampered payload", TAMPER, "{\"tenant\":\"other\"}",
	 "{\"tenant\":\"acme\"}", 0, JWT_ALG_HS256, SECRET, 0,
	 "bad token signature"},

	/* Time claims: exp is exclusive, nbf inclusive. */
	{"no claims at all", SIGNED, 0, "{}", 0, JWT_ALG_HS256, SECRET, 5,
	 NULL},
	{"before exp", SIGNED, 0, "{\"exp\":1000}", 0, JWT_ALG_HS256, SECRET,
	 999, NULL},
	{"at exp", SIGNED, 0, "{\"exp\":1000}", 0, JWT_ALG_HS256, SECRET, 1000,
	 "token expired"},
	{"after exp", SIGNED, 0, "{\"exp\":1000}", 0, JWT_ALG_HS256, SECRET,
	 5000, "token expired"},
	{"real exp not yet", SIGNED, 0, "{\"exp\":1000.5}", 0, JWT_ALG_HS256,
	 SECRET, 1000, NULL},
	{"real exp passed", SIGNED, 0, "{\"exp\":1000.5}", 0, JWT_ALG_HS256,
	 SECRET, 1001, "token expired"},
	{"before nbf", SIGNED, 0, "{\"nbf\":2000}", 0, JWT_ALG_HS256, SECRET,
	 1999, "token not yet valid"},
	{"at nbf", SIGNED, 0, "{\"nbf\":2000}", 0, JWT_ALG_HS256, SECRET, 2000,
	 NULL},
	{"exp a string", SIGNED, 0, "{\"exp\":\"soon\"}", 0, JWT_ALG_HS256,
	 SECRET, 0, "malformed token"},
	{"nbf a bool", SIGNED, 0, "{\"nbf\":true}", 0, JWT_ALG_HS256, SECRET,
	 0, "malformed token"},
	{"exp null", SIGNED, 0, "{\"exp\":null}", 0, JWT_ALG_HS256, SECRET, 0,
	 "malformed token"},

	/* tenant */
	{"tenant a number", SIGNED, 0, "{\"tenant\":5}", 0, JWT_ALG_HS256,
	 SECRET, 0, "malformed token"},
	{"tenant empty", SIGNED, 0, "{\"tenant\":\"\"}", 0, JWT_ALG_HS256,
	 SECRET, 0, "malformed token"},
	{"sub not a string is ignored", SIGNED, 0, "{\"sub\":42}", 0,
	 JWT_ALG_HS256, SECRET, 0, NULL},
};

static char *build_header(const struct verify_case *c)
{
	char *tok = NULL, *header, *swapped, *p1, *p2;

	switch (c->build) {
	case LITERAL:
		return c->text ? strdup(c->text) : NULL;
	case HAND:
		tok = hand_token(c->text, c->payload, c->sig);
		break;
	case SIGNED:
		tok = signed_token(c->alg, c->sign_secret, c->payload);
		break;
	case TAMPER:
		tok = signed_token(c->alg, c->sign_secret, c->payload);
		p1 = strchr(tok, '.');
		p2 = strchr(p1 + 1, '.');
		assert_non_null(p2);
		*p1 = '\0';
		swapped = b64url(c->text);
		header = concat3(tok, ".", swapped);
		free(swapped);
		swapped = concat3(header, "", p2);
		free(header);
		free(tok);
		tok = swapped;
		break;
	}
	header = concat3("Bearer ", tok, "");
	free(tok);
	return header;
}

static void test_verify_table(void **state)
{
	size_t i;

	for (i = 0; i < N(verify_cases); i++) {
		const struct verify_case *c = &verify_cases[i];
		struct kiln_principal p;
		struct kiln_err err = {0};
		char *header = build_header(c);
		enum kiln_rc rc;

		memset(&p, 'x', sizeof(p));
		rc = kiln_auth_verify(header, SECRET, c->now_s, &p, &err);
		if (c->reason == NULL) {
			if (rc != KILN_OK)
				fail_msg("%s: refused with \"%s\"", c->label,
					 err.msg);
		} else {
			if (rc != KILN_EAUTH ||
			    strcmp(err.msg, c->reason) != 0)
				fail_msg("%s: rc %d \"%s\", want \"%s\"",
					 c->label, rc, err.msg, c->reason);
			assert_int_equal(err.code, KILN_EAUTH);
			/* out is written only on success */
			assert_int_equal(p.sub[0], 'x');
		}
		free(header);
	}
}

/* ------------------------------------------------------------------ */
/* Round trips                                                         */
/* ------------------------------------------------------------------ */

static void test_make_verify_roundtrip(void **state)
{
	struct kiln_principal p;
	struct kiln_err err = {0};
	char *tok = kiln_auth_make_token(SECRET, "alice", "acme", 1000, 3600);
	char *header;
	jwt_t *jwt = NULL;

	assert_non_null(tok);
	/* Signed as HS256 with iat and exp as promised. */
	assert_int_equal(jwt_decode(&jwt, tok, (const unsigned char *)SECRET,
				    (int)strlen(SECRET)),
			 0);
	assert_int_equal(jwt_get_alg(jwt), JWT_ALG_HS256);
	assert_int_equal(jwt_get_grant_int(jwt, "iat"), 1000);
	assert_int_equal(jwt_get_grant_int(jwt, "exp"), 4600);
	jwt_free(jwt);

	header = concat3("Bearer ", tok, "");
	assert_int_equal(kiln_auth_verify(header, SECRET, 1000, &p, &err),
			 KILN_OK);
	assert_int_equal(p.has_tenant, 1);
	assert_string_equal(p.tenant, "acme");
	assert_string_equal(p.sub, "alice");
	/* Last second of validity, then expired. */
	assert_int_equal(kiln_auth_verify(header, SECRET, 4599, &p, &err),
			 KILN_OK);
	assert_int_equal(kiln_auth_verify(header, SECRET, 4600, &p, &err),
			 KILN_EAUTH);
	assert_string_equal(err.msg, "token expired");
	assert_int_equal(
		kiln_auth_verify(header, "not-the-secret!!", 1000, &p, &err),
		KILN_EAUTH);
	assert_string_equal(err.msg, "bad token signature");
	/* An empty key must never mean "skip the check". */
	assert_int_equal(kiln_auth_verify(header, "", 1000, &p, &err),
			 KILN_EAUTH);
	assert_string_equal(err.msg, "bad token signature");
	free(header);

	/* Scheme in any case, extra blanks around the token. */
	header = concat3("bEaReR   ", tok, "  ");
	assert_int_equal(kiln_auth_verify(header, SECRET, 1000, &p, &err),
			 KILN_OK);
	free(header);
	free(tok);
}

/* Verified tokens are remembered per thread (auth.c): asking again must
 * give the same answers, time claims included, and a token that differs
 * in one character, or another secret, must not ride on the cache. */
static void test_verify_again_same_answers(void **state)
{
	struct kiln_principal p;
	struct kiln_err err = {0};
	char *toks[6], *headers[6], *tampered;
	size_t i, n;
	int round;

	(void)state;
	for (i = 0; i < 6; i++) {
		char tenant[16];

		snprintf(tenant, sizeof(tenant), "t%zu", i);
		toks[i] = kiln_auth_make_token(SECRET, "bob", i ? tenant : NULL,
					       2000, 100);
		assert_non_null(toks[i]);
		headers[i] = concat3("Bearer ", toks[i], "");
	}
	/* More tokens than the cache holds, three rounds: each answer is
	 * its own, from the cache or not. */
	for (round = 0; round < 3; round++) {
		for (i = 0; i < 6; i++) {
			memset(&p, 0, sizeof(p));
			assert_int_equal(kiln_auth_verify(headers[i], SECRET,
							  2050, &p, &err),
					 KILN_OK);
			assert_int_equal(p.has_tenant, i != 0);
			if (i != 0)
				assert_int_equal(p.tenant[1] - '0', (int)i);
			assert_string_equal(p.sub, "bob");
		}
	}
	/* Remembered, yet expired once exp has passed... */
	assert_int_equal(kiln_auth_verify(headers[5], SECRET, 2100, &p, &err),
			 KILN_EAUTH);
	assert_string_equal(err.msg, "token expired");
	/* ...and valid again at an earlier clock (exp is checked each time,
	 * not remembered as a verdict). */
	assert_int_equal(kiln_auth_verify(headers[5], SECRET, 2099, &p, &err),
			 KILN_OK);
	/* Another secret: checked afresh. */
	assert_int_equal(kiln_auth_verify(headers[5], "another-secret-x", 2050,
					  &p, &err),
			 KILN_EAUTH);
	assert_string_equal(err.msg, "bad token signature");
	/* One character of the signature changed. */
	tampered = strdup(headers[5]);
	n = strlen(tampered);
	tampered[n - 2] = tampered[n - 2] == 'A' ? 'B' : 'A';
	assert_int_equal(kiln_auth_verify(tampered, SECRET, 2050, &p, &err),
			 KILN_EAUTH);
	assert_string_equal(err.msg, "bad token signature");
	free(tampered);
	for (i = 0; i < 6; i++) {
		free(headers[i]);
		free(toks[i]);
	}
}

static void test_operator_token(void **state)
{
	struct kiln_principal p;
	struct kiln_err err = {0};
	char *tok = kiln_auth_make_token(SECRET, NULL, NULL, 50, 10);
	char *header = concat3("Bearer ", tok, "");

	assert_int_equal(kiln_auth_verify(header, SECRET, 55, &p, &err),
			 KILN_OK);
	assert_int_equal(p.has_tenant, 0);
	assert_string_equal(p.sub, "");
	free(header);
	free(tok);
	assert_null(kiln_auth_make_token("", "a", NULL, 0, 10));
	assert_null(kiln_auth_make_token(NULL, "a", NULL, 0, 10));
}

static void test_tenant_length(void **state)
{
	struct kiln_principal p;
	struct kiln_err err = {0};
	char tenant[KILN_TENANT_MAX + 1];
	char *tok, *header;

	memset(tenant, 't', sizeof(tenant) - 1);
	tenant[KILN_TENANT_MAX - 1] = '\0'; /* 100 characters: fine */
	tok = kiln_auth_make_token(SECRET, NULL, tenant, 0, 100);
	header = concat3("Bearer ", tok, "");
	assert_int_equal(kiln_auth_verify(header, SECRET, 1, &p, &err),
			 KILN_OK);
	assert_string_equal(p.tenant, tenant);
	free(header);
	free(tok);

	memset(tenant, 't', sizeof(tenant) - 1);
	tenant[KILN_TENANT_MAX] = '\0'; /* 101: too long */
	tok = kiln_auth_make_token(SECRET, NULL, tenant, 0, 100);
	header = concat3("Bearer ", tok, "");
	assert_int_equal(kiln_auth_verify(header, SECRET, 1, &p, &err),
			 KILN_EAUTH);
	assert_string_equal(err.msg, "malformed token");
	free(header);
	free(tok);
}

/* An overlong sub is cut at a character boundary, not mid-character. */
static void test_long_sub_truncated(void **state)
{
	struct kiln_principal p;
	struct kiln_err err = {0};
	char sub[301];
	char *tok, *header;
	size_t i;

	for (i = 0; i + 1 < sizeof(sub); i += 2) {
		sub[i] = (char)0xc3; /* U+00E9 */
		sub[i + 1] = (char)0xa9;
	}
	sub[300] = '\0';
	tok = kiln_auth_make_token(SECRET, sub, NULL, 0, 100);
	header = concat3("Bearer ", tok, "");
	assert_int_equal(kiln_auth_verify(header, SECRET, 1, &p, &err),
			 KILN_OK);
	assert_int_equal(strlen(p.sub), 254);
	assert_memory_equal(p.sub, sub, 254);
	free(header);
	free(tok);
}

/* ------------------------------------------------------------------ */
/* The secret file                                                     */
/* ------------------------------------------------------------------ */

static char *path_join(const char *a, const char *b)
{
	return concat3(a, "/", b);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

/* rm -r for the small trees these tests make. */
static void remove_tree(const char *path)
{
	struct dirent *de;
	struct stat st;
	DIR *d;

	if (lstat(path, &st) != 0)
		return;
	if (S_ISDIR(st.st_mode)) {
		d = opendir(path);
		assert_non_null(d);
		while ((de = readdir(d)) != NULL) {
			char *child;

			if (strcmp(de->d_name, ".") == 0 ||
			    strcmp(de->d_name, "..") == 0)
				continue;
			child = path_join(path, de->d_name);
			remove_tree(child);
			free(child);
		}
		closedir(d);
		rmdir(path);
	} else {
		unlink(path);
	}
}

static int make_tmpdir(void **state)
{
	char tmpl[] = "/tmp/kiln-test-auth-XXXXXX";

	assert_non_null(mkdtemp(tmpl));
	*state = strdup(tmpl);
	return *state ? 0 : -1;
}

static int remove_tmpdir(void **state)
{
	remove_tree(*state);
	free(*state);
	return 0;
}

static void test_secret_created_then_reused(void **state)
{
	const char *tmp = *state;
	char *data_dir = path_join(tmp, "nested/data/");
	char *file = path_join(tmp, "nested/data/jwt.secret");
	char *first = NULL, *again = NULL;
	struct kiln_err err = {0};
	char text[80] = {0};
	struct stat st;
	size_t i;
	int fd;

	assert_int_equal(
		kiln_auth_load_or_create_secret(data_dir, &first, &err),
		KILN_OK);
	assert_non_null(first);
	assert_int_equal(strlen(first), 64);
	for (i = 0; i < 64; i++)
		assert_non_null(strchr("0123456789abcdef", first[i]));

	assert_int_equal(stat(file, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	fd = open(file, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, text, sizeof(text) - 1), 65);
	close(fd);
	assert_int_equal(text[64], '\n');
	assert_memory_equal(text, first, 64);

	assert_int_equal(
		kiln_auth_load_or_create_secret(data_dir, &again, &err),
		KILN_OK);
	assert_string_equal(first, again);

	/* And the secret signs tokens that verify. */
	{
		struct kiln_principal p;
		char *tok = kiln_auth_make_token(first, "s", NULL, 0, 10);
		char *header = concat3("Bearer ", tok, "");

		assert_int_equal(kiln_auth_verify(header, again, 1, &p, &err),
				 KILN_OK);
		free(header);
		free(tok);
	}
	free(first);
	free(again);
	free(file);
	free(data_dir);
}

static void test_secret_read_rules(void **state)
{
	const char *tmp = *state;
	char *file = path_join(tmp, "jwt.secret");
	char *notdir = path_join(tmp, "plain-file");
	char *secret = NULL;
	struct kiln_err err = {0};

	/* Hand-written: trailing whitespace stripped, leading kept. */
	write_file(file, " hand written secret \r\n\n", 0600);
	assert_int_equal(kiln_auth_load_or_create_secret(tmp, &secret, &err),
			 KILN_OK);
	assert_string_equal(secret, " hand written secret");
	free(secret);
	secret = NULL;

	/* Too open: loaded anyway (with a warning in the log). */
	write_file(file, "group-readable-secret\n", 0640);
	assert_int_equal(kiln_auth_load_or_create_secret(tmp, &secret, &err),
			 KILN_OK);
	assert_string_equal(secret, "group-readable-secret");
	free(secret);
	secret = NULL;

	/* Blank: refused, naming the file; never replaced silently. */
	write_file(file, " \n", 0600);
	assert_int_equal(kiln_auth_load_or_create_secret(tmp, &secret, &err),
			 KILN_EIO);
	assert_null(secret);
	assert_non_null(strstr(err.msg, file));

	/* data_dir is a regular file. */
	write_file(notdir, "x", 0600);
	assert_int_equal(
		kiln_auth_load_or_create_secret(notdir, &secret, &err),
		KILN_EIO);
	assert_null(secret);
	assert_non_null(strstr(err.msg, notdir));

	free(notdir);
	free(file);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verify_table),
		cmocka_unit_test(test_make_verify_roundtrip),
		cmocka_unit_test(test_verify_again_same_answers),
		cmocka_unit_test(test_operator_token),
		cmocka_unit_test(test_tenant_length),
		cmocka_unit_test(test_long_sub_truncated),
		cmocka_unit_test_setup_teardown(test_secret_created_then_reused,
						make_tmpdir, remove_tmpdir),
		cmocka_unit_test_setup_teardown(test_secret_read_rules,
						make_tmpdir, remove_tmpdir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
