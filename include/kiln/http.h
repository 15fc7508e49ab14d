/*
 * http.h - the HTTP server (libmicrohttpd) and what handlers see.
 *
 * http.c owns the MHD daemon, reads request bodies itself (counting bytes,
 * 413 as soon as the cap is passed; MHD's PostProcessor is not used), and
 * hands each complete request to router.c.  Handlers fill a kiln_resp;
 * reply.c renders it.
 */
#ifndef KILN_HTTP_H
#define KILN_HTTP_H

#include <jansson.h>
#include <microhttpd.h>

#include "kiln/auth.h"
#include "kiln/config.h"
#include "kiln/engine.h"
#include "kiln/store.h"

struct kiln_waits;

/* Everything a handler may use; lives as long as the server. */
struct kiln_app {
	const struct kiln_config *cfg;
	const char *jwt_secret;
	struct kiln_engine *engine;
	struct kiln_waits *waits; /* set by kiln_http_start */
};

struct kiln_req {
	struct kiln_app *app;
	struct MHD_Connection *conn;
	const char *method;
	const char *path;
	const char *body;      /* NUL-terminated; NULL when there is none */
	size_t body_len;
	const char *path_id;   /* the {id} segment of the route, or NULL */
	const char *path_tail; /* what {tail} matched (the rest), or NULL */
	struct kiln_principal principal; /* set for authenticated routes */
	struct kiln_scope scope;         /* what the principal may see */
	/* A waiting answer being rendered again (see kiln_resp.wait_*):
	 * is_waking is set, and wait_expired once its time is up. */
	int is_waking;
	int wait_expired;
	int64_t wait_until_ms;
	int is_replay;
};

struct kiln_resp {
	unsigned status;
	json_t *body;            /* owned */
	/* Or the body as JSON text already (owned, text_len bytes), sent
	 * as it is: an answer written without a jansson tree. */
	char *text;
	size_t text_len;
	char allow[64];          /* for 405: "GET, POST" */
	int is_auth_challenge;   /* adds WWW-Authenticate: Bearer */
	int retry_after_s;       /* > 0 adds Retry-After */
	int has_file;            /* send file_fd instead of body */
	int file_fd;             /* owned once has_file is set */
	uint64_t file_size;
	const char *file_type;   /* static string */
	int is_replay;           /* adds Idempotent-Replayed: true */
	/* An answer that waits (holding no thread): when wait_render is set,
	 * the connection is suspended until workflow wait_id ends or
	 * wait_until_ms passes, then wait_render runs with req->path_id =
	 * wait_id and req->is_waking set, and answers (or waits again).
	 * wait_seq is kiln_waits_seq() read before the handler looked at the
	 * store, so an end in between is not missed. */
	void (*wait_render)(struct kiln_req *req, struct kiln_resp *resp);
	char wait_id[KILN_UUID_LEN];
	int64_t wait_until_ms;
	uint64_t wait_seq;
	/* An answer another thread sends (kiln_answer_later). */
	struct kiln_later *later;
};

/* ---- http_later.c: answers another thread sends ---- */
struct kiln_later;
/* The handler's answer will come from another thread, which must call
 * kiln_later_send exactly once; the connection holds no thread meanwhile.
 * NULL (with a 503 in resp) when out of memory. */
struct kiln_later *kiln_answer_later(struct kiln_req *req,
				     struct kiln_resp *resp);
/* The handler gives up on a later it has not handed over; it answers
 * with resp as usual. */
void kiln_later_cancel(struct kiln_later *l, struct kiln_resp *resp);
/* From any thread: the answer (a status and a JSON body, taken). */
void kiln_later_send(struct kiln_later *l, struct kiln_resp *resp);
/* For http.c.  After the handler returned: 1 if the answer is already
 * there, else the connection is suspended (0) until it is. */
int kiln_later_hold(struct kiln_later *l);
/* The answer, once ready (taken into *out); the connection's side lets
 * go of l. */
void kiln_later_take(struct kiln_later *l, struct kiln_resp *out);
/* The connection is gone before it took the answer. */
void kiln_later_drop(struct kiln_later *l);
/* Before MHD stops: waits (at most 30 s) until no connection is
 * suspended for an answer; from then on a handler's thread waits for its
 * answer instead.  kiln_later_restart undoes it (a server started again
 * in the same process). */
void kiln_later_stop(void);
void kiln_later_restart(void);

