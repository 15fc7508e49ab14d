/*
 * idempotency.h - the Idempotency-Key header of requests that create
 * runs and batches: its syntax, and the fingerprint of a request that
 * tells a retry (same key, same request) from a misuse (same key, another
 * request: 409).
 */
#ifndef KILN_IDEMPOTENCY_H
#define KILN_IDEMPOTENCY_H

#include <jansson.h>

#define KILN_IDEM_KEY_MAX 255
#define KILN_IDEM_HASH_LEN 65 /* SHA-256 hex and its NUL */

/* Adds a 422 item at ["header", "Idempotency-Key"] to detail unless key
 * (NULL: absent, accepted) is 1..255 visible ASCII characters. */
void kiln_idem_key_check(json_t *detail, const char *key);

/* The SHA-256 (hex) of method, path and body's canonical JSON (keys
 * sorted, compact): the same JSON however it was spaced or ordered.
 * Returns 0, or -1 when out of memory. */
int kiln_idem_hash(const char *method, const char *path, const json_t *body,
		   char out[KILN_IDEM_HASH_LEN]);

#endif
