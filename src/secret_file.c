/*
 * secret_file.c - secrets kept in small files in the data directory.
 *
 * A secret file is created once and then only read: replacing it would
 * invalidate every token or signature made with the old one.  Creation
 * writes the whole text to a private temporary file (mkostemp, 0600),
 * syncs it, and link(2)s it to the final name.  link never replaces an
 * existing name, so when two processes start together one link wins, the
 * other gets EEXIST, and both then read the winner's file; and nobody can
 * ever read a half-written secret.  A failed creation leaves nothing
 * behind under the final name.  (This needs a file system with hard
 * links, as every usual Linux one has.)
 */
#define _GNU_SOURCE /* mkostemp */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kiln/log.h"
#include "kiln/secret_file.h"

/* Ours are well under 100 bytes; a hand-written one may be longer, but
 * not this long. */
#define SECRET_FILE_MAX 4096
/* Suffix of the temporary file a new secret is written to. */
#define TEMP_SUFFIX ".new-XXXXXX"

int kiln_secret_random_bytes(void *buf, size_t len)
{
	unsigned char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = getrandom(p, len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* mkdir -p: parents 0755, the data directory itself 0700 (it will hold
 * the secrets and the store). */
static enum kiln_rc make_dirs(const char *dir, struct kiln_err *err)
{
	char path[PATH_MAX];
	struct stat st;
	size_t i, len;

	len = kiln_strlcpy(path, dir, sizeof(path));
	if (len >= sizeof(path))
		return kiln_err_set(err, KILN_EIO, dir, "%s: path too long",
				    dir);
	for (i = 1; i < len; i++) {
		if (path[i] != '/')
			continue;
		path[i] = '\0';
		if (mkdir(path, 0755) != 0 && errno != EEXIST)
			return kiln_err_set(err, KILN_EIO, dir,
					    "cannot create directory %s: %s",
					    path, strerror(errno));
		path[i] = '/';
	}
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		return kiln_err_set(err, KILN_EIO, dir,
				    "cannot create directory %s: %s", path,
				    strerror(errno));
	if (stat(path, &st) != 0)
		return kiln_err_set(err, KILN_EIO, dir, "cannot stat %s: %s",
				    path, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return kiln_err_set(err, KILN_EIO, dir, "%s is not a directory",
				    path);
	return KILN_OK;
}

/* "<data_dir>/<file_name>" into path, without doubling a trailing '/'. */
static enum kiln_rc join_path(const char *data_dir, const char *file_name,
			      char *path, size_t size, struct kiln_err *err)
{
	size_t dir_len = strlen(data_dir);
	int n;

	while (dir_len > 1 && data_dir[dir_len - 1] == '/')
		dir_len--;
	n = snprintf(path, size, "%.*s%s%s", (int)dir_len, data_dir,
		     data_dir[dir_len - 1] == '/' ? "" : "/", file_name);
	if (n < 0 || (size_t)n >= size)
		return kiln_err_set(err, KILN_EIO, data_dir,
				    "%s: path too long", data_dir);
	return KILN_OK;
}

/*
 * Reads an existing secret file.  Returns KILN_OK with *out set,
 * KILN_ENOTFOUND if there is no file (not an error for our caller), or
 * KILN_EIO.
 */
static enum kiln_rc read_secret(const char *path, char **out,
				struct kiln_err *err)
{
	char buf[SECRET_FILE_MAX + 1];
	enum kiln_rc rc = KILN_EIO;
	struct stat st;
	size_t len = 0;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOENT)
			return KILN_ENOTFOUND;
		return kiln_err_set(err, KILN_EIO, path, "cannot open %s: %s",
				    path, strerror(errno));
	}
	if (fstat(fd, &st) != 0) {
		kiln_err_set(err, KILN_EIO, path, "cannot stat %s: %s", path,
			     strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		kiln_err_set(err, KILN_EIO, path, "%s is not a regular file",
			     path);
		goto out;
	}
	if (st.st_mode & 077)
		kiln_log(KILN_LOG_WARN,
			 "%s is accessible to group or others (mode %03o);"
			 " run chmod 600 on it",
			 path, (unsigned)(st.st_mode & 0777));
	while (len < sizeof(buf)) {
		n = read(fd, buf + len, sizeof(buf) - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			kiln_err_set(err, KILN_EIO, path, "cannot read %s: %s",
				     path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > SECRET_FILE_MAX) {
		kiln_err_set(err, KILN_EIO, path,
			     "%s is too large (more than %d bytes)", path,
			     SECRET_FILE_MAX);
		goto out;
	}
	while (len > 0 && (buf[len - 1] == ' ' || buf[len - 1] == '\t' ||
			   buf[len - 1] == '\r' || buf[len - 1] == '\n'))
		len--;
	if (len == 0) {
		kiln_err_set(err, KILN_EIO, path, "%s is empty", path);
		goto out;
	}
	/* The key is used as a C string; a NUL would silently shorten it. */
	if (memchr(buf, '\0', len) != NULL) {
		kiln_err_set(err, KILN_EIO, path, "%s contains a NUL byte",
			     path);
		goto out;
	}
	*out = strndup(buf, len);
	if (*out == NULL) {
		kiln_err_set(err, KILN_ENOMEM, path, "out of memory");
		goto out;
	}
	rc = KILN_OK;
out:
	explicit_bzero(buf, sizeof(buf));
	close(fd);
	return rc;
}

static int write_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Puts a fresh secret at path unless a file is already there (see the top
 * of the file).  Returns KILN_OK when path exists afterwards, whoever made
 * it, so the caller reads it either way; KILN_EIO or KILN_ENOMEM otherwise.
 */
static enum kiln_rc create_secret(const char *dir, const char *path,
				  kiln_secret_generate_fn generate,
				  struct kiln_err *err)
{
	char temp[PATH_MAX + sizeof(TEMP_SUFFIX)];
	enum kiln_rc rc = KILN_EIO;
	char *text = NULL;
	int fd = -1, dfd, is_linked;

	snprintf(temp, sizeof(temp), "%s%s", path, TEMP_SUFFIX);
	text = generate();
	if (text == NULL) {
		kiln_err_set(err, KILN_EIO, path,
			     "cannot generate a secret for %s: %s", path,
			     strerror(errno));
		goto out;
	}
	fd = mkostemp(temp, O_CLOEXEC); /* mode 0600 */
	if (fd < 0) {
		kiln_err_set(err, KILN_EIO, path, "cannot create %s: %s", temp,
			     strerror(errno));
		goto out;
	}
	if (write_all(fd, text, strlen(text)) != 0 ||
	    write_all(fd, "\n", 1) != 0 || fsync(fd) != 0) {
		kiln_err_set(err, KILN_EIO, path, "cannot write %s: %s", temp,
			     strerror(errno));
		goto out;
	}
	is_linked = link(temp, path) == 0;
	if (!is_linked && errno != EEXIST) {
		kiln_err_set(err, KILN_EIO, path, "cannot create %s: %s", path,
			     strerror(errno));
		goto out;
	}
	/* Make the new directory entry durable too; failing that is not
	 * worth refusing to start over. */
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	if (is_linked)
		kiln_log(KILN_LOG_INFO, "created a new secret in %s", path);
	rc = KILN_OK;
out:
	if (fd >= 0) {
		close(fd);
		unlink(temp);
	}
	if (text != NULL) {
		explicit_bzero(text, strlen(text));
		free(text);
	}
	return rc;
}

enum kiln_rc kiln_secret_file_load_or_create(const char *data_dir,
					     const char *file_name,
					     kiln_secret_generate_fn generate,
					     kiln_secret_check_fn check,
					     char **out, struct kiln_err *err)
{
	struct kiln_err check_err = {0};
	char path[PATH_MAX];
	char *secret = NULL;
	enum kiln_rc rc;
	int attempt;

	assert(file_name != NULL && strchr(file_name, '/') == NULL);
	if (data_dir == NULL || data_dir[0] == '\0')
		return kiln_err_set(err, KILN_EINVAL, "data_dir",
				    "data_dir must not be empty");
	rc = make_dirs(data_dir, err);
	if (rc == KILN_OK)
		rc = join_path(data_dir, file_name, path, sizeof(path), err);
	if (rc != KILN_OK)
		return rc;

	/* Read, else create and read; if the file vanishes in between
	 * (someone deleting it), try once more, then give up. */
	rc = read_secret(path, &secret, err);
	for (attempt = 0; rc == KILN_ENOTFOUND && attempt < 2; attempt++) {
		rc = create_secret(data_dir, path, generate, err);
		if (rc == KILN_OK)
			rc = read_secret(path, &secret, err);
	}
	if (rc == KILN_ENOTFOUND)
		return kiln_err_set(err, KILN_EIO, path,
				    "%s keeps disappearing", path);
	if (rc != KILN_OK)
		return rc;
	if (check != NULL && check(secret, &check_err) != KILN_OK) {
		explicit_bzero(secret, strlen(secret));
		free(secret);
		return kiln_err_set(err, KILN_EINVAL, path, "%s: %s", path,
				    check_err.msg);
	}
	*out = secret;
	return KILN_OK;
}
