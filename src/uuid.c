/*
 * uuid.c - ids for workflows, steps and everything else: UUID version 7
 * (RFC 9562), 48 bits of Unix milliseconds then 74 random bits.
 *
 * Why version 7: ids are primary keys, and random (version 4) keys land on
 * a random page of every index, so each commit wrote a page per index per
 * row.  Time-ordered keys append to the same few pages, which a group
 * commit writes once.  They also sort by creation.  The random bits come
 * from getrandom(2), buffered per thread.
 */
#include <ctype.h>
#include <string.h>
#include <sys/random.h>
#include <uuid/uuid.h>

#include "kiln/common.h"

#define RANDOM_BUF 520 /* 52 ids */

static _Thread_local unsigned char pool[RANDOM_BUF];
static _Thread_local size_t pool_left;

/* 10 random bytes into out; 0 if getrandom(2) failed. */
static int random10(unsigned char *out)
{
	if (pool_left < 10) {
		if (getrandom(pool, sizeof(pool), 0) != (ssize_t)sizeof(pool))
			return 0;
		pool_left = sizeof(pool);
	}
	memcpy(out, pool + sizeof(pool) - pool_left, 10);
	pool_left -= 10;
	return 1;
}

void kiln_uuid_new(char out[KILN_UUID_LEN])
{
	uint64_t ms = (uint64_t)kiln_now_ms();
	uuid_t u;
	int i;

	if (!random10(u + 6))
		uuid_generate_random(u); /* libuuid's own source instead */
	for (i = 0; i < 6; i++)
		u[i] = (unsigned char)(ms >> (40 - 8 * i));
	u[6] = (unsigned char)(0x70 | (u[6] & 0x0f)); /* version 7 */
	u[8] = (unsigned char)(0x80 | (u[8] & 0x3f)); /* RFC 9562 variant */
	uuid_unparse_lower(u, out);
}

int kiln_uuid_is_valid(const char *s)
{
	size_t i;

	if (s == NULL || strlen(s) != 36)
		return 0;
	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!isxdigit((unsigned char)s[i])) {
			return 0;
		}
	}
	return 1;
}
