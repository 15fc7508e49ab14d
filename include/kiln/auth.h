/*
 * auth.h - bearer tokens: HS256 JWTs verified with libjwt, and the daemon's
 * secret.
 *
 * The accepted algorithm is pinned here (HS256); the token's header never
 * chooses it.  `alg: none` and every other algorithm are refused.
 */
#ifndef KILN_AUTH_H
#define KILN_AUTH_H

#include <stdint.h>

#include "kiln/common.h"

#define KILN_TENANT_MAX 101 /* origin_tenant_id maxLength 100 + NUL */
#define KILN_SUB_MAX 256

/* What a verified token grants. */
struct kiln_principal {
	int has_tenant;               /* 0: an operator's token, sees all */
	char tenant[KILN_TENANT_MAX]; /* valid when has_tenant */
	char sub[KILN_SUB_MAX];       /* "" when absent */
};

/*
 * Verifies an Authorization header value ("Bearer <jwt>") against secret at
 * time now_s (Unix seconds).  On success fills *out and returns KILN_OK.
 * On failure returns KILN_EAUTH with err->msg saying why, one of:
 * "missing bearer token", "malformed token", "unsupported token algorithm",
 * "bad token signature", "token expired", "token not yet valid".
 * header may be NULL (missing).
 */
enum kiln_rc kiln_auth_verify(const char *header, const char *secret,
			      int64_t now_s, struct kiln_principal *out,
			      struct kiln_err *err) KILN_WARN_UNUSED;

/*
 * Makes an HS256 token with iat=now_s, exp=now_s+ttl_s, and optional sub and
 * tenant claims (NULL to omit).  Returns a malloc'd string the caller frees,
 * or NULL on failure.
 */
char *kiln_auth_make_token(const char *secret, const char *sub,
			   const char *tenant, int64_t now_s, int64_t ttl_s);

/*
 * Loads the secret from <data_dir>/jwt.secret, creating it on first use with
 * 256 random bits (hex, mode 0600).  Creates data_dir if needed.  On success
 * *out is a malloc'd string the caller frees.
 */
enum kiln_rc kiln_auth_load_or_create_secret(const char *data_dir, char **out,
					     struct kiln_err *err)
	KILN_WARN_UNUSED;

#endif
