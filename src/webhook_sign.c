/*
 * webhook_sign.c - Standard Webhooks signatures (HMAC-SHA256, OpenSSL 3
 * EVP_MAC) and the "whsec_" secrets they are made with.
 *
 * Secrets are parsed strictly: standard base64 with its padding, nothing
 * else.  EVP_DecodeBlock alone would skip blanks and count the bytes that
 * '=' padding stands for, so the input is checked first and the padding
 * subtracted from its length.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>

#include "kiln/secret_file.h"
#include "kiln/webhook_sign.h"

#define SECRET_PREFIX "whsec_"
#define SECRET_PREFIX_LEN (sizeof(SECRET_PREFIX) - 1)
#define SECRET_FILE_NAME "webhook.secret"
#define KEY_MIN 24
#define GENERATED_KEY_LEN 32
#define SHA256_LEN 32
/* base64 of n bytes, without the NUL EVP_EncodeBlock adds. */
#define B64_LEN(n) (((n) + 2) / 3 * 4)

static int is_b64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* Bytes that s (len chars) decodes to, or -1 if it is not padded base64. */
static long b64_decoded_len(const char *s, size_t len)
{
	size_t pad = 0, i;

	if (len == 0 || len % 4 != 0)
		return -1;
	while (pad < 2 && s[len - 1 - pad] == '=')
		pad++;
	for (i = 0; i < len - pad; i++)
		if (!is_b64_char(s[i]))
			return -1;
	return (long)(len / 4 * 3 - pad);
}

enum kiln_rc kiln_webhook_key_parse(const char *secret,
				    struct kiln_webhook_key *out,
				    struct kiln_err *err)
{
	/* Room for what the largest accepted text decodes to before the
	 * padding is taken off. */
	unsigned char buf[B64_LEN(KILN_WEBHOOK_KEY_MAX) / 4 * 3];
	const char *b64;
	size_t b64_len;
	long key_len;

	if (strncmp(secret, SECRET_PREFIX, SECRET_PREFIX_LEN) != 0)
		return kiln_err_set(err, KILN_EINVAL, "",
				    "webhook secret must start with \"%s\"",
				    SECRET_PREFIX);
	b64 = secret + SECRET_PREFIX_LEN;
	b64_len = strlen(b64);
	key_len = b64_decoded_len(b64, b64_len);
	if (key_len < 0)
		return kiln_err_set(err, KILN_EINVAL, "",
				    "webhook secret is not valid base64 after"
				    " \"%s\"",
				    SECRET_PREFIX);
	if (key_len < KEY_MIN || key_len > KILN_WEBHOOK_KEY_MAX)
		return kiln_err_set(err, KILN_EINVAL, "",
				    "webhook secret key must be %d to %d"
				    " bytes, not %ld",
				    KEY_MIN, KILN_WEBHOOK_KEY_MAX, key_len);
	if (EVP_DecodeBlock(buf, (const unsigned char *)b64, (int)b64_len) <
	    0) {
		explicit_bzero(buf, sizeof(buf));
		return kiln_err_set(err, KILN_EINVAL, "",
				    "webhook secret is not valid base64 after"
				    " \"%s\"",
				    SECRET_PREFIX);
	}
	memcpy(out->bytes, buf, (size_t)key_len);
	out->len = (size_t)key_len;
	explicit_bzero(buf, sizeof(buf));
	return KILN_OK;
}

