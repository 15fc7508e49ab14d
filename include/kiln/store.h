/*
 * store.h - the only place that knows SQL.  The store is the truth: every
 * state change is a committed transaction before anyone is told about it.
 *
 * Each thread gets its own SQLite connection (opened lazily by
 * kiln_store_thread(), closed when the thread exits).  Writes are short
 * BEGIN IMMEDIATE transactions; none stays open across a network call.
 *
 * Workflows and steps cross this interface as jansson objects shaped like
 * the API's WorkflowPublic / WorkflowStepPublic, so handlers render what
 * the store returns and the engine reads the same fields.
 */
#ifndef KILN_STORE_H
#define KILN_STORE_H

#include <jansson.h>
#include <sqlite3.h>
#include <stdint.h>

#include "kiln/common.h"
#include "kiln/model.h"

struct kiln_store;

/* Opens (creating if needed) <data_dir>/kiln.db, applies migrations, and
 * remembers the path for per-thread connections.  Call once at start-up,
 * before any thread uses the store. */
enum kiln_rc kiln_store_init(const char *data_dir, struct kiln_err *err)
	KILN_WARN_UNUSED;
/* Closes the calling thread's connection and forgets the path. */
void kiln_store_shutdown(void);

/* The calling thread's connection, opened on first use; NULL on failure
 * (err says why).  Borrowed: do not close it. */
struct kiln_store *kiln_store_thread(struct kiln_err *err);
/* Closes the calling thread's connection now (it is reopened on demand). */
void kiln_store_thread_release(void);

/* Background checkpoints (store_checkpoint.c): while on, connections
 * opened afterwards do not checkpoint the WAL themselves. */
void kiln_store_set_background_checkpoints(int on);
/* One PASSIVE checkpoint; the number of frames copied, -1 on error. */
int kiln_store_checkpoint(struct kiln_store *st);
/* Starts/stops a thread that checkpoints every interval_ms.  Call start
 * after kiln_store_init and before the threads that write; stop before
 * kiln_store_shutdown. */
enum kiln_rc kiln_store_checkpointer_start(int interval_ms,
					   struct kiln_err *err)
	KILN_WARN_UNUSED;
void kiln_store_checkpointer_stop(void);
/* Once the WAL holds at least bytes after a commit, the checkpointer
 * restarts it (kiln_store_wal_restart); once it holds twice that, the next
 * writer does, before it writes; 0: never.  Call before start. */
void kiln_store_set_wal_limit(int64_t bytes);
/* Copies the whole WAL into the database with every write held back, so
 * that the next write starts the WAL again from its beginning, over pages
 * the OS still caches, instead of growing it: under a steady load some
 * reader or writer always uses the WAL, and PASSIVE checkpoints alone
 * never let it start over.  Waits up to busy_ms for readers of the WAL
 * to finish.  0 if restarted, -1 if not (a reader stayed). */
int kiln_store_wal_restart(int busy_ms);
/* How long a group of writes may stay open for more parts, in ms (10;
 * <= 0: back to 10).  Tests that hold a group open on a loaded machine
 * set more. */
void kiln_store_set_group_max_ms(int ms);

/* 1 if the store answers a trivial query. */
int kiln_store_ping(struct kiln_store *st);

/* For writers that need not wait for their commit: fn(ctx, rc, out) runs
 * once the group holding the write is committed (rc KILN_OK) or lost,
 * on whichever thread commits it, possibly before the write's function
 * returns.  out is the write's own output, owned by fn.  more_coming:
 * the caller has more writes queued at once, so the group is left open
 * for them; only for a thread that itself calls kiln_store_flush once it
 * runs out of work (a pool worker), else the group could stay open. */
typedef void (*kiln_committed_fn)(void *ctx, enum kiln_rc rc, json_t *out);
struct kiln_then {
	kiln_committed_fn fn;
	void *ctx;
	int more_coming;
};
/* Commits a group left open by kiln_store_commit_then's more_coming (and
 * runs its writers' fn) on this thread; nothing when there is none, or
 * when the pacer runs (it commits the group soon).  Cheap when there is
 * none: the pool calls it whenever it runs dry. */
void kiln_store_flush(void);
/* Commit pacing (0: none).  While commits come more often than every
 * delay_us, a kiln_store_commit_then write leaves its group open even when
 * alone, and the pacer's thread commits the group (running its writers'
 * fns) once it is delay_us old; kiln_store_flush then leaves groups to it.
 * Stop it before what those fns use is freed: stopping commits the group
 * still open. */
enum kiln_rc kiln_store_pacer_start(int delay_us, struct kiln_err *err)
	KILN_WARN_UNUSED;
