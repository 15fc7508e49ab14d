/*
 * model.h - the lifecycle enums of workflows and steps, and their names as
 * they appear in the API and in the store.
 *
 *   workflow: PENDING -> RUNNING -> COMPLETED | FAILED | CANCELLED
 *             RUNNING <-> PAUSED;  FAILED | PAUSED -> RUNNING (resume)
 *   step:     PENDING -> READY -> RUNNING -> COMPLETED | FAILED
 *             unfinished steps -> CANCELLED on cancel; SKIPPED is reserved
 *             for steps a condition leaves out.
 */
#ifndef KILN_MODEL_H
#define KILN_MODEL_H

enum kiln_wf_status {
	KILN_WF_PENDING = 0,
	KILN_WF_RUNNING,
	KILN_WF_PAUSED,
	KILN_WF_COMPLETED,
	KILN_WF_FAILED,
	KILN_WF_CANCELLED,
	KILN_WF__COUNT
};

enum kiln_step_status {
	KILN_STEP_PENDING = 0,
	KILN_STEP_READY,
	KILN_STEP_RUNNING,
	KILN_STEP_COMPLETED,
	KILN_STEP_FAILED,
	KILN_STEP_SKIPPED,
	KILN_STEP_CANCELLED,
	KILN_STEP__COUNT
};

/* Upper-case API names ("RUNNING").  Never NULL for a valid value. */
const char *kiln_wf_status_name(enum kiln_wf_status s);
const char *kiln_step_status_name(enum kiln_step_status s);
/* Parse an API name; returns 0 and sets *out, or -1 if unknown. */
int kiln_wf_status_parse(const char *s, enum kiln_wf_status *out);
int kiln_step_status_parse(const char *s, enum kiln_step_status *out);
/* 1 for COMPLETED, FAILED, CANCELLED. */
int kiln_wf_status_is_terminal(enum kiln_wf_status s);

/* The task types every kilnd knows (NULL-terminated). */
extern const char *const kiln_builtin_task_types[];

#endif
