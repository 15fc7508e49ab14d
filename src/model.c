/*
 * model.c - names of the workflow and step states (see model.h).
 */
#include <string.h>

#include "kiln/model.h"

static const char *const wf_names[KILN_WF__COUNT] = {
	"PENDING", "RUNNING", "PAUSED", "COMPLETED", "FAILED", "CANCELLED",
};
static const char *const step_names[KILN_STEP__COUNT] = {
	"PENDING", "READY", "RUNNING", "COMPLETED", "FAILED", "SKIPPED",
	"CANCELLED",
};

const char *const kiln_builtin_task_types[] = {
	"GENERATION", "REFINE", "UPSCALE", "REMOVE_BACKGROUND", "EXPAND",
	"FILL", "COMPOSITE", "SIMILAR", "VIDEO_GENERATION", NULL,
};

const char *kiln_wf_status_name(enum kiln_wf_status s)
{
	return (unsigned)s < KILN_WF__COUNT ? wf_names[s] : "PENDING";
}

const char *kiln_step_status_name(enum kiln_step_status s)
{
	return (unsigned)s < KILN_STEP__COUNT ? step_names[s] : "PENDING";
}

int kiln_wf_status_parse(const char *s, enum kiln_wf_status *out)
{
	int i;

	for (i = 0; s != NULL && i < KILN_WF__COUNT; i++) {
		if (strcmp(s, wf_names[i]) == 0) {
			*out = (enum kiln_wf_status)i;
			return 0;
		}
	}
	return -1;
}

int kiln_step_status_parse(const char *s, enum kiln_step_status *out)
{
	int i;

	for (i = 0; s != NULL && i < KILN_STEP__COUNT; i++) {
		if (strcmp(s, step_names[i]) == 0) {
			*out = (enum kiln_step_status)i;
			return 0;
		}
	}
	return -1;
}

int kiln_wf_status_is_terminal(enum kiln_wf_status s)
{
	return s == KILN_WF_COMPLETED || s == KILN_WF_FAILED ||
	       s == KILN_WF_CANCELLED;
}