/* ---- http_wait.c: suspended connections waiting for workflows ---- */
struct kiln_waits *kiln_waits_start(struct kiln_err *err);
/* Resumes every waiting connection, lets them answer (at most 5 s), and
 * stops. */
void kiln_waits_stop(struct kiln_waits *w);
/* Frees w after the daemon has stopped. */
void kiln_waits_free(struct kiln_waits *w);
/* Counts workflow ends; read it before looking at the store. */
uint64_t kiln_waits_seq(struct kiln_waits *w);
/* Resumes conn (already suspended) when wf_id ends, at until_ms, or at
 * once if any workflow ended since seq or w is stopping. */
void kiln_waits_add(struct kiln_waits *w, struct MHD_Connection *conn,
		    const char *wf_id, int64_t until_ms, uint64_t seq);
/* A request starts waiting (first suspension) / is completed (sent or
 * dropped): kiln_waits_stop waits for every one to complete. */
void kiln_waits_begin(struct kiln_waits *w);
void kiln_waits_end(struct kiln_waits *w);
/* 1 once kiln_waits_stop has begun. */
int kiln_waits_stopping(struct kiln_waits *w);

struct kiln_http;

/* Starts listening on cfg->listen_host:listen_port.  *bound_port receives
 * the port actually bound (useful with port 0). */
enum kiln_rc kiln_http_start(struct kiln_app *app, struct kiln_http **out,
			     int *bound_port, struct kiln_err *err)
	KILN_WARN_UNUSED;
void kiln_http_stop(struct kiln_http *h);

/* A query argument, or NULL. */
const char *kiln_req_query(const struct kiln_req *req, const char *name);
/* A request header, or NULL. */
const char *kiln_req_header(const struct kiln_req *req, const char *name);

/* ---- router.c ---- */
typedef void (*kiln_handler_fn)(struct kiln_req *req, struct kiln_resp *resp);
/* Finds the route, authenticates when the route needs it, and runs the
 * handler.  Fills resp in every case (404, 405, 401, ...). */
void kiln_router_dispatch(struct kiln_req *req, struct kiln_resp *resp);

/* ---- reply.c: the one place that maps errors to statuses ---- */
/* resp takes body (steals the reference). */
void kiln_reply_json(struct kiln_resp *resp, unsigned status, json_t *body);
/* resp takes text, a JSON body of len bytes (malloc'd). */
void kiln_reply_text(struct kiln_resp *resp, unsigned status, char *text,
		     size_t len);
/* Frees resp's body, either form (an answer that will not be sent). */
void kiln_reply_drop(struct kiln_resp *resp);
/* {"detail": "<formatted>"} */
void kiln_reply_detail(struct kiln_resp *resp, unsigned status,
		       const char *fmt, ...) KILN_PRINTF(3, 4);
/* 422 {"detail": detail} (steals detail, a FastAPI error list). */
void kiln_reply_validation(struct kiln_resp *resp, json_t *detail);
/* 422 for bad inputs of a run or batch: each item of detail also gets
 * "error_code": "INVALID_INPUT" and "field", its loc after the first
 * element as a path ("inputs.prompt", "assets[3].url"). */
void kiln_reply_invalid_input(struct kiln_resp *resp, json_t *detail);
/* Maps err->code to a status and renders err->msg. */
void kiln_reply_error(struct kiln_resp *resp, const struct kiln_err *err);
/* The request's JSON body (owned), or NULL with a 422 in resp when it is
 * absent or not JSON. */
json_t *kiln_reply_body(struct kiln_req *req, struct kiln_resp *resp);
/* 0 if the {id} path segment is a UUID, else -1 with a 422 (loc ["path",
 * name]) in resp. */
int kiln_reply_uuid(struct kiln_req *req, struct kiln_resp *resp,
		    const char *name);
/* The calling thread's store, or NULL with a 503 already in resp. */
struct kiln_store *kiln_reply_store(struct kiln_resp *resp);
/* Queues resp on the connection; frees resp->body. */
enum MHD_Result kiln_reply_send(struct MHD_Connection *conn,
				struct kiln_resp *resp);

