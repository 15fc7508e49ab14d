/*
 * webhook_sign.h - signing webhook deliveries the Standard Webhooks way
 * (https://www.standardwebhooks.com): HMAC-SHA256 over
 * "<msg_id>.<timestamp>.<body>" with a "whsec_<base64>" secret, sent as
 * "v1,<base64 signature>" in the webhook-signature header.
 */
#ifndef KILN_WEBHOOK_SIGN_H
#define KILN_WEBHOOK_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include "kiln/common.h"

#define KILN_WEBHOOK_KEY_MAX 64

/* A decoded signing key. */
struct kiln_webhook_key {
	unsigned char bytes[KILN_WEBHOOK_KEY_MAX];
	size_t len; /* bytes used, 24..64 */
};

/*
 * Parses "whsec_<base64>" (standard alphabet, padded); the decoded key
 * must be 24..64 bytes.  KILN_EINVAL otherwise, with err->msg saying why
 * and err->field left "" (the caller knows which setting it was).  *out
 * is written only on success.
 */
enum kiln_rc kiln_webhook_key_parse(const char *secret,
				    struct kiln_webhook_key *out,
				    struct kiln_err *err) KILN_WARN_UNUSED;

#define KILN_WEBHOOK_SIG_LEN 48 /* "v1," + 44 base64 chars + NUL */

/*
 * Writes "v1," + base64(HMAC-SHA256(key, "<msg_id>.<timestamp>.<body>"))
 * into out.  body is body_len bytes, not necessarily NUL-terminated.
 * Returns 0, or -1 if OpenSSL fails.
 */
int kiln_webhook_sign(const struct kiln_webhook_key *key, const char *msg_id,
		      int64_t timestamp, const char *body, size_t body_len,
		      char out[KILN_WEBHOOK_SIG_LEN]);

/*
 * The webhook-signature header value for n (at least 1) keys, the n
 * signatures separated by one space ("v1,AAA v1,BBB"), so a receiver
 * holding either key verifies during a rotation.  Returns a malloc'd
 * string the caller frees; NULL when n is 0 or on failure.
 */
char *kiln_webhook_signature_header(const struct kiln_webhook_key *keys,
				    size_t n, const char *msg_id,
				    int64_t timestamp, const char *body,
				    size_t body_len);

/* A new secret: "whsec_" + base64 of 32 random bytes.  Returns a malloc'd
 * string the caller frees, or NULL on failure. */
char *kiln_webhook_secret_generate(void);

/*
 * The default secret: reads <data_dir>/webhook.secret, creating it (mode
 * 0600, a kiln_webhook_secret_generate() secret) when absent; see
 * kiln_secret_file_load_or_create.  The text, without surrounding
 * whitespace, must pass kiln_webhook_key_parse, else KILN_EINVAL naming
 * the file.  On success *out is a malloc'd string the caller frees.
 */
enum kiln_rc kiln_webhook_load_or_create_secret(const char *data_dir,
						char **out,
						struct kiln_err *err)
	KILN_WARN_UNUSED;

#endif
