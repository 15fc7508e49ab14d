/*
 * uuid.c - ids for workflows and steps, from libuuid.
 */
#include <ctype.h>
#include <string.h>
#include <uuid/uuid.h>

#include "kiln/common.h"

void kiln_uuid_new(char out[KILN_UUID_LEN])
{
	uuid_t u;

	uuid_generate_random(u);
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
