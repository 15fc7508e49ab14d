/*
 * api_artifacts.c - GET /api/v1/artifacts/{workflow_id}/{step_id}/{file}:
 * the files a step's provider result named, downloaded under
 * <data_dir>/artifacts/ (artifact_fetch.c), served to callers who may see
 * the workflow.
 *
 * The path is checked strictly (a workflow UUID, a step UUID, a file name
 * of digits and an extension), so nothing outside the artifacts folder
 * can be named.
 */
#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kiln/http.h"
#include "kiln/store.h"

/* "<n>.<ext>": 1-9 digits, a dot, 1-8 lowercase letters or digits. */
static int is_artifact_name(const char *s)
{
	size_t i = 0, j;

	while (isdigit((unsigned char)s[i]) && i < 10)
		i++;
	if (i == 0 || i > 9 || s[i] != '.')
		return 0;
	for (j = i + 1; s[j]; j++)
		if (!(islower((unsigned char)s[j]) ||
		      isdigit((unsigned char)s[j])) ||
		    j - i > 8)
			return 0;
	return j > i + 1;
}

static const char *content_type(const char *name)
{
	static const struct {
		const char *ext, *type;
	} map[] = {
		{"png", "image/png"},   {"jpg", "image/jpeg"},
		{"webp", "image/webp"}, {"gif", "image/gif"},
		{"avif", "image/avif"}, {"svg", "image/svg+xml"},
		{"mp4", "video/mp4"},   {"webm", "video/webm"},
		{"mov", "video/quicktime"}, {"mp3", "audio/mpeg"},
		{"json", "application/json"}, {"zip", "application/zip"},
	};
	const char *ext = strrchr(name, '.') + 1;
	size_t i;

	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(ext, map[i].ext) == 0)
			return map[i].type;
	return "application/octet-stream";
}

void kiln_api_artifact_get(struct kiln_req *req, struct kiln_resp *resp)
{
	struct kiln_err err = {0};
	struct kiln_store *st;
	char step[KILN_UUID_LEN], path[4096];
	const char *slash, *name;
	json_t *wf = NULL;
	struct stat sb;
	int fd;

	if (!kiln_uuid_is_valid(req->path_id)) {
		kiln_reply_validation(
			resp, json_pack("[{sss[ss]ss}]", "type", "uuid_parsing",
					"loc", "path", "workflow_id", "msg",
					"Input should be a valid UUID"));
		return;
	}
	slash = strchr(req->path_tail, '/');
	if (slash == NULL || (size_t)(slash - req->path_tail) != 36 ||
	    !is_artifact_name(slash + 1)) {
		kiln_reply_detail(resp, MHD_HTTP_NOT_FOUND,
				  "Artifact not found");
		return;
	}
	memcpy(step, req->path_tail, 36);
	step[36] = '\0';
	name = slash + 1;
	if (!kiln_uuid_is_valid(step)) {
		kiln_reply_detail(resp, MHD_HTTP_NOT_FOUND,
				  "Artifact not found");
		return;
	}
	st = kiln_store_thread(&err);
	if (st == NULL) {
		kiln_reply_error(resp, &err);
		return;
	}
	/* Tenant isolation: a workflow the caller cannot see is a 404. */
	if (kiln_store_get_workflow(st, req->path_id, &req->scope, &wf,
				    &err) != KILN_OK) {
		kiln_reply_error(resp, &err);
		return;
	}
	json_decref(wf);
	snprintf(path, sizeof(path), "%s/artifacts/%s/%s/%s",
		 req->app->cfg->data_dir, req->path_id, step, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		if (fd >= 0)
			close(fd);
		kiln_reply_detail(resp, MHD_HTTP_NOT_FOUND,
				  "Artifact not found");
		return;
	}
	resp->has_file = 1;
	resp->file_fd = fd;
	resp->file_size = (uint64_t)sb.st_size;
	resp->file_type = content_type(name);
	resp->status = MHD_HTTP_OK;
}