void kiln_store_pacer_stop(void);

/* ---- workflows (store_workflows.c) ---------------------------------- */

/* What a caller may see: tenant NULL means everything (operator). */
struct kiln_scope {
	const char *tenant; /* borrowed; NULL = all tenants */
};

/* Who claims steps, and until when its lease runs. */
struct kiln_claimer {
	const char *owner;
	int64_t lease_until_ms;
};

/*
 * Inserts a workflow and its steps in one transaction.  wf is a validated
 * CreateWorkflow-like object completed by the caller with "id", "status",
 * "final_step_id", and per step "uuid", "provider", "max_retries".
 * Times are now.  A RUNNING workflow's first steps (no dependencies) are
 * inserted claimed for who (*claims, when claims and who are not NULL).
 * *rendered (when not NULL) is the WorkflowPublic a read right after the
 * commit would give, as JSON text, built from the values written; both
 * are owned by the caller.
 * Returns KILN_OK once committed.
 */
enum kiln_rc kiln_store_insert_workflow(struct kiln_store *st,
					const json_t *wf,
					const struct kiln_claimer *who,
					json_t **claims, char **rendered,
					struct kiln_err *err) KILN_WARN_UNUSED;

/* What a committed create hands on, all owned by the receiver: the
 * claims of the steps inserted claimed (to start), and the 201 body,
 * the WorkflowPublic a read would give, as JSON text (NULL when out of
 * memory; the workflow is stored all the same). */
struct kiln_created {
	json_t *claims;
	char *body;
	size_t body_len;
};
typedef void (*kiln_created_fn)(void *ctx, enum kiln_rc rc,
				struct kiln_created *out);

/* The same without waiting for the commit (kiln_store_commit_then).  wf
 * is kept (a reference) until then and must not change.  KILN_OK means
 * fn(ctx, ...) will be called once the insert is committed (rc KILN_OK)
 * or lost (out all NULL). */
enum kiln_rc kiln_store_insert_workflow_then(struct kiln_store *st,
					     const json_t *wf,
					     const struct kiln_claimer *who,
					     kiln_created_fn fn, void *ctx,
					     struct kiln_err *err)
	KILN_WARN_UNUSED;

/* Renders the workflow as WorkflowPublic into *out (owned by the caller).
 * KILN_ENOTFOUND if absent or outside scope. */
enum kiln_rc kiln_store_get_workflow(struct kiln_store *st, const char *id,
				     const struct kiln_scope *scope,
				     json_t **out, struct kiln_err *err)
	KILN_WARN_UNUSED;

struct kiln_wf_filter {
	const char *status;           /* NULL = any */
	const char *origin_instance;  /* NULL = any */
	const char *origin_tenant_id; /* NULL = any */
	int include_deleted;
	int64_t skip;
	int64_t limit;
};

/* WorkflowListResponse into *out (owned by the caller). */
enum kiln_rc kiln_store_list_workflows(struct kiln_store *st,
				       const struct kiln_wf_filter *filter,
				       const struct kiln_scope *scope,
				       json_t **out, struct kiln_err *err)
	KILN_WARN_UNUSED;

/* Updates name/description/webhook_url present in patch (a validated
 * WorkflowUpdate; name null = unchanged, others null = cleared). */
enum kiln_rc kiln_store_patch_workflow(struct kiln_store *st, const char *id,
				       const struct kiln_scope *scope,
				       const json_t *patch,
				       struct kiln_err *err) KILN_WARN_UNUSED;

/* The state changes requested through the API.  Each is one guarded
 * transaction; KILN_ECONFLICT with a message naming the current status when
 * the transition is not allowed, KILN_ENOTFOUND when absent/out of scope. */
enum kiln_wf_action {
	KILN_WF_ACTION_START,  /* PENDING -> RUNNING */
	KILN_WF_ACTION_PAUSE,  /* RUNNING -> PAUSED */
	KILN_WF_ACTION_RESUME, /* FAILED|PAUSED -> RUNNING, failed steps reset
				* (and running ones, of a FAILED workflow) */
	KILN_WF_ACTION_CANCEL, /* PENDING|RUNNING|PAUSED -> CANCELLED */
};
/* For CANCEL, and RESUME of a FAILED workflow, *stopped (if not NULL)
 * receives the steps that were RUNNING and no longer are: [{"uuid",
 * "provider", "job"}] (owned), so the engine can abort their transfers and
 * cancel their jobs; otherwise it is set to NULL. */
