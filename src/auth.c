/*
 * auth.c - bearer tokens (HS256 JWTs) and the daemon's signing secret.
 *
 * Verification is done in two layers on purpose.  We first take the token
 * apart ourselves (three base64url parts, JSON-object header and payload,
 * no duplicate keys) and insist that the header says exactly "HS256"
 * before any key is used: the token never picks the algorithm, so
 * `alg: none` and HS384/RS256 are refused up front.  Only then does libjwt
 * check the signature over the same bytes, and we check again that it
 * verified as HS256.  Claims (exp, nbf, tenant, sub) are read from our own
 * parse of the payload, which is exactly the text the signature covers.
 *
 * The secret lives in <data_dir>/jwt.secret: 256 random bits, hex, mode
 * 0600, created once and never replaced (secret_file.c).  Its bytes are the
 * file's text without trailing whitespace.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <jwt.h>

#include "kiln/auth.h"
#include "kiln/secret_file.h"

/* Longer tokens are refused before any decoding; ours are ~250 bytes. */
#define TOKEN_MAX_LEN 8192
#define SECRET_RANDOM_BYTES 32
#define SECRET_FILE_NAME "jwt.secret"

static const char REASON_MISSING[] = "missing bearer token";
static const char REASON_MALFORMED[] = "malformed token";
static const char REASON_ALG[] = "unsupported token algorithm";
static const char REASON_SIGNATURE[] = "bad token signature";
static const char REASON_EXPIRED[] = "token expired";
static const char REASON_NOT_YET[] = "token not yet valid";

/* ------------------------------------------------------------------ */
/* Token parsing                                                       */
/* ------------------------------------------------------------------ */

/* Value of a base64url character, or -1 if it is not one. */
static int b64url_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/* 1 if s[0..len) is unpadded base64url text of a possible length (RFC 7515
 * section 2 omits the '=' padding; a remainder of 1 cannot occur). */
static int b64url_is_valid(const char *s, size_t len)
{
	size_t i;

	if (len % 4 == 1)
		return 0;
	for (i = 0; i < len; i++)
		if (b64url_value((unsigned char)s[i]) < 0)
			return 0;
	return 1;
}

/* Decodes unpadded base64url into a malloc'd buffer the caller frees.
 * Returns 0, or -1 for bad input or no memory. */
static int b64url_decode(const char *s, size_t len, unsigned char **out,
			 size_t *out_len)
{
	unsigned char *buf;
	unsigned long acc = 0;
	size_t i, n = 0;
	int bits = 0;

	if (!b64url_is_valid(s, len))
		return -1;
	buf = malloc(len * 3 / 4 + 1);
	if (buf == NULL)
		return -1;
	for (i = 0; i < len; i++) {
		acc = (acc << 6) |
		      (unsigned long)b64url_value((unsigned char)s[i]);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[n++] = (unsigned char)(acc >> bits);
			acc &= (1UL << bits) - 1;
		}
	}
	*out = buf;
	*out_len = n;
	return 0;
}

/* Decodes one base64url part that must hold a JSON object; NULL if it
 * does not.  Duplicate keys are refused so that nobody can smuggle a
 * second "alg" or "exp" past a parser that keeps the other one. */
static json_t *decode_json_part(const char *s, size_t len)
{
	unsigned char *raw = NULL;
	size_t raw_len = 0;
	json_t *obj = NULL;

	if (b64url_decode(s, len, &raw, &raw_len) != 0)
		goto out;
	obj = json_loadb((const char *)raw, raw_len, JSON_REJECT_DUPLICATES,
			 NULL);
	if (obj != NULL && !json_is_object(obj)) {
		json_decref(obj);
		obj = NULL;
	}
out:
	free(raw);
	return obj;
}

/*
 * Finds the token in an Authorization header value: scheme "Bearer" (any
 * case), at least one space, the token, optional trailing blanks.  Sets
 * *token and *len to a span inside header.  Returns 0, or -1 when there is no
 * bearer token at all.
 */
static int find_bearer_token(const char *header, const char **token,
			     size_t *len)
{
	const char *p = header;
	size_t n;

	if (p == NULL)
		return -1;
	while (*p == ' ' || *p == '\t')
		p++;
	if (strncasecmp(p, "Bearer", 6) != 0 || p[6] != ' ')
		return -1;
	p += 6;
	while (*p == ' ')
		p++;
	n = strlen(p);
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	if (n == 0)
		return -1;
	*token = p;
	*len = n;
	return 0;
}

/* 1 if now_s >= v, for a JSON integer or real claim value. */
static int now_is_at_or_after(int64_t now_s, const json_t *v)
{
	if (json_is_integer(v))
		return now_s >= (int64_t)json_integer_value(v);
	return (double)now_s >= json_real_value(v);
}

