/*
 * artifact_fetch.c - downloads the files a step's result names by URL into
 * <data_dir>/artifacts/<workflow id>/<step id>/<n>.<ext>, one after the
 * other on the I/O loop, streamed to disk with a size cap and hashed with
 * SHA-256 on the way.  A file is written as <n>.part and renamed when
 * complete, so a crash never leaves a truncated file under its final name.
 * Provider credentials are never sent: result URLs are usually signed CDN
 * links on another host.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kiln/artifacts.h"
#include "kiln/log.h"
#include "kiln/mapping.h"

struct fetch {
	struct kiln_io *io;
	char *dir;      /* absolute-or-relative dir of this step's files */
	char *rel_dir;  /* the same, relative to the data dir */
	char *api_dir;  /* /api/v1/artifacts/<wf>/<step> */
	json_t *result; /* owned; gets "artifacts" */
	json_t *urls;   /* the URLs to fetch, in order */
	json_t *artifacts;
	size_t next;
	size_t max_bytes;
	long timeout_ms, connect_timeout_ms;
	int fd;
	char part[4096];
	EVP_MD_CTX *sha;
	kiln_fetch_started_fn started;
	kiln_fetch_done_fn done;
	void *ctx;
};

/* ---- finding URLs ----------------------------------------------------- */