enum kiln_rc kiln_store_workflow_action(struct kiln_store *st,
					const char *id,
					const struct kiln_scope *scope,
					enum kiln_wf_action action,
					json_t **stopped,
					struct kiln_err *err) KILN_WARN_UNUSED;

/* Soft-deletes the workflow (and its steps).  Refused (KILN_ECONFLICT) while
 * RUNNING or PAUSED.  *steps_out receives [{id, step_id, task_type}] for the
 * caller's file clean-up (owned by the caller). */
enum kiln_rc kiln_store_soft_delete_workflow(struct kiln_store *st,
					     const char *id,
					     const struct kiln_scope *scope,
					     json_t **steps_out,
					     struct kiln_err *err)
	KILN_WARN_UNUSED;

/* ---- engine (store_engine.c) ------------------------------------------ */

/*
 * Advances a RUNNING workflow: marks COMPLETED when every step is, else
 * marks PENDING steps whose dependencies are all COMPLETED as READY.
 * Writes the uuids of all READY steps of the workflow into *ready (a new
 * JSON array of strings, owned by the caller).
 */
enum kiln_rc kiln_store_advance(struct kiln_store *st, const char *wf_id,
				json_t **ready, struct kiln_err *err)
	KILN_WARN_UNUSED;

/*
 * Claims a READY step of a RUNNING workflow for owner (READY -> RUNNING,
 * new task_id, lease until lease_until_ms) and starts its first attempt on
 * its current provider.  On success *claim receives the step as the engine
 * needs it (owned): {"uuid", "workflow_id", "step_id", "task_type",
 * "provider", "current_provider", "on_fallback", "provider_retries",
 * "retry_count", "max_retries", "task_id", "config", "input_mappings",
 * "provider_config", "fallback_provider_type", "fallback_provider_config",
 * "job", "next_attempt_at", "first_started_at",
 * "results": {step_id: result, ...}}.  KILN_ECONFLICT when the step is no
 * longer READY or its workflow not RUNNING.
 */
enum kiln_rc kiln_store_claim_step(struct kiln_store *st,
				   const char *step_uuid, const char *owner,
				   int64_t lease_until_ms, json_t **claim,
				   struct kiln_err *err) KILN_WARN_UNUSED;

/* How an attempt ended, as listed in the step's "attempts". */
struct kiln_attempt_end {
	const char *outcome; /* "succeeded", "transient_error", ... */
	long http_status;    /* 0 = none */
	const char *error;   /* NULL on success */
	const char *field;   /* the input at fault ("invalid_input"), or NULL */
};

/* kiln_store_advance, claiming each READY step for who in the same
 * transaction: *claims receives their claims (see kiln_store_claim_step). */
enum kiln_rc kiln_store_advance_claim(struct kiln_store *st,
				      const char *wf_id,
				      const struct kiln_claimer *who,
				      json_t **claims, struct kiln_err *err)
	KILN_WARN_UNUSED;

/*
 * Records the end of a RUNNING step's attempt task_id: result (borrowed)
 * when the step succeeded (NULL when it failed: end->error is then its
 * error_message).  A failed step fails its workflow (if not already
 * terminal).  KILN_ECONFLICT if the step is no longer RUNNING that attempt
 * (cancelled, reset).  With claims (not NULL), a success also advances the
 * workflow in the same transaction: *claims receives the claims (for who,
 * or READY uuids when who is NULL) of the steps it lets run, or stays NULL.
 */
enum kiln_rc kiln_store_finish_step(struct kiln_store *st,
				    const char *step_uuid, const char *task_id,
				    const json_t *result,
				    const struct kiln_attempt_end *end,
				    const struct kiln_claimer *who,
				    json_t **claims, struct kiln_err *err)
	KILN_WARN_UNUSED;
/* The same without waiting for the commit (kiln_store_commit_then):
 * KILN_OK means then->fn will be called with the claims (an array, or
 * NULL after a failure), once the step's end is committed. */
enum kiln_rc kiln_store_finish_step_then(struct kiln_store *st,
					 const char *step_uuid,
					 const char *task_id,
					 const json_t *result,
					 const struct kiln_attempt_end *end,
					 const struct kiln_claimer *who,
					 const struct kiln_then *then,
					 struct kiln_err *err)
	KILN_WARN_UNUSED;

/* ---- attempts (store_attempts.c) ------------------------------------ */

/* What follows an attempt that ended without finishing the step. */
struct kiln_next_attempt {
	int64_t at_ms;                 /* when the next attempt may start */
	int counts_as_retry;           /* retry_count += 1 */
	const char *fallback_provider; /* switch to it (NULL = stay) */
};