/* ------------------------------------------------------------------ */
/* Tokens already verified                                             */
/* ------------------------------------------------------------------ */

/*
 * A client sends the same token with every request, and checking its
 * signature (base64, JSON, HMAC) is a good part of a small request's
 * cost.  Each thread remembers the last few tokens that passed, with the
 * secret that passed them and their time claims, which are checked again
 * at every use.  Only short tokens are kept (fixed slots, nothing to
 * free when the thread ends), and a presented token is compared in
 * constant time.
 */
#define CACHED_TOKENS 4
#define CACHED_TOKEN_MAX 640
#define CACHED_SECRET_MAX 128

struct verified_token {
	size_t len; /* 0: empty slot */
	char token[CACHED_TOKEN_MAX];
	char secret[CACHED_SECRET_MAX];
	int has_exp, has_nbf;
	double exp, nbf;
	struct kiln_principal p;
};

static _Thread_local struct verified_token verified[CACHED_TOKENS];
static _Thread_local unsigned next_slot;

static int same_bytes(const char *a, const char *b, size_t len)
{
	unsigned char diff = 0;
	size_t i;

	for (i = 0; i < len; i++)
		diff |= (unsigned char)(a[i] ^ b[i]);
	return diff == 0;
}

/* The cached entry for this token and secret, or NULL. */
static const struct verified_token *cached(const char *token, size_t len,
					   const char *secret)
{
	size_t i;

	for (i = 0; i < CACHED_TOKENS; i++) {
		const struct verified_token *v = &verified[i];

		if (v->len == len && same_bytes(v->token, token, len) &&
		    strcmp(v->secret, secret) == 0)
			return v;
	}
	return NULL;
}

static void remember(const char *token, size_t len, const char *secret,
		     const json_t *exp, const json_t *nbf,
		     const struct kiln_principal *p)
{
	struct verified_token *v;

	if (len >= CACHED_TOKEN_MAX || strlen(secret) >= CACHED_SECRET_MAX)
		return;
	v = &verified[next_slot++ % CACHED_TOKENS];
	v->len = len;
	memcpy(v->token, token, len);
	kiln_strlcpy(v->secret, secret, sizeof(v->secret));
	v->has_exp = exp != NULL;
	v->exp = exp ? json_number_value(exp) : 0;
	v->has_nbf = nbf != NULL;
	v->nbf = nbf ? json_number_value(nbf) : 0;
	v->p = *p;
}

/* ------------------------------------------------------------------ */
/* Verification                                                        */
/* ------------------------------------------------------------------ */

enum kiln_rc kiln_auth_verify(const char *header, const char *secret,
			      int64_t now_s, struct kiln_principal *out,
			      struct kiln_err *err)
{
	struct kiln_principal p;
	const char *token, *dot1, *dot2, *alg, *reason = NULL;
	const json_t *exp, *nbf, *tenant, *sub;
	json_t *jhead = NULL, *claims = NULL;
	char *token_copy = NULL;
	jwt_t *jwt = NULL;
	size_t len, secret_len;

	memset(&p, 0, sizeof(p));
	if (find_bearer_token(header, &token, &len) != 0) {
		reason = REASON_MISSING;
		goto out;
	}
	if (secret != NULL && secret[0] != '\0') {
		const struct verified_token *v = cached(token, len, secret);

		if (v != NULL) {
			if (v->has_exp && (double)now_s >= v->exp)
				reason = REASON_EXPIRED;
			else if (v->has_nbf && (double)now_s < v->nbf)
				reason = REASON_NOT_YET;
			else
				*out = v->p;
			goto out;
		}
	}

