/*
 * idempotency.c - Idempotency-Key syntax and request fingerprints (see
 * idempotency.h).
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/idempotency.h"
#include "kiln/json_spec.h"

void kiln_idem_key_check(json_t *detail, const char *key)
{
	size_t i, n;
	json_t *loc;

	if (key == NULL)
		return;
	n = strlen(key);
	for (i = 0; i < n; i++)
		if (key[i] < 0x21 || key[i] > 0x7e)
			break;
	if (n >= 1 && n <= KILN_IDEM_KEY_MAX && i == n)
		return;
	loc = json_pack("[ss]", "header", "Idempotency-Key");
	kiln_detail_add(detail, loc, "value_error",
			"Value error, the key must be 1 to %d visible ASCII"
			" characters",
			KILN_IDEM_KEY_MAX);
	json_decref(loc);
}

int kiln_idem_hash(const char *method, const char *path, const json_t *body,
		   char out[KILN_IDEM_HASH_LEN])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0, i;
	char *text = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS |
					      JSON_ENCODE_ANY);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok;

	ok = text != NULL && ctx != NULL &&
	     EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	     EVP_DigestUpdate(ctx, method, strlen(method) + 1) == 1 &&
	     EVP_DigestUpdate(ctx, path, strlen(path) + 1) == 1 &&
	     EVP_DigestUpdate(ctx, text, strlen(text)) == 1 &&
	     EVP_DigestFinal_ex(ctx, md, &md_len) == 1;
	EVP_MD_CTX_free(ctx);
	free(text);
	if (!ok)
		return -1;
	for (i = 0; i < md_len && i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return 0;
}
