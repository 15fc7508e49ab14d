/*
 * secret_file.h - secrets kept in small files in the data directory
 * (jwt.secret, webhook.secret): read if present, created once if not.
 */
#ifndef KILN_SECRET_FILE_H
#define KILN_SECRET_FILE_H

#include <stddef.h>

#include "kiln/common.h"

/* Makes a fresh secret's text; a malloc'd string, NULL on failure. */
typedef char *(*kiln_secret_generate_fn)(void);
/* Checks a secret's text; KILN_OK, or an error with err->msg saying why. */
typedef enum kiln_rc (*kiln_secret_check_fn)(const char *secret,
					     struct kiln_err *err);

/*
 * Makes data_dir if needed (mkdir -p, the directory itself 0700), then
 * reads <data_dir>/<file_name>, or, when there is none, creates it with
 * mode 0600 holding generate() and a newline.  The new file appears whole
 * (written aside, then linked into place), so processes starting together
 * all end up with the one secret that won.  The secret is the file's text
 * without trailing whitespace; an empty, oversized or NUL-holding file is
 * KILN_EIO.  When check is not NULL the secret must pass it, else
 * KILN_EINVAL with a message naming the file.  On success *out is a
 * malloc'd string the caller frees.
 */
enum kiln_rc kiln_secret_file_load_or_create(const char *data_dir,
					     const char *file_name,
					     kiln_secret_generate_fn generate,
					     kiln_secret_check_fn check,
					     char **out, struct kiln_err *err)
	KILN_WARN_UNUSED;

/* Fills buf with len bytes from getrandom(2).  Returns 0, or -1 with
 * errno set. */
int kiln_secret_random_bytes(void *buf, size_t len) KILN_WARN_UNUSED;

#endif
