/*
 * api_health.c - liveness and readiness, without a token, for load
 * balancers and systemd health checks.
 */
#include "kiln/http.h"

void kiln_api_healthz(struct kiln_req *req, struct kiln_resp *resp)
{
	kiln_reply_json(resp, MHD_HTTP_OK, json_pack("{ss}", "status", "ok"));
}

void kiln_api_readyz(struct kiln_req *req, struct kiln_resp *resp)
{
	struct kiln_store *st = kiln_store_thread(NULL);

	if (st == NULL || !kiln_store_ping(st)) {
		kiln_reply_detail(resp, MHD_HTTP_SERVICE_UNAVAILABLE,
				  "store unavailable");
		resp->retry_after_s = 5;
		return;
	}
	kiln_reply_json(resp, MHD_HTTP_OK,
			json_pack("{ss}", "status", "ready"));
}
