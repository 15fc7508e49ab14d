/*
 * utf8.h - cutting and quoting text that ends up in JSON replies.
 *
 * jansson refuses a string that is not valid UTF-8, so every message that
 * quotes user or upstream text, and every bounded copy, cuts between
 * characters and never passes invalid bytes on.
 */
#ifndef KILN_UTF8_H
#define KILN_UTF8_H

#include <stddef.h>

/* Number of characters (not bytes) in the NUL-terminated UTF-8 s. */
size_t kiln_utf8_length(const char *s);

/* The longest prefix of s (len bytes) that is at most max bytes and does
 * not end half-way through a UTF-8 sequence. */
size_t kiln_utf8_prefix(const char *s, size_t len, size_t max);

/* Length of the valid UTF-8 sequence at s (at most avail bytes, avail >
 * 0), 0 if the bytes there are not one: overlong forms, surrogates and
 * code points past U+10FFFF are not (jansson's rules). */
size_t kiln_utf8_sequence(const unsigned char *s, size_t avail);

/* Drops a UTF-8 sequence cut short at the end of s, in place. */
void kiln_utf8_trim_tail(char *s);

/*
 * Quotes at most max bytes of s (len bytes, any bytes) into out, which has
 * room for max + 4: valid UTF-8 characters are kept, control characters
 * other than newline and bytes that are not valid UTF-8 become '?', and a
 * cut is marked with "...".  Returns out.
 */
const char *kiln_text_excerpt(const char *s, size_t len, size_t max,
			      char *out);

#endif
