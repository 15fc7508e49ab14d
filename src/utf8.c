/*
 * utf8.c - cutting and quoting text so it stays valid UTF-8.
 */
#include <string.h>

#include "kiln/utf8.h"

size_t kiln_utf8_length(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += ((unsigned char)*s & 0xC0) != 0x80;
	return n;
}

size_t kiln_utf8_prefix(const char *s, size_t len, size_t max)
{
	size_t n;

	if (len <= max)
		return len;
	n = max;
	/* s[n] is the first byte left out: back up to a character start. */
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	return n;
}

void kiln_utf8_trim_tail(char *s)
{
	size_t len = strlen(s), start = len, want;
	unsigned char lead;

	while (start > 0 && len - start < 4 &&
	       ((unsigned char)s[start - 1] & 0xC0) == 0x80)
		start--;
	if (start == 0)
		return;
	lead = (unsigned char)s[start - 1];
	if (lead < 0xC0)
		return;
	want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
	if (len - (start - 1) < want)
		s[start - 1] = '\0';
}

size_t kiln_utf8_sequence(const unsigned char *s, size_t avail)
{
	size_t want, i;
	unsigned cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xC2 && s[0] <= 0xDF)
		want = 2, cp = s[0] & 0x1F;
	else if (s[0] >= 0xE0 && s[0] <= 0xEF)
		want = 3, cp = s[0] & 0x0F;
	else if (s[0] >= 0xF0 && s[0] <= 0xF4)
		want = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (avail < want)
		return 0;
	for (i = 1; i < want; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3F);
	}
	if ((want == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
	    (want == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
		return 0;
	return want;
}

const char *kiln_text_excerpt(const char *s, size_t len, size_t max,
			      char *out)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, o = 0, n;

	while (i < len) {
		n = kiln_utf8_sequence(u + i, len - i);
		if (o + (n ? n : 1) > max)
			break;
		if (n == 0 || (n == 1 && ((u[i] < 0x20 && u[i] != '\n') ||
					  u[i] == 0x7F))) {
			out[o++] = '?';
			i++;
			continue;
		}
		memcpy(out + o, s + i, n);
		o += n;
		i += n;
	}
	if (i < len) {
		memcpy(out + o, "...", 4);
		return out;
	}
	out[o] = '\0';
	return out;
}