/* Decodes one RFC 6901 token (~1 -> /, ~0 -> ~) in place. */
static void unescape(char *tok)
{
	char *r = tok, *w = tok;

	while (*r) {
		if (r[0] == '~' && (r[1] == '0' || r[1] == '1')) {
			*w++ = r[1] == '0' ? '~' : '/';
			r += 2;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
}

static int is_http_url(const char *s)
{
	return s && (strncmp(s, "http://", 7) == 0 ||
		     strncmp(s, "https://", 8) == 0);
}

/* Appends to urls every http(s) string under v matching the tokens. */
static void collect(const json_t *v, char **toks, size_t n, json_t *urls)
{
	const char *key;
	json_t *child;
	size_t i;
	char *end;
	long idx;

	if (n == 0) {
		if (is_http_url(json_string_value(v)))
			json_array_append_new(urls,
					      json_string(json_string_value(v)));
		return;
	}
	if (strcmp(toks[0], "*") == 0) {
		if (json_is_array(v))
			json_array_foreach(v, i, child)
				collect(child, toks + 1, n - 1, urls);
		else if (json_is_object(v))
			json_object_foreach((json_t *)v, key, child)
				collect(child, toks + 1, n - 1, urls);
		return;
	}
	if (json_is_object(v)) {
		child = json_object_get(v, toks[0]);
	} else if (json_is_array(v)) {
		errno = 0;
		idx = strtol(toks[0], &end, 10);
		child = (*end || errno || idx < 0)
				? NULL
				: json_array_get(v, (size_t)idx);
	} else {
		child = NULL;
	}
	if (child)
		collect(child, toks + 1, n - 1, urls);
}

json_t *kiln_artifact_urls(const json_t *result, const json_t *pointers)
{
	json_t *urls = json_array();
	size_t i, n;

	for (i = 0; i < json_array_size(pointers); i++) {
		char *copy = strdup(json_string_value(
			json_array_get(pointers, i)));
		char *toks[64], *p, *save = NULL;

		if (copy == NULL)
			continue;
		n = 0;
		for (p = strtok_r(copy, "/", &save); p && n < 64;
		     p = strtok_r(NULL, "/", &save)) {
			unescape(p);
			toks[n++] = p;
		}
		collect(result, toks, n, urls);
		free(copy);
	}
	return urls;
}

/* ---- downloading ------------------------------------------------------ */

static const char *extension(const char *content_type)
{
	static const struct {
		const char *type, *ext;
	} map[] = {
		{"image/png", "png"},   {"image/jpeg", "jpg"},
		{"image/webp", "webp"}, {"image/gif", "gif"},
		{"image/avif", "avif"}, {"image/svg+xml", "svg"},
		{"video/mp4", "mp4"},   {"video/webm", "webm"},
		{"video/quicktime", "mov"}, {"audio/mpeg", "mp3"},
		{"application/json", "json"}, {"application/zip", "zip"},
	};
	size_t i, len;

	if (content_type == NULL)
		return "bin";
	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		len = strlen(map[i].type);
		if (strncasecmp(content_type, map[i].type, len) == 0 &&
		    (content_type[len] == '\0' || content_type[len] == ';' ||
		     content_type[len] == ' '))
			return map[i].ext;
	}
	return "bin";
}

static int sink(void *p, const char *data, size_t len)
{
	struct fetch *f = p;
	size_t off = 0;
	ssize_t n;

	EVP_DigestUpdate(f->sha, data, len);
	while (off < len) {
		n = write(f->fd, data + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	return 0;
}

static void fetch_free(struct fetch *f)
{
	if (f->fd >= 0)
		close(f->fd);
	if (f->part[0])
		unlink(f->part);
	EVP_MD_CTX_free(f->sha);
	free(f->dir);
	free(f->rel_dir);
	free(f->api_dir);
	json_decref(f->result);
	json_decref(f->urls);
	json_decref(f->artifacts);
	free(f);
}

/* Ends the fetch with "<what> <subject>: <why>". */
static void fail(struct fetch *f, const char *what, const char *subject,
		 const char *why)
{
	char msg[1024];

	snprintf(msg, sizeof(msg), "%s %s: %s", what, subject, why);
	f->done(f->ctx, NULL, msg);
	fetch_free(f);
}

static void fetch_next(struct fetch *f);

static void on_file(void *p, const struct kiln_http_response *resp)
{
	struct fetch *f = p;
	const char *url = json_string_value(json_array_get(f->urls, f->next));
	unsigned char md[EVP_MAX_MD_SIZE];
	char hex[2 * EVP_MAX_MD_SIZE + 1], name[64], final[4096], rel[4096];
	char status[32], api[4096];
	unsigned md_len = 0, i;

	if (resp->is_shutdown || resp->is_aborted) {
		f->done(f->ctx, NULL, NULL);
		fetch_free(f);
		return;
	}
	close(f->fd);
	f->fd = -1;
	if (resp->is_too_big) {
		snprintf(status, sizeof(status), "larger than %zu bytes",
			 f->max_bytes);
		fail(f, "artifact", url, status);
		return;
	}
	if (resp->curl_code != CURLE_OK) {
		fail(f, "could not download artifact", url, resp->error);
		return;
	}
	if (resp->status < 200 || resp->status > 299) {
		snprintf(status, sizeof(status), "HTTP %ld", resp->status);
		fail(f, "could not download artifact", url, status);
		return;
	}
	EVP_DigestFinal_ex(f->sha, md, &md_len);
	for (i = 0; i < md_len; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	hex[2 * md_len] = '\0';
	snprintf(name, sizeof(name), "%zu.%s", f->next,
		 extension(resp->content_type));
	snprintf(final, sizeof(final), "%s/%s", f->dir, name);
	if (rename(f->part, final) != 0) {
		fail(f, "could not store artifact", url, strerror(errno));
		return;
	}
	f->part[0] = '\0';
	snprintf(rel, sizeof(rel), "%s/%s", f->rel_dir, name);
	snprintf(api, sizeof(api), "%s/%s", f->api_dir, name);
	json_array_append_new(
		f->artifacts,
		json_pack("{s:s, s:s, s:s, s:I, s:s?, s:s}", "url", url, "path",
			  rel, "artifact_url", api, "size_bytes",
			  (json_int_t)resp->body_len, "content_type",
			  resp->content_type, "sha256", hex));
	f->next++;
	fetch_next(f);
}

static void fetch_next(struct fetch *f)
{
	const char *url = json_string_value(json_array_get(f->urls, f->next));
	struct kiln_http_request *req;
	uint64_t xfer;

	if (url == NULL) {
		json_t *first = json_array_get(f->artifacts, 0);
		json_t *result = f->result;

		json_object_set(result, "artifacts", f->artifacts);
		if (first)
			json_object_set(result, "result_image_path",
					json_object_get(first, "path"));
		f->result = NULL;
		f->done(f->ctx, result, NULL);
		fetch_free(f);
		return;
	}
	snprintf(f->part, sizeof(f->part), "%s/%zu.part", f->dir, f->next);
	f->fd = open(f->part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	req = calloc(1, sizeof(*req));
	if (f->fd < 0 || req == NULL || EVP_DigestInit_ex(f->sha, EVP_sha256(),
							  NULL) != 1) {
		free(req);
		fail(f, "could not store artifact", url, strerror(errno));
		return;
	}
	req->method = strdup("GET");
	req->url = strdup(url);
	req->connect_timeout_ms = f->connect_timeout_ms;
	req->timeout_ms = f->timeout_ms;
	req->max_response_bytes = f->max_bytes;
	req->sink = sink;
	req->sink_ctx = f;
	if (req->method == NULL || req->url == NULL) {
		kiln_http_request_free(req);
		fail(f, "artifact", url, "out of memory");
		return;
	}
	/* Told before the submission: on_file may free f before
	 * kiln_io_submit returns. */
	xfer = kiln_io_new_id(f->io);
	if (f->started)
		f->started(f->ctx, xfer);
	kiln_io_submit_as(f->io, xfer, req, on_file, f);
}

/* mkdir -p for the two levels below <data_dir>/artifacts. */
static int make_dirs(const char *data_dir, const char *wf_id,
		     const char *step_uuid, char *out, size_t size)
{
	snprintf(out, size, "%s/artifacts", data_dir);
	if (mkdir(out, 0750) != 0 && errno != EEXIST)
		return -1;
	snprintf(out, size, "%s/artifacts/%s", data_dir, wf_id);
	if (mkdir(out, 0750) != 0 && errno != EEXIST)
		return -1;
	snprintf(out, size, "%s/artifacts/%s/%s", data_dir, wf_id, step_uuid);
	if (mkdir(out, 0750) != 0 && errno != EEXIST)
		return -1;
	return 0;
}

void kiln_artifacts_fetch(struct kiln_io *io, const char *data_dir,
			  const char *wf_id, const char *step_uuid,
			  json_t *result, const json_t *pointers,
			  size_t max_bytes, long connect_timeout_ms,
			  long timeout_ms, kiln_fetch_started_fn started,
			  kiln_fetch_done_fn done, void *ctx)
{
	struct fetch *f = calloc(1, sizeof(*f));
	char dir[4096] = "", rel[512], api[512];

	if (f == NULL) {
		json_decref(result);
		done(ctx, NULL, "out of memory");
		return;
	}
	f->fd = -1;
	f->io = io;
	f->result = result;
	f->started = started;
	f->done = done;
	f->ctx = ctx;
	f->max_bytes = max_bytes;
	f->timeout_ms = timeout_ms;
	f->connect_timeout_ms = connect_timeout_ms;
	f->urls = kiln_artifact_urls(result, pointers);
	f->artifacts = json_array();
	f->sha = EVP_MD_CTX_new();
	snprintf(rel, sizeof(rel), "artifacts/%s/%s", wf_id, step_uuid);
	snprintf(api, sizeof(api), "/api/v1/artifacts/%s/%s", wf_id,
		 step_uuid);
	f->rel_dir = strdup(rel);
	f->api_dir = strdup(api);
	if (json_array_size(f->urls) > 0 &&
	    make_dirs(data_dir, wf_id, step_uuid, dir, sizeof(dir)) != 0) {
		fail(f, "cannot create artifacts directory", dir,
		     strerror(errno));
		return;
	}
	f->dir = strdup(dir);
	if (f->sha == NULL || f->rel_dir == NULL || f->api_dir == NULL ||
	    f->dir == NULL) {
		fail(f, "artifacts", "of this step", "out of memory");
		return;
	}
	fetch_next(f);
}