	/* Shape: exactly three base64url parts.  The signature may be empty
	 * here so that an `alg: none` token is reported as such below. */
	reason = REASON_MALFORMED;
	if (len > TOKEN_MAX_LEN)
		goto out;
	dot1 = memchr(token, '.', len);
	if (dot1 == NULL)
		goto out;
	dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token));
	if (dot2 == NULL ||
	    memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL)
		goto out;
	if (!b64url_is_valid(dot2 + 1, len - (size_t)(dot2 + 1 - token)))
		goto out;
	jhead = decode_json_part(token, (size_t)(dot1 - token));
	claims = decode_json_part(dot1 + 1, (size_t)(dot2 - dot1 - 1));
	if (jhead == NULL || claims == NULL)
		goto out;

	/* The algorithm is ours to choose, never the token's. */
	alg = json_string_value(json_object_get(jhead, "alg"));
	if (alg == NULL || strcmp(alg, "HS256") != 0) {
		reason = REASON_ALG;
		goto out;
	}

	/* An empty key would make libjwt skip verification altogether. */
	reason = REASON_SIGNATURE;
	secret_len = secret ? strlen(secret) : 0;
	if (secret_len == 0 || secret_len > INT_MAX)
		goto out;
	token_copy = strndup(token, len);
	if (token_copy == NULL)
		goto out;
	if (jwt_decode(&jwt, token_copy, (const unsigned char *)secret,
		       (int)secret_len) != 0 ||
	    jwt_get_alg(jwt) != JWT_ALG_HS256)
		goto out;

	/* Claim types first: a badly typed claim is malformed whatever the
	 * clock says. */
	reason = REASON_MALFORMED;
	exp = json_object_get(claims, "exp");
	nbf = json_object_get(claims, "nbf");
	tenant = json_object_get(claims, "tenant");
	sub = json_object_get(claims, "sub");
	if ((exp && !json_is_number(exp)) || (nbf && !json_is_number(nbf)))
		goto out;
	if (tenant && (!json_is_string(tenant) ||
		       json_string_length(tenant) == 0 ||
		       json_string_length(tenant) >= KILN_TENANT_MAX))
		goto out;
	if (exp && now_is_at_or_after(now_s, exp)) {
		reason = REASON_EXPIRED;
		goto out;
	}
	if (nbf && !now_is_at_or_after(now_s, nbf)) {
		reason = REASON_NOT_YET;
		goto out;
	}

	if (tenant) {
		p.has_tenant = 1;
		kiln_strlcpy(p.tenant, json_string_value(tenant),
			     sizeof(p.tenant));
	}
	/* sub is informational (logs), so an overlong one is cut rather than
	 * refused. */
	if (json_is_string(sub))
		kiln_strlcpy(p.sub, json_string_value(sub),
				    sizeof(p.sub));
	reason = NULL;
	*out = p;
	remember(token, len, secret, exp, nbf, &p);
out:
	if (jwt != NULL)
		jwt_free(jwt);
	free(token_copy);
	json_decref(jhead);
	json_decref(claims);
	if (reason != NULL)
		return kiln_err_set(err, KILN_EAUTH, "", "%s", reason);
	return KILN_OK;
}

/* ------------------------------------------------------------------ */
/* Signing                                                             */
/* ------------------------------------------------------------------ */

char *kiln_auth_make_token(const char *secret, const char *sub,
			   const char *tenant, int64_t now_s, int64_t ttl_s)
{
	jwt_t *jwt = NULL;
	char *token = NULL;
	size_t secret_len = secret ? strlen(secret) : 0;

	if (secret_len == 0 || secret_len > INT_MAX)
		goto out;
	if ((ttl_s > 0 && now_s > INT64_MAX - ttl_s) ||
	    (ttl_s < 0 && now_s < INT64_MIN - ttl_s))
		goto out;
	if (jwt_new(&jwt) != 0)
		goto out;
	if (jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)secret,
			(int)secret_len) != 0)
		goto out;
	if (jwt_add_grant_int(jwt, "iat", (long)now_s) != 0 ||
	    jwt_add_grant_int(jwt, "exp", (long)(now_s + ttl_s)) != 0)
		goto out;
	if (sub != NULL && jwt_add_grant(jwt, "sub", sub) != 0)
		goto out;
	if (tenant != NULL && jwt_add_grant(jwt, "tenant", tenant) != 0)
		goto out;
	/* libjwt 1.10 has no allocator hooks: the string is plain malloc
	 * memory, so our callers' free() is right. */
	token = jwt_encode_str(jwt);
out:
	if (jwt != NULL)
		jwt_free(jwt);
	return token;
}

/* ------------------------------------------------------------------ */
/* The secret file                                                     */
/* ------------------------------------------------------------------ */

/* A fresh jwt.secret: 256 random bits as 64 hex digits. */
static char *generate_secret(void)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char rnd[SECRET_RANDOM_BYTES];
	char *text;
	size_t i;

	if (kiln_secret_random_bytes(rnd, sizeof(rnd)) != 0)
		return NULL;
	text = malloc(2 * sizeof(rnd) + 1);
	if (text != NULL) {
		for (i = 0; i < sizeof(rnd); i++) {
			text[2 * i] = hex[rnd[i] >> 4];
			text[2 * i + 1] = hex[rnd[i] & 0xf];
		}
		text[2 * sizeof(rnd)] = '\0';
	}
	explicit_bzero(rnd, sizeof(rnd));
	return text;
}

enum kiln_rc kiln_auth_load_or_create_secret(const char *data_dir, char **out,
					     struct kiln_err *err)
{
	return kiln_secret_file_load_or_create(data_dir, SECRET_FILE_NAME,
					       generate_secret, NULL, out,
					       err);
}