/* Ends the current attempt with end and schedules the next per next. */
enum kiln_rc kiln_store_end_attempt(struct kiln_store *st,
				    const char *step_uuid, const char *task_id,
				    const struct kiln_attempt_end *end,
				    const struct kiln_next_attempt *next,
				    struct kiln_err *err) KILN_WARN_UNUSED;

/* Appends a new "running" attempt on the step's current provider (an
 * attempt left "running" by a dead process becomes "interrupted"). */
enum kiln_rc kiln_store_start_attempt(struct kiln_store *st,
				      const char *step_uuid,
				      const char *task_id,
				      struct kiln_err *err) KILN_WARN_UNUSED;

/* Commits an async job ({"id", "status_url", ...}) before it is polled. */
enum kiln_rc kiln_store_record_job(struct kiln_store *st,
				   const char *step_uuid, const char *task_id,
				   const json_t *job, struct kiln_err *err)
	KILN_WARN_UNUSED;

/* Takes the lease of a RUNNING step for owner (only if it has expired
 * when only_expired) and loads it like a claim. */
enum kiln_rc kiln_store_take_over(struct kiln_store *st,
				  const char *step_uuid, const char *owner,
				  int64_t lease_until_ms, int only_expired,
				  json_t **claim, struct kiln_err *err)
	KILN_WARN_UNUSED;

/* Uuids of RUNNING steps (only those whose lease expired, if asked). */
enum kiln_rc kiln_store_running_steps(struct kiln_store *st,
				      int only_expired, json_t **uuids,
				      struct kiln_err *err) KILN_WARN_UNUSED;

/* Extends owner's leases on the steps in uuids (a JSON array). */
enum kiln_rc kiln_store_renew_leases(struct kiln_store *st,
				     const char *owner, const json_t *uuids,
				     int64_t lease_until_ms,
				     struct kiln_err *err) KILN_WARN_UNUSED;

/* Ids of all RUNNING workflows (owned JSON array), for start-up. */
enum kiln_rc kiln_store_running_workflows(struct kiln_store *st,
					  json_t **running,
					  struct kiln_err *err)
	KILN_WARN_UNUSED;

/* ---- webhook outbox (store_outbox.c) ------------------------------- */

/* fn(ctx) runs after every commit that queued webhook deliveries (on the
 * committing thread: keep it short).  Set once, before the engine runs. */
void kiln_store_on_delivery(void (*fn)(void *ctx), void *ctx);
/* How long a newly queued delivery waits for its first attempt
 * (webhooks.schedule_s[0]); 0 until set. */
void kiln_store_set_first_delivery_delay(int64_t ms);

/*
 * Inside the caller's transaction: queues event type ("workflow.completed",
 * "step.failed", ...) for the workflow's webhook_url, its payload built
 * from the workflow as it is now (step_id: the step it is about, or NULL;
 * error: why it failed, or NULL).  Nothing is queued when the workflow has
 * no webhook_url, nor for step events when it suppresses subtask events.
 */
struct kiln_event_error;
enum kiln_rc kiln_store_queue_event(struct kiln_store *st, const char *wf_id,
				    const char *type, const char *step_id,
				    const struct kiln_event_error *error,
				    struct kiln_err *err) KILN_WARN_UNUSED;

/* Claims due deliveries for sending: at most max, and per endpoint at
 * most per_endpoint minus what inflight ({endpoint: count}) says is in
 * flight there already.  Each is marked in flight (since now) and
 * *claimed receives [{"id", "url", "endpoint", "payload", "tenant_id",
 * "attempt", "round"}] (owned); attempt counts from 1 over the delivery's
 * life, round from 0 since its creation or last redelivery. */
enum kiln_rc kiln_store_claim_deliveries(struct kiln_store *st, int64_t now,
					 const json_t *inflight,
					 int per_endpoint, size_t max,
					 json_t **claimed,
					 struct kiln_err *err)
	KILN_WARN_UNUSED;

/* How one attempt went. */
struct kiln_delivery_attempt {
	const char *id;
	int attempt;
	int64_t started_at;
	long latency_ms;
	int delivered;       /* a 2xx */
	long http_status;    /* 0 = none */
	const char *excerpt; /* of the response body, or NULL */
	const char *error;   /* NULL when delivered */
	int64_t retry_at;    /* the next attempt; 0 = none (failed) */
};
/* Records n attempts in one transaction. */
enum kiln_rc kiln_store_record_deliveries(struct kiln_store *st,
					  const struct kiln_delivery_attempt *a,
					  size_t n, struct kiln_err *err)
	KILN_WARN_UNUSED;