/* ---- api_*.c handlers ---- */
void kiln_api_healthz(struct kiln_req *req, struct kiln_resp *resp);
void kiln_api_readyz(struct kiln_req *req, struct kiln_resp *resp);
void kiln_api_workflow_create(struct kiln_req *req, struct kiln_resp *resp);
void kiln_api_workflow_list(struct kiln_req *req, struct kiln_resp *resp);
void kiln_api_workflow_get(struct kiln_req *req, struct kiln_resp *resp);
void kiln_api_workflow_patch(struct kiln_req *req, struct kiln_resp *resp);
void kiln_api_workflow_cancel(struct kiln_req *req, struct kiln_resp *resp);
void kiln_api_workflow_start(struct kiln_req *req, struct kiln_resp *resp);
void kiln_api_workflow_pause(struct kiln_req *req, struct kiln_resp *resp);
void kiln_api_workflow_resume(struct kiln_req *req, struct kiln_resp *resp);
void kiln_api_workflow_cleanup(struct kiln_req *req, struct kiln_resp *resp);
void kiln_api_artifact_get(struct kiln_req *req, struct kiln_resp *resp);
/* Adds a 422 item at ["body", "webhook_url"] to detail when body's
 * webhook_url targets a private network the config does not allow. */
void kiln_api_check_webhook_target(struct kiln_req *req, const json_t *body,
				   json_t *detail);
/* A tenant's token creates only for its own tenant: sets obj's
 * origin_tenant_id to it, or answers 403 (-1) when obj names another. */
int kiln_api_tenant_or_reply(struct kiln_req *req, json_t *obj,
			     struct kiln_resp *resp);
/* The latest version of template id, if it may run (owned); NULL with
 * 404 (absent, out of scope) or 409 (archived) in resp. */
json_t *kiln_api_runnable_template(struct kiln_req *req,
				   struct kiln_store *st, const char *id,
				   struct kiln_resp *resp);
/* An operator's run or batch of a tenant's template (body without an
 * origin_tenant_id) belongs to that tenant. */
void kiln_api_default_tenant(struct kiln_req *req, json_t *body,
			     const json_t *tpl);
/* Fills idem from the request's Idempotency-Key (idem->key NULL when
 * there is none) and the fingerprint of method, path and body into hash,
 * and looks the key up: *existing (owned) is what it created first, when
 * it is a retry.  -1 with the answer in resp: 409 for the key used with
 * another request, 500 when out of memory, 503 when the store is busy. */
struct kiln_idem;
int kiln_api_idempotency(struct kiln_req *req, struct kiln_store *st,
			 const json_t *body, struct kiln_idem *idem,
			 char hash[65], char **existing,
			 struct kiln_resp *resp);
void kiln_api_template_run(struct kiln_req *req, struct kiln_resp *resp);
void kiln_api_run_get(struct kiln_req *req, struct kiln_resp *resp);
void kiln_api_run_cancel(struct kiln_req *req, struct kiln_resp *resp);
void kiln_api_batch_create(struct kiln_req *req, struct kiln_resp *resp);
void kiln_api_batch_list(struct kiln_req *req, struct kiln_resp *resp);
void kiln_api_batch_get(struct kiln_req *req, struct kiln_resp *resp);
void kiln_api_batch_cancel(struct kiln_req *req, struct kiln_resp *resp);
void kiln_api_batch_retry(struct kiln_req *req, struct kiln_resp *resp);
void kiln_api_batch_executions(struct kiln_req *req,
			       struct kiln_resp *resp);
void kiln_api_template_create(struct kiln_req *req, struct kiln_resp *resp);
void kiln_api_template_list(struct kiln_req *req, struct kiln_resp *resp);
void kiln_api_template_get(struct kiln_req *req, struct kiln_resp *resp);
void kiln_api_template_put(struct kiln_req *req, struct kiln_resp *resp);
void kiln_api_template_archive(struct kiln_req *req,
			       struct kiln_resp *resp);
void kiln_api_template_preview(struct kiln_req *req,
			       struct kiln_resp *resp);
void kiln_api_template_preview_draft(struct kiln_req *req,
				     struct kiln_resp *resp);
void kiln_api_delivery_list(struct kiln_req *req, struct kiln_resp *resp);
void kiln_api_delivery_get(struct kiln_req *req, struct kiln_resp *resp);
void kiln_api_delivery_redeliver(struct kiln_req *req,
				 struct kiln_resp *resp);
void kiln_api_catalog_list(struct kiln_req *req, struct kiln_resp *resp);
void kiln_api_catalog_get(struct kiln_req *req, struct kiln_resp *resp);

#endif
