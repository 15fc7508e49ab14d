/*
 * router.c - the route table: {method, pattern, needs_auth, handler}.
 *
 * A path matches a pattern segment by segment; "{id}" matches any one
 * segment and is handed to the handler as req->path_id.  One trailing
 * slash is ignored.  No match: 404.  A match with another method: 405 with
 * Allow.  Routing happens before authentication, as in FastAPI.
 */
#include <string.h>

#include "kiln/http.h"

struct route {
	const char *method;
	const char *pattern;
	int needs_auth;
	kiln_handler_fn handler;
};

#define WF "/api/v1/workflows"
#define WD "/api/v1/webhook-deliveries"
#define TP "/api/v1/templates"
#define RN "/api/v1/runs"
#define BT "/api/v1/batches"

static const struct route routes[] = {
	{"GET", "/healthz", 0, kiln_api_healthz},
	{"GET", "/readyz", 0, kiln_api_readyz},
	{"POST", WF, 1, kiln_api_workflow_create},
	{"GET", WF, 1, kiln_api_workflow_list},
	{"GET", WF "/{id}", 1, kiln_api_workflow_get},
	{"PATCH", WF "/{id}", 1, kiln_api_workflow_patch},
	{"DELETE", WF "/{id}", 1, kiln_api_workflow_cancel},
	{"POST", WF "/{id}/start", 1, kiln_api_workflow_start},
	{"POST", WF "/{id}/pause", 1, kiln_api_workflow_pause},
	{"POST", WF "/{id}/resume", 1, kiln_api_workflow_resume},
	{"POST", WF "/{id}/cleanup", 1, kiln_api_workflow_cleanup},
	{"GET", "/api/v1/artifacts/{id}/{tail}", 1, kiln_api_artifact_get},
	{"POST", TP, 1, kiln_api_template_create},
	{"GET", TP, 1, kiln_api_template_list},
	{"POST", TP "/preview", 1, kiln_api_template_preview_draft},
	{"GET", TP "/{id}", 1, kiln_api_template_get},
	{"PUT", TP "/{id}", 1, kiln_api_template_put},
	{"DELETE", TP "/{id}", 1, kiln_api_template_archive},
	{"POST", TP "/{id}/preview", 1, kiln_api_template_preview},
	{"POST", TP "/{id}/run", 1, kiln_api_template_run},
	{"GET", RN "/{id}", 1, kiln_api_run_get},
	{"POST", RN "/{id}/cancel", 1, kiln_api_run_cancel},
	{"POST", BT, 1, kiln_api_batch_create},
	{"GET", BT, 1, kiln_api_batch_list},
	{"GET", BT "/{id}", 1, kiln_api_batch_get},
	{"POST", BT "/{id}/cancel", 1, kiln_api_batch_cancel},
	{"POST", BT "/{id}/retry", 1, kiln_api_batch_retry},
	{"GET", BT "/{id}/executions", 1, kiln_api_batch_executions},
	{"GET", WD, 1, kiln_api_delivery_list},
	{"GET", WD "/{id}", 1, kiln_api_delivery_get},
	{"POST", WD "/{id}/redeliver", 1, kiln_api_delivery_redeliver},
	{"GET", "/api/v1/catalog/actions", 1, kiln_api_catalog_list},
	{"GET", "/api/v1/catalog/actions/{id}", 1, kiln_api_catalog_get},
};

#define N_ROUTES (sizeof(routes) / sizeof(routes[0]))
#define MAX_PATH 1024

/* Matches path (without trailing slash) against pattern; on success the
 * {id} segment is copied into id (size idlen) and *tail points at what a
 * final {tail} matched (at least one character). */
static int match(const char *pattern, const char *path, char *id,
		 size_t idlen, const char **tail)
{
	const char *p = pattern, *s = path;

	*tail = NULL;
	while (*p && *s) {
		if (strcmp(p, "{tail}") == 0) {
			*tail = s;
			return 1;
		}
		if (strncmp(p, "{id}", 4) == 0) {
			size_t n = strcspn(s, "/");

			if (n == 0 || n >= idlen)
				return 0;
			memcpy(id, s, n);
			id[n] = '\0';
			p += 4;
			s += n;
			continue;
		}
		if (*p != *s)
			return 0;
		p++;
		s++;
	}
	return *p == '\0' && *s == '\0';
}

void kiln_router_dispatch(struct kiln_req *req, struct kiln_resp *resp)
{
	char path[MAX_PATH];
	char id[256];
	size_t len = strlen(req->path), i;
	const struct route *found = NULL;
	const char *tail = NULL, *found_tail = NULL;
	struct kiln_err err = {0};
	int path_known = 0;

	if (len >= sizeof(path)) {
		kiln_reply_detail(resp, MHD_HTTP_NOT_FOUND, "Not Found");
		return;
	}
	memcpy(path, req->path, len + 1);
	if (len > 1 && path[len - 1] == '/')
		path[len - 1] = '\0';
	resp->allow[0] = '\0';
	for (i = 0; i < N_ROUTES; i++) {
		if (!match(routes[i].pattern, path, id, sizeof(id), &tail))
			continue;
		path_known = 1;
		if (strcmp(routes[i].method, req->method) == 0) {
			found = &routes[i];
			found_tail = tail;
			break;
		}
		if (resp->allow[0])
			strncat(resp->allow, ", ",
				sizeof(resp->allow) - strlen(resp->allow) - 1);
		strncat(resp->allow, routes[i].method,
			sizeof(resp->allow) - strlen(resp->allow) - 1);
	}
	if (found == NULL) {
		if (path_known) {
			kiln_reply_detail(resp, MHD_HTTP_METHOD_NOT_ALLOWED,
					  "Method Not Allowed");
		} else {
			resp->allow[0] = '\0';
			kiln_reply_detail(resp, MHD_HTTP_NOT_FOUND,
					  "Not Found");
		}
		return;
	}
	resp->allow[0] = '\0';
	req->path_id = strstr(found->pattern, "{id}") ? id : NULL;
	/* The tail points into the local copy: keep it alive via req. */
	req->path_tail = found_tail ? req->path + (found_tail - path) : NULL;
	if (found->needs_auth) {
		const char *h = MHD_lookup_connection_value(
			req->conn, MHD_HEADER_KIND,
			MHD_HTTP_HEADER_AUTHORIZATION);

		if (kiln_auth_verify(h, req->app->jwt_secret,
				     kiln_now_ms() / 1000, &req->principal,
				     &err) != KILN_OK) {
			kiln_reply_error(resp, &err);
			return;
		}
		req->scope.tenant = req->principal.has_tenant
					    ? req->principal.tenant
					    : NULL;
	}
	found->handler(req, resp);
}