/* When the next delivery not in flight nor at a full endpoint (full: an
 * array of endpoints) is due, in ms; -1 when none is pending. */
enum kiln_rc kiln_store_next_delivery_at(struct kiln_store *st,
					 const json_t *full, int64_t *at,
					 struct kiln_err *err)
	KILN_WARN_UNUSED;

/* At start-up: attempts left in flight by a dead process are recorded as
 * interrupted and their deliveries are due again at once. */
enum kiln_rc kiln_store_recover_deliveries(struct kiln_store *st,
					   size_t *recovered,
					   struct kiln_err *err)
	KILN_WARN_UNUSED;

struct kiln_delivery_filter {
	const char *workflow_id; /* NULL = any */
	const char *event;
	const char *status;
	int64_t offset;
	int64_t limit;
};
/* {"deliveries": [...], "pagination": {...}} newest first (owned). */
enum kiln_rc kiln_store_list_deliveries(struct kiln_store *st,
					const struct kiln_delivery_filter *f,
					const struct kiln_scope *scope,
					json_t **out, struct kiln_err *err)
	KILN_WARN_UNUSED;
/* One delivery with its payload and every attempt (owned). */
enum kiln_rc kiln_store_get_delivery(struct kiln_store *st, const char *id,
				     const struct kiln_scope *scope,
				     json_t **out, struct kiln_err *err)
	KILN_WARN_UNUSED;
/* Sends the delivery again from the start of the schedule, with the same
 * webhook-id.  KILN_ECONFLICT while an attempt is in flight. */
enum kiln_rc kiln_store_redeliver(struct kiln_store *st, const char *id,
				  const struct kiln_scope *scope,
				  struct kiln_err *err) KILN_WARN_UNUSED;

/* ---- templates (store_templates.c) ----------------------------------- */

/* Templates are shaped like the API's TemplatePublic: id, status,
 * version (the one rendered), latest_version, origin_tenant_id, times,
 * and the version's definition (name, description, inputs, steps,
 * config, webhook_url, suppress_subtask_events). */

/* Inserts template id (version 1 of def, a validated definition) for
 * tenant (NULL: none); *rendered (if not NULL) receives it (owned). */
enum kiln_rc kiln_store_insert_template(struct kiln_store *st,
					const char *id, const char *tenant,
					const json_t *def, json_t **rendered,
					struct kiln_err *err) KILN_WARN_UNUSED;
/* Template id at version (0: the latest).  KILN_ENOTFOUND when absent,
 * out of scope, or without that version. */
enum kiln_rc kiln_store_get_template(struct kiln_store *st, const char *id,
				     int64_t version,
				     const struct kiln_scope *scope,
				     json_t **out, struct kiln_err *err)
	KILN_WARN_UNUSED;
/* Publishes def as the next version.  KILN_ECONFLICT when archived. */
enum kiln_rc kiln_store_publish_template(struct kiln_store *st,
					 const char *id,
					 const struct kiln_scope *scope,
					 const json_t *def, json_t **rendered,
					 struct kiln_err *err) KILN_WARN_UNUSED;
/* Archives the template (again: no change); its versions stay
 * readable and running work is untouched. */
enum kiln_rc kiln_store_archive_template(struct kiln_store *st,
					 const char *id,
					 const struct kiln_scope *scope,
					 json_t **rendered,
					 struct kiln_err *err)
	KILN_WARN_UNUSED;

struct kiln_tpl_filter {
	const char *status; /* "ACTIVE" | "ARCHIVED" | NULL = any */
	const char *name;   /* substring of the name, any case; NULL = any */
	int64_t offset;
	int64_t limit;
};
/* {"templates": [...], "pagination": {...}}, newest first (owned). */
enum kiln_rc kiln_store_list_templates(struct kiln_store *st,
				       const struct kiln_tpl_filter *f,
				       const struct kiln_scope *scope,
				       json_t **out, struct kiln_err *err)
	KILN_WARN_UNUSED;

/* ---- runs (store_runs.c) --------------------------------------------- */

/* An Idempotency-Key and what it was sent with. */
struct kiln_idem {
	const char *key;    /* NULL: no key */
	const char *tenant; /* NULL: none */
	const char *hash;   /* SHA-256 hex of the request */
};

/*
 * Inserts the run wf (as kiln_store_insert_workflow takes it, with
 * "template_id", "template_version" and "run_inputs") and, with a key,
 * records the key in the same transaction.  When the key is already
 * recorded: the same hash sets *existing (owned) to the first run's id
 * and inserts nothing; another hash is KILN_ECONFLICT.
 */