int kiln_webhook_sign(const struct kiln_webhook_key *key, const char *msg_id,
		      int64_t timestamp, const char *body, size_t body_len,
		      char out[KILN_WEBHOOK_SIG_LEN])
{
	static char digest[] = "SHA256";
	OSSL_PARAM params[2];
	unsigned char mac[SHA256_LEN];
	char ts[32];
	EVP_MAC *hmac = NULL;
	EVP_MAC_CTX *ctx = NULL;
	size_t mac_len = 0;
	int ts_len, rc = -1;

	/* "<msg_id>.<timestamp>." comes before the body. */
	ts_len = snprintf(ts, sizeof(ts), ".%" PRId64 ".", timestamp);
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
						     digest, 0);
	params[1] = OSSL_PARAM_construct_end();
	hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (hmac == NULL)
		goto out;
	ctx = EVP_MAC_CTX_new(hmac);
	if (ctx == NULL ||
	    EVP_MAC_init(ctx, key->bytes, key->len, params) != 1 ||
	    EVP_MAC_update(ctx, (const unsigned char *)msg_id,
			   strlen(msg_id)) != 1 ||
	    EVP_MAC_update(ctx, (const unsigned char *)ts, (size_t)ts_len) !=
		    1 ||
	    EVP_MAC_update(ctx, (const unsigned char *)body, body_len) != 1 ||
	    EVP_MAC_final(ctx, mac, &mac_len, sizeof(mac)) != 1 ||
	    mac_len != sizeof(mac))
		goto out;
	memcpy(out, "v1,", 3);
	EVP_EncodeBlock((unsigned char *)out + 3, mac, (int)mac_len);
	rc = 0;
out:
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(hmac);
	return rc;
}

char *kiln_webhook_signature_header(const struct kiln_webhook_key *keys,
				    size_t n, const char *msg_id,
				    int64_t timestamp, const char *body,
				    size_t body_len)
{
	char *header, *end;
	size_t i;

	/* Each signature is SIG_LEN - 1 chars plus a space or the NUL. */
	if (n == 0 || n > SIZE_MAX / KILN_WEBHOOK_SIG_LEN)
		return NULL;
	header = malloc(n * KILN_WEBHOOK_SIG_LEN);
	if (header == NULL)
		return NULL;
	end = header;
	for (i = 0; i < n; i++) {
		if (i > 0)
			*end++ = ' ';
		if (kiln_webhook_sign(&keys[i], msg_id, timestamp, body,
				      body_len, end) != 0) {
			free(header);
			return NULL;
		}
		end += strlen(end);
	}
	return header;
}

char *kiln_webhook_secret_generate(void)
{
	unsigned char rnd[GENERATED_KEY_LEN];
	char *secret;

	if (kiln_secret_random_bytes(rnd, sizeof(rnd)) != 0)
		return NULL;
	secret = malloc(SECRET_PREFIX_LEN + B64_LEN(sizeof(rnd)) + 1);
	if (secret != NULL) {
		memcpy(secret, SECRET_PREFIX, SECRET_PREFIX_LEN);
		EVP_EncodeBlock((unsigned char *)secret + SECRET_PREFIX_LEN,
				rnd, (int)sizeof(rnd));
	}
	explicit_bzero(rnd, sizeof(rnd));
	return secret;
}

static size_t leading_blanks(const char *s)
{
	return strspn(s, " \t\r\n");
}

/* kiln_secret_check_fn for webhook.secret. */
static enum kiln_rc check_secret(const char *secret, struct kiln_err *err)
{
	struct kiln_webhook_key key;
	enum kiln_rc rc;

	rc = kiln_webhook_key_parse(secret + leading_blanks(secret), &key,
				    err);
	explicit_bzero(&key, sizeof(key));
	return rc;
}

enum kiln_rc kiln_webhook_load_or_create_secret(const char *data_dir,
						char **out,
						struct kiln_err *err)
{
	char *secret = NULL;
	size_t skip;
	enum kiln_rc rc;

	rc = kiln_secret_file_load_or_create(
		data_dir, SECRET_FILE_NAME, kiln_webhook_secret_generate,
		check_secret, &secret, err);
	if (rc != KILN_OK)
		return rc;
	/* The file's text lost its trailing blanks already. */
	skip = leading_blanks(secret);
	memmove(secret, secret + skip, strlen(secret + skip) + 1);
	*out = secret;
	return KILN_OK;
}
