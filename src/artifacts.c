/*
 * artifacts.c - removal of a workflow's output files.
 *
 * Layout: <data-dir>/artifacts/<workflow_id>/<step_id>/<file>.  Files are
 * removed depth-first with nftw (no symlinks followed, FTW_PHYS), each
 * deletion recorded relative to the data dir so answers never expose the
 * server's absolute paths.  A step is "cleaned" when none of its files
 * failed to go.
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kiln/artifacts.h"

/* nftw has no user pointer, so the walk's state is per thread. */
static _Thread_local struct walk {
	size_t prefix_len; /* strlen(data_dir) + 1 */
	size_t wf_dir_len; /* strlen of ".../artifacts/<wf>" */
	json_t *deleted;   /* relative paths */
	json_t *failed;    /* {step_id: error} */
} walk;

/* The step directory name of an absolute path under the workflow dir. */
static char *step_of(const char *path)
{
	const char *rest = path + walk.wf_dir_len;
	size_t n;

	if (*rest != '/')
		return NULL;
	rest++;
	n = strcspn(rest, "/");
	if (rest[n] != '/')
		return NULL; /* a file directly in the workflow dir */
	return strndup(rest, n);
}

static int on_entry(const char *path, const struct stat *sb, int type,
		    struct FTW *ftw)
{
	int rc = type == FTW_DP ? rmdir(path) : unlink(path);

	if (rc == 0) {
		if (type != FTW_DP)
			json_array_append_new(
				walk.deleted, json_string(path + walk.prefix_len));
		return 0;
	}
	if (type != FTW_DP || errno != ENOTEMPTY) {
		char *step = step_of(path);
		char msg[512];

		snprintf(msg, sizeof(msg), "cannot delete %s: %s",
			 path + walk.prefix_len, strerror(errno));
		if (step != NULL && json_object_get(walk.failed, step) == NULL)
			json_object_set_new(walk.failed, step,
					    json_string(msg));
		free(step);
	}
	return 0; /* keep going: delete what can be deleted */
}

json_t *kiln_artifacts_cleanup(const char *data_dir, const char *wf_id,
			       const json_t *steps)
{
	json_t *detail, *errors = json_array();
	size_t i, cleaned = 0;
	char dir[4096];
	struct stat sb;

	snprintf(dir, sizeof(dir), "%s/artifacts/%s", data_dir, wf_id);
	walk.prefix_len = strlen(data_dir) + 1;
	walk.wf_dir_len = strlen(dir);
	walk.deleted = json_array();
	walk.failed = json_object();
	if (lstat(dir, &sb) == 0)
		nftw(dir, on_entry, 16, FTW_DEPTH | FTW_PHYS);
	for (i = 0; i < json_array_size(steps); i++) {
		json_t *s = json_array_get(steps, i);
		json_t *why = json_object_get(
			walk.failed,
			json_string_value(json_object_get(s, "step_id")));

		if (why == NULL) {
			cleaned++;
			continue;
		}
		json_array_append_new(
			errors,
			json_pack("{sOsOsOsO}", "task_id",
				  json_object_get(s, "id"), "step_id",
				  json_object_get(s, "step_id"), "task_type",
				  json_object_get(s, "task_type"), "error", why));
	}
	detail = json_pack("{sIsIsoso}", "tasks_processed",
			   (json_int_t)json_array_size(steps), "tasks_cleaned",
			   (json_int_t)cleaned, "deleted_paths", walk.deleted,
			   "errors", errors);
	json_decref(walk.failed);
	walk.deleted = walk.failed = NULL;
	return detail;
}