enum kiln_rc kiln_store_insert_run(struct kiln_store *st, const json_t *wf,
				   const struct kiln_idem *idem,
				   const struct kiln_claimer *who,
				   json_t **claims, char **existing,
				   struct kiln_err *err) KILN_WARN_UNUSED;

/* What idem's key was first used for (kiln_store_idem_find in a read
 * transaction): a retry is answered before the request is checked
 * again, so it is answered even if the template changed since. */
enum kiln_rc kiln_store_idem_lookup(struct kiln_store *st,
				    const struct kiln_idem *idem,
				    char **existing, struct kiln_err *err)
	KILN_WARN_UNUSED;

/* fn(ctx, wf_id) runs after each commit that ended a workflow (COMPLETED,
 * FAILED, CANCELLED), once per workflow; wf_id NULL means "some, too many
 * to name".  On the committing thread: keep it short. */
void kiln_store_on_workflow_end(void (*fn)(void *ctx, const char *wf_id),
				void *ctx);

/* ---- batches (store_batches.c, store_batch_sched.c) ------------------ */

/* fn(ctx) runs after each commit that may let a batch start executions
 * (one created, retried, an execution ended). */
void kiln_store_on_batch_change(void (*fn)(void *ctx), void *ctx);

/* Inserts a batch and its executions in one transaction.  batch is the
 * validated body completed by the caller ("id", "tenant_id",
 * "template_version", "asset_input", "priority" as 0..2); each asset is
 * {"execution_id", "asset_id", "url", "inputs"}.  *rendered receives the
 * batch as GET renders it (owned). */
enum kiln_rc kiln_store_insert_batch(struct kiln_store *st,
				     const json_t *batch,
				     const struct kiln_idem *idem,
				     json_t **rendered, char **existing,
				     struct kiln_err *err) KILN_WARN_UNUSED;

/* The batch as GET /api/v1/batches/{id} renders it (owned). */
enum kiln_rc kiln_store_get_batch(struct kiln_store *st, const char *id,
				  const struct kiln_scope *scope,
				  json_t **out, struct kiln_err *err)
	KILN_WARN_UNUSED;

struct kiln_batch_filter {
	const char *status;      /* NULL = any */
	const char *template_id; /* NULL = any */
	const char *tenant_id;   /* NULL = any */
	int64_t created_after;   /* ms; 0 = none */
	int64_t created_before;  /* ms; 0 = none */
	int64_t offset;
	int64_t limit;
};
/* {"batches": [...], "pagination": {...}} newest first (owned). */
enum kiln_rc kiln_store_list_batches(struct kiln_store *st,
				     const struct kiln_batch_filter *f,
				     const struct kiln_scope *scope,
				     json_t **out, struct kiln_err *err)
	KILN_WARN_UNUSED;

struct kiln_exec_filter {
	const char *status;   /* NULL = any */
	const char *asset_id; /* NULL = any */
	int64_t offset;
	int64_t limit;
};
/* {"batch_id", "executions": [...], "pagination": {...}} in asset order
 * (owned).  KILN_ENOTFOUND when the batch is absent or out of scope. */
enum kiln_rc kiln_store_list_executions(struct kiln_store *st,
					const char *batch_id,
					const struct kiln_exec_filter *f,
					const struct kiln_scope *scope,
					json_t **out, struct kiln_err *err)
	KILN_WARN_UNUSED;

/* Cancels the batch: pending executions end CANCELLED, running ones
 * finish.  *out = {"id", "status", "previous_status", "assets"} (owned).
 * KILN_ECONFLICT when it has already ended. */
enum kiln_rc kiln_store_cancel_batch(struct kiln_store *st, const char *id,
				     const struct kiln_scope *scope,
				     json_t **out, struct kiln_err *err)
	KILN_WARN_UNUSED;

/* Makes the executions listed in ids (NULL: every FAILED one) PENDING
 * again.  A listed id that is not FAILED or CANCELLED is KILN_ECONFLICT
 * (KILN_ENOTFOUND when not in the batch), and nothing changes.
 * *out = {"id", "status", "retried", "execution_ids", "assets"}. */
enum kiln_rc kiln_store_retry_batch(struct kiln_store *st, const char *id,
				    const struct kiln_scope *scope,
				    const json_t *ids, json_t **out,
				    struct kiln_err *err) KILN_WARN_UNUSED;

/* What kiln_store_dispatch_batches needs to start executions. */
struct kiln_dispatch {
	const struct kiln_claimer *who; /* claims the first steps */
	/* Builds the workflow of one execution (without "id" and
	 * "status"), or NULL with err: the execution then fails
	 * INVALID_INPUT with err's message.  definition: the template
	 * version's; batch: {"id", "tenant_id", "template_id",
	 * "template_version", "inputs", "asset_input", "origin_instance",
	 * "origin_zone", "origin_reference", "name"}; asset: {"asset_id",
	 * "url", "inputs"}. */
	json_t *(*build)(void *ctx, const json_t *definition,
			 const json_t *batch, const json_t *asset,
			 struct kiln_err *err);
	void *ctx;
	int max_running; /* executions running in all batches, at most */
	int max_starts;  /* per call (one transaction) */
};
/* Starts pending executions, in one transaction: highest priority first,
 * batches of equal priority in turn, none past its concurrency_limit nor
 * all past max_running.  *claims receives the steps to run (owned);
 * *started the number of executions started or failed to build (0: there
 * is nothing more to do now). */
enum kiln_rc kiln_store_dispatch_batches(struct kiln_store *st,
					 const struct kiln_dispatch *d,
					 json_t **claims, int *started,
					 struct kiln_err *err)
	KILN_WARN_UNUSED;

/* Ends pending execution exec_id FAILED (INVALID_INPUT, message): its
 * inputs do not make a valid workflow.  In the caller's transaction. */
enum kiln_rc kiln_store_fail_execution(struct kiln_store *st,
				       const char *exec_id,
				       const char *message,
				       struct kiln_err *err) KILN_WARN_UNUSED;

/* Workflows of running executions whose batch must stop them (owned
 * array of ids). */
enum kiln_rc kiln_store_batch_aborts(struct kiln_store *st, json_t **ids,
				     struct kiln_err *err) KILN_WARN_UNUSED;

/* ---- helpers shared by store_*.c (not for other modules) ----------- */
#define KILN_STORE_ENDED_MAX 16
/* Inside the transaction that ended workflow wf_id (status now COMPLETED,
 * FAILED or CANCELLED; why: the failure, or NULL): updates its batch
 * execution and batch, queues their events, and tells the hooks after
 * the commit. */
enum kiln_rc kiln_store_workflow_ended(struct kiln_store *st,
				       const char *wf_id,
				       const struct kiln_event_error *why,
				       struct kiln_err *err) KILN_WARN_UNUSED;
void kiln_store_mark_workflow_ended(struct kiln_store *st, const char *wf_id);
/* Inside the caller's transaction: what idem's key was first used for.
 * *existing = that resource's id (owned) when the key is known with the
 * same hash (NULL when unknown or idem->key is NULL); KILN_ECONFLICT when
 * it is known with another. */
enum kiln_rc kiln_store_idem_find(struct kiln_store *st,
				  const struct kiln_idem *idem,
				  char **existing, struct kiln_err *err)
	KILN_WARN_UNUSED;
/* Records idem's key (if any) for resource id of type ("run", "batch"). */
enum kiln_rc kiln_store_idem_record(struct kiln_store *st,
				    const struct kiln_idem *idem,
				    const char *type, const char *id,
				    struct kiln_err *err) KILN_WARN_UNUSED;
void kiln_store_mark_batches_changed(struct kiln_store *st);
/* A one-row, one-column integer query in the caller's transaction, with
 * text ?1 = id (unless NULL) and, when the statement has it, ?2 = arg.
 * *found is 0 when there is no row or it is NULL. */
enum kiln_rc kiln_store_int(struct kiln_store *st, const char *sql,
			    const char *id, int64_t arg, int64_t *out,
			    int *found, struct kiln_err *err) KILN_WARN_UNUSED;
/* kiln_store_insert_workflow inside the caller's transaction (who NULL:
 * nothing claimed; claims NULL likewise). */
enum kiln_rc kiln_store_insert_workflow_locked(struct kiln_store *st,
					       const json_t *wf,
					       const struct kiln_claimer *who,
					       json_t *claims,
					       struct kiln_err *err)
	KILN_WARN_UNUSED;
/* Queues a webhook delivery of payload (not about one workflow's own
 * webhook_url: batches) inside the caller's transaction. */
enum kiln_rc kiln_store_queue_delivery(struct kiln_store *st,
				       const char *type, const char *url,
				       const char *tenant, const char *wf_id,
				       json_t *payload, struct kiln_err *err)
	KILN_WARN_UNUSED;
/* Renders a workflow as kiln_store_get_workflow does, inside the caller's
 * transaction. */
enum kiln_rc kiln_store_get_workflow_locked(struct kiln_store *st,
					    const char *id,
					    const struct kiln_scope *scope,
					    json_t **out, struct kiln_err *err)
	KILN_WARN_UNUSED;
/* A page of a filtered list, in one read transaction: count_sql and
 * list_sql are bound by bind(s, ctx); list_sql also takes the limit at
 * ?limit_param and the offset at the next one; each row becomes
 * render(s).  *out = {key: [...], "pagination": {limit, offset, total,
 * has_more}} (owned). */
struct kiln_page_query {
	const char *count_sql, *list_sql;
	void (*bind)(sqlite3_stmt *s, const void *ctx);
	const void *ctx;
	int limit_param;
	int64_t limit, offset;
	json_t *(*render)(sqlite3_stmt *s);
	const char *key;
};
enum kiln_rc kiln_store_page(struct kiln_store *st,
			     const struct kiln_page_query *q, json_t **out,
			     struct kiln_err *err) KILN_WARN_UNUSED;
/* The transaction queued a delivery: kiln_store_commit tells the hook. */
void kiln_store_mark_delivery_queued(struct kiln_store *st);
sqlite3 *kiln_store_db(struct kiln_store *st);
/* Prepared statement cached per connection, keyed by the address of the
 * SQL text: sql must be a string with static storage (a literal or a
 * static const array), never a buffer built at run time.  Reset and
 * cleared before it is returned. */
sqlite3_stmt *kiln_store_stmt(struct kiln_store *st, const char *sql,
			      struct kiln_err *err);
enum kiln_rc kiln_store_begin(struct kiln_store *st, struct kiln_err *err)
	KILN_WARN_UNUSED;
enum kiln_rc kiln_store_commit(struct kiln_store *st, struct kiln_err *err)
	KILN_WARN_UNUSED;
/* kiln_store_begin, then *s = the cached statement for sql; on failure
 * nothing is left open. */
enum kiln_rc kiln_store_begin_with(struct kiln_store *st, const char *sql,
				   sqlite3_stmt **s, struct kiln_err *err)
	KILN_WARN_UNUSED;
void kiln_store_rollback(struct kiln_store *st);
/* Write transactions are committed in groups (store_txn.c): a writer that
 * finishes while others wait for the writer lock leaves the transaction
 * to them, and kiln_store_commit returns once the group's COMMIT did.
 * Counters since start: COMMITs (groups), parts (kiln_store_begin ..
 * commit/rollback), parts that left the commit to a later writer, the
 * writers waiting for the lock now, and the WAL's restarts at its limit
 * (kiln_store_wal_restart) made and missed. */
struct kiln_write_stats {
	uint64_t commits, parts, deferred, waiting;
	uint64_t wal_restarts, wal_restarts_missed;
};
void kiln_store_write_stats(struct kiln_write_stats *out);

/* Ends this thread's part like kiln_store_commit without waiting for the
 * group's COMMIT.  KILN_OK: then->fn will be called exactly once, with
 * out.  Otherwise the part is undone, fn is never called and the caller
 * keeps out.  A group still open at kiln_store_shutdown is committed, but
 * its fns get KILN_EIO: the process is stopping, nothing may follow. */
enum kiln_rc kiln_store_commit_then(struct kiln_store *st,
				    const struct kiln_then *then, json_t *out,
				    struct kiln_err *err) KILN_WARN_UNUSED;
/* A read transaction (a consistent snapshot for several queries); end it
 * with kiln_store_rollback. */
enum kiln_rc kiln_store_begin_read(struct kiln_store *st,
				   struct kiln_err *err) KILN_WARN_UNUSED;
/* Maps an sqlite result code to KILN_EBUSY (busy/locked/full) or KILN_EIO,
 * copying sqlite3_errmsg into err. */
enum kiln_rc kiln_store_fail(struct kiln_store *st, int src,
			     struct kiln_err *err);
/* kiln_store_advance(_claim) inside the caller's transaction: appends
 * READY uuids (who NULL) or claims to out. */
enum kiln_rc kiln_store_advance_locked(struct kiln_store *st,
				       const char *wf_id,
				       const struct kiln_claimer *who,
				       json_t *out, struct kiln_err *err)
	KILN_WARN_UNUSED;
/* A claim is whole when its transaction commits: it is read from the
 * claimed row (UPDATE ... RETURNING) while its pages are in the writer's
 * cache, or built from the inserted values (a first step of a workflow
 * inserted RUNNING). */
/* Loads a step as kiln_store_claim_step describes, inside the caller's
 * transaction. */
enum kiln_rc kiln_store_load_claim(struct kiln_store *st,
				   const char *step_uuid, json_t **claim,
				   struct kiln_err *err) KILN_WARN_UNUSED;

#endif
